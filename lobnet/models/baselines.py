"""The simple baselines as models: ``model=majority | logreg | gbdt | ew_ofi``.

They go through the deep models' folds, samples, label thresholds, metrics, backtest, MLflow runs and
``lobnet-compare`` rows (:func:`lobnet.train.tabular.fit_baseline_fold`), but not through Lightning, which would
add nothing: each is fitted in seconds on the training block, with whatever it chooses (regularisation, the
number of trees, the factor's memory) chosen on the validation block only, one fit per horizon.

Every baseline gives class probabilities, so log-loss comparisons are defined for all of them:

* ``majority``: the training block's class shares (its class: the most frequent one).
* ``ew_ofi``: the streamer's factor, the sign of the EW mean of level-1 OFI with the flat band fitted on the
  training block (:func:`lobnet.online.baselines.ofi_sign_forecast`'s rule); its probabilities are the training
  labels' shares among training samples with the same forecast (its class is then the sign forecast whenever
  the factor has any skill).
* ``logreg``: multinomial logistic regression (scikit-learn), ``gbdt``: gradient-boosted trees (LightGBM), on the
  tabular view of the window (:class:`TabularView`): the z-scored features of the sample's last event and their
  causal EW means at a short and a long memory, so that they see the window's history in a simple form.
* ``ridge``: the linear baseline of a regression target (:mod:`lobnet.train.regression`), ridge regression on the
  same tabular view.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import polars as pl

from lobnet.data.schema import day_slices
from lobnet.online.baselines import ew_ofi, flat_band, sign_classes
from lobnet.prep.labels import DOWN, FLAT, UP

STAGES = ("train", "val", "test")


def memory_alpha(events: float) -> float:
    """The forgetting factor whose effective window, (1 + alpha) / (1 - alpha), is ``events`` events."""
    return (events - 1.0) / (events + 1.0)


class TabularView:
    """A fold as tables: each sample (row t of its last event) described by the fold's z-scored features at t and
    their EW means over the day up to t at each memory (events). Causal: row t reads rows <= t of its own day."""

    def __init__(self, frame: pl.DataFrame, data, memories: tuple[int, ...]):
        from lobnet.online.estimators import ew_mean

        self.frame, self.data, self.memories = frame, data, tuple(int(m) for m in memories)
        X = data.train.X.numpy()  # the fold's normalised matrix (every row), shared by the three datasets
        parts = [X]
        for m in self.memories:
            ew = np.empty_like(X)
            for s in day_slices(frame):
                for j in range(X.shape[1]):
                    ew[s, j] = ew_mean(X[s, j], memory_alpha(m))
            parts.append(ew)
        self._parts = parts
        base = list(data.feature_names)
        self.names = base + [f"{n}@ew{m}" for m in self.memories for n in base]
        self.sources = base * (1 + len(self.memories))  # the feature each design column is computed from

    def rows(self, stage: str) -> np.ndarray:
        return getattr(self.data, stage).samples.numpy()

    def y(self, stage: str) -> np.ndarray:
        """(N, H) class labels of the stage's samples."""
        ds = getattr(self.data, stage)
        return ds.y[ds.samples].numpy()

    def design(self, stage: str, stride: int = 1) -> np.ndarray:
        rows = self.rows(stage)[::stride]
        return np.hstack([p[rows] for p in self._parts])


def macro_f1(y: np.ndarray, pred: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, pred, average="macro", labels=[DOWN, FLAT, UP], zero_division=0))


def conditional_shares(pred: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(3, 3): row j, the shares of the true classes among samples forecast j (one pseudo-count per cell, so no
    probability is 0 and a class never forecast on training gets the uniform row)."""
    counts = np.ones((3, 3))
    np.add.at(counts, (pred, y), 1)
    return counts / counts.sum(axis=1, keepdims=True)


def stride_for(n: int, max_samples: int | None) -> int:
    """Every k-th training sample, so that at most ``max_samples`` are fitted on (None: all)."""
    return 1 if not max_samples or n <= max_samples else int(np.ceil(n / max_samples))


@dataclass
class BaselineConfig:
    n_features: int = 0  # filled in from the data, as for the deep models
    n_horizons: int = 1


class Baseline:
    """A fitted baseline predicts (N, H, 3) class probabilities for a stage's samples; ``summary`` says what it
    chose on validation and what it learned, as JSON."""

    name = "baseline"
    needs_table = False  # whether it reads TabularView's design matrix

    def __init__(self, cfg: BaselineConfig):
        self.cfg = cfg
        self.chosen: list[dict] = []  # per horizon: what validation selected
        self.learned: list[dict] = []  # per horizon: coefficients, gains, shares

    def fit(self, view: TabularView, seed: int, class_weights: bool) -> None:
        raise NotImplementedError

    def inputs(self, view: TabularView, stage: str) -> tuple[np.ndarray, list[str]]:
        """What the baseline reads for a stage's samples, (N, C), and the feature each column comes from (its
        name in the feature list): the unit :mod:`lobnet.evaluation.explain` permutes."""
        raise NotImplementedError

    def predict_inputs(self, Z: np.ndarray) -> np.ndarray:
        """(N, H, 3) class probabilities from :meth:`inputs`' columns."""
        raise NotImplementedError

    def predict(self, view: TabularView, stage: str) -> np.ndarray:
        return self.predict_inputs(self.inputs(view, stage)[0])

    def summary(self) -> dict:
        return {"model": self.name, "chosen": self.chosen, "learned": self.learned}


class Majority(Baseline):
    name = "majority"

    def fit(self, view, seed, class_weights):
        y = view.y("train")
        self.shares = np.stack([np.bincount(y[:, h], minlength=3) / len(y) for h in range(y.shape[1])])
        self.learned = [{"class_shares": s.tolist()} for s in self.shares]
        self.chosen = [{} for _ in self.shares]

    def inputs(self, view, stage):
        return np.zeros((len(view.rows(stage)), 0), np.float32), []  # it reads nothing

    def predict_inputs(self, Z):
        return np.broadcast_to(self.shares, (len(Z), *self.shares.shape)).astype(np.float32)


@dataclass
class EWOFIConfig(BaselineConfig):
    alphas: list[float] = field(default_factory=lambda: [0.9, 0.97, 0.99])  # memories tried; chosen on validation
    column: str = "ofi_1"


class EWOFI(Baseline):
    name = "ew_ofi"
    cfg: EWOFIConfig

    def fit(self, view, seed, class_weights):
        if self.cfg.column not in view.frame.columns:
            raise ValueError(f"ew_ofi reads the feature {self.cfg.column!r} (feature group 'ofi'), not in this table")
        rows = {s: view.rows(s) for s in STAGES}
        y = {s: view.y(s) for s in ("train", "val")}
        self.signals = {a: ew_ofi(view.frame, a, self.cfg.column) for a in self.cfg.alphas}
        self.fitted = []
        for h in range(y["train"].shape[1]):
            best = None
            for a, sig in self.signals.items():
                band = flat_band(sig[rows["train"]], y["train"][:, h])
                score = macro_f1(y["val"][:, h], sign_classes(sig[rows["val"]], band))
                if best is None or score > best[0]:
                    best = (score, a, band)
            _, a, band = best
            shares = conditional_shares(sign_classes(self.signals[a][rows["train"]], band), y["train"][:, h])
            self.fitted.append((a, band, shares))
            self.chosen.append({"alpha": a, "val_macro_f1": best[0]})
            self.learned.append({"band": band, "class_shares_given_forecast": shares.tolist()})

    def inputs(self, view, stage):
        rows = view.rows(stage)
        return np.stack([self.signals[a][rows] for a in self.cfg.alphas], axis=1), [self.cfg.column] * len(self.signals)

    def predict_inputs(self, Z):
        alphas = list(self.cfg.alphas)
        out = [shares[sign_classes(Z[:, alphas.index(a)], band)] for a, band, shares in self.fitted]
        return np.stack(out, axis=1).astype(np.float32)


@dataclass
class TabularConfig(BaselineConfig):
    memories: list[int] = field(default_factory=lambda: [10, 100])  # EW memories (events) of the window summary
    max_train_samples: int | None = 200_000  # every k-th training sample beyond this (the stride is recorded)


@dataclass
class LogRegConfig(TabularConfig):
    C: list[float] = field(default_factory=lambda: [0.001, 0.01, 0.1, 1.0])  # inverse L2 strength; on validation
    max_iter: int = 300


class LogReg(Baseline):
    name = "logreg"
    needs_table = True
    cfg: LogRegConfig

    def fit(self, view, seed, class_weights):
        from sklearn.linear_model import LogisticRegression
        from sklearn.preprocessing import StandardScaler

        y_all = view.y("train")
        stride = stride_for(len(y_all), self.cfg.max_train_samples)
        Xtr, ytr = view.design("train", stride), y_all[::stride]
        self.scaler = StandardScaler().fit(Xtr)
        Xtr, Xva, yva = self.scaler.transform(Xtr), self.scaler.transform(view.design("val")), view.y("val")
        self.fitted = []
        for h in range(ytr.shape[1]):
            best = None
            for c in self.cfg.C:
                m = LogisticRegression(
                    C=c, max_iter=self.cfg.max_iter, class_weight="balanced" if class_weights else None
                )
                m.fit(Xtr, ytr[:, h])
                score = macro_f1(yva[:, h], m.predict(Xva))
                if best is None or score > best[0]:
                    best = (score, c, m)
            self.fitted.append(best[2])
            self.chosen.append({"C": best[1], "val_macro_f1": best[0], "train_stride": stride})
            coef = best[2].coef_
            self.learned.append(
                {"classes": best[2].classes_.tolist(), "coef": dict(zip(view.names, coef.T.tolist(), strict=True))}
            )

    def inputs(self, view, stage):
        return view.design(stage), view.sources

    def predict_inputs(self, Z):
        X = self.scaler.transform(Z)
        return np.stack([_full_proba(m, X) for m in self.fitted], axis=1).astype(np.float32)


@dataclass
class GBDTConfig(TabularConfig):
    n_estimators: int = 400  # at most; the number used is chosen by early stopping on validation log-loss
    learning_rate: float = 0.05
    num_leaves: int = 31
    min_child_samples: int = 200
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    reg_lambda: float = 1.0
    early_stopping_rounds: int = 30
    threads: int = 2


class GBDT(Baseline):
    name = "gbdt"
    needs_table = True
    cfg: GBDTConfig

    def fit(self, view, seed, class_weights):
        import lightgbm as lgb

        c = self.cfg
        y_all = view.y("train")
        stride = stride_for(len(y_all), c.max_train_samples)
        Xtr, ytr = view.design("train", stride), y_all[::stride]
        Xva, yva = view.design("val"), view.y("val")
        self.fitted = []
        for h in range(ytr.shape[1]):
            m = lgb.LGBMClassifier(
                n_estimators=c.n_estimators,
                learning_rate=c.learning_rate,
                num_leaves=c.num_leaves,
                min_child_samples=c.min_child_samples,
                subsample=c.subsample,
                subsample_freq=1,
                colsample_bytree=c.colsample_bytree,
                reg_lambda=c.reg_lambda,
                class_weight="balanced" if class_weights else None,
                random_state=seed,
                n_jobs=c.threads,
                deterministic=True,
                force_row_wise=True,
                verbose=-1,
            )
            m.fit(
                Xtr,
                ytr[:, h],
                eval_X=(Xva,),
                eval_y=(yva[:, h],),
                callbacks=[lgb.early_stopping(c.early_stopping_rounds, verbose=False)],
            )
            self.fitted.append(m)
            score = macro_f1(yva[:, h], m.predict(Xva))
            self.chosen.append({"n_trees": int(m.best_iteration_ or c.n_estimators), "val_macro_f1": score})
            gains = m.booster_.feature_importance(importance_type="gain")
            self.learned.append({"gain": dict(zip(view.names, gains.tolist(), strict=True)), "train_stride": stride})

    def inputs(self, view, stage):
        return view.design(stage), view.sources

    def predict_inputs(self, Z):
        return np.stack([_full_proba(m, Z) for m in self.fitted], axis=1).astype(np.float32)


def _full_proba(model, X: np.ndarray) -> np.ndarray:
    """(N, 3) probabilities in class order DOWN, FLAT, UP, also when a class was absent from training."""
    p = model.predict_proba(X)
    out = np.zeros((len(X), 3))
    out[:, np.asarray(model.classes_, dtype=int)] = p
    return out


@dataclass
class RidgeConfig(TabularConfig):
    alphas: list[float] = field(default_factory=lambda: [0.1, 1.0, 10.0, 100.0, 1000.0])  # L2; on validation MSE


class Ridge(Baseline):
    """The linear baseline of a regression target (``labels=liquidity | volatility | pairs``): ridge regression
    (scikit-learn) on :class:`TabularView`'s design, the target z-scored on the training samples, the L2 strength
    chosen by validation MSE. A squared-error fit, also when the deep models train with QLIKE."""

    name = "ridge"
    needs_table = True
    regression = True
    cfg: RidgeConfig

    def fit(self, view, seed, class_weights):
        raise ValueError(
            "model=ridge is the linear baseline of a regression target (labels=liquidity, volatility or pairs); "
            "for direction labels use model=logreg"
        )

    def fit_regression(self, data, frame: pl.DataFrame, seed: int) -> None:
        """Fit on the fold ``data`` (:meth:`lobnet.prep.windows.FoldData.build_regression`), whose ``returns`` hold
        the target in its own units."""
        from sklearn.linear_model import Ridge as SkRidge
        from sklearn.preprocessing import StandardScaler

        from lobnet.prep.targets import TargetScale

        self.view = view = TabularView(frame, data, self.cfg.memories)

        def target(stage: str) -> np.ndarray:
            ds = getattr(data, stage)
            return ds.returns[ds.samples][:, 0].numpy().astype(np.float64)

        y_all = target("train")
        stride = stride_for(len(y_all), self.cfg.max_train_samples)
        self.scale = TargetScale.fit(y_all, "mse")
        ytr = self.scale.apply(y_all[::stride])
        self.scaler = StandardScaler().fit(view.design("train", stride))
        Xtr = self.scaler.transform(view.design("train", stride))
        Xva, yva = self.scaler.transform(view.design("val")), self.scale.apply(target("val"))
        best = None
        for a in self.cfg.alphas:
            m = SkRidge(alpha=a).fit(Xtr, ytr)
            mse = float(np.mean((m.predict(Xva) - yva) ** 2))
            if best is None or mse < best[0]:
                best = (mse, a, m)
        self.model = best[2]
        self.chosen.append({"alpha": best[1], "val_mse_scaled": best[0], "train_stride": stride})
        self.learned.append({"coef": dict(zip(view.names, best[2].coef_.tolist(), strict=True))})

    def predict_regression(self, stage: str) -> np.ndarray:
        """The stage's predictions in the target's units."""
        return self.scale.invert(self.model.predict(self.scaler.transform(self.view.design(stage))))

    def inputs(self, view, stage):
        return view.design(stage), view.sources

    def predict_inputs(self, Z):
        raise ValueError("model=ridge predicts a regression target, not class probabilities")


BASELINES = {
    "majority": (BaselineConfig, Majority),
    "ew_ofi": (EWOFIConfig, EWOFI),
    "logreg": (LogRegConfig, LogReg),
    "gbdt": (GBDTConfig, GBDT),
    "ridge": (RidgeConfig, Ridge),
}
