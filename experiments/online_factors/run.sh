#!/usr/bin/env bash
# Reproduces every number and figure in this folder's README (about 2 minutes on 2 cores).
# Run from the repository root after `make install`; the shared data is expected in ../shared/data.
set -euo pipefail
D=${LOBNET_DATA_DIR:-../shared/data}
OUT=experiments/online_factors/results
CAL=.venv/bin/lobnet-calibrate
AMZN=$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv
for f in liquidity volatility; do
  $CAL factor=$f data=lobster data.path=$AMZN output_dir=$OUT/${f}_amzn
  $CAL factor=$f data=quotes data.path=$D/quotes/aig output_dir=$OUT/${f}_aig
  $CAL factor=$f data=quotes data.path=$D/quotes/bac output_dir=$OUT/${f}_bac
done
$CAL factor=pairs data=quotes data.path=$D/quotes output_dir=$OUT/pairs_aig_bac
.venv/bin/python experiments/online_factors/table.py $OUT
