"""The live path: replay a day event by event through incremental features and ONNX Runtime, timed per event.

    lobnet-stream model_dir=runs/export data=lobster data.path=PATH output_dir=runs/stream

For every event, in order: the per-event feature update and the training fold's z-score, compiled into one numba
function from the catalogue's own definitions (:meth:`~lobnet.features.incremental.IncrementalFeatures.compiled`),
which writes the normalised row into the engine's input buffer; then one engine:

* ``onnx_step``: ``model_step.onnx`` with the state kept between calls;
* ``native_step``: the same step compiled with numba (:mod:`lobnet.live.native`), from the weights the export
  wrote beside the step graph (``model_native.npz``), checked against the model card when it is loaded;
* ``onnx_window``: the normalised row into a ring buffer of the last W rows, then ``model.onnx`` on that window:
  what the research path computes, and the fallback for models without a step graph (DeepLOB);
* ``ew_ofi`` and ``ew_regression``: the one-pass factor predictors: the sign of an EW mean of level-1 OFI
  (its flat band fitted on the calibration prefix's labels realised before scoring starts), and an EW regression
  (recursive least squares with forgetting) of the primary horizon's target on that EW mean, updated k events
  late, when each target is realised.

A model's signal is its predicted class at the primary horizon, or, for a model trained with a Sharpe term (the
card's ``loss``: :func:`lobnet.card.traded_head`), its position head: traded as it is, its sign the direction that
scores it and times execution. Each engine's forecasts are then traded through
:func:`lobnet.evaluation.backtest.backtest` from the first scored event on (``backtest``: spread, fees, latency; by
default each decision also waits for the engine's own measured time for that event, so a slower engine trades
later), with the PnL attributed to spread, hour and volatility regimes.

Each engine replays the day separately, so its timings are its own: per event, the feature update, the
inference, and both together (``time.perf_counter_ns``). Hot-loop discipline: one intra-op thread,
``ORT_ENABLE_ALL``, inputs and outputs bound once to preallocated buffers (two IOBindings alternate, so the state
written by one call is the input of the next without a copy), no allocation in the feature update, the garbage
collector frozen and disabled around the loop.

The replay is checked against the batch pipeline: polars features, the training fold's z-score and the torch
model (``weights.pt``) over the first ``parity_events`` model events: the step engine against the model run over
them as one sequence, the window engine against the model on the same windows. ``parity`` is true when the logits
agree within ``parity_tolerance`` and the predicted classes are identical. Each engine's macro-F1 and accuracy
are computed at the primary horizon on the events after the calibration prefix whose label is known.

Outputs in ``output_dir``: ``stream.json``, ``stream.md`` (the tables), ``latency.png`` (histograms),
``equity.png`` (each engine's equity curve net of costs), and an MLflow run with the same figures.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.card import (
    CARD,
    STREAMING,
    WEIGHTS,
    build_model,
    load_weights,
    primary_horizon,
    read_card,
    torch_file,
    traded_head,
)
from lobnet.data.schema import day_slices, n_levels
from lobnet.evaluation.backtest import (
    Costs,
    backtest,
    backtest_settings,
    naive_benchmarks,
    positions_from_classes,
    regimes,
)
from lobnet.features import FeatureSpec, compute_features, pair_feature_names, warmup
from lobnet.features.incremental import IncrementalFeatures
from lobnet.live.native import NativeStep
from lobnet.live.runtime import StepRunner, ort_call, session
from lobnet.online.baselines import flat_band, score, sign_classes
from lobnet.online.estimators import EWMean, EWRegression, ew_mean
from lobnet.prep.labels import DOWN, FLAT, UP, LabelConfig, classify, compute_targets
from lobnet.prep.windows import ZScore, feature_matrix

PCTS = {"p50_us": 50, "p90_us": 90, "p99_us": 99, "p999_us": 99.9}


class ModelDirError(ValueError):
    """A model directory that lobnet-stream cannot use: a file missing, or a model that does not fit the data."""


@dataclass
class StreamSettings:
    events: int = 50_000  # events of the day to replay (0: all)
    day: int = 0  # which symbol-day of the data
    offset: int = 0  # first replayed event of the day; negative counts from its end (-20000: the last 20,000)
    calibration_events: int = 5_000  # the prefix that fits the factor's flat band; not scored
    parity_events: int = 2_000  # model events compared with the batch pipeline
    parity_tolerance: float = 1e-4
    alpha_ofi: float = 0.9  # forgetting factor of the EW mean of OFI
    alpha_rls: float = 0.999  # forgetting factor of the EW regression
    providers: list[str] = field(default_factory=lambda: ["CPUExecutionProvider"])
    threads: int = 1
    engines: list[str] = field(
        default_factory=lambda: ["native_step", "onnx_step", "onnx_window", "ew_ofi", "ew_regression"]
    )
    # the engine whose forecasts are the stream's signal (``signal_engine`` in stream.json); auto: the first of
    # native_step, onnx_step, onnx_window that ran (a model without a step graph streams through its window)
    signal_engine: str = "auto"
    # lobnet.evaluation.backtest.Costs fields, and charge_compute: whether each decision also waits for the engine's
    # measured time for that event
    backtest: dict = field(default_factory=dict)
    # lobnet.evaluation.execution.ExecutionSettings fields (lobnet-stream execution=twap): parent orders executed
    # over the scored stretch by every schedule, one forecast-timed schedule per engine; None: no execution
    execution: dict | None = None
    # a regression model's factor (lobnet.live.replay_regression): its alpha; None, the card's (calibrated on the
    # model's training fold)
    factor_alpha: float | None = None

    def costs(self) -> tuple[Costs, int, bool]:
        """The backtest's costs, the naive benchmarks' draws, and whether each decision waits for the engine's
        compute time."""
        bt = dict(self.backtest)
        charge_compute = bool(bt.pop("charge_compute", True))
        return *backtest_settings(bt), charge_compute


MODEL_ENGINES = ("native_step", "onnx_step", "onnx_window")  # the model's engines, in the order auto picks one
STEP_ENGINES = ("native_step", "onnx_step")  # the step engines: the batch reference is the model over the sequence


@dataclass
class ModelDir:
    path: Path
    card: dict
    export: dict
    step: Path | None
    native: Path | None = None

    @classmethod
    def load(cls, path: str | Path) -> ModelDir:
        p = Path(path)
        if not p.is_dir():
            raise ModelDirError(f"{p}: no such model directory (write one with lobnet-export)")
        for name in (CARD, "export.json", "model.onnx", WEIGHTS):
            if not (p / name).exists():
                raise ModelDirError(f"{p / name}: missing; the model directory is incomplete (re-run lobnet-export)")
        card = read_card(p / CARD, STREAMING)
        try:
            export = json.loads((p / "export.json").read_text())
        except ValueError as e:
            raise ModelDirError(f"{p / 'export.json'}: unreadable JSON: {e}") from e
        step = None
        if export.get("step") == "model_step.onnx":
            step = p / "model_step.onnx"
            if not step.exists():
                raise ModelDirError(f"{step}: missing, but export.json lists it")
        for graph in (p / "model.onnx", step):  # a damaged graph is named now, not after the data is read
            if graph is not None:
                session(graph)
        native = None
        if export.get("native"):
            native = p / export["native"]
            if not native.exists():
                raise ModelDirError(f"{native}: missing, but export.json lists it")
            NativeStep.load(native, card, p / CARD)  # refused now if its weights do not match the card
        return cls(p, card, export, step, native)

    def torch_model(self):
        card_path, weights = self.path / CARD, self.path / WEIGHTS
        return load_weights(build_model(self.card, card_path), torch_file(weights), weights, card_path)


def _percentiles(ns: np.ndarray) -> dict:
    us = ns / 1e3
    out = {k: float(np.percentile(us, q)) for k, q in PCTS.items()}
    out["max_us"] = float(us.max()) if us.size else float("nan")
    out["mean_us"] = float(us.mean()) if us.size else float("nan")
    return out


@dataclass
class FeaturePart:
    """One compiled feature update of the streamer's hot loop and the slice of the engine's input row it writes:
    the whole row for a book, each symbol's features for a merged pair table."""

    inputs: np.ndarray  # (n, len(IncrementalFeatures.inputs)) float64, the update's input row per event
    update: object  # IncrementalFeatures.compiled(): step(c, f, s, first, mean, std, z)
    raw_row: np.ndarray  # the raw features of the current event
    slots: np.ndarray  # the incremental features' state between events
    mean: np.ndarray  # the training fold's z-score of this slice (float32, contiguous)
    std: np.ndarray
    cols: slice  # where its features stand in the model's feature list


class FeatureReplay:
    """One day's inputs, the compiled per-event feature update, and the batch pipeline's features of the same
    events (polars, then the training fold's z-score): what every model's replay needs, whatever it predicts.

    A pairs model (the card's ``features.pair``) replays the merged two-symbol table
    (:func:`lobnet.prep.targets.target_rows`): two updates per row, symbol A's groups and then symbol B's (without
    ``log_dt``, which A's carries once), each on its symbol's Level-I state as the row carries it and writing its
    slice of the input row, in :func:`lobnet.features.pair_feature_names` order; the batch reference is
    :func:`lobnet.prep.prepared.pair_features`, what training computed."""

    def __init__(self, md: ModelDir, events: pl.DataFrame, s: StreamSettings):
        card = md.card
        spec = FeatureSpec(**{k: v for k, v in card["features"].items() if k not in ("levels", "pair")})
        groups = list(spec.groups)
        pair = bool(card["features"].get("pair"))
        levels = 1 if pair else n_levels(events)  # a merged row carries each symbol's best quotes
        if levels != card["features"]["levels"]:
            raise ModelDirError(
                f"{md.path / CARD}: the model was trained on {card['features']['levels']} book levels, "
                f"the data has {levels}"
            )
        params = spec.params(levels)
        zscore = ZScore.from_card(card)
        self.mean, self.std = zscore.mean, zscore.std
        sides = [("a_", groups), ("b_", [g for g in groups if g != "log_dt"])] if pair else [("", groups)]
        self.parts: list[FeaturePart] = []
        names, lo = [], 0
        for prefix, own in sides:
            features = IncrementalFeatures(params, own)
            try:
                inputs = np.ascontiguousarray(features.input_matrix(events, prefix))
            except ValueError as e:
                raise ModelDirError(f"{md.path / CARD}: {e}") from None
            F = len(features.names)
            cols = slice(lo, lo + F)
            lo += F
            self.parts.append(
                FeaturePart(
                    inputs,
                    features.compiled(),  # features, then the z-score, into the engine's input buffer
                    np.zeros(F),
                    np.zeros(features.n_slots),
                    np.ascontiguousarray(self.mean[cols]),
                    np.ascontiguousarray(self.std[cols]),
                    cols,
                )
            )
            names += features.names
        computed = pair_feature_names(params, groups) if pair else names
        if computed != card["feature_names"]:
            extra = sorted(set(computed) ^ set(card["feature_names"]))
            raise ModelDirError(
                f"{md.path / CARD}: its feature list differs from the one these settings compute "
                f"(differing: {extra[:8] or 'order'})"
            )
        self.raw_row = self.parts[0].raw_row  # a book's raw features of the current event (the factor engines read)
        self.n = events.height
        self.start = warmup(groups)  # the model sees no warm-up row, as in training
        self.window = int(card["window"])
        self.names = card["feature_names"]
        if pair:
            from lobnet.prep.prepared import pair_features

            batch = pair_features(events, params, groups)
        else:
            batch = compute_features(events, params, groups)
        self.batch = feature_matrix(batch, self.names)  # the batch pipeline's raw features (n, F)
        with np.errstate(invalid="ignore"):
            self.normalised = zscore.apply(self.batch)  # exactly what training fed the model
        self.params = params
        self.time = events["time"].to_numpy()


class Replay(FeatureReplay):
    """:class:`FeatureReplay`, with the direction labels the model is scored on, and the quotes it trades."""

    def __init__(self, md: ModelDir, events: pl.DataFrame, s: StreamSettings):
        super().__init__(md, events, s)
        card, params = md.card, self.params
        labels = LabelConfig(**card["labels"])
        horizons = list(card["horizons"])
        k = primary_horizon(horizons, card.get("primary_horizon"))
        self.horizon = k
        self.horizon_index = horizons.index(k)
        self.alpha = float(card["alphas"][self.horizon_index])
        self.target = compute_targets(events, labels, params)[labels.target(k)].to_numpy().astype(float)
        self.y = classify(self.target, self.alpha, labels.binary)
        self.logit_mask = labels.logit_mask()  # binary labels: the flat class is never forecast
        c0 = max(self.start + self.window - 1, min(s.calibration_events, self.n))
        scored = np.zeros(self.n, dtype=bool)
        scored[c0:] = True
        self.scored = scored & (self.y >= 0)
        self.trade_from = c0  # the backtest trades the scored stretch, labels known or not
        self.bid = events["bid_px_1"].to_numpy().astype(float)  # nulls (an empty side) become NaN
        self.ask = events["ask_px_1"].to_numpy().astype(float)
        self.price_scale = params.price_scale
        self.regimes = {k: v[c0:] for k, v in regimes(events, params).items()}
        # the factor's calibration: events whose label is realised (k events later) by the first scored event,
        # so that nothing fitted on the prefix looks into the scored events
        self.calib = np.arange(self.start, max(self.start, c0 - k + 1))


def _timed_replay(r: FeatureReplay, infer, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Replay the day: the compiled feature update of every event (raw features into each part's ``raw_row``,
    z-scored into its slice of ``z``, float32; two parts for a merged pair table), then ``infer(i)`` from the
    model's first event on, each timed; the collector frozen and disabled meanwhile. Returns (feature ns,
    inference ns)."""
    n, start = r.n, r.start
    t_feat = np.zeros(n, dtype=np.int64)
    t_inf = np.zeros(n, dtype=np.int64)
    parts = [(p.inputs, p.update, p.raw_row, p.slots, p.mean, p.std, z[p.cols]) for p in r.parts]
    for X, update, f, s, mean, std, zp in parts:
        update(X[0], f, s, True, mean, std, zp)  # compiled (or loaded from numba's cache) before the clock starts
    (Xa, ua, fa, sa, ma, da, za), *rest = parts
    two = bool(rest)  # a merged pair table: symbol A's update, then symbol B's, in one timed feature step
    Xb, ub, fb, sb, mb, db, zb = rest[0] if two else parts[0]
    clock = time.perf_counter_ns
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        for i in range(n):
            ca, cb = Xa[i], Xb[i]
            t0 = clock()
            first = i == 0
            ua(ca, fa, sa, first, ma, da, za)
            if two:
                ub(cb, fb, sb, first, mb, db, zb)
            t1 = clock()
            if i >= start:
                infer(i)
            t2 = clock()
            t_feat[i] = t1 - t0
            t_inf[i] = t2 - t1
    finally:
        gc.enable()
        gc.unfreeze()
    return t_feat, t_inf


def run_step(
    md: ModelDir, r: Replay, s: StreamSettings, positions: bool = False, native: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A step engine, ONNX Runtime's or (``native``) the compiled one: (feature ns, inference ns, logits
    (n, H, 3), positions (n, H)), NaN before the model's first event; the positions are kept only when asked
    (the traded signal), so that a class-traded model's timed loop copies nothing it does not use."""
    if native:
        step = NativeStep.load(md.native, md.card, md.path / CARD)
    else:
        step = StepRunner(md.step, s.providers, s.threads)
    out = np.full((r.n, *step.logits.shape[1:]), np.nan, np.float32)
    pos = np.full((r.n, *step.position.shape[1:]), np.nan, np.float32)
    logits, position = step.logits, step.position

    def infer(i):
        step()  # the feature update wrote this event's normalised row into the bound input
        out[i] = logits[0]

    def infer_with_position(i):
        step()
        out[i] = logits[0]
        pos[i] = position[0]

    return (*_timed_replay(r, infer_with_position if positions else infer, step.row), out, pos)


def window_engine(md: ModelDir, r: FeatureReplay, s: StreamSettings, heads: dict[str, np.ndarray], store):
    """The full-window engine's loop: the normalised row into a ring buffer, ``model.onnx`` on the last W rows (on
    the rows so far while fewer than W, from 8) with its outputs bound to ``heads`` (name: a (1, ...) buffer),
    then ``store(i)``. Returns (feature ns, inference ns)."""
    sess = session(md.path / "model.onnx", s.providers, s.threads)
    W, F = r.window, len(r.names)
    ring = np.zeros((2 * W, F), np.float32)  # each row written twice: the last W rows are always contiguous
    z = np.zeros(F, np.float32)
    b = sess.io_binding()
    for name, arr in heads.items():
        b.bind_output(name, "cpu", 0, np.float32, list(arr.shape), arr.ctypes.data)
    base, row_bytes = ring.ctypes.data, F * 4
    run, arg = ort_call(sess, b)
    seen = 0

    def infer(i):
        nonlocal seen
        p = seen % W
        ring[p] = z
        ring[p + W] = z
        seen += 1
        m = min(seen, W)
        if m >= 8:
            first = p + W - m + 1  # the last m rows, oldest first, end at the second copy of row p
            b.bind_input("x", "cpu", 0, np.float32, [1, m, F], base + first * row_bytes)
            run(arg, None)
            store(i)

    return _timed_replay(r, infer, z)


def run_window(
    md: ModelDir, r: Replay, s: StreamSettings, positions: bool = False
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The full-window engine (:func:`window_engine`); outputs as :func:`run_step`'s."""
    H = len(md.card["horizons"])
    logits = np.zeros((1, H, 3), np.float32)
    position = np.zeros((1, H), np.float32)
    out = np.full((r.n, H, 3), np.nan, np.float32)
    pos = np.full((r.n, H), np.nan, np.float32)

    def store(i):
        out[i] = logits[0]
        if positions:
            pos[i] = position[0]

    return (*window_engine(md, r, s, {"logits": logits, "position": position}, store), out, pos)


def run_factors(r: Replay, s: StreamSettings, kind: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-pass factor predictor: classes (n,), -1 where it has no forecast yet."""
    if "ofi_1" not in r.names:
        raise ModelDirError("the factor engines read the 'ofi' feature group, which this model does not use")
    j = r.names.index("ofi_1")
    start, n, k = r.start, r.n, r.horizon
    target, alpha = r.target, r.alpha
    # the flat band: |EW OFI| quantile matching the calibration prefix's share of flat labels
    x = np.nan_to_num(r.batch[:, j].astype(float))
    x[:start] = 0.0
    sig = ew_mean(x, s.alpha_ofi)
    cal = r.calib[r.y[r.calib] >= 0]
    band = flat_band(sig[cal], r.y[cal])
    pred = np.full(n, -1, dtype=np.int64)
    past = np.zeros(k)  # the EW OFI of the last k events: the regressor of each target when it is realised
    e, reg = EWMean(s.alpha_ofi), EWRegression(s.alpha_rls)

    f = r.raw_row
    up, down, flat = UP, DOWN, FLAT  # bound here: the class rule below runs once per event, inside the timing

    def infer(i):
        v = f[j]
        m = e.update(v if v == v else 0.0)
        if kind == "ew_ofi":
            pred[i] = up if m > band else (down if m < -band else flat)
            return
        slot = i % k
        if i - k >= start:  # the target of event i - k is realised now
            y_old = target[i - k]
            if y_old == y_old:
                reg.update(past[slot], y_old)
            c0, c1 = reg.line()
            fc = c0 + c1 * m
            pred[i] = up if fc > alpha else (down if fc < -alpha else flat)  # the label rule (prep.labels.classify)
        past[slot] = m

    return (*_timed_replay(r, infer, np.zeros(len(r.names), np.float32)), pred)


def reference(md: ModelDir, r: FeatureReplay, s: StreamSettings, kind: str) -> tuple[np.ndarray, tuple]:
    """The batch pipeline's head outputs at the first ``parity_events`` model events: (event rows, the outputs
    :attr:`lobnet.models.base.Heads.outputs` names: logits (P, H, 3) and positions (P, H), or predictions (P, H)).
    The step engines' reference is the model over those events as one sequence, the window engine's the model on
    each window (NaN before 8 rows)."""
    import torch

    from lobnet.models.streaming import sequence_outputs

    model = md.torch_model()
    P = min(s.parity_events, r.n - r.start)
    rows = np.arange(r.start, r.start + P)
    X = torch.from_numpy(r.normalised[r.start : r.start + P])
    with torch.no_grad():
        if kind in STEP_ENGINES:
            return rows, tuple(o[0].numpy() for o in sequence_outputs(model, X[None], r.window))
        outs = None
        for t in range(7, P):
            got = model(X[None, max(0, t - r.window + 1) : t + 1])
            if outs is None:
                outs = tuple(np.full((P, *g.shape[1:]), np.nan, np.float32) for g in got)
            for o, g in zip(outs, got, strict=True):
                o[t] = g[0].numpy()
        return rows, outs


def _parity(logits: np.ndarray, pos: np.ndarray, ref: tuple, tolerance: float, head: str) -> dict:
    """An engine's outputs at the reference rows against the batch pipeline's: the logits within ``tolerance``
    and the same predicted classes; for a model traded on its position head, the positions within ``tolerance``
    and of the same sign too."""
    rows, (ref_logits, ref_pos) = ref
    got, got_pos = logits[rows], pos[rows]
    ok = ~np.isnan(ref_logits[:, 0, 0])
    if not ok.any():
        return {"events": 0, "max_abs_diff_logits": float("nan"), "same_classes": False, "parity": False}
    diff = float(np.abs(got[ok] - ref_logits[ok]).max())
    same = bool((got[ok].argmax(-1) == ref_logits[ok].argmax(-1)).all())
    out = {"events": int(ok.sum()), "max_abs_diff_logits": diff, "same_classes": same}
    good = diff <= tolerance and same
    if head == "position":
        dpos = float(np.abs(got_pos[ok] - ref_pos[ok]).max())
        same_sign = bool((np.sign(got_pos[ok]) == np.sign(ref_pos[ok])).all())
        out |= {"max_abs_diff_position": dpos, "same_position_signs": same_sign}
        good = good and dpos <= tolerance and same_sign
    return out | {"parity": bool(good)}


def _execution(events: pl.DataFrame, day: pl.DataFrame, r: Replay, s: StreamSettings, preds: dict, costs) -> dict:
    """The replayed day's parent orders executed by every schedule (:func:`lobnet.evaluation.execution.evaluate`),
    each engine's forecast at the primary horizon timing one schedule. The VWAP profile comes from the data's
    earlier days (never the replayed one, whose volume is the future), when they hold trades."""
    from lobnet.evaluation import execution as ex

    es = ex.ExecutionSettings(**s.execution)
    book = ex.Book.from_events(day)
    parents = ex.parents_over(r.n, r.trade_from, es)
    earlier = events[: day_slices(events)[s.day].start]
    earlier = earlier.filter(pl.col("symbol") == day["symbol"][0])
    profile, note = None, "no earlier day of this symbol in the data to take the volume profile from"
    if earlier.height:
        try:
            profile, note = ex.volume_profile(earlier, es.buckets), None
        except ValueError as e:
            note = str(e)
    c0 = r.trade_from
    labels = {k: np.concatenate([np.full(c0, v[0]), v]) for k, v in r.regimes.items()}  # rows before c0: unused
    out = ex.evaluate(book, parents, costs, es, preds, profile, labels)
    out["settings"] = dataclasses.asdict(es)
    if note:
        out["vwap"] = f"not run: {note}"
    return out


def replay_day(events: pl.DataFrame, s: StreamSettings) -> pl.DataFrame:
    days = day_slices(events)
    if not 0 <= s.day < len(days):
        raise ValueError(f"day={s.day}: the data has {len(days)} symbol-days")
    day = events[days[s.day]]
    offset = s.offset if s.offset >= 0 else day.height + s.offset  # negative: counted from the day's end
    if not 0 <= offset < day.height:
        raise ValueError(f"offset={s.offset}: day {s.day} has {day.height} events")
    return day.slice(offset, s.events or None)  # features start afresh at the first replayed event


def stream(md: ModelDir, events: pl.DataFrame, s: StreamSettings) -> dict:
    if md.card.get("task") == "regression":  # a model of a factor's target, beside the factor
        from lobnet.live.replay_regression import stream_regression

        return stream_regression(md, events, s)
    absent = {"onnx_step": md.step is None, "native_step": md.native is None}  # models without a step graph
    runs = [name for name in s.engines if not absent.get(name, False)]
    signal = signal_engine(s.signal_engine, runs)  # refused now, before the day is replayed
    day = replay_day(events, s)
    r = Replay(md, day, s)
    primary = r.horizon_index  # the primary horizon's place among the outputs (H is their count elsewhere)
    result = {
        "model": md.card["model"],
        "model_dir": str(md.path),
        "symbol": str(day["symbol"][0]),
        "date": str(day["date"][0]),
        "events": r.n,
        "offset": s.offset,
        "window": r.window,
        "primary_horizon": r.horizon,
        "scored_events": int(r.scored.sum()),
        "step": md.export.get("step"),
        "settings": {
            "threads": s.threads,
            "providers": list(s.providers),
            "graph_optimization": "ORT_ENABLE_ALL",
            "io_binding": True,
            "gc": "frozen and disabled in the loop",
        },
        "engines": {},
        "parity": {},
    }
    preds = {}
    costs, naive_draws, charge_compute = s.costs()
    head = traded_head(md.card)
    result["traded_head"] = head
    for name in runs:  # a model without a step graph streams through its window engine
        t0 = time.perf_counter()
        position = None  # the model's position head at the primary horizon, when it is the traded signal
        if name in STEP_ENGINES:
            tf, ti, logits, pos = run_step(md, r, s, head == "position", native=name == "native_step")
        elif name == "onnx_window":
            tf, ti, logits, pos = run_window(md, r, s, head == "position")
        elif name in ("ew_ofi", "ew_regression"):
            tf, ti, cls = run_factors(r, s, name)
            logits = None
        else:
            raise ValueError(f"unknown engine {name!r}; known: {StreamSettings().engines}")
        wall = time.perf_counter() - t0
        if logits is not None:
            none = np.isnan(logits[:, primary, 0])
            if head == "position":  # the Sharpe head's sign is its direction forecast (scores, execution timing)
                position = np.nan_to_num(pos[:, primary])
                cls = np.where(none, -1, sign_classes(position, 0.0))
            else:
                cls = np.where(none, -1, (np.nan_to_num(logits[:, primary]) + r.logit_mask).argmax(-1))
            result["parity"][name] = _parity(logits, pos, reference(md, r, s, name), s.parity_tolerance, head)
        preds[name] = cls
        m = r.start  # model events only: the warm-up events run the feature update alone
        total = tf + ti
        sc = r.scored & (cls >= 0)
        result["engines"][name] = {
            "features": _percentiles(tf[m:]),
            "inference": _percentiles(ti[m:]),
            "total": _percentiles(total[m:]),
            "events_per_s": float(r.n / (total.sum() / 1e9)),
            "wall_s": wall,
            **score(r.y[sc], cls[sc]),
            "scored_events": int(sc.sum()),
            "signal": "factor" if logits is None else f"{head} head",
        }
        result["engines"][name]["_ns"] = total[m:]
        c0 = r.trade_from
        if position is None:
            target = positions_from_classes(cls[c0:], costs.flat)  # flat until the first forecast after c0
        else:
            target = position[c0:]  # the Sharpe head's position, traded as the fold's backtest trades it
        bt = backtest(
            r.time[c0:],
            r.bid[c0:],
            r.ask[c0:],
            target,
            costs,
            r.price_scale,
            delay_ns=total[c0:] if charge_compute else None,
            regime_labels=r.regimes,
        )
        result["engines"][name]["_equity"] = bt.pop("_equity")
        if naive_draws:
            bt["naive"] = naive_benchmarks(
                r.time[c0:], r.bid[c0:], r.ask[c0:], target, costs, r.price_scale, draws=naive_draws
            )
        result["engines"][name]["backtest"] = bt
    if s.execution is not None:
        result["execution"] = _execution(events, day, r, s, preds, costs)
    if "onnx_step" in preds and "onnx_window" in preds:
        a, b = preds["onnx_step"], preds["onnx_window"]
        both = (a >= 0) & (b >= 0) & (np.arange(r.n) >= r.start + r.window - 1)
        result["parity"]["step_vs_window_class_agreement"] = float(np.mean(a[both] == b[both])) if both.any() else None
    result["parity_ok"] = all(v["parity"] for k, v in result["parity"].items() if isinstance(v, dict))
    result["signal_engine"] = signal
    return result


def signal_engine(wanted: str, runs: list[str]) -> str:
    """The engine whose forecasts are the stream's signal: ``wanted``, which must be among the engines that
    ``runs`` (the settings' engines this model has), or for ``auto`` the first model engine of
    :data:`MODEL_ENGINES` among them."""
    if wanted == "auto":
        found = [e for e in MODEL_ENGINES if e in runs]
        if not found:
            raise ValueError(
                f"stream.signal_engine=auto needs one of the model engines {list(MODEL_ENGINES)}; runs {runs}"
            )
        return found[0]
    if wanted not in runs:
        raise ValueError(
            f"stream.signal_engine={wanted!r} does not run for this model (its engines: {runs}); "
            "name one of them or auto"
        )
    return wanted
