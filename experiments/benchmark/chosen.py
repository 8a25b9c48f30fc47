"""Print, for each deep model of a benchmark data set, the search point (``+search=NAME``) chosen on validation
from the seed-0 runs (lobnet.evaluation.compare.select: the best mean validation macro-F1 at the primary
horizon), as ``MODEL NAME`` lines for run.sh, which trains the chosen point with the remaining seeds.

    python experiments/benchmark/chosen.py TRACKING_URI EXPERIMENT DATASET_TAG
"""

import sys

import mlflow
import polars as pl

from lobnet.evaluation.compare import collect, select


def main(uri: str, experiment: str, dataset: str) -> None:
    runs = collect(uri, experiment, ["macro_f1"], None).filter(pl.col("dataset") == dataset)
    client = mlflow.tracking.MlflowClient(uri)
    for r in select(runs).unique(["model", "config"]).iter_rows(named=True):
        search = client.get_run(r["parent"]).data.params.get("search")
        if search is not None:
            print(r["model"], search)


if __name__ == "__main__":
    main(*sys.argv[1:4])
