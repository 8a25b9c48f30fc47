#!/usr/bin/env bash
# The minute-bar direction classifier (README.md here): will the next minute close above this one, from the last
# 60 minutes of OHLCV? A 2-layer LSTM with binary cross-entropy (seeds 0 1 2), against the majority class and
# logistic regression, on each symbol's regular-session minute trade bars, through lobnet-train's chronological
# folds (3 training days, 1 validation day, 1 test day; experiment=minute_direction), one MLflow store, then
# lobnet-compare over it. Run from the repository root after `make install`:
#   bash experiments/minute_direction/run.sh              # spy ibm aig bac aapl
#   QUICK=1 OUT=/tmp/m bash experiments/minute_direction/run.sh spy   # 2 epochs, one seed: a check of the plumbing
# The shared data is found through LOBNET_DATA_DIR (default ../shared/data). Outputs go to OUT (default
# runs/minute_direction, ignored by git); the tables to TABLE_DIR (default OUT/results).
set -euo pipefail
(( $# )) || set -- spy ibm aig bac aapl
D=${LOBNET_DATA_DIR:-../shared/data}/bars/minute
for s in "$@"; do [[ -d $D/$s ]] || { echo "no minute bars for $s in $D" >&2; exit 2; }; done
OUT=$(realpath -m "${OUT:-runs/minute_direction}")
DB=sqlite:///$OUT/mlflow.db
SEEDS="0 1 2"
EXTRA=()
if [[ ${QUICK:-0} == 1 ]]; then EXTRA=(trainer.max_epochs=2); SEEDS=0; fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
mkdir -p "$OUT/logs"
t0=$(date +%s)
echo "minute_direction on $*: started $(date -u +%FT%TZ)"
train() {  # SYMBOL MODEL SEED [OVERRIDES...]
  local s=$1 m=$2 seed=$3; shift 3
  local days split=()
  days=$(find "$D/$s" -name '*_trade.zip' | wc -l)
  (( days < 5 )) && split=(split.train_days=1)  # AAPL: three days make one fold of 1 train, 1 val, 1 test day
  .venv/bin/lobnet-train experiment=minute_direction data.path="$D/$s" model="$m" seed="$seed" "${split[@]}" \
    output_dir="$OUT/train/$s-$m-s$seed" cache_dir="$OUT/cache" mlflow.tracking_uri="$DB" \
    mlflow.artifact_location="$OUT/mlartifacts" progress=false "${EXTRA[@]}" "$@" \
    > "$OUT/logs/$s-$m-s$seed.log" 2>&1 || { echo "FAILED $s $m $seed"; tail -5 "$OUT/logs/$s-$m-s$seed.log"; exit 1; }
  tail -1 "$OUT/logs/$s-$m-s$seed.log"
}
for s in "$@"; do
  for seed in $SEEDS; do train "$s" lstm "$seed"; done
  train "$s" majority 0
  train "$s" logreg 0
done
.venv/bin/lobnet-compare mlflow.tracking_uri="$DB" mlflow.experiment_name=minute_direction output_dir="$OUT/compare" \
  "metrics=[accuracy,macro_f1,mcc,pr_auc_up,pr_auc_down,hit_rate]" $([[ ${QUICK:-0} == 1 ]] && echo significance.reps=99)
.venv/bin/python experiments/minute_direction/table.py "$OUT" "${TABLE_DIR:-$OUT/results}"
echo "minute_direction on $*: done in $(( $(date +%s) - t0 )) s, $(date -u +%FT%TZ)"
