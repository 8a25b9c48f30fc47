#!/usr/bin/env bash
# What the benchmark's models read (README.md here, "What the models read"): every architecture at its default
# search point (A) and the logreg and gbdt baselines, trained with the benchmark's protocol on one data set
# (default amzn) with seed 0 and explain=true, so that each fold's test block is explained in its MLflow run
# (lobnet.evaluation.explain); then explain_table.py sets their readings side by side. Run from the repository
# root after `make install`:
#   bash experiments/benchmark/explain.sh [amzn|aapl|aig|bac]
#   QUICK=1 OUT=/tmp/e bash experiments/benchmark/explain.sh   # a few batches, tcn and logreg: the plumbing
# Outputs go to OUT (default runs/benchmark_explain, ignored by git); the tables to TABLE_DIR (default OUT/results).
set -euo pipefail
set_=${1:-amzn}
D=${LOBNET_DATA_DIR:-../shared/data}
case $set_ in
  amzn) data="$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv" ;;
  aapl) data="$D/lobster/AAPL_2012-06-21_34200000_57600000_message_1.csv" ;;
  aig) data="$D/quotes/aig" ;;
  bac) data="$D/quotes/bac" ;;
  *) echo "unknown data set $set_ (amzn | aapl | aig | bac)" >&2; exit 2 ;;
esac
OUT=$(realpath -m "${OUT:-runs/benchmark_explain}")
DB=sqlite:///$OUT/mlflow.db
JOBS=${JOBS:-2}
MODELS="logreg deeplob hybrid transformer tcn lstm gbdt"  # logreg first: alone, it prepares the cache
EXTRA=()
TAB=()  # overrides of the tabular baselines
if [[ ${QUICK:-0} == 1 ]]; then
  EXTRA=("labels.horizons=[50]" trainer.max_epochs=1 ++trainer.extra.limit_train_batches=3
         ++trainer.extra.limit_val_batches=3 explain_settings.windows=64 explain_settings.attribution_windows=8
         explain_settings.ig_steps=4 explain_settings.reps=49)
  TAB=(+model.max_train_samples=3000)
  MODELS="tcn logreg"
fi
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
mkdir -p "$OUT/logs"
job() {  # MODEL: one lobnet-train with explain=true, its log in OUT/logs
  local m=$1 extra=()
  case $m in
    deeplob) extra=(features=with_book +search=A) ;;
    logreg) extra=(features=default "${TAB[@]}") ;;
    gbdt) extra=(features=default +model.threads=1 "${TAB[@]}") ;;
    *) extra=(features=default +search=A) ;;
  esac
  printf '%q ' .venv/bin/lobnet-train experiment=benchmark_$set_ data.path="$data" model="$m" seed=0 explain=true \
    output_dir="$OUT/train/$m" cache_dir="$OUT/cache" mlflow.tracking_uri="$DB" \
    mlflow.artifact_location="$OUT/mlartifacts" mlflow.experiment_name=benchmark_explain progress=false \
    "${extra[@]}" "${EXTRA[@]}"
  printf '> %q 2>&1 || { echo FAILED %q; tail -5 %q; exit 1; }\n' "$OUT/logs/$m.log" "$m" "$OUT/logs/$m.log"
}
t0=$(date +%s)
echo "benchmark explain on $set_: started $(date -u +%FT%TZ)"
first=${MODELS%% *}
job "$first" > "$OUT/jobs-0.sh"  # alone: it prepares the cache and creates the MLflow store, which parallel jobs would race on
bash "$OUT/jobs-0.sh"
for m in ${MODELS#* }; do job "$m"; done > "$OUT/jobs-1.sh"
xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-1.sh"
.venv/bin/python experiments/benchmark/explain_table.py "$OUT" "${TABLE_DIR:-$OUT/results}"
echo "benchmark explain on $set_: done in $(( $(date +%s) - t0 )) s, $(date -u +%FT%TZ)"
