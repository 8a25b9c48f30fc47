#!/usr/bin/env bash
# The benchmark (README.md here): every baseline and every deep model on each data set, through the same fold,
# then lobnet-compare over everything in the store. Run from the repository root after `make install`:
#   bash experiments/benchmark/run.sh all         # amzn aapl aig bac: the whole study
#   bash experiments/benchmark/run.sh amzn aapl   # some of them; QUICK=1 for the short version the tests run
# Data sets: amzn (LOBSTER AMZN level 5), aapl (LOBSTER AAPL level 1), aig and bac (AlgoSeek Level-I ticks, five
# days). The shared data is found through LOBNET_DATA_DIR (default ../shared/data); DATA=PATH points one set's
# protocol at another LOBSTER day (amzn, aapl) or folder of tick days (aig, bac).
# Outputs go to OUT (default runs/benchmark, ignored by git), one MLflow store for every data set.
# Two jobs run at a time, one thread each (JOBS=1 for one at a time), all sets' jobs in one queue, longest first.
set -euo pipefail
(( $# )) || { echo "usage: run.sh all | amzn aapl aig bac (one or more)" >&2; exit 2; }
[[ $1 == all ]] && set -- amzn aapl aig bac
D=${LOBNET_DATA_DIR:-../shared/data}
data_of() {
  case $1 in
    amzn) echo "$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv" ;;
    aapl) echo "$D/lobster/AAPL_2012-06-21_34200000_57600000_message_1.csv" ;;
    aig) echo "$D/quotes/aig" ;;
    bac) echo "$D/quotes/bac" ;;
    *) echo "unknown data set $1 (amzn | aapl | aig | bac)" >&2; return 2 ;;
  esac
}
for s in "$@"; do data_of "$s" > /dev/null; done
(( $# == 1 )) || [[ -z ${DATA:-} ]] || { echo "DATA= names one data set's file: give one set" >&2; exit 2; }
OUT=$(realpath -m "${OUT:-runs/benchmark}")
DB=sqlite:///$OUT/mlflow.db
JOBS=${JOBS:-2}
TAB=()  # overrides of the tabular baselines (logreg, gbdt)
SEEDS="1 2"
DEEP="deeplob hybrid transformer tcn lstm"  # roughly the longest first, so that the queue ends evenly
EXTRA=()
if [[ ${QUICK:-0} == 1 ]]; then  # the test suite's version: one seed, one horizon, a few batches
  EXTRA=("labels.horizons=[50]" trainer.max_epochs=1 ++trainer.extra.limit_train_batches=3
         ++trainer.extra.limit_val_batches=3)
  TAB=(+model.max_train_samples=3000)
  SEEDS=""
  DEEP=${QUICK_DEEP:-tcn}
fi
common() {  # SET -> the overrides every job of that set shares
  printf '%q ' experiment=benchmark_$1 data.path="${DATA:-$(data_of "$1")}" cache_dir="$OUT/cache" \
    mlflow.tracking_uri="$DB" mlflow.artifact_location="$OUT/mlartifacts" progress=false "${EXTRA[@]}"
}
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
job() {  # SET NAME SEED OVERRIDES...: one lobnet-train in its own folder, its log beside it
  local set=$1 name=$2 seed=$3; shift 3
  local dir="$OUT/train/$set/$name-s$seed" log="$OUT/logs/$set/$name-s$seed.log"
  printf '%q ' .venv/bin/lobnet-train; common "$set"; printf '%q ' seed="$seed" output_dir="$dir" "$@"
  printf '> %q 2>&1 || { echo FAILED %q; tail -5 %q; exit 1; }\n' "$log" "$log" "$log"
}
t0=$(date +%s)
echo "benchmark on $*: started $(date -u +%FT%TZ)"
# First, each set's majority baseline alone: it prepares the set's event cache and (the first) creates the MLflow
# store, which parallel jobs would race on.
for s in "$@"; do mkdir -p "$OUT/logs/$s"; done
for s in "$@"; do job "$s" majority 0 model=majority; done > "$OUT/jobs-0.sh"
bash "$OUT/jobs-0.sh"
# Phase 1: every deep model at both points with seed 0, then the baselines: majority, ew_ofi and logreg are
# deterministic (one seed); gbdt draws its row and column samples (three seeds).
{
  for m in $DEEP; do for p in A B; do for s in "$@"; do
    [[ ${QUICK:-0} == 1 && $p == B ]] && continue
    # shellcheck disable=SC2046
    job "$s" "$m-$p" 0 model=$m $(features $m) $(point $m $p)
  done; done; done
  for s in "$@"; do
    job "$s" ew_ofi 0 model=ew_ofi
    job "$s" logreg 0 model=logreg "${TAB[@]}"
    for seed in 0 $SEEDS; do job "$s" gbdt "$seed" model=gbdt +model.threads=1 "${TAB[@]}"; done
  done
} > "$OUT/jobs-1.sh"
xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-1.sh"
echo "phase 1 done in $(( $(date +%s) - t0 )) s"
if [[ -n $SEEDS ]]; then  # Phase 2: the chosen point of each deep model, with the remaining seeds
  for s in "$@"; do
    name=$(.venv/bin/python -c "import json,sys; from lobnet.cli.train import dataset_name; \
print(dataset_name(json.load(open(sys.argv[1]))))" "$(ls "$OUT"/train/$s/majority-s0/prepared/summary.json)")
    .venv/bin/python experiments/benchmark/chosen.py "$DB" benchmark "$name" > "$OUT/chosen-$s.txt"
  done
  for seed in $SEEDS; do for s in "$@"; do
    while read -r m p; do
      # shellcheck disable=SC2046
      job "$s" "$m-$p" "$seed" model=$m $(features $m) $(point $m $p)
    done < "$OUT/chosen-$s.txt"
  done; done > "$OUT/jobs-2.sh"
  xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-2.sh"
fi
echo "trained in $(( $(date +%s) - t0 )) s"
.venv/bin/lobnet-compare mlflow.tracking_uri="$DB" mlflow.experiment_name=benchmark output_dir="$OUT/compare" \
  horizon=all $([[ ${QUICK:-0} == 1 ]] && echo significance.reps=99)
echo "benchmark on $*: done in $(( $(date +%s) - t0 )) s, $(date -u +%FT%TZ)"
