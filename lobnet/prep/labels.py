"""Horizon labels: continuous targets per horizon k (in events) and their three-class direction labels.

For each horizon k, on the mid price m_t (see docs/features.md, "Labels"):

* ``smooth_ret_k`` (FI-2010 style, the default): l_t = (mean(m_{t+1..t+k}) - m_t) / m_t. The reference is the
  current mid, which the model knows; all smoothing is in the future.
* ``tlob_ret_k`` (TLOB, Berti & Kasneci 2025; when ``smoothing`` h is set): l_t = (w+ - w-) / w- with
  w+ = mean(m_{t+k-h..t+k}) and w- = mean(m_{t-h..t}). Decoupling the smoothing window h from the horizon k
  removes the horizon bias of FI-2010 labels. Note that w- averages *past* prices, like DeepLOB's Eq. 4
  label (which lobnet does not offer): part of such a label, m_t - w-, is already in the input window, so a
  model can score by reading the recent past. That inflates accuracy without any tradable content; keep it in
  mind when comparing against ``smooth_ret``.
* ``logret_k``: log(m_{t+k} / m_t), the regression target (the Sharpe loss's future return), and the class
  target of ``method="point"``: the unsmoothed move k events (bars) ahead.

On a bars table (:mod:`lobnet.data.bars`), m is the bar's close: k is then a number of bars, and
``labels=next_bar`` asks whether the next bar closes above this one.

``binary``: two classes instead of three, up (l > alpha) and down (the rest, an unchanged price included); the
flat class is then never a label, and the models' flat logit is masked out (:meth:`LabelConfig.logit_mask`), so
their cross-entropy is the binary cross-entropy of up against down.

A label never looks past the end of its symbol-day: it is null on the last k events of each day (and, for TLOB,
on the first h). Classes: 0 down (l < -alpha), 1 flat, 2 up (l > alpha). alpha is a fixed value, or fitted on
the *training fold only* (:func:`fit_alpha`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lobnet.features.catalogue import CATALOGUE, FeatureParams, PolarsBackend

DOWN, FLAT, UP = 0, 1, 2
CLASS_NAMES = ("down", "flat", "up")
ALPHA_MODES = ("fixed", "balanced", "spread")
METHODS = ("smooth", "tlob", "point")


@dataclass(frozen=True)
class LabelConfig:
    horizons: tuple[int, ...] = (10, 50, 100)
    method: str = "smooth"  # smooth | tlob: which continuous target the classes come from
    smoothing: int = 0  # TLOB smoothing window h (events); used when method = tlob
    alpha_mode: str = "balanced"  # fixed | balanced | spread
    alpha: float = 2e-5  # the threshold when alpha_mode = fixed
    spread_factor: float = 1.0  # alpha_mode = spread: alpha = factor x median half spread / mid (training fold)
    binary: bool = False  # up against the rest (no flat class)

    def __post_init__(self):
        object.__setattr__(self, "horizons", tuple(int(k) for k in self.horizons))
        if self.method not in METHODS:
            raise ValueError(f"labels.method must be one of {', '.join(METHODS)}, not {self.method!r}")
        if self.method == "tlob" and self.smoothing < 1:
            raise ValueError("labels.method=tlob needs labels.smoothing >= 1")
        if self.alpha_mode not in ALPHA_MODES:
            raise ValueError(f"labels.alpha_mode must be one of {ALPHA_MODES}, not {self.alpha_mode!r}")
        if not self.horizons or min(self.horizons) < 1:
            raise ValueError("labels.horizons must be positive event counts")

    @property
    def task(self) -> str:
        """What a model trained on these labels does (:class:`lobnet.prep.targets.TargetConfig`: regression)."""
        return "classification"

    def target(self, k: int) -> str:
        """The continuous column whose sign and size make the class label at horizon k."""
        return f"logret_{k}" if self.method == "point" else f"{self.method}_ret_{k}"

    @property
    def classes(self) -> tuple[int, ...]:
        """The classes a label can take: (DOWN, UP) when ``binary``, else (DOWN, FLAT, UP)."""
        return (DOWN, UP) if self.binary else (DOWN, FLAT, UP)

    def logit_mask(self) -> np.ndarray:
        """:func:`logit_mask` of the label's classes."""
        return logit_mask(self.classes)


def logit_mask(classes: tuple[int, ...]) -> np.ndarray:
    """Added to a model's three logits: 0 for the label's ``classes``, -inf for a class it never takes (the flat
    class of binary labels), so that the softmax and the cross-entropy run over the label's classes alone."""
    return np.array([0.0 if c in classes else -np.inf for c in (DOWN, FLAT, UP)], dtype=np.float32)


def _same_day(offset: int) -> pl.Expr:
    """True where the event `offset` rows away belongs to the same symbol-day (tables are sorted and days
    contiguous, so every row in between does too)."""
    return (pl.col("date").shift(-offset) == pl.col("date")) & (pl.col("symbol").shift(-offset) == pl.col("symbol"))


def compute_targets(events: pl.DataFrame, cfg: LabelConfig, params: FeatureParams) -> pl.DataFrame:
    """Continuous targets for every horizon, plus ``spread_rel`` (spread / mid, for ``alpha_mode=spread``),
    from the events table. The mid and spread are the feature catalogue's own definitions; on a bars table the
    close and, for quote bars, the closing bid and ask."""
    if "close" in events.columns:  # a bars table (lobnet.data.bars.BAR_COLUMNS)
        close = pl.col("close")
        events = events.with_columns(
            close.alias("_mid"), ((pl.col("ask_close") - pl.col("bid_close")) / close).alias("spread_rel")
        )
    else:
        B = PolarsBackend(PolarsBackend.first_of_day())  # mid and spread never use prev: no column needed
        mid_def = CATALOGUE["mid"].define(B, params)["mid"]
        spread_def = CATALOGUE["spread"].define(B, params)["spread"]
        events = events.with_columns(
            mid_def.alias("_mid"), (spread_def * params.tick / params.price_scale / mid_def).alias("spread_rel")
        )
    mid = pl.col("_mid")
    exprs = [pl.col("spread_rel")]
    for k in cfg.horizons:
        ok = _same_day(k).fill_null(False)
        fut_mean = mid.rolling_mean(k).shift(-k)  # mean(m_{t+1..t+k})
        exprs.append(pl.when(ok).then((fut_mean - mid) / mid).alias(f"smooth_ret_{k}"))
        exprs.append(pl.when(ok).then((mid.shift(-k) / mid).log()).alias(f"logret_{k}"))
        if cfg.method == "tlob":
            h = cfg.smoothing
            w_plus = mid.rolling_mean(h + 1).shift(-k)  # mean(m_{t+k-h..t+k})
            w_minus = mid.rolling_mean(h + 1)  # mean(m_{t-h..t})
            past_ok = _same_day(-h).fill_null(False)
            exprs.append(pl.when(ok & past_ok).then((w_plus - w_minus) / w_minus).alias(f"tlob_ret_{k}"))
    return events.select(*exprs)


def fit_alpha(cfg: LabelConfig, train_values: np.ndarray, train_rel_spread: np.ndarray | None = None) -> float:
    """The class threshold, from the training fold only.

    ``balanced``: the 1/3 quantile of |l|, so that about a third of training labels are flat. ``spread``:
    ``spread_factor`` x the median relative half spread (spread / mid / 2): moves smaller than what crossing
    the spread costs are called flat. ``fixed``: ``cfg.alpha``.
    """
    if cfg.alpha_mode == "fixed":
        return float(cfg.alpha)
    v = np.abs(train_values[np.isfinite(train_values)])
    if cfg.alpha_mode == "balanced":
        if v.size == 0:
            raise ValueError("no finite training labels to fit alpha on")
        return float(np.quantile(v, 1 / 3))
    if train_rel_spread is None:
        raise ValueError("alpha_mode=spread needs the training fold's relative spread")
    s = train_rel_spread[np.isfinite(train_rel_spread)]
    return float(cfg.spread_factor * np.median(s) / 2)


def classify(values: np.ndarray, alpha: float, binary: bool = False) -> np.ndarray:
    """0 down, 1 flat, 2 up; -1 where the target is undefined (end of day). ``binary``: 2 up, 0 the rest."""
    out = np.full(values.shape, -1, dtype=np.int64)
    finite = np.isfinite(values)
    out[finite] = DOWN if binary else FLAT
    out[finite & (values > alpha)] = UP
    if not binary:
        out[finite & (values < -alpha)] = DOWN
    return out


def class_counts(labels: np.ndarray) -> dict[str, int]:
    return {name: int((labels == c).sum()) for c, name in enumerate(CLASS_NAMES)}


def labels_for_fold(
    frame: pl.DataFrame,
    train: np.ndarray,
    cfg: LabelConfig,
    y_out: np.ndarray | None = None,
    r_out: np.ndarray | None = None,
) -> tuple[list[float], list[np.ndarray], list[np.ndarray]]:
    """Class thresholds fitted on the training samples only, the class labels of every row, and the future
    log returns. One place decides labels for the dataset and for ``lobnet-prepare``'s summary. With ``y_out``
    and ``r_out`` ((N, H) arrays), results are written there column by column instead of returned."""
    rel_spread = frame["spread_rel"].to_numpy()[train] if cfg.alpha_mode == "spread" else None
    alphas, ys, rs = [], [], []
    for h, k in enumerate(cfg.horizons):
        target = frame[cfg.target(k)].to_numpy()
        a = fit_alpha(cfg, target[train], rel_spread)
        alphas.append(a)
        if y_out is None:
            ys.append(classify(target, a, cfg.binary))
            rs.append(frame[f"logret_{k}"].to_numpy())
        else:
            y_out[:, h] = classify(target, a, cfg.binary)
            r_out[:, h] = frame[f"logret_{k}"].to_numpy()
    return alphas, ys, rs
