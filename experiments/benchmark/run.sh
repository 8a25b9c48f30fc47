#!/usr/bin/env bash
# The benchmark (README.md here): every baseline and every deep model on one data set, through the same fold,
# then lobnet-compare over everything in the store. Run from the repository root after `make install`:
#   bash experiments/benchmark/run.sh amzn      # or aapl; QUICK=1 for the short version the tests run
# Data sets: amzn (LOBSTER AMZN level 5), aapl (LOBSTER AAPL level 1); the shared data is found through
# LOBNET_DATA_DIR (default ../shared/data). DATA=PATH points the same protocol at another LOBSTER day.
# Outputs go to OUT (default runs/benchmark, ignored by git), one MLflow store for every data set.
# Two jobs run at a time, one thread each (JOBS=1 for one at a time).
set -euo pipefail
SET=${1:?usage: run.sh amzn|aapl}
D=${LOBNET_DATA_DIR:-../shared/data}
case $SET in
  amzn) DEFAULT_DATA=$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv ;;
  aapl) DEFAULT_DATA=$D/lobster/AAPL_2012-06-21_34200000_57600000_message_1.csv ;;
  *) echo "unknown data set $SET (amzn | aapl)" >&2; exit 2 ;;
esac
DATA=${DATA:-$DEFAULT_DATA}
OUT=$(realpath -m "${OUT:-runs/benchmark}")
DB=sqlite:///$OUT/mlflow.db
JOBS=${JOBS:-2}
TAB=()  # overrides of the tabular baselines (logreg, gbdt)
SEEDS="1 2"
DEEP="lstm tcn transformer hybrid deeplob"
COMMON=(experiment=benchmark_$SET data.path="$DATA" cache_dir="$OUT/cache" mlflow.tracking_uri="$DB"
        mlflow.artifact_location="$OUT/mlartifacts" progress=false)
if [[ ${QUICK:-0} == 1 ]]; then  # the test suite's version: one seed, one horizon, a few batches
  COMMON+=("labels.horizons=[50]" trainer.max_epochs=1 ++trainer.extra.limit_train_batches=3
           ++trainer.extra.limit_val_batches=3)
  TAB=(+model.max_train_samples=3000)
  SEEDS=""
  DEEP=${QUICK_DEEP:-tcn}
fi
mkdir -p "$OUT/logs/$SET"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
# The search: two points per deep model, A its defaults (dropout 0.1, no weight decay) and B regularised and
# half as wide (dropout 0.3 where it has dropout, weight decay 1e-2, half the width); every point counts as a
# configuration tried in lobnet-compare's data-snooping test.
point() {  # MODEL POINT -> its overrides
  local m=$1 p=$2
  [[ $p == A ]] && { echo "+search=A"; return; }
  case $m in
    lstm) echo "+search=B +model.dropout=0.3 +model.hidden=32 optimizer.weight_decay=0.01" ;;
    tcn) echo "+search=B +model.dropout=0.3 +model.channels=24 optimizer.weight_decay=0.01" ;;
    transformer) echo "+search=B +model.dropout=0.3 +model.d_model=32 optimizer.weight_decay=0.01" ;;
    hybrid) echo "+search=B +model.dropout=0.3 +model.tcn_channels=24 +model.d_model=24 optimizer.weight_decay=0.01" ;;
    deeplob) echo "+search=B +model.conv_channels=16 +model.inception_channels=32 +model.lstm_hidden=32 optimizer.weight_decay=0.01" ;;
  esac
}
features() { [[ $1 == deeplob ]] && echo features=with_book || echo features=default; }
job() {  # NAME SEED OVERRIDES...: one lobnet-train in its own folder, its log beside it
  local name=$1 seed=$2; shift 2
  local dir="$OUT/train/$SET/$name-s$seed" log="$OUT/logs/$SET/$name-s$seed.log"
  printf '%q ' .venv/bin/lobnet-train "${COMMON[@]}" seed="$seed" output_dir="$dir" "$@"
  printf '> %q 2>&1 || { echo FAILED %q; tail -5 %q; exit 1; }\n' "$log" "$log" "$log"
}
t0=$(date +%s)
{
  # baselines: majority, ew_ofi and logreg are deterministic (one seed); gbdt draws its row and column samples
  job ew_ofi 0 model=ew_ofi
  job logreg 0 model=logreg "${TAB[@]}"
  for s in 0 $SEEDS; do job gbdt "$s" model=gbdt +model.threads=1 "${TAB[@]}"; done
  for m in $DEEP; do for p in A B; do
    [[ ${QUICK:-0} == 1 && $p == B ]] && continue
    # shellcheck disable=SC2046
    job "$m-$p" 0 model=$m $(features $m) $(point $m $p)
  done; done
} > "$OUT/jobs-$SET-1.sh"
# the first job alone: it prepares the event cache and creates the MLflow store, which parallel jobs would race on
job majority 0 model=majority > "$OUT/jobs-$SET-0.sh"
bash "$OUT/jobs-$SET-0.sh"
xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-$SET-1.sh"
if [[ -n $SEEDS ]]; then  # the chosen point of each deep model, with the remaining seeds
  name=$(.venv/bin/python -c "import json,sys; from lobnet.cli.train import dataset_name; \
print(dataset_name(json.load(open(sys.argv[1]))))" "$(ls "$OUT"/train/$SET/majority-s0/prepared/summary.json)")
  .venv/bin/python experiments/benchmark/chosen.py "$DB" benchmark "$name" > "$OUT/chosen-$SET.txt"
  while read -r m p; do
    for s in $SEEDS; do
      # shellcheck disable=SC2046
      job "$m-$p" "$s" model=$m $(features $m) $(point $m $p)
    done
  done < "$OUT/chosen-$SET.txt" > "$OUT/jobs-$SET-2.sh"
  xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-$SET-2.sh"
fi
echo "$SET: trained in $(( $(date +%s) - t0 )) s"
.venv/bin/lobnet-compare mlflow.tracking_uri="$DB" mlflow.experiment_name=benchmark output_dir="$OUT/compare" \
  horizon=all ${QUICK:+significance.reps=99}
echo "$SET: done in $(( $(date +%s) - t0 )) s"
