"""One-pass estimators: exponentially weighted mean, variance and regression.

Convention: ``alpha`` in (0, 1] is the weight kept on the old estimate, so alpha near 1 means long memory
(effective window about (1 + alpha) / (1 - alpha) observations); alpha = 1 is the plain cumulative estimate.

Each estimator is a small object in the style of river: ``update(x)`` in O(1), properties to read, state that
pickles, and ``update_many(xs)`` which equals repeated ``update`` and returns the value after every step. The
module-level ``ew_*`` functions are the batch forms over whole columns (vectorised with ``scipy.signal.lfilter``),
equal to the one-pass values on every prefix.

Initialisation: by default the first ``burn_in`` observations (at least 1) are averaged with equal weights (plain
batch estimates of the prefix), and the exponential recursion continues from there; ``burn_in=1`` makes the first
observation the first estimate, as polars' ``ewm_*(adjust=False)`` does.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter


def _check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1] (weight on the old estimate), not {alpha}")
    return alpha


def _recursion(inputs: np.ndarray, alpha: float, start: float) -> np.ndarray:
    """y_t = alpha * y_{t-1} + inputs_t with y_{-1} = start, vectorised."""
    if inputs.size == 0:
        return inputs.astype(float)
    y, _ = lfilter([1.0], [1.0, -alpha], inputs, zi=[alpha * start])
    return y


class _Slotted:
    """Pickling and copying for estimators with ``__slots__``: the state is exactly the slots."""

    __slots__ = ()

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


# --- mean ---------------------------------------------------------------------------------------------------


class EWMean(_Slotted):
    """x̄_t = alpha x̄_{t-1} + (1 - alpha) x_t."""

    __slots__ = ("alpha", "burn_in", "n", "value")

    def __init__(self, alpha: float, burn_in: int = 1):
        self.alpha = _check_alpha(alpha)
        self.burn_in = max(1, int(burn_in))
        self.n = 0
        self.value = math.nan

    def update(self, x: float) -> float:
        self.n += 1
        if self.n <= self.burn_in:
            self.value = x if self.n == 1 else self.value + (x - self.value) / self.n
        else:
            self.value += (1.0 - self.alpha) * (x - self.value)
        return self.value

    def update_many(self, xs) -> np.ndarray:
        xs = np.asarray(xs, dtype=float)
        out = ew_mean(xs, self.alpha, self.burn_in, state=(self.n, self.value))
        if xs.size:
            self.n += xs.size
            self.value = float(out[-1])
        return out


def ew_mean(xs: np.ndarray, alpha: float, burn_in: int = 1, state: tuple[int, float] = (0, math.nan)) -> np.ndarray:
    """Batch EWMean over a column: the estimate after each observation. ``state`` = (observations already seen,
    current value) continues an estimator."""
    alpha = _check_alpha(alpha)
    xs = np.asarray(xs, dtype=float)
    n0, v0 = state
    burn_in = max(1, int(burn_in))
    k = min(max(burn_in - n0, 0), xs.size)  # observations still in the burn-in
    out = np.empty(xs.size)
    if k:
        counts = n0 + np.arange(1, k + 1)
        prior = 0.0 if n0 == 0 else v0 * n0
        out[:k] = (prior + np.cumsum(xs[:k])) / counts
    start = out[k - 1] if k else v0
    out[k:] = _recursion((1.0 - alpha) * xs[k:], alpha, start)
    return out


# --- variance -----------------------------------------------------------------------------------------------


class EWVar(_Slotted):
    """EW mean and variance in the stable incremental form (West 1979; Finch 2009):
    d = x - m;  m += (1 - alpha) d;  v = alpha (v + (1 - alpha) d²). Never E[x²] - E[x]², which loses every
    digit on price-level inputs with small variance. During the burn-in: Welford's plain (population) mean and
    variance of the prefix."""

    __slots__ = ("alpha", "burn_in", "n", "mean", "var", "_m2")

    def __init__(self, alpha: float, burn_in: int = 1):
        self.alpha = _check_alpha(alpha)
        self.burn_in = max(1, int(burn_in))
        self.n = 0
        self.mean = math.nan
        self.var = math.nan
        self._m2 = 0.0  # burn-in: sum of squared deviations

    def update(self, x: float) -> float:
        self.n += 1
        if self.n <= self.burn_in:
            if self.n == 1:
                self.mean, self._m2 = x, 0.0
            else:
                d = x - self.mean
                self.mean += d / self.n
                self._m2 += d * (x - self.mean)
            self.var = self._m2 / self.n
        else:
            a = self.alpha
            d = x - self.mean
            self.mean += (1.0 - a) * d
            self.var = a * (self.var + (1.0 - a) * d * d)
        return self.var

    @property
    def std(self) -> float:
        return math.sqrt(self.var) if self.var >= 0 else math.nan

    def update_many(self, xs) -> np.ndarray:
        """The variance after each observation; equals repeated :meth:`update`."""
        mean, var = ew_var(xs, self.alpha, self.burn_in, state=self)
        return var


def ew_var(xs, alpha: float, burn_in: int = 1, state: EWVar | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Batch EWVar: (means, variances) after each observation. With ``state``, continues that estimator and
    leaves it updated."""
    est = state if state is not None else EWVar(alpha, burn_in)
    xs = np.asarray(xs, dtype=float)
    mean, var = np.empty(xs.size), np.empty(xs.size)
    k = min(max(est.burn_in - est.n, 0), xs.size)
    for i in range(k):  # the burn-in is short: plain one-pass updates
        var[i] = est.update(float(xs[i]))
        mean[i] = est.mean
    rest = xs[k:]
    if rest.size:
        a = est.alpha
        mean[k:] = _recursion((1.0 - a) * rest, a, est.mean)
        prev_mean = np.concatenate(([est.mean], mean[k:-1]))
        d = rest - prev_mean
        var[k:] = _recursion(a * (1.0 - a) * d * d, a, est.var)
        est.n += rest.size
        est.mean, est.var = float(mean[-1]), float(var[-1])
    return mean, var


# --- regression ---------------------------------------------------------------------------------------------


class EWRegression(_Slotted):
    """Recursive least squares with exponential forgetting: the weighted least-squares fit of y on (1, x) with
    weight alpha^(t-i) on observation i, for every t.

    It keeps the information of M_t = Σ α^(t-i) z zᵀ and V_t = Σ α^(t-i) z y (z = (1, x)) in *centred* form: the
    sum of weights W, the weighted means of x and y, and the weighted scatter S_xx = Σ α^(t-i)(x - x̄)(x - x̄)ᵀ and
    S_xy, updated as in West's (1979) weighted Welford algorithm:

        W = α W + 1;  dx = x - x̄;  x̄ += dx / W;  dy = y - ȳ;  ȳ += dy / W;
        S_xx = α S_xx + dx (x - x̄)ᵀ;  S_xy = α S_xy + dx (y - ȳ)

    and solves (S_xx + ridge I) β = S_xy, intercept ȳ - β·x̄, when the coefficients are read. Raw M and V square
    the conditioning (prices near $15 that move by cents lose five digits); the covariance-form update
    P <- (P - k zᵀP) / α drifts on long sequences with α near 1. This form equals the weighted least-squares
    solution to rounding. ``coef`` is always defined: before x has varied, the slope is the minimum-norm solution
    (0) and the intercept the mean of y. The first ``burn_in`` observations are weighted equally."""

    __slots__ = ("alpha", "n_features", "ridge", "burn_in", "n", "W", "mx", "my", "Sxx", "Sxy")

    def __init__(self, alpha: float, n_features: int = 1, ridge: float = 0.0, burn_in: int = 1):
        self.alpha = _check_alpha(alpha)
        self.n_features = int(n_features)
        self.ridge = float(ridge)
        self.burn_in = max(1, int(burn_in))
        self.n = 0
        f = self.n_features
        self.W = 0.0
        self.mx = [0.0] * f
        self.my = 0.0
        self.Sxx = [[0.0] * f for _ in range(f)]
        self.Sxy = [0.0] * f

    def update(self, x, y: float) -> None:
        self.n += 1
        a = 1.0 if self.n <= self.burn_in else self.alpha
        self.W = a * self.W + 1.0
        inv = 1.0 / self.W
        if self.n_features == 1:  # the common case (the streamer's per-event path) in scalars: the same arithmetic
            m = self.mx[0]
            d = x - m
            m += d * inv
            self.mx[0] = m
            dy = y - self.my
            self.my += dy * inv
            row = self.Sxx[0]
            row[0] = a * row[0] + d * (x - m)
            self.Sxy[0] = a * self.Sxy[0] + d * (y - self.my)
            return
        xs = tuple(x)
        mx = self.mx
        dx = [xi - m for xi, m in zip(xs, mx, strict=True)]
        for i, d in enumerate(dx):
            mx[i] += d * inv
        dy = y - self.my
        self.my += dy * inv
        ey = y - self.my
        for i, di in enumerate(dx):
            row = self.Sxx[i]
            for j, xj in enumerate(xs):
                row[j] = a * row[j] + di * (xj - mx[j])
            self.Sxy[i] = a * self.Sxy[i] + di * ey

    def line(self) -> tuple[float, float]:
        """(intercept, slope) of a one-feature regression as two floats: :attr:`coef` without building an array,
        for the streamer's per-event read."""
        sxx, mx = self.Sxx[0][0], self.mx[0]
        flat = sxx <= 1e-12 * (self.W * mx * mx + sxx)
        den = (0.0 if flat else sxx) + self.ridge
        slope = 0.0 if flat or den <= 1e-300 else self.Sxy[0] / den
        return self.my - slope * mx, slope

    @property
    def coef(self) -> np.ndarray:
        """(intercept, slopes...)."""
        if self.n_features == 1:
            return np.array(self.line())
        slopes = _solve(np.asarray(self.Sxx), np.asarray(self.Sxy), self.ridge, self.W, np.asarray(self.mx))
        return np.concatenate(([self.my - float(np.dot(slopes, self.mx))], slopes))

    def predict(self, x) -> float:
        c = self.coef
        return float(c[0] + np.dot(c[1:], np.atleast_1d(np.asarray(x, dtype=float))))

    def update_many(self, X, y) -> np.ndarray:
        """Coefficients (n, 1 + n_features) after each observation; equals repeated :meth:`update`."""
        return ew_regression(X, y, self.alpha, self.ridge, self.burn_in, state=self)[0]


def _solve(S: np.ndarray, V: np.ndarray, ridge: float, W=None, mx=None) -> np.ndarray:
    """β for (S + ridge I) β = V over a stack of symmetric PSD systems (..., f, f); the minimum-norm solution
    where S is singular (a regressor that has not varied). With the weights W and means mx, a regressor whose
    centred scatter is at rounding level next to its raw second moment W x̄² counts as not having varied."""
    if W is not None:
        diag = np.diagonal(S, axis1=-2, axis2=-1)
        flat = diag <= 1e-12 * (np.asarray(W)[..., None] * np.asarray(mx) ** 2 + diag)
        if np.any(flat):
            keep = (~flat).astype(float)
            S = S * keep[..., :, None] * keep[..., None, :]
            V = V * keep
    A = S + ridge * np.eye(S.shape[-1]) if ridge else S
    if A.shape[-1] == 1:  # one regressor: a division, 0 where the regressor has not varied
        den = A[..., 0, 0]
        ok = den > 1e-300
        return (np.where(ok, V[..., 0], 0.0) / np.where(ok, den, 1.0))[..., None]
    return np.einsum("...ij,...j->...i", np.linalg.pinv(A, rcond=1e-12, hermitian=True), V)


def ew_regression(X, y, alpha: float, ridge: float = 0.0, burn_in: int = 1, state: EWRegression | None = None):
    """Batch EWRegression: (coefficients after each observation (n, 1 + f), the estimator's final state). Means
    come from exponentially weighted sums, the scatter from the same centred recursion as the one-pass form, all
    vectorised with lfilter. With ``state``, continues that estimator and leaves it updated."""
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float)
    f = state.n_features if state is not None else (X.reshape(len(y), -1).shape[1] if X.size else 1)
    X = X.reshape(len(y), f)
    est = state if state is not None else EWRegression(alpha, f, ridge, burn_in)
    n, f = X.shape
    if n == 0:
        return np.empty((0, f + 1)), est
    k = min(max(est.burn_in - est.n, 0), n)  # observations still weighted equally

    def recur(inputs: np.ndarray, start: float) -> np.ndarray:
        out = np.empty(n)
        if k:
            out[:k] = start + np.cumsum(inputs[:k])
        if k < n:
            out[k:] = _recursion(inputs[k:], est.alpha, out[k - 1] if k else start)
        return out

    W = recur(np.ones(n), est.W)
    mx = np.column_stack([recur(X[:, j], est.W * est.mx[j]) / W for j in range(f)])
    my = recur(y, est.W * est.my) / W
    prev_mx = np.vstack([np.asarray(est.mx)[None, :], mx[:-1]])
    dx = X - prev_mx
    Sxx = np.empty((n, f, f))
    Sxy = np.empty((n, f))
    for i in range(f):
        for j in range(i, f):
            Sxx[:, i, j] = Sxx[:, j, i] = recur(dx[:, i] * (X[:, j] - mx[:, j]), est.Sxx[i][j])
        Sxy[:, i] = recur(dx[:, i] * (y - my), est.Sxy[i])
    slopes = _solve(Sxx, Sxy, est.ridge, W, mx)
    coefs = np.column_stack([my - np.einsum("ij,ij->i", slopes, mx), slopes])
    est.n += n
    est.W, est.my = float(W[-1]), float(my[-1])
    est.mx = mx[-1].tolist()
    est.Sxx, est.Sxy = Sxx[-1].tolist(), Sxy[-1].tolist()
    return coefs, est
