#!/usr/bin/env bash
# The Sharpe-loss study (README.md here): the hybrid TCN->Transformer trained with cross-entropy (loss=ce), the
# differentiable Sharpe loss with its turnover charge (loss=sharpe) and both (loss=ce_sharpe), three seeds each,
# on the benchmark's folds (experiment=benchmark_<set>: the same samples, horizons and test blocks); each fold's
# test forecasts traded net of spread, fees and latency beside the naive benchmarks (test/bt_*); then each model
# exported and streamed over the last STREAM events of its last test day with execution=twap: its forecast times
# parent orders against TWAP, and its streamed trades face the naive benchmarks again.
# Run from the repository root after `make install`:
#   bash experiments/advanced/run.sh            # amzn aig bac
#   QUICK=1 OUT=/tmp/a bash experiments/advanced/run.sh amzn   # a few batches, one seed: a check of the plumbing
# The shared data is found through LOBNET_DATA_DIR (default ../shared/data). Outputs go to OUT (default
# runs/advanced, ignored by git), one MLflow store (experiment "advanced"). Two jobs at a time, one thread each.
set -euo pipefail
(( $# )) || set -- amzn aig bac
D=${LOBNET_DATA_DIR:-../shared/data}
data_of() {
  case $1 in
    amzn) echo "$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv" ;;
    aig) echo "$D/quotes/aig" ;;
    bac) echo "$D/quotes/bac" ;;
    *) echo "unknown data set $1 (amzn | aig | bac)" >&2; return 2 ;;
  esac
}
reader_of() { [[ $1 == amzn ]] && echo "data=lobster stream.day=0" || echo "data=quotes stream.day=4"; }
for s in "$@"; do data_of "$s" > /dev/null; done
OUT=$(realpath -m "${OUT:-runs/advanced}")
DB=sqlite:///$OUT/mlflow.db
JOBS=${JOBS:-2}
SEEDS="0 1 2"
STREAM=${STREAM:-40000}
EXTRA=()
if [[ ${QUICK:-0} == 1 ]]; then
  EXTRA=("labels.horizons=[50]" trainer.max_epochs=1 ++trainer.extra.limit_train_batches=3
         ++trainer.extra.limit_val_batches=3 backtest.naive_draws=20)
  SEEDS=0
  STREAM=${STREAM_QUICK:-8000}
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT/logs"
job() {  # SET LOSS SEED: train, export and stream one model, its log in OUT/logs
  local set=$1 loss=$2 seed=$3 name="$1-$2-s$3" log="$OUT/logs/$1-$2-s$3.log"
  local dir="$OUT/train/$name"
  printf 'set -e; { '
  printf '%q ' .venv/bin/lobnet-train experiment=benchmark_$set data.path="$(data_of "$set")" model=hybrid \
    loss=$loss seed=$seed output_dir="$dir" cache_dir="$OUT/cache" mlflow.tracking_uri="$DB" \
    mlflow.artifact_location="$OUT/mlartifacts" mlflow.experiment_name=advanced progress=false "${EXTRA[@]}"
  printf '; ckpt=$(ls %q/run-*/fold_0/best.ckpt); ' "$dir"
  printf '.venv/bin/lobnet-export checkpoint="$ckpt" '
  printf '%q ' output_dir="$OUT/export/$name" tracking_uri="$DB"
  printf '; '
  # shellcheck disable=SC2046
  printf '%q ' .venv/bin/lobnet-stream model_dir="$OUT/export/$name" $(reader_of "$set") \
    data.path="$(data_of "$set")" stream.events="$STREAM" stream.offset=-"$STREAM" execution=twap \
    "stream.engines=[onnx_step,ew_ofi]" output_dir="$OUT/stream/$name" cache_dir="$OUT/cache" \
    mlflow.tracking_uri="$DB" mlflow.experiment_name=advanced_stream
  printf '; } > %q 2>&1 || { echo FAILED %q; tail -5 %q; exit 1; }\n' "$log" "$log" "$log"
}
t0=$(date +%s)
echo "advanced on $*: started $(date -u +%FT%TZ)"
# the first job alone: it prepares its set's cache and creates the MLflow store, which parallel jobs would race on
first=$1
job "$first" ce 0 > "$OUT/jobs-0.sh"
bash "$OUT/jobs-0.sh"
for seed in $SEEDS; do for s in "$@"; do for loss in ce sharpe ce_sharpe; do
  [[ $s == "$first" && $loss == ce && $seed == 0 ]] && continue
  job "$s" $loss "$seed"
done; done; done > "$OUT/jobs-1.sh"
xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-1.sh"
echo "trained, exported and streamed in $(( $(date +%s) - t0 )) s"
.venv/bin/python experiments/advanced/table.py "$OUT" "${TABLE_DIR:-$OUT/results}"
echo "advanced on $*: done in $(( $(date +%s) - t0 )) s, $(date -u +%FT%TZ)"
