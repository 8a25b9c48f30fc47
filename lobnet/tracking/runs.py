"""MLflow plumbing shared by the commands: the experiment (get or create, with an explicit artifact location),
runs that end FAILED or KILLED when the code logging them fails, the tracking URI for MLflow calls that read only
the process-wide one, and the checks that refuse a store that cannot be meant."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from lobnet.data.errors import LobDataError


class Tag:
    """The tags lobnet-train sets on its MLflow runs, which lobnet-compare and users filter on (a tag name with a
    dot needs backticks in ``search_runs``: ``tags.`lobnet.kind` = 'parent'``)."""

    KIND = "lobnet.kind"  # "parent" (one per invocation) or "fold" (a child run per fold)
    FOLD = "lobnet.fold"  # the fold's index
    MODEL = "lobnet.model"  # the architecture's config name
    LOSS = "lobnet.loss"  # ce | sharpe | ce_sharpe
    DATA = "lobnet.data"  # the prepared data's content key
    SOURCE = "lobnet.source"  # lobster | quotes | synthetic
    SYMBOLS = "lobnet.symbols"  # comma-separated
    PRIMARY_HORIZON = "lobnet.primary_horizon"  # the horizon of the parent's headline metrics
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


def existing_store(uri: str, what: str = "tracking store") -> str:
    """``uri``, refused (:class:`LobDataError`) when it is a file store (``./mlruns``, ``file:``: deprecated in
    MLflow 3 and refused by it) or a SQLite database that does not exist: MLflow would create an empty one at a
    mistyped path, and a command that only reads runs would then report that there are none."""
    if uri.startswith("file:") or "://" not in uri:
        raise LobDataError(
            uri, None, f"a file {what} is not supported (MLflow 3 deprecates it): use sqlite:///PATH or a server URI"
        )
    if uri.startswith("sqlite:///"):
        db = Path(uri.removeprefix("sqlite:///"))
        if not db.is_file():
            raise LobDataError(db, None, f"no such MLflow database ({what} {uri}): check the path")
    return uri
