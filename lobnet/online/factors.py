"""One-pass factors and their forward-looking responses, and the calibration of their forgetting parameter.

Each factor turns an events table into a :class:`FactorProblem`: for any alpha, the factor (using only the past)
and the response it is meant to predict (looking forward only to build the target). Estimators restart every
day, responses never reach past the end of their day.

* **Liquidity**: x = best bid size + best ask size at each quote update (an event that changes the top of
  book); factor = EW mean of x; response = x at the first update at or after ``horizon_s`` seconds later.
* **Volatility**: mid changes on a grid of ``grid_s`` seconds (in ticks); factor = EW standard deviation of the
  changes; response = realised volatility (root mean square change per grid step) over the next ``horizon_s``.
* **Pairs**: EW regression of mid A on mid B over the quote updates of either (:func:`lobnet.prep.targets.merge_pair`);
  factor = β0 + β1 mid_B - mid_A (positive: A is cheap relative to B); response = PnL from the update to the first
  update at or after ``horizon_s`` seconds later of long 1 A, short β1 B.

The responses are the regression targets of :mod:`lobnet.prep.targets`, the definitions the models are trained
on too, evaluated on the factor's rows.

Time clock and event clock: liquidity and pairs run on events, volatility on a fixed time grid; the same
estimator objects serve both (:func:`sample_on_grid`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from lobnet.data.schema import DEFAULT_TICK, PRICE_SCALE, day_slices
from lobnet.evaluation.regression import compare, horizon_in_samples
from lobnet.online.estimators import ew_mean, ew_regression, ew_var
from lobnet.prep import targets

NS = targets.NS


def effective_window(alpha: float) -> int:
    """The simple-moving-average length with the same centre of mass as an EW mean with this alpha."""
    return max(1, int(round((1 + alpha) / (1 - alpha)))) if alpha < 1 else 10**9


@dataclass
class FactorProblem:
    """A factor on some rows: ``evaluate(alpha)`` -> (factor, response); ``baselines(alpha)`` -> naive predictors
    with the same memory, as {name: (prediction, response)}. ``times``/``day`` locate each row."""

    name: str
    times: np.ndarray
    day: np.ndarray
    horizon_ns: int
    evaluate: Callable[[float], tuple[np.ndarray, np.ndarray]]
    baselines: Callable[[float], dict[str, tuple[np.ndarray, np.ndarray]]]
    units: str = ""
    meta: dict = field(default_factory=dict)
    # the row of the input table each problem row is (quote updates, the merged pair table); None for a time grid
    source_rows: np.ndarray | None = None


def _days(frame: pl.DataFrame) -> list[np.ndarray]:
    return [np.arange(s.start, s.stop) for s in day_slices(frame)]


def _per_day(fn, values: np.ndarray, days: list[np.ndarray]) -> np.ndarray:
    out = np.empty(len(values))
    for idx in days:
        out[idx] = fn(values[idx])
    return out


def _rolling_mean(x: np.ndarray, n: int) -> np.ndarray:
    c = np.concatenate(([0.0], np.cumsum(x)))
    i = np.arange(1, len(x) + 1)
    lo = np.maximum(0, i - n)
    return (c[i] - c[lo]) / (i - lo)


def sample_on_grid(times: np.ndarray, values: np.ndarray, step_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The time clock: ``values`` as they stand at each multiple of ``step_ns`` from the first event to the last
    (last observation at or before each grid time)."""
    start = (times[0] // step_ns + 1) * step_ns
    grid = np.arange(start, times[-1] + 1, step_ns, dtype=np.int64)
    j = np.searchsorted(times, grid, side="right") - 1
    return grid, values[j]


@dataclass
class LiquidityFactor:
    horizon_s: float = 10.0

    def problem(self, events: pl.DataFrame) -> FactorProblem:
        q = targets.top_of_book_updates(events.with_row_index("_row"))
        x = targets.liquidity(q)
        times = q["time"].to_numpy()
        days = _days(q)
        h = int(self.horizon_s * NS)
        response = targets.liquidity_target(x, targets.horizon_rows(times, days, self.horizon_s, None))
        day = np.empty(len(x), dtype=np.int64)
        for d, idx in enumerate(days):
            day[idx] = d

        def evaluate(alpha):
            return _per_day(lambda v: ew_mean(v, alpha), x, days), response

        def baselines(alpha):
            n = effective_window(alpha)
            return {
                "last value": (x, response),
                "SMA (same memory)": (_per_day(lambda v: _rolling_mean(v, n), x, days), response),
            }

        return FactorProblem(
            "liquidity",
            times,
            day,
            h,
            evaluate,
            baselines,
            units="shares",
            meta={"rows": "quote updates"},
            source_rows=q["_row"].to_numpy().astype(np.int64),
        )


@dataclass
class VolatilityFactor:
    grid_s: float = 1.0
    horizon_s: float = 60.0
    tick: int = DEFAULT_TICK

    def problem(self, events: pl.DataFrame) -> FactorProblem:
        step = int(self.grid_s * NS)
        times_all, dmid_all, day_all, response_all = [], [], [], []
        for d, idx in enumerate(_days(events)):
            sub = events[idx]
            ok = sub["bid_px_1"].is_not_null() & sub["ask_px_1"].is_not_null()
            sub = sub.filter(ok)
            mid = ((sub["bid_px_1"] + sub["ask_px_1"]) / (2 * self.tick)).to_numpy()  # ticks
            t = sub["time"].to_numpy()
            grid, m = sample_on_grid(t, mid, step)
            times_all.append(grid[1:])
            dmid_all.append(np.diff(m))
            day_all.append(np.full(len(grid) - 1, d))
            # the target's own definition, at the grid's points (the changes s + 1 .. s + k of each)
            at = [np.arange(len(grid) - 1)]
            response_all.append(
                targets.realised_volatility(t, mid, [np.arange(len(t))], self.horizon_s, self.grid_s, grid[1:], at)
            )
        times, dmid, day = np.concatenate(times_all), np.concatenate(dmid_all), np.concatenate(day_all)
        response = np.concatenate(response_all)
        days = [np.flatnonzero(day == d) for d in np.unique(day)]

        def evaluate(alpha):
            return _per_day(lambda v: np.sqrt(np.maximum(ew_var(v, alpha)[1], 0.0)), dmid, days), response

        def baselines(alpha):
            n = effective_window(alpha)
            rms = _per_day(lambda v: np.sqrt(_rolling_mean(v * v, n)), dmid, days)
            return {"last value": (np.abs(dmid), response), "SMA (same memory)": (rms, response)}

        return FactorProblem(
            "volatility",
            times,
            day,
            int(self.horizon_s * NS),
            evaluate,
            baselines,
            units="ticks per step",
            meta={"grid_s": self.grid_s},
        )


@dataclass
class PairsFactor:
    symbol_a: str = "AIG"
    symbol_b: str = "BAC"
    horizon_s: float = 60.0
    # dollars²: shrinks the hedge ratio towards 0 when B's mid has barely moved over the memory (BAC near $15
    # often sits still for minutes; there the exact weighted least-squares slope is noise divided by ~0)
    ridge: float = 1e-4
    price_scale: int = PRICE_SCALE

    def problem(self, events: pl.DataFrame) -> FactorProblem:
        try:
            wide = targets.merge_pair(events, self.symbol_a, self.symbol_b)
        except ValueError as e:
            raise ValueError(f"pairs factor: {e}") from None
        return self.problem_merged(wide)

    def problem_merged(self, wide: pl.DataFrame) -> FactorProblem:
        """The problem on a table already merged (:func:`lobnet.prep.targets.merge_pair`; the prepared table of
        ``labels=pairs``), whose rows it keeps."""
        scale = 2 * self.price_scale
        a = ((wide["a_bid_px_1"] + wide["a_ask_px_1"]) / scale).to_numpy()
        b = ((wide["b_bid_px_1"] + wide["b_ask_px_1"]) / scale).to_numpy()
        times = wide["time"].to_numpy()
        day = wide["date"].rle_id().to_numpy()
        days = [np.flatnonzero(day == d) for d in np.unique(day)]
        h = int(self.horizon_s * NS)
        rows = targets.horizon_rows(times, days, self.horizon_s, None)

        def from_coefs(b0, b1):
            return b0 + b1 * b - a, targets.pairs_target(a, b, b1, rows)

        def evaluate(alpha):
            coefs = np.empty((len(a), 2))
            for idx in days:
                coefs[idx] = ew_regression(b[idx], a[idx], alpha, ridge=self.ridge)[0]
            return from_coefs(coefs[:, 0], coefs[:, 1])

        def baselines(alpha):
            n = effective_window(alpha)
            _, r_ew = evaluate(alpha)
            b0, b1 = np.empty(len(a)), np.empty(len(a))
            for idx in days:  # rolling OLS over the same effective number of updates
                mb, ma = _rolling_mean(b[idx], n), _rolling_mean(a[idx], n)
                cov = _rolling_mean(b[idx] * a[idx], n) - mb * ma
                var = _rolling_mean(b[idx] * b[idx], n) - mb * mb
                den = var * n + self.ridge  # the same ridge on the window's scatter
                b1[idx] = cov * n / den
                b0[idx] = ma - b1[idx] * mb
            f, r = from_coefs(b0, b1)
            # "no signal" is scored on the EW hedge's own PnL: does the factor predict it better than zero?
            return {"rolling OLS (same memory)": (f, r), "no signal (0)": (np.zeros(len(a)), r_ew)}

        return FactorProblem(
            "pairs",
            times,
            day,
            h,
            evaluate,
            baselines,
            units="dollars",
            meta={"symbol_a": self.symbol_a, "symbol_b": self.symbol_b},
            source_rows=np.arange(len(a), dtype=np.int64),
        )


# --- calibration --------------------------------------------------------------------------------------------


def periods(problem: FactorProblem, calib_days: int = 3, calib_fraction: float = 0.6) -> np.ndarray:
    """0 for calibration rows, 1 for the later untouched test rows, -1 for calibration rows whose response
    reaches into the test period (excluded). Several days: the first ``calib_days`` (at most all but one)
    calibrate. One day: the first ``calib_fraction`` of its time span."""
    n_days = int(problem.day.max()) + 1 if len(problem.day) else 0
    out = np.zeros(len(problem.times), dtype=np.int8)
    if n_days >= 2:
        cut = min(calib_days, n_days - 1)
        out[problem.day >= cut] = 1
    else:
        t0, t1 = problem.times.min(), problem.times.max()
        split = t0 + calib_fraction * (t1 - t0)
        out[problem.times >= split] = 1
        out[(problem.times < split) & (problem.times + problem.horizon_ns >= split)] = -1
    return out


def _mse(f: np.ndarray, r: np.ndarray, mask: np.ndarray) -> float:
    ok = mask & np.isfinite(f) & np.isfinite(r)
    return float(np.mean((f[ok] - r[ok]) ** 2)) if ok.any() else float("nan")


def _corr(f: np.ndarray, r: np.ndarray, mask: np.ndarray) -> float:
    ok = mask & np.isfinite(f) & np.isfinite(r)
    if ok.sum() < 3 or np.std(f[ok]) == 0 or np.std(r[ok]) == 0:
        return float("nan")
    return float(np.corrcoef(f[ok], r[ok])[0, 1])


def search_alpha(err: Callable[[float], float], alpha_min: float, alpha_max: float, coarse: int, refine: int):
    """The alpha minimising ``err`` in [alpha_min, alpha_max]: a coarse grid log-spaced in 1 - alpha, then
    golden-section refinement around its best point. Returns (alpha_opt, every alpha tried (sorted), their
    errors)."""
    cache: dict[float, float] = {}

    def cached(alpha: float) -> float:
        if alpha not in cache:
            cache[alpha] = err(alpha)
        return cache[alpha]

    u = np.linspace(np.log(1 - alpha_min), np.log(1 - alpha_max), coarse)
    errs = [cached(1 - np.exp(v)) for v in u]
    i = int(np.nanargmin(errs))
    lo, hi = u[max(i - 1, 0)], u[min(i + 1, coarse - 1)]
    g = (np.sqrt(5) - 1) / 2
    c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(max(refine // 2, 1)):
        if cached(1 - np.exp(c)) < cached(1 - np.exp(d)):
            hi = d
        else:
            lo = c
        c, d = hi - g * (hi - lo), lo + g * (hi - lo)
    alphas = np.array(sorted(cache))
    mse = np.array([cache[a] for a in alphas])
    return float(alphas[int(np.nanargmin(mse))]), alphas, mse


def calibrate(
    problem: FactorProblem,
    period: np.ndarray,
    alpha_min: float = 0.5,
    alpha_max: float = 0.9999,
    coarse: int = 30,
    refine: int = 20,
    reps: int = 999,
) -> dict:
    """Choose alpha minimising the squared error between factor and response on the calibration rows (a coarse
    grid, log-spaced in 1 - alpha, then golden-section refinement around the best point), then report the error
    at that alpha on the untouched test rows, beside naive predictors with the same memory: ``test_comparison``
    scores each on the same test samples (MSE, MAE, out-of-sample R² against the calibration mean, correlation)
    and gives each naive predictor's MSE difference from the factor with a block-bootstrap interval (``reps``
    draws; :func:`lobnet.evaluation.regression.compare`)."""
    calib, test = period == 0, period == 1

    def err(alpha: float) -> float:
        f, r = problem.evaluate(alpha)
        return _mse(f, r, calib)

    alpha_opt, alphas, mse = search_alpha(err, alpha_min, alpha_max, coarse, refine)
    best = int(np.nanargmin(mse))
    f, r = problem.evaluate(alpha_opt)
    result = {
        "factor": problem.name,
        "units": problem.units,
        "alpha_opt": alpha_opt,
        "effective_window": effective_window(alpha_opt),
        # the optimum sits on the edge of the searched range: the true optimum may lie beyond it
        "at_search_boundary": bool(np.isclose(alpha_opt, alpha_min) or np.isclose(alpha_opt, alpha_max)),
        "mse_opt": float(mse[best]),
        "oos_mse": _mse(f, r, test),
        "corr_calibration": _corr(f, r, calib),
        "corr_test": _corr(f, r, test),
        "alphas": alphas.tolist(),
        "mse": mse.tolist(),
        "n_calibration": int((calib & np.isfinite(r)).sum()),
        "n_test": int((test & np.isfinite(r)).sum()),
        "response_variance_test": float(np.nanvar(r[test])) if test.any() else float("nan"),
        "baselines": {},
        **problem.meta,
    }
    paired, own = {"EW factor": f[test]}, []
    for name, (bf, br) in problem.baselines(alpha_opt).items():
        result["baselines"][name] = {
            "mse": _mse(bf, br, calib),
            "oos_mse": _mse(bf, br, test),
            "corr_test": _corr(bf, br, test),
        }
        if np.array_equal(br, r, equal_nan=True):  # the factor's own target: compared on the same samples
            paired[name] = bf[test]
        else:
            own.append(name)  # a predictor of another target (the rolling-OLS hedge's own PnL)
    ref_mean = float(np.nanmean(r[calib])) if np.isfinite(r[calib]).any() else float("nan")
    block = horizon_in_samples(problem.times[test], problem.day[test], problem.horizon_ns)
    result["test_comparison"] = compare(r[test], paired, "EW factor", ref_mean, block, reps=reps)
    result["test_comparison"]["not_compared"] = own
    return result


# --- the factors as references for models trained on their targets ------------------------------------------


def factor_for(target) -> LiquidityFactor | VolatilityFactor | PairsFactor:
    """The factor of a regression target (:class:`lobnet.prep.targets.TargetConfig`): the one whose response the
    target is."""
    h = target.horizon_s if target.horizon_s is not None else 0.0
    if target.kind == "liquidity":
        return LiquidityFactor(horizon_s=h)
    if target.kind == "volatility":
        return VolatilityFactor(grid_s=target.grid_s, horizon_s=h)
    return PairsFactor(target.symbol_a, target.symbol_b, horizon_s=h, ridge=target.ridge)


def problem_on(frame: pl.DataFrame, target, tick: int = DEFAULT_TICK, price_scale: int = PRICE_SCALE) -> FactorProblem:
    """The factor's problem on a prepared regression table (:func:`lobnet.prep.prepared.prepare`), which carries
    the Level-I state its estimator reads."""
    return problem_for(targets.raw_state(frame), target, tick, price_scale)


def problem_for(state: pl.DataFrame, target, tick: int = DEFAULT_TICK, price_scale: int = PRICE_SCALE) -> FactorProblem:
    """The factor's problem on the rows a model of ``target`` samples (:func:`lobnet.prep.targets.target_rows`:
    a book's events, or a pair's merged table), their Level-I state under its own names."""
    factor = factor_for(target)
    if isinstance(factor, PairsFactor):
        factor.price_scale = price_scale
        return factor.problem_merged(state)
    if isinstance(factor, VolatilityFactor):
        factor.tick = tick
    return factor.problem(state)


def on_rows(problem: FactorProblem, values: np.ndarray, frame: pl.DataFrame) -> np.ndarray:
    """A factor's values (one per problem row) as known at each row of ``frame``, the table the problem was built
    on: the last problem row at or before it (problems on the table's own rows: quote updates, merged pair rows),
    or the last grid point strictly before its time (a time grid, whose value at a point may include events at
    that nanosecond after the row). NaN before the day's first."""
    out = np.full(frame.height, np.nan)
    slices = day_slices(frame)
    if problem.source_rows is not None:
        last = np.full(frame.height, -1, dtype=np.int64)
        last[problem.source_rows] = np.arange(len(problem.source_rows))
        for s in slices:
            seen = np.maximum.accumulate(last[s])  # problem rows increase with their source rows
            ok = seen >= 0
            out[s][ok] = values[seen[ok]]
        return out
    times = frame["time"].to_numpy()
    for d, s in enumerate(slices):
        idx = np.flatnonzero(problem.day == d)
        if idx.size == 0:
            continue
        j = np.searchsorted(problem.times[idx], times[s], side="left") - 1
        ok = j >= 0
        out[s][ok] = values[idx[j[ok]]]
    return out


def reference_predictions(
    frame: pl.DataFrame,
    target,
    y: np.ndarray,
    train_rows: np.ndarray,
    tick: int = DEFAULT_TICK,
    price_scale: int = PRICE_SCALE,
    alpha_min: float = 0.5,
    alpha_max: float = 0.9999,
    coarse: int = 30,
    refine: int = 20,
) -> tuple[dict[str, np.ndarray], dict]:
    """The calibrated factor and the naive predictors of a model's target ``y`` at every row of ``frame``, all
    causal: the factor's alpha minimises its squared error against ``y`` on the training samples
    (:func:`search_alpha`), the naive predictors take that alpha's memory (``FactorProblem.baselines``).
    Returns ({"EW factor": ..., naive name: ...}, {"alpha": ..., "effective_window": ...})."""
    problem = problem_on(frame, target, tick, price_scale)
    yt = y[train_rows]

    def err(alpha: float) -> float:
        f = on_rows(problem, problem.evaluate(alpha)[0], frame)[train_rows]
        ok = np.isfinite(f) & np.isfinite(yt)
        return float(np.mean((f[ok] - yt[ok]) ** 2)) if ok.any() else float("nan")

    alpha, _, _ = search_alpha(err, alpha_min, alpha_max, coarse, refine)
    f, response = problem.evaluate(alpha)
    preds = {"EW factor": on_rows(problem, f, frame)}
    for name, (pred, own) in problem.baselines(alpha).items():
        if np.array_equal(own, response, equal_nan=True):  # not one that predicts another target (its own hedge)
            preds[name] = on_rows(problem, pred, frame)
    return preds, {"alpha": alpha, "effective_window": effective_window(alpha), "factor": problem.name}
