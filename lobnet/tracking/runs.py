"""MLflow runs: the tags (:class:`Tag`), the experiment (get or create, with an explicit artifact location),
runs that end FAILED or KILLED when the code logging them fails, the tracking URI for MLflow calls that read only
the process-wide one, the checks that refuse a store that cannot be meant, and training's bookkeeping
(:class:`MlflowSettings`, :class:`Tracker`: a parent run per invocation and a child per fold, and
:func:`fold_logger`, Lightning's logger on a fold's run)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lobnet.data.errors import LobDataError


class Tag:
    """The tags lobnet-train sets on its MLflow runs, which lobnet-compare and users filter on (a tag name with a
    dot needs backticks in ``search_runs``: ``tags.`lobnet.kind` = 'parent'``)."""

    KIND = "lobnet.kind"  # "parent" (one per invocation) or "fold" (a child run per fold)
    FOLD = "lobnet.fold"  # the fold's index
    MODEL = "lobnet.model"  # the architecture's config name
    LOSS = "lobnet.loss"  # ce | sharpe | ce_sharpe
    DATA = "lobnet.data"  # the prepared data's content key
    EVENTS = "lobnet.events"  # the events' content key: runs on the same data set share it whatever their features
    DATASET = "lobnet.dataset"  # a readable name of the data set: symbols, source, levels, days
    SOURCE = "lobnet.source"  # lobster | quotes | synthetic
    SYMBOLS = "lobnet.symbols"  # comma-separated
    PRIMARY_HORIZON = "lobnet.primary_horizon"  # the horizon of the parent's headline metrics
    TARGET = "lobnet.target"  # a regression target's name (liquidity_10s, ...): absent on direction-label runs
    PARENT_RUN = "mlflow.parentRunId"  # MLflow's own: the fold's parent run


PARENT, FOLD = "parent", "fold"  # the values of Tag.KIND


def experiment_id(client, name: str, artifact_location: str | None = None) -> str:
    """The id of experiment ``name``, created when missing with ``artifact_location`` (a folder, made absolute, or
    a URI). Without one, MLflow would put a database store's artifacts under ``./mlruns`` of whatever directory
    the command ran in."""
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    loc = artifact_location
    if loc and "://" not in loc:
        loc = Path(loc).resolve().as_uri()
    return client.create_experiment(name, artifact_location=loc)


def end_status(exc: BaseException | None) -> str:
    """MLflow's status for a run whose code ended with ``exc``: FINISHED, KILLED (interrupt, exit) or FAILED."""
    if exc is None:
        return "FINISHED"
    return "KILLED" if isinstance(exc, KeyboardInterrupt | SystemExit) else "FAILED"


@contextlib.contextmanager
def failed_on_error(client, *run_ids: str | None) -> Iterator[None]:
    """Mark ``run_ids`` FAILED (KILLED on an interrupt) when the block raises, and re-raise; the block's normal
    end leaves them as they are (the caller sets FINISHED once everything is logged)."""
    try:
        yield
    except BaseException as e:
        for rid in run_ids:
            if rid:
                with contextlib.suppress(Exception):  # the original error is the one to report
                    client.set_terminated(rid, end_status(e))
        raise


@contextlib.contextmanager
def tracking_uri(uri: str | None) -> Iterator[None]:
    """The process-wide tracking URI set to ``uri`` for the block, then restored as it was (unset stays unset,
    and a ``MLFLOW_TRACKING_URI`` of the user's environment is kept). MLflow 3 resolves a run's logged model
    (``runs:/``) and ``download_artifacts(run_id=...)`` through it, whatever URI is passed to the call, and falls
    back to ``./mlflow.db`` of the working directory, which it creates."""
    import mlflow
    from mlflow.tracking._tracking_service import utils

    if uri is None:
        yield
        return
    old_global, old_env = utils._tracking_uri, os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(old_global)
        if old_env is not None:
            os.environ["MLFLOW_TRACKING_URI"] = old_env


def supported_store(uri: str, what: str = "tracking store") -> str:
    """``uri``, refused (:class:`LobDataError`) when it is a file store (``./mlruns``, ``file:``: deprecated in
    MLflow 3 and refused by it)."""
    if uri.startswith("file:") or ("://" not in uri and not uri.startswith("databricks")):  # a bare path
        raise LobDataError(
            uri, None, f"a file {what} is not supported (MLflow 3 deprecates it): use sqlite:///PATH or a server URI"
        )
    return uri


def existing_store(uri: str, what: str = "tracking store") -> str:
    """``uri``, refused (:class:`LobDataError`) when it is a file store (:func:`supported_store`) or a SQLite
    database that does not exist: MLflow would create an empty one at a mistyped path, and a command that only
    reads runs would then report that there are none."""
    supported_store(uri, what)
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise LobDataError(db, None, f"no such MLflow database ({what} {uri}): check the path")
    return uri


@dataclass
class MlflowSettings:
    tracking_uri: str = "sqlite:///mlflow.db"
    experiment_name: str = "lobnet"
    artifact_location: str | None = "mlartifacts"  # a folder (made absolute) or a URI; None: MLflow's default

    def __post_init__(self):
        # lobnet-train records every run; refused here, before any data is read, rather than after the first fold
        # (without a URI MLflow falls back to stores of the working directory)
        if not self.tracking_uri:
            raise ValueError(
                "mlflow.tracking_uri: lobnet-train records every run in MLflow and needs a tracking URI "
                "(e.g. sqlite:///mlflow.db), not null"
            )
        supported_store(self.tracking_uri, "tracking store (mlflow.tracking_uri)")


class Tracker:
    """MLflow bookkeeping for one invocation (rank zero only; other ranks get no-ops)."""

    def __init__(self, settings: MlflowSettings, state: dict, active: bool):
        self.active, self.state = active, state
        self.settings = settings
        if not active:
            return
        import mlflow
        from mlflow.tracking import MlflowClient

        self.mlflow = mlflow
        self.client = MlflowClient(settings.tracking_uri)
        self.experiment_id = experiment_id(self.client, settings.experiment_name, settings.artifact_location)

    def parent(self, name: str, params: dict, tags: dict) -> str | None:
        if not self.active:
            return None
        if self.state.get("parent_run_id"):  # resumed: running again (it may have ended FAILED or KILLED)
            self.client.update_run(self.state["parent_run_id"], status="RUNNING")
            return self.state["parent_run_id"]
        run = self.client.create_run(self.experiment_id, run_name=name, tags={Tag.KIND: PARENT, **tags})
        from mlflow.entities import Param

        items = [Param(k, str(v)[:6000]) for k, v in sorted(params.items())]
        for i in range(0, len(items), 100):
            self.client.log_batch(run.info.run_id, params=items[i : i + 100])
        self.state["parent_run_id"] = run.info.run_id
        self.state["tracking_uri"] = self.settings.tracking_uri
        return run.info.run_id

    def guard(self, *run_ids: str | None):
        """Mark ``run_ids`` FAILED (KILLED on an interrupt) if the block raises (:func:`failed_on_error`)."""
        return failed_on_error(self.client, *run_ids) if self.active else contextlib.nullcontext()

    def log_metrics(self, run_id: str, metrics: dict[str, float]) -> None:
        """Finite values as one timestamped step-0 point each, in batches MLflow accepts."""
        import time

        from mlflow.entities import Metric

        ts = int(time.time() * 1000)
        items = [Metric(k, float(v), ts, 0) for k, v in metrics.items() if np.isfinite(v)]
        for i in range(0, len(items), 200):
            self.client.log_batch(run_id, metrics=items[i : i + 200])

    def child(self, fold: int, name: str, tags: dict) -> str | None:
        if not self.active:
            return None
        key = str(fold)
        folds = self.state.setdefault("folds", {})
        if folds.get(key, {}).get("run_id"):
            self.client.update_run(folds[key]["run_id"], status="RUNNING")
            return folds[key]["run_id"]
        run = self.client.create_run(
            self.experiment_id,
            run_name=f"{name} fold {fold}",
            tags={Tag.PARENT_RUN: self.state["parent_run_id"], Tag.KIND: FOLD, Tag.FOLD: key, **tags},
        )
        folds.setdefault(key, {})["run_id"] = run.info.run_id
        return run.info.run_id


def fold_logger(mls: MlflowSettings, run_id: str):
    """Lightning's MLflow logger on the fold's run, except that it leaves the run RUNNING when fit or test ends
    well (Lightning's would mark it FINISHED before the test metrics and the model are logged); the training
    loop marks it FINISHED once they are, and a failure still marks it FAILED."""
    from lightning.pytorch.loggers import MLFlowLogger

    class FoldLogger(MLFlowLogger):
        def finalize(self, status: str = "success") -> None:
            if status not in ("success", "finished"):
                super().finalize(status)

    return FoldLogger(experiment_name=mls.experiment_name, tracking_uri=mls.tracking_uri, run_id=run_id)
