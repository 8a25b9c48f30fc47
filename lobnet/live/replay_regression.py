"""``lobnet-stream`` for a model trained on a regression target (``labels=liquidity | volatility | pairs``,
:mod:`lobnet.train.regression`): the model's step graph beside the calibrated one-pass factor on the same replayed
events, each timed per event, both scored on the target over the replay.

A pairs model replays the merged table of its two symbols' quote updates (:func:`lobnet.prep.targets.target_rows`
on the data, which must hold both: ``data=quotes`` on a folder of both symbols' days), one row per quote update
of either symbol, day ``stream.day`` of the merged days; its feature step is two compiled updates per row, one
per symbol (:class:`lobnet.live.replay.FeatureReplay`).

The feature update and the model engines are :mod:`lobnet.live.replay`'s (``native_step``, ``onnx_step``,
``onnx_window``), reading the regression head (``prediction``, in the training fold's scaled units, converted to
the target's units after the loop); ``ew_factor`` is the factor whose response the target is, one pass, per
event, with the alpha calibrated on the model's training fold (the card's ``factor``; ``stream.factor_alpha``
overrides it):

* liquidity: at each quote update (the best bid or ask changed), an EW mean of best bid size + best ask size;
* volatility: at each grid point of ``grid_s`` seconds passed before the event, an EW variance of the mid's change
  (ticks) since the previous point; the factor is its square root;
* pairs: at each merged row, an EW regression (:class:`lobnet.online.estimators.EWRegression`, the target's ridge)
  of A's mid on B's, both in dollars; the factor is its fitted spread b0 + b1 b - a, whose reversion it predicts.

Scores over the events after the calibration prefix whose target is known (the target of
:func:`lobnet.prep.targets.target_table` on the replayed events, never past the end of the replay): MSE, MAE,
out-of-sample R² against the training fold's mean target, correlation, and each engine's MSE over the factor's
on the same events. Parity: each model engine against the batch pipeline (polars features, the fold's z-score,
the torch model) over the first ``parity_events`` model events, and the streamed factor against the batch
factor (:func:`lobnet.online.factors.on_rows`) on every event.

Like the features, the target and the factor start afresh at the first replayed row: a pairs target's hedge
ratio is the EW slope estimated from there (the same definition as in training, on a day that starts there).
"""

from __future__ import annotations

import math
import time

import numpy as np
import polars as pl

from lobnet.card import CARD
from lobnet.evaluation.regression import scores
from lobnet.live.native import NativeStep
from lobnet.live.replay import (
    STEP_ENGINES,
    FeatureReplay,
    ModelDir,
    ModelDirError,
    StreamSettings,
    _percentiles,
    _timed_replay,
    reference,
    replay_day,
    signal_engine,
    window_engine,
)
from lobnet.live.runtime import StepRunner
from lobnet.prep.targets import NS, QUOTE, TARGET, TargetConfig, TargetScale, target_rows, target_table

FACTOR_ENGINE = "ew_factor"
REGRESSION_ENGINES = ("native_step", "onnx_step", "onnx_window", FACTOR_ENGINE)


class TargetReplay(FeatureReplay):
    """:class:`~lobnet.live.replay.FeatureReplay` with the regression target of the model's card, its scale, and
    the Level-I state the factor reads."""

    def __init__(self, md: ModelDir, events: pl.DataFrame, s: StreamSettings):
        card = md.card
        self.cfg = TargetConfig(**card["labels"])
        super().__init__(md, events, s)
        self.scale = TargetScale(**card["target_scale"])
        self.train_mean = float(card.get("target_train_mean", self.scale.mean))
        self.target = target_table(events, self.cfg, self.params.tick, self.params.price_scale)[TARGET].to_numpy()
        c0 = max(self.start + self.window - 1, min(s.calibration_events, self.n))
        self.scored = (np.arange(self.n) >= c0) & np.isfinite(self.target)
        # the Level-I state the factor reads: bid px, sz, ask px, sz (a pair: A's, then B's)
        cols = [f"{side}_{c}" for side in "ab" for c in QUOTE] if self.cfg.kind == "pairs" else QUOTE
        self.quote = [events[c].cast(pl.Float64).fill_null(np.nan).to_numpy() for c in cols]
        alpha = s.factor_alpha if s.factor_alpha is not None else card.get("factor", {}).get("alpha")
        if alpha is None:
            raise ModelDirError(
                f"{md.path / CARD}: the card holds no calibrated factor alpha (trained before lobnet kept it); set "
                "stream.factor_alpha"
            )
        self.factor_alpha = float(alpha)
        self.events = events


def run_model(md: ModelDir, r: TargetReplay, s: StreamSettings, name: str):
    """A model engine over the replay: (feature ns, inference ns, predictions in the model's scaled units), NaN
    before the model's first event (and, for the window engine, before 8 rows)."""
    pred = np.full(r.n, np.nan)
    if name in STEP_ENGINES:
        if name == "native_step":
            step = NativeStep.load(md.native, md.card, md.path / CARD)
        else:
            step = StepRunner(md.step, s.providers, s.threads)
        out = step.prediction

        def infer(i):
            step()  # the feature update wrote this event's normalised row into the bound input
            pred[i] = out[0, 0]

        return (*_timed_replay(r, infer, step.row), pred)
    out = np.zeros((1, len(md.card["horizons"])), np.float32)

    def store(i):
        pred[i] = out[0, 0]

    return (*window_engine(md, r, s, {"prediction": out}, store), pred)


def run_factor(r: TargetReplay):
    """The one-pass factor over the replay, one event at a time (the module docstring): (feature ns, factor ns,
    the factor's value as known at each event, in the target's units)."""
    from lobnet.online.estimators import EWMean, EWRegression, EWVar

    bpx, bsz, apx, asz = r.quote[:4]
    t_ns, alpha = r.time, r.factor_alpha
    value = np.full(r.n, np.nan)
    nan = math.nan
    if r.cfg.kind == "pairs":
        a_bid, _, a_ask, _, b_bid, _, b_ask, _ = r.quote
        est = EWRegression(alpha, ridge=r.cfg.ridge)
        scale = 2.0 * r.params.price_scale  # mids in dollars, as the factor's (lobnet.online.factors.PairsFactor)

        def infer(i):
            a = (a_bid[i] + a_ask[i]) / scale
            b = (b_bid[i] + b_ask[i]) / scale
            est.update(b, a)  # every merged row is a quote update of one of the two, both quoted
            c0, c1 = est.line()
            value[i] = c0 + c1 * b - a

    elif r.cfg.kind == "liquidity":
        est = EWMean(alpha)
        prev = [(nan, nan, nan, nan)]

        def infer(i):
            q = (bpx[i], bsz[i], apx[i], asz[i])
            changed = q != prev[0]  # against the previous event, as lobnet.prep.targets.top_of_book_updates
            prev[0] = q
            if changed and q[0] == q[0] and q[2] == q[2]:  # a quote update, both sides quoted
                est.update(q[1] + q[3])
            value[i] = est.value

    else:
        est = EWVar(alpha)
        step, tick = int(round(r.cfg.grid_s * NS)), float(r.params.tick)
        st = {"next": -1, "mid": nan, "at_grid": nan}

        def infer(i):
            t = t_ns[i]
            if st["next"] >= 0:
                while st["next"] < t:  # the grid points before this event: the mid as it stood at each
                    if st["at_grid"] == st["at_grid"]:
                        est.update(st["mid"] - st["at_grid"])
                    st["at_grid"] = st["mid"]
                    st["next"] += step
            if bpx[i] == bpx[i] and apx[i] == apx[i]:
                if st["next"] < 0:  # the first quote: the grid starts at the next multiple of the step
                    st["next"] = (t // step + 1) * step
                st["mid"] = (bpx[i] + apx[i]) / (2 * tick)
            value[i] = math.sqrt(est.var) if est.var >= 0 else nan

    # the factor reads the raw quotes, not the model's features: its "inference" is the whole update
    t_feat = np.zeros(r.n, dtype=np.int64)
    t_inf = np.zeros(r.n, dtype=np.int64)
    clock = time.perf_counter_ns
    for i in range(r.n):
        t0 = clock()
        infer(i)
        t_inf[i] = clock() - t0
    return t_feat, t_inf, value


def factor_reference(r: TargetReplay) -> np.ndarray:
    """The batch factor on the replayed events, as known at each (:func:`lobnet.online.factors.on_rows`)."""
    from lobnet.online.factors import on_rows, problem_for

    problem = problem_for(r.events, r.cfg, r.params.tick, r.params.price_scale)
    return on_rows(problem, problem.evaluate(r.factor_alpha)[0], r.events)


def stream_regression(md: ModelDir, events: pl.DataFrame, s: StreamSettings) -> dict:
    """Replay one day through every engine of ``s.engines`` that this model has (the module docstring)."""
    absent = {"onnx_step": md.step is None, "native_step": md.native is None}
    known = [e for e in s.engines if e in REGRESSION_ENGINES]
    runs = [e for e in known if not absent.get(e, False)]
    if FACTOR_ENGINE not in runs:
        runs.append(FACTOR_ENGINE)  # the comparison this streamer exists for
    signal = signal_engine(s.signal_engine, runs)
    cfg = TargetConfig(**md.card["labels"])
    try:
        rows = target_rows(events, cfg)  # a pair's merged table; a book's own events
    except ValueError as e:
        raise ModelDirError(f"{md.path / CARD}: the model's target {cfg.name} does not fit the data: {e}") from None
    day = replay_day(rows, s)
    r = TargetReplay(md, day, s)
    result = {
        "task": "regression",
        "model": md.card["model"],
        "model_dir": str(md.path),
        "target": r.cfg.name,
        "symbol": str(day["symbol"][0]),
        "date": str(day["date"][0]),
        "events": r.n,
        "offset": s.offset,
        "window": r.window,
        "scored_events": int(r.scored.sum()),
        "factor_alpha": r.factor_alpha,
        "step": md.export.get("step"),
        "settings": {"threads": s.threads, "providers": list(s.providers), "io_binding": True},
        "engines": {},
        "parity": {},
    }
    preds = {}
    for name in runs:
        t0 = time.perf_counter()
        if name == FACTOR_ENGINE:
            tf, ti, pred = run_factor(r)
            ref = factor_reference(r)
            both, same_known = np.isfinite(ref) & np.isfinite(pred), np.isfinite(ref) == np.isfinite(pred)
            diff = float(np.max(np.abs(pred[both] - ref[both]) / np.maximum(1.0, np.abs(ref[both])), initial=0.0))
            result["parity"][name] = {
                "events": int(both.sum()),
                "max_rel_diff": diff,
                "same_known_events": bool(same_known.all()),
                "parity": bool(same_known.all() and diff <= 1e-9),
            }
        else:
            tf, ti, raw = run_model(md, r, s, name)
            rows, (ref,) = reference(md, r, s, name)  # the batch pipeline's predictions, scaled units
            ref = ref[:, 0]
            ok = np.isfinite(ref)
            diff = float(np.abs(raw[rows][ok] - ref[ok]).max()) if ok.any() else float("nan")
            result["parity"][name] = {
                "events": int(ok.sum()),
                "max_abs_diff": diff,
                "parity": bool(ok.any() and diff <= s.parity_tolerance),
            }
            pred = r.scale.invert(raw)
        wall = time.perf_counter() - t0
        preds[name] = pred
        m = r.start
        total = tf + ti
        result["engines"][name] = {
            "features": _percentiles(tf[m:]),
            "inference": _percentiles(ti[m:]),
            "total": _percentiles(total[m:]),
            "events_per_s": float(r.n / max(total.sum() / 1e9, 1e-12)),
            "wall_s": wall,
            "_ns": total[m:],
        }
    sc = r.scored.copy()
    for p in preds.values():
        sc &= np.isfinite(p)
    y = r.target[sc]
    ref_mse = float(np.mean((preds[FACTOR_ENGINE][sc] - y) ** 2)) if sc.any() else float("nan")
    for name, p in preds.items():
        sco = scores(p[sc], y, r.train_mean)
        sco["r2"] = sco.pop("r2_oos")
        sco["mse_vs_factor"] = sco["mse"] / ref_mse if ref_mse > 0 else float("nan")
        result["engines"][name].update(sco)
    result["scored_events"] = int(sc.sum())
    result["parity_ok"] = all(v["parity"] for v in result["parity"].values())
    result["signal_engine"] = signal
    return result
