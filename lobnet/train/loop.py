"""Walk-forward training as library code: every fold fitted with early stopping on its validation block, the best
checkpoint evaluated on its test block, everything tracked in MLflow (one parent run per invocation, a child run
per fold).

Resuming: a run's folder (``output_dir/run-<key>``, the key a hash of the resolved config) holds each fold's
``last.ckpt`` and ``state.json`` (MLflow run ids, finished folds). Started again with the same command, a run
skips finished folds, continues the interrupted one from its last checkpoint, and reuses its MLflow runs. With
per-epoch reseeding of shuffling and dropout it ends with the same metrics as an uninterrupted run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lightning.pytorch as L
import numpy as np
import polars as pl
from lightning.pytorch.callbacks import Callback, EarlyStopping, ModelCheckpoint

from lobnet.card import BEST, LAST, primary_horizon, write_fold
from lobnet.data.schema import DEFAULT_TICK, PRICE_SCALE
from lobnet.evaluation.backtest import backtest_forecasts, backtest_settings, naive_forecasts
from lobnet.evaluation.explain import ExplainSettings
from lobnet.evaluation.metrics import forecast_positions
from lobnet.io import claim, locked, write_json
from lobnet.models import Baseline, LOBModel
from lobnet.prep.labels import LabelConfig
from lobnet.prep.splits import Fold
from lobnet.prep.targets import TargetConfig
from lobnet.prep.windows import FoldData, LOBDataModule
from lobnet.tracking.runs import MlflowSettings, Tag, Tracker, fold_logger
from lobnet.train.losses import LobLoss, LossSettings, class_weights, default_cost
from lobnet.train.module import LOBModule, OptimizerSettings

PRIMARY = ("macro_f1", "accuracy", "majority_f1", "net_sharpe", "bt_net")


@dataclass(frozen=True)
class TrainerSettings:
    """Lightning's Trainer and early stopping (``conf/trainer``, built by ``_target_`` like a model)."""

    accelerator: str = "cpu"
    devices: int | str = 1
    max_epochs: int = 5
    patience: int = 3  # early stopping on val/loss
    extra: dict = field(default_factory=dict)  # any other lightning.Trainer argument (strategy, limits, ...)

    def kwargs(self) -> dict:
        return {"accelerator": self.accelerator, "devices": self.devices, **self.extra}


@dataclass
class TrainSettings:
    """Everything the loop reads: the loss, optimiser and trainer (config groups, built by ``_target_``) and the
    run's own settings, ``conf/train.yaml``'s top-level keys of the same names (:func:`lobnet.cli.train.run`)."""

    loss: LossSettings = field(default_factory=LossSettings)
    trainer: TrainerSettings = field(default_factory=TrainerSettings)
    optimizer: OptimizerSettings = field(default_factory=OptimizerSettings)
    batch_size: int = 256
    seed: int = 0
    primary_horizon: int = 50
    normalization: str = "train_zscore"
    backtest: dict | None = field(
        default_factory=dict
    )  # lobnet.evaluation.backtest.Costs fields (conf/backtest); None: none
    # the feature table's spread (ticks) in dollars, to rebuild the bid and ask: the feature spec's tick / price_scale
    dollars_per_tick: float = DEFAULT_TICK / PRICE_SCALE
    # lobnet-train explain=true: every fold explained on its test block, in its MLflow run (lobnet.evaluation.explain)
    explain: ExplainSettings | None = None


def is_rank_zero() -> bool:
    return int(os.environ.get("LOCAL_RANK", "0")) == 0 and int(os.environ.get("NODE_RANK", "0")) == 0


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[2]
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=root, capture_output=True, text=True
        ).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def run_key(params: dict) -> str:
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:12]


class LineLog(Callback):
    """Quiet, line-based progress for non-interactive runs (CI, logs)."""

    def __init__(self, fold: int):
        self.fold = fold

    def on_train_epoch_end(self, trainer, pl_module):  # after this epoch's validation
        m = trainer.callback_metrics
        parts = [f"{k}={float(m[k]):.4f}" for k in ("train/loss", "val/loss") if k in m]
        print(f"fold {self.fold} epoch {trainer.current_epoch}: " + " ".join(parts), flush=True)


def quiet_lightning() -> None:
    """Line-based logs for non-interactive runs: no banners, tips or third-party deprecation chatter."""
    import logging
    import warnings

    # mlflow.pyfunc says at INFO, per fold, that it checks the logged model's input example against its signature
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "mlflow.pyfunc"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*treespec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def train_walk_forward(
    frame: pl.DataFrame,
    feature_names: list[str],
    folds: list[Fold],
    labels: LabelConfig,
    window: int,
    make_model: Callable[[int, int], LOBModel],
    settings: TrainSettings,
    mlflow_settings: MlflowSettings,
    output_dir: str | Path,
    params: dict,
    tags: dict,
    events_per_day: float,
    progress: bool = False,
    card: dict | None = None,
) -> dict:
    """Fit and test every fold; returns {"folds": [...per-fold test metrics], "summary": {...means and stds}}.
    ``card``: what the streamer needs beyond the model (the feature spec and levels), written into each fold's
    ``model.json``."""
    if not progress:
        quiet_lightning()
    key = run_key(params)
    with contextlib.ExitStack() as stack:
        run_dir = stack.enter_context(claim(output_dir, "train", lock=False)) / f"run-{key}"
        run_dir.mkdir(exist_ok=True)
        if is_rank_zero():  # one invocation of a config at a time (other configs may share output_dir); DDP's
            stack.enter_context(locked(run_dir))  # other ranks are this invocation, launched while rank 0 holds it
        # Every MLflow run opened below ends FAILED (KILLED on an interrupt) when anything raises; a fold's run is
        # FINISHED only once its test metrics, artifacts and model are logged, and the parent's once every fold is.
        state_path = run_dir / "state.json"
        state = json.loads(state_path.read_text()) if state_path.exists() else {}
        rank0 = is_rank_zero()
        tracker = Tracker(mlflow_settings, state, rank0)
        name = tags.get(Tag.MODEL, "model")
        tracker.parent(
            f"{name} {tags.get(Tag.TARGET, settings.loss.kind)}",
            {**params, "data.fingerprint": tags.get(Tag.DATA), "git.commit": git_commit()},
            tags,
        )
        if rank0:
            write_json(state_path, state)
        k_primary = primary_horizon(labels.horizons, settings.primary_horizon)
        shared = FoldInputs(
            frame,
            feature_names,
            labels,
            window,
            make_model,
            settings,
            run_dir,
            mlflow_settings,
            events_per_day,
            progress,
            tracker,
            {**(card or {}), "primary_horizon": k_primary},
        )
        with tracker.guard(state.get("parent_run_id")):
            fold_metrics = []
            for fold in folds:
                fstate = state.setdefault("folds", {}).setdefault(str(fold.index), {})
                if fstate.get("done"):
                    fold_metrics.append(fstate["test"])
                    continue
                child_id = tracker.child(fold.index, name, tags)
                if rank0:
                    write_json(state_path, state)
                with tracker.guard(child_id):
                    metrics = _fit_fold(shared, fold, child_id)
                fstate.update(done=True, test=metrics)
                fold_metrics.append(metrics)
                if rank0:
                    write_json(state_path, state)
            summary = {}
            for m in fold_metrics[0]:
                vals = np.array([fm[m] for fm in fold_metrics], dtype=float)
                summary[f"test/{m}"] = float(np.nanmean(vals)) if np.isfinite(vals).any() else float("nan")
                summary[f"test/{m}_std"] = float(np.nanstd(vals)) if np.isfinite(vals).any() else float("nan")
            for m in PRIMARY:  # the headline keys at the primary horizon (bt_net: when the fold was backtested)
                if f"test/{m}_h{k_primary}" in summary:
                    summary[f"test/{m}"] = summary[f"test/{m}_h{k_primary}"]
                    summary[f"test/{m}_std"] = summary[f"test/{m}_h{k_primary}_std"]
            if tracker.active:
                tracker.log_metrics(state["parent_run_id"], summary)
                tracker.client.set_tag(state["parent_run_id"], Tag.PRIMARY_HORIZON, str(k_primary))
                tracker.client.set_terminated(state["parent_run_id"])
    return {
        "folds": fold_metrics,
        "summary": summary,
        "run_dir": str(run_dir),
        "parent_run_id": state.get("parent_run_id"),
        "primary_horizon": k_primary,
    }


@dataclass
class FoldInputs:
    """What every fold of one walk-forward run shares (:func:`_fit_fold` takes it and the fold)."""

    frame: pl.DataFrame
    feature_names: list[str]
    labels: LabelConfig | TargetConfig
    window: int
    make_model: Callable[[int, int], LOBModel]
    settings: TrainSettings
    run_dir: Path
    mlflow: MlflowSettings
    events_per_day: float
    progress: bool
    tracker: Tracker
    card: dict  # what the model card holds beyond the model (feature spec, levels, primary horizon)


def _fit_fold(shared: FoldInputs, fold: Fold, child_id: str | None) -> dict:
    frame, feature_names, labels, window = shared.frame, shared.feature_names, shared.labels, shared.window
    settings, run_dir, tracker = shared.settings, shared.run_dir, shared.tracker
    L.seed_everything(settings.seed + fold.index, workers=True, verbose=False)
    if isinstance(labels, TargetConfig):  # a regression target (lobnet.prep.targets)
        from lobnet.train.regression import fit_regression_fold

        return fit_regression_fold(shared, fold, child_id)
    data = FoldData.build(frame, feature_names, fold, labels, window, normalization=settings.normalization)
    if len(data.train) == 0 or len(data.val) == 0 or len(data.test) == 0:
        raise ValueError(f"fold {fold.index} has an empty train, validation or test set: {fold.describe()}")
    model = shared.make_model(len(feature_names), len(labels.horizons))
    if isinstance(model, Baseline):
        from lobnet.train.tabular import fit_baseline_fold

        return fit_baseline_fold(shared, fold, child_id, data, model)
    if hasattr(model, "check_window"):
        model.check_window(window)
    train_rows = data.train.samples.numpy()
    spec = settings.loss
    cost = spec.cost if spec.cost is not None else default_cost(frame["spread_rel"].to_numpy()[train_rows])
    weights = class_weights(data.train.y[data.train.samples]) if spec.class_weights else None
    loss = LobLoss(spec.kind, spec.lam, cost, weights)
    module = LOBModule(
        model,
        loss,
        labels.horizons,
        settings.optimizer,
        cost,
        shared.events_per_day,
        settings.seed + fold.index,
        labels.classes,
    )
    dm = LOBDataModule(data, settings.batch_size, seed=settings.seed + fold.index, contiguous=spec.kind != "ce")
    extra = {"labels": dataclasses.asdict(labels), "loss": spec.kind}
    best, val = fit_and_test(shared, fold, child_id, model, module, dm, data, extra)
    metrics = report_fold(shared, fold, child_id, data, module.results["test"], val, module.cost, spec.kind, module)
    if settings.explain is not None:
        explain_to_run(shared, child_id, model, data, f"{_model_name(model)} fold {fold.index}")
    if tracker.active:
        from lobnet.tracking.model import log_fold_model

        log_fold_model(tracker.settings.tracking_uri, child_id, run_dir / f"fold_{fold.index}", Path(best))
        tracker.client.set_terminated(child_id)  # runs:/<id>/model
    return metrics


def fit_and_test(shared: FoldInputs, fold: Fold, child_id, model, module, dm, data, card_extra: dict):
    """Lightning's part of a deep model's fold, for every task: fit with early stopping on ``val/loss`` and a
    checkpoint per epoch (resumed from ``last.ckpt`` when there is one), the model card, then the best
    checkpoint validated (its ``val_best`` scores, what a configuration is chosen on) and tested; ``module.results``
    holds both. Returns (the best checkpoint's path, the validation result)."""
    settings, run_dir, mls, card = shared.settings, shared.run_dir, shared.mlflow, shared.card
    ckpt_dir = run_dir / f"fold_{fold.index}"
    # saved at the end of the training epoch (after its validation): a checkpoint written at validation end
    # counts as mid-epoch, and resuming from it would train that epoch a second time
    checkpoint = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename=Path(BEST).stem,
        monitor="val/loss",
        mode="min",
        save_last=True,
        save_on_train_epoch_end=True,
    )
    callbacks = [checkpoint, EarlyStopping(monitor="val/loss", mode="min", patience=settings.trainer.patience)]
    if shared.progress:
        from lightning.pytorch.callbacks import RichProgressBar

        callbacks.append(RichProgressBar())
    else:
        callbacks.append(LineLog(fold.index))
    logger = fold_logger(mls, child_id) if child_id else False
    trainer = L.Trainer(
        max_epochs=settings.trainer.max_epochs,
        logger=logger,
        callbacks=callbacks,
        deterministic=True,
        enable_progress_bar=shared.progress,
        enable_model_summary=False,
        default_root_dir=ckpt_dir,
        num_sanity_val_steps=0,
        log_every_n_steps=1,  # metrics are logged per epoch anyway; this only silences a warning
        **settings.trainer.kwargs(),
    )
    last = ckpt_dir / LAST
    if last.exists():
        check_resume_state(last, run_dir)
    # weights_only: a checkpoint is loaded as tensors and plain data, never as code (lobnet.card.torch_file)
    trainer.fit(module, dm, ckpt_path=str(last) if last.exists() else None, weights_only=True)
    best = checkpoint.best_model_path or str(last)
    if is_rank_zero():
        _write_model_card(ckpt_dir, model, data, shared.window, {**card, **card_extra, "fold": fold.index})
    # the validation scores of the weights that are tested: what a configuration is chosen on (lobnet-compare)
    loggers, trainer.loggers = trainer.loggers, []  # logged as val_best/*, not as one more point of val/loss
    trainer.validate(module, dm, ckpt_path=best, verbose=False, weights_only=True)
    trainer.loggers = loggers
    val = module.results["val"]
    trainer.test(module, dm, ckpt_path=best, verbose=False, weights_only=True)
    return best, val


def report_fold(
    shared: FoldInputs,
    fold: Fold,
    child_id: str | None,
    data: FoldData,
    result: dict,
    val: dict,
    cost: float,
    loss_kind: str,
    module: LOBModule | None = None,
    extra: dict[str, dict] | None = None,
) -> dict:
    """A fitted fold's test metrics and backtest, logged to its run with the validation scores it was chosen on
    (``val_best/*``), the figures, ``predictions.npz`` (:mod:`lobnet.evaluation.predictions`) and ``extra`` JSON
    files; shared by the deep models (``module``: their Lightning module) and the baselines. Returns the metrics."""
    from lobnet.evaluation import predictions

    settings, tracker, labels = shared.settings, shared.tracker, shared.labels
    metrics = {k: float(v) for k, v in result["metrics"].items()}
    rows = data.test.samples.numpy()
    bt = fold_backtest(shared.frame, rows, result, labels.horizons, settings, loss_kind)
    metrics.update(bt)
    if not tracker.active:
        return metrics
    logged = {f"test/{k}": v for k, v in bt.items()} | {f"val_best/{k}": v for k, v in val["metrics"].items()}
    if module is None:  # Lightning's test loop logged a deep model's test metrics
        logged |= {f"test/{k}": v for k, v in result["metrics"].items()}
    tracker.log_metrics(child_id, logged)
    from lobnet.evaluation.plots import fold_artifacts

    flat = backtest_settings(settings.backtest)[0].flat if settings.backtest is not None else "close"
    position = np.stack(
        [
            forecast_positions(result["prob"][:, h], result["position"][:, h], loss_kind, flat)
            for h in range(len(labels.horizons))
        ],
        axis=1,
    )
    with tempfile.TemporaryDirectory() as tmp:
        files = fold_artifacts(Path(tmp), module, data, labels, result, shared.feature_names, tracker.client, child_id)
        unit = predictions.test_units(rows, fold.test_starts)
        files.append(
            predictions.save(
                Path(tmp) / predictions.PREDICTIONS,
                rows,
                result["y"],
                result["prob"],
                position,
                result["returns"],
                unit,
                labels.horizons,
                cost,
                labels.classes,
            )
        )
        for name, payload in (extra or {}).items():
            files.append(Path(tmp) / name)
            files[-1].write_text(json.dumps(payload, indent=1, default=float))
        for f in files:
            tracker.client.log_artifact(child_id, str(f))
    return metrics


def check_resume_state(last: Path, run_dir: Path) -> None:
    """Refuse to resume from a ``last.ckpt`` that does not load (a kill while it was written, a damaged disk),
    saying how to start afresh, rather than failing inside Lightning."""
    from lobnet.card import load_checkpoint
    from lobnet.data.errors import LobDataError

    try:
        load_checkpoint(last)
    except LobDataError as e:
        raise LobDataError(
            last,
            None,
            f"the resume state is damaged ({e.reason}); to start this fold afresh delete {last.parent}, or the "
            f"whole run {run_dir}, and run the same command again",
        ) from None


def fold_backtest(
    frame, rows: np.ndarray, result: dict, horizons, settings: TrainSettings, loss_kind: str | None = None
) -> dict[str, float]:
    """The fold's test forecasts traded net of costs (:func:`lobnet.evaluation.backtest.backtest_forecasts`), per
    horizon: ``bt_<net|gross|latency|spread|fees|trades|shares_traded|max_drawdown|net_per_share>_h<k>`` in dollars;
    beside them, unless ``backtest.naive_draws`` is 0, the naive benchmarks under the same costs
    (:func:`lobnet.evaluation.backtest.naive_forecasts`): ``bt_buy_and_hold_h<k>``, ``bt_random_mean_h<k>``,
    ``bt_random_p95_h<k>`` and ``bt_p_random_h<k>`` (the share of random forecasts with the fold's turnover that
    did at least as well). Positions: the position head for Sharpe-trained models, else the predicted class
    (``Costs.flat`` says what a flat forecast does). Empty without the ``mid`` and ``spread`` features, or with
    ``backtest: null``."""
    if settings.backtest is None or not {"mid", "spread"} <= set(frame.columns):
        return {}
    costs, draws = backtest_settings(settings.backtest)
    out = {}
    for h, k in enumerate(horizons):
        kind = loss_kind or settings.loss.kind
        target = forecast_positions(result["prob"][:, h], result["position"][:, h], kind, costs.flat)
        for name, v in backtest_forecasts(frame, rows, target, settings.dollars_per_tick, costs).items():
            out[f"bt_{name}_h{k}"] = v
        if draws:
            nv = naive_forecasts(frame, rows, target, settings.dollars_per_tick, costs, draws, seed=settings.seed)
            for name in ("buy_and_hold", "random_mean", "random_p95", "p_random"):
                out[f"bt_{name}_h{k}"] = nv[name]
    return out


def explain_to_run(shared: FoldInputs, child_id: str | None, model, data: FoldData, title: str, view=None) -> dict:
    """``lobnet-train explain=true``: the fold's readings on its test block
    (:func:`lobnet.evaluation.explain.explain_fold`), their figures and ``explain.json`` logged to the fold's run
    under ``explain/``."""
    from lobnet.evaluation import explain

    labels = shared.labels
    h = labels.horizons.index(primary_horizon(labels.horizons, shared.settings.primary_horizon))
    features = shared.card["features"]
    result = explain.explain_fold(model, data, features, labels, h, shared.settings.explain, shared.frame, view)
    with tempfile.TemporaryDirectory() as tmp:
        files = explain.write(Path(tmp), result, title)
        if shared.tracker.active:
            for f in files:
                shared.tracker.client.log_artifact(child_id, str(f), "explain")
    print(f"{title}: explained {result['windows']} test windows in {result['seconds']:.1f} s", flush=True)
    return result


def _model_name(model: LOBModel) -> str:
    """The architecture's config name (``model=<name>``)."""
    from lobnet.models import MODELS

    return next(k for k, (_, cls) in MODELS.items() if isinstance(model, cls))


def _write_model_card(ckpt_dir: Path, model: LOBModel, data: FoldData, window: int, extra: dict) -> None:
    """What export and streaming need to rebuild the model and feed it (:mod:`lobnet.card`): its architecture
    and config, the feature list and spec, the training fold's normalisation, label rule and thresholds, the
    horizons, the window; a few real test windows, and a stretch of consecutive test rows, for parity checks."""
    card = {
        "model": _model_name(model),
        "config": dataclasses.asdict(model.cfg),
        "feature_names": data.feature_names,
        "horizons": list(data.horizons),
        "window": window,
        "alphas": data.alphas,
        "zscore": None if data.zscore is None else {"mean": data.zscore.mean.tolist(), "std": data.zscore.std.tolist()},
        **extra,
    }
    idx = np.linspace(0, len(data.test) - 1, min(32, len(data.test))).astype(int)
    t0 = int(data.test.samples[0]) - window + 1  # the first test window's rows and the 2 W rows after them
    write_fold(
        ckpt_dir,
        card,
        windows=np.stack([data.test[int(i)][0].numpy() for i in idx]),
        sequence=data.test.X[t0 : t0 + 3 * window].numpy(),
    )


def flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out
