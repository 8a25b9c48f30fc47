#!/usr/bin/env bash
# The stat-arb study (README.md here) on the shared daily bars: the pairs and PCA universe is every daily equity
# and ETF file; momentum runs over the equity and commodity ETFs, the four FX pairs and gold. Run from the
# repository root after `make install`; OUT (default runs/statarb, ignored by git) gets the outputs and the MLflow
# store. The shared data is found through LOBNET_DATA_DIR (default ../shared/data).
set -euo pipefail
D=${LOBNET_DATA_DIR:-../shared/data}/bars
OUT=$(realpath -m "${OUT:-runs/statarb}")
mkdir -p "$OUT"
.venv/bin/lobnet-statarb data.path="$D/daily" output_dir="$OUT/study" \
  "momentum.paths=[$D/forex_daily,$D/cfd_daily]" \
  "momentum.symbols=[SPY,QQQ,IWM,EEM,USO,BNO,EURUSD,GBPUSD,EURGBP,NZDUSD,XAUUSD]" \
  mlflow.tracking_uri="sqlite:///$OUT/mlflow.db" mlflow.artifact_location="$OUT/mlartifacts" "$@"
