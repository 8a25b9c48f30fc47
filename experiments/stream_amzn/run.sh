#!/usr/bin/env bash
# Reproduces every number in this folder's README (about 16 minutes on 2 cores): trains each step model briefly on
# the real LOBSTER AMZN level-5 day (fold 0 of experiment=amzn_stream), exports it (lobnet-export) and replays the
# day's last 40,000 events through it (lobnet-stream), then writes results.md and results.json here.
# Run from the repository root after `make install`; the shared data is found through LOBNET_DATA_DIR
# (default ../shared/data). Outputs go to runs/stream_amzn (ignored by git).
set -euo pipefail
D=${LOBNET_DATA_DIR:-../shared/data}
AMZN=$D/lobster/AMZN_2012-06-21_34200000_57600000_message_5.csv
OUT=$(realpath -m "${OUT:-runs/stream_amzn}")
DB=sqlite:///$OUT/mlflow.db
EVENTS=40000
for m in lstm tcn transformer hybrid; do
  rm -rf "$OUT/train/$m" "$OUT/export/$m" "$OUT/stream/$m"  # a re-run starts each model afresh
  .venv/bin/lobnet-train experiment=amzn_stream data.path="$AMZN" model=$m output_dir="$OUT/train/$m" \
    mlflow.tracking_uri="$DB" mlflow.artifact_location="$OUT/mlartifacts" progress=false
  ckpt=$(ls "$OUT"/train/$m/run-*/fold_0/best.ckpt)
  .venv/bin/lobnet-export checkpoint="$ckpt" output_dir="$OUT/export/$m" tracking_uri="$DB"
  .venv/bin/lobnet-stream model_dir="$OUT/export/$m" data=lobster data.path="$AMZN" stream.events=$EVENTS \
    stream.offset=-$EVENTS output_dir="$OUT/stream/$m" mlflow.tracking_uri="$DB" mlflow.experiment_name=amzn_stream
done
.venv/bin/python experiments/stream_amzn/table.py "$OUT" experiments/stream_amzn
