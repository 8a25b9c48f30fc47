"""The statistics of a comparison, on per-sample test predictions of models scored on the same samples.

* :func:`paired_delta_f1`: the difference in macro-F1 between a model and a benchmark with a confidence interval
  from a circular block bootstrap over test samples (``arch``): neighbouring samples share most of their input
  window and their label's future span, so blocks are at least as long as the horizon (:func:`block_length`).
* :func:`diebold_mariano`: a Diebold–Mariano test on the per-sample log-loss differences, with a HAC (Newey–West)
  variance (statsmodels), one-sided: is the model's expected log-loss lower than the benchmark's?
* :func:`adjust`: Holm (family-wise) and Benjamini–Hochberg (false discovery rate) adjusted p-values
  (statsmodels' ``multipletests``) over every comparison in the family.
* :func:`spa` and :func:`confidence_set`: Hansen's test of Superior Predictive Ability against the benchmark over
  every configuration tried, and the model confidence set of Hansen, Lunde and Nason (``arch``), on log-loss.
* :func:`deflated_sharpe`: Bailey and López de Prado's deflated Sharpe ratio: the probability that a strategy's
  true Sharpe ratio is above the best one expected from ``trials`` skill-less trials. No library carries it; it
  is their closed form, on ``scipy.stats``.
"""

from __future__ import annotations

import math

import numpy as np

EPS = 1e-7  # probabilities are clipped to [EPS, 1] in the log-loss


def block_length(n: int, horizon: int) -> int:
    """Bootstrap block (samples): the horizon in samples
    (:func:`lobnet.evaluation.significance.horizon_in_samples`), or n^(1/3) when that is longer (the usual rate
    for a block bootstrap of a mean), never more than n."""
    return int(max(1, min(n, max(int(horizon), math.ceil(n ** (1 / 3))))))


def macro_f1(y: np.ndarray, pred: np.ndarray, classes: tuple[int, ...] = (0, 1, 2)) -> float:
    """Macro-F1 over the label's ``classes`` (as scikit-learn's with ``zero_division=0`` and those labels, where a
    class absent from ``y`` and ``pred`` scores 0), from a confusion matrix: fast enough to bootstrap."""
    n = 3
    cm = np.bincount(y.astype(np.int64) * n + pred, minlength=n * n).reshape(n, -1)
    tp = np.diag(cm).astype(float)
    denom = cm.sum(0) + cm.sum(1)
    f1 = np.divide(2 * tp, denom, out=np.zeros(n), where=denom > 0)
    return float(f1[list(classes)].mean())


def log_loss(y: np.ndarray, prob: np.ndarray) -> np.ndarray:
    """Per-sample log-loss, (N,), of (N, 3) probabilities."""
    p = prob[np.arange(len(y)), y.astype(np.int64)]
    return -np.log(np.clip(p, EPS, 1.0))


def paired_delta_f1(
    y: np.ndarray,
    pred: np.ndarray,
    bench_pred: np.ndarray,
    block: int,
    reps: int = 999,
    level: float = 0.95,
    seed: int = 0,
    classes: tuple[int, ...] = (0, 1, 2),
) -> tuple[float, float, float]:
    """Macro-F1 of ``pred`` minus that of ``bench_pred`` on the same samples, and its percentile interval.
    ``pred`` and ``bench_pred``: (S, N) or (N,) predicted classes, S runs (seeds) each; a run's score is
    averaged over its S rows, and every bootstrap draw resamples the same sample blocks for all of them."""
    from arch.bootstrap import CircularBlockBootstrap

    pred, bench_pred = np.atleast_2d(pred), np.atleast_2d(bench_pred)

    def delta(idx: np.ndarray) -> float:
        yy = y[idx]
        a = np.mean([macro_f1(yy, p[idx], classes) for p in pred])
        b = np.mean([macro_f1(yy, p[idx], classes) for p in bench_pred])
        return a - b

    point = delta(np.arange(len(y)))
    bs = CircularBlockBootstrap(block, np.arange(len(y)), seed=seed)
    draws = np.array([delta(data[0]) for data, _ in bs.bootstrap(reps)])
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(point), float(lo), float(hi)


def diebold_mariano(loss: np.ndarray, bench_loss: np.ndarray, lags: int) -> tuple[float, float]:
    """(statistic, one-sided p-value) of H0: E[loss - bench_loss] >= 0 against the model being better, from the
    mean loss difference and its HAC standard error with ``lags`` Newey–West lags (statsmodels OLS on a constant).
    Identical losses give (0, 1)."""
    import statsmodels.api as sm
    from scipy.stats import norm

    d = np.asarray(loss, dtype=float) - np.asarray(bench_loss, dtype=float)
    if not np.any(d):
        return 0.0, 1.0
    fit = sm.OLS(d, np.ones_like(d)).fit(cov_type="HAC", cov_kwds={"maxlags": int(lags)})
    stat = float(fit.tvalues[0])
    return stat, float(norm.cdf(stat))


def adjust(p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(Holm, Benjamini–Hochberg) adjusted p-values of the family ``p`` (NaN entries left out, and kept NaN)."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(p, dtype=float)
    holm, bh = np.full_like(p, np.nan), np.full_like(p, np.nan)
    ok = np.isfinite(p)
    if ok.any():
        holm[ok] = multipletests(p[ok], method="holm")[1]
        bh[ok] = multipletests(p[ok], method="fdr_bh")[1]
    return holm, bh


def spa(bench_loss: np.ndarray, losses: np.ndarray, block: int, reps: int = 999, seed: int = 0) -> dict[str, float]:
    """Hansen's SPA test (``arch.bootstrap.SPA``, stationary bootstrap): H0, no model among the columns of
    ``losses`` (N, K) has a lower expected loss than the benchmark. p-values: lower, consistent, upper."""
    from arch.bootstrap import SPA

    test = SPA(bench_loss, losses, block_size=block, reps=reps, seed=seed)
    test.compute()
    return {k: float(v) for k, v in test.pvalues.items()}


def confidence_set(losses: np.ndarray, block: int, size: float = 0.1, reps: int = 999, seed: int = 0) -> np.ndarray:
    """Indices of the columns of ``losses`` (N, K) in the model confidence set at level 1 - ``size``
    (``arch.bootstrap.MCS``): the models not shown worse than the best, whatever their number."""
    from arch.bootstrap import MCS

    mcs = MCS(losses, size=size, block_size=block, reps=reps, seed=seed)
    mcs.compute()
    return np.array(sorted(int(i) for i in mcs.included))


def sharpe(returns: np.ndarray) -> float:
    s = np.std(returns, ddof=1) if len(returns) > 1 else 0.0
    return float(np.mean(returns) / s) if s > 0 else 0.0


def deflated_sharpe(returns: np.ndarray, trial_sharpes: np.ndarray) -> tuple[float, float]:
    """(deflated Sharpe ratio, the Sharpe ratio expected of the best of the trials under no skill), per period.

    ``returns``: the strategy's (non-overlapping) period returns; ``trial_sharpes``: the per-period Sharpe ratios
    of every configuration tried on the same data (the strategy's included). SR0 = sqrt(V[SR]) ((1 - g) z(1 - 1/N)
    + g z(1 - 1/(N e))), g Euler's constant; DSR = Phi((SR - SR0) sqrt(T - 1) / sqrt(1 - skew SR + (kurt - 1)
    SR^2 / 4)), kurtosis not in excess (Bailey & López de Prado, 2014). With one trial, SR0 = 0: the probabilistic
    Sharpe ratio."""
    from scipy.stats import kurtosis, norm, skew

    r = np.asarray(returns, dtype=float)
    T = len(r)
    sr = sharpe(r)
    trials = np.asarray(trial_sharpes, dtype=float)
    n = len(trials)
    if n > 1:
        g = 0.5772156649015329
        sr0 = float(np.std(trials, ddof=1) * ((1 - g) * norm.ppf(1 - 1 / n) + g * norm.ppf(1 - 1 / (n * math.e))))
    else:
        sr0 = 0.0
    if T < 3 or np.std(r) == 0:
        return float("nan"), sr0
    sk, ku = float(skew(r)), float(kurtosis(r, fisher=False))
    denom = 1 - sk * sr + (ku - 1) / 4 * sr**2
    if denom <= 0:
        return float("nan"), sr0
    return float(norm.cdf((sr - sr0) * math.sqrt(T - 1) / math.sqrt(denom))), sr0
