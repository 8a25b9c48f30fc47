#!/usr/bin/env bash
# The factor-targets study (README.md here): every deep model and the ridge baseline trained on the one-pass
# factors' own targets, each fold scored against the EW factor calibrated on its training samples, then
# lobnet-compare over the store. Run from the repository root after `make install`:
#   bash experiments/factor_targets/run.sh all                  # every set below: the whole study
#   bash experiments/factor_targets/run.sh amzn-liquidity pairs  # some of them
# Sets: amzn-liquidity, amzn-volatility (LOBSTER AMZN level 5, one day), aig-liquidity, aig-volatility,
# bac-liquidity, bac-volatility (AlgoSeek Level-I ticks, five days), pairs (AIG/BAC, the merged quote table).
# The shared data is found through LOBNET_DATA_DIR (default ../shared/data). Outputs go to OUT (default
# runs/factor_targets, ignored by git), one MLflow store. Two jobs at a time, one thread each (JOBS=1: one).
set -euo pipefail
(( $# )) || { echo "usage: run.sh all | SET... (amzn-liquidity amzn-volatility aig-... bac-... pairs)" >&2; exit 2; }
[[ $1 == all ]] && set -- amzn-liquidity amzn-volatility aig-liquidity aig-volatility bac-liquidity bac-volatility pairs
D=${LOBNET_DATA_DIR:-../shared/data}
args_of() {  # SET -> the data and target overrides of its jobs
  case $1 in
    amzn-*) echo "experiment=factor_targets_amzn data.path=$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv labels=${1#amzn-}" ;;
    aig-*) echo "experiment=factor_targets_ticks data.path=$D/quotes/aig labels=${1#aig-}" ;;
    bac-*) echo "experiment=factor_targets_ticks data.path=$D/quotes/bac labels=${1#bac-}" ;;
    pairs) echo "experiment=factor_targets_ticks data.path=$D/quotes labels=pairs features=level1" ;;
    *) echo "unknown set $1" >&2; return 2 ;;
  esac
}
for s in "$@"; do args_of "$s" > /dev/null; done
OUT=$(realpath -m "${OUT:-runs/factor_targets}")
DB=sqlite:///$OUT/mlflow.db
JOBS=${JOBS:-2}
SEEDS=${SEEDS:-"0 1 2"}
# DeepLOB reads one order book (features=with_book): not on the merged two-symbol table of pairs
DEEP=${DEEP:-"deeplob transformer hybrid tcn lstm"}  # roughly the longest first, so that the queue ends evenly
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
job() {  # SET NAME SEED OVERRIDES...: one lobnet-train in its own folder, its log beside it
  local set=$1 name=$2 seed=$3; shift 3
  local dir="$OUT/train/$set/$name-s$seed" log="$OUT/logs/$set/$name-s$seed.log"
  # shellcheck disable=SC2046
  printf '%q ' .venv/bin/lobnet-train $(args_of "$set") cache_dir="$OUT/cache" mlflow.tracking_uri="$DB" \
    mlflow.artifact_location="$OUT/mlartifacts" progress=false seed="$seed" output_dir="$dir" "$@"
  printf '> %q 2>&1 || { echo FAILED %q; tail -5 %q; exit 1; }\n' "$log" "$log" "$log"
}
t0=$(date +%s)
echo "factor targets on $*: started $(date -u +%FT%TZ)"
for s in "$@"; do mkdir -p "$OUT/logs/$s"; done
# First each set's ridge baseline (deterministic: one seed), one at a time: it fills the event cache and creates
# the MLflow store, which parallel jobs would race on.
for s in "$@"; do job "$s" ridge 0 model=ridge; done > "$OUT/jobs-0.sh"
bash "$OUT/jobs-0.sh"
echo "baselines done in $(( $(date +%s) - t0 )) s"
{
  for m in $DEEP; do for seed in $SEEDS; do for s in "$@"; do
    if [[ $m == deeplob ]]; then
      [[ $s == pairs ]] && continue
      job "$s" "$m" "$seed" model=$m features=with_book
    else
      job "$s" "$m" "$seed" model=$m
    fi
  done; done; done
} > "$OUT/jobs-1.sh"
xargs -P "$JOBS" -d '\n' -I{} bash -c {} < "$OUT/jobs-1.sh"
echo "trained in $(( $(date +%s) - t0 )) s"
.venv/bin/lobnet-compare mlflow.tracking_uri="$DB" mlflow.experiment_name=factor_targets output_dir="$OUT/compare"
echo "factor targets on $*: done in $(( $(date +%s) - t0 )) s, $(date -u +%FT%TZ)"
