#!/usr/bin/env bash
# The live half of the factor-targets study (README.md here): the seed-0 model of each step architecture on the
# AMZN level-5 day and on the AIG/BAC pair, exported (window, step and native graphs with parity) and replayed by
# lobnet-stream beside the calibrated EW factor on the same events: per-event time of each engine and MSE on the
# replay. Run after run.sh (at least SEEDS=0 of the sets), from the repository root:
#   bash experiments/factor_targets/latency.sh                   # amzn-volatility, amzn-liquidity and pairs
#   bash experiments/factor_targets/latency.sh amzn-volatility   # one set
# Replays the last EVENTS events (default 20,000) of the AMZN day, or of the merged pair table's last day
# (2013-10-11, a test day). Outputs under OUT/live (default runs/factor_targets).
set -euo pipefail
(( $# )) || set -- amzn-volatility amzn-liquidity pairs
D=${LOBNET_DATA_DIR:-../shared/data}
OUT=$(realpath -m "${OUT:-runs/factor_targets}")
EVENTS=${EVENTS:-20000}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
data_of() {  # SET -> the replayed data (the set's training data) and day
  case $1 in
    amzn-*) echo "data=lobster data.path=$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv stream.day=0" ;;
    pairs) echo "data=quotes data.path=$D/quotes stream.day=4" ;;
    *) echo "latency.sh: no replay for set $1 (amzn-liquidity, amzn-volatility, pairs)" >&2; return 2 ;;
  esac
}
for s in "$@"; do data_of "$s" > /dev/null; done
for s in "$@"; do
  for m in lstm tcn transformer hybrid; do
    run=$(ls -d "$OUT/train/$s/$m-s0"/run-* | head -1)
    dir="$OUT/live/$s/$m"
    .venv/bin/lobnet-export checkpoint="$run/fold_0/best.ckpt" output_dir="$dir/export" tracking_uri=null \
      > "$OUT/logs/$s/export-$m.log" 2>&1
    # the fold's factor alpha, calibrated on its training samples (cards written before lobnet kept it lack it)
    alpha=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['folds']['0']['test']['factor_alpha'])" \
      "$run/state.json")
    # shellcheck disable=SC2046
    .venv/bin/lobnet-stream model_dir="$dir/export" $(data_of "$s") stream.events="$EVENTS" \
      stream.offset=-"$EVENTS" stream.factor_alpha="$alpha" output_dir="$dir/stream" mlflow.tracking_uri=null \
      cache_dir="$OUT/cache" > "$OUT/logs/$s/stream-$m.log" 2>&1
    echo "$s $m: $(head -1 "$dir/stream/stream.md" | cut -c1-160)"
  done
done
.venv/bin/python experiments/factor_targets/latency_table.py "$OUT/live"
