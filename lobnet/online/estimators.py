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


# --- mean ---------------------------------------------------------------------------------------------------


class EWMean:
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

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


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


class EWVar:
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

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


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


class EWRegression:
    """Recursive least squares with exponential forgetting, in the information form: keep
    M_t = alpha M_{t-1} + z_t z_tᵀ and V_t = alpha V_{t-1} + z_t y_t with z = (1, x) (intercept first), and solve
    (M + ridge·I') β = V when the coefficients are read (I' leaves the intercept unpenalised). The textbook
    covariance-form update P <- (P - k zᵀP) / alpha drifts away from the weighted least-squares solution on long
    real sequences with alpha near 1; this form equals it to rounding. Before the data determine β (fewer
    independent observations than coefficients) the minimum-norm solution is returned, so ``coef`` is always
    defined. The first ``burn_in`` observations are weighted equally (plain least squares), the forgetting starts
    after them."""

    __slots__ = ("alpha", "n_features", "ridge", "burn_in", "n", "M", "V")

    def __init__(self, alpha: float, n_features: int = 1, ridge: float = 0.0, burn_in: int = 1):
        self.alpha = _check_alpha(alpha)
        self.n_features = int(n_features)
        self.ridge = float(ridge)
        self.burn_in = max(1, int(burn_in))
        self.n = 0
        p = self.n_features + 1
        self.M = [[0.0] * p for _ in range(p)]
        self.V = [0.0] * p

    def update(self, x, y: float) -> None:
        z = (1.0, *(x if self.n_features > 1 else (x,)))
        self.n += 1
        a = 1.0 if self.n <= self.burn_in else self.alpha
        M, V = self.M, self.V
        for i, zi in enumerate(z):
            row = M[i]
            for j, zj in enumerate(z):
                row[j] = a * row[j] + zi * zj
            V[i] = a * V[i] + zi * y

    @property
    def coef(self) -> np.ndarray:
        return _solve(np.asarray(self.M), np.asarray(self.V), self.ridge)

    def predict(self, x) -> float:
        c = self.coef
        return float(c[0] + np.dot(c[1:], np.atleast_1d(np.asarray(x, dtype=float))))

    def update_many(self, X, y) -> np.ndarray:
        """Coefficients (n, 1 + n_features) after each observation; equals repeated :meth:`update`."""
        coefs, M, V = ew_regression(X, y, self.alpha, self.ridge, self.burn_in, state=(self.n, self.M, self.V))
        if len(coefs):
            self.n += len(coefs)
            self.M, self.V = M.tolist(), V.tolist()
        return coefs

    def __getstate__(self):
        return {s: getattr(self, s) for s in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


def _solve(M: np.ndarray, V: np.ndarray, ridge: float) -> np.ndarray:
    """β for (M + ridge I') β = V over a stack of systems (..., p, p); the minimum-norm solution when singular."""
    A = M.copy()
    if ridge:
        idx = np.arange(1, A.shape[-1])
        A[..., idx, idx] += ridge
    if A.shape[-1] == 2:  # one regressor: closed form, pinv only where the system is (nearly) singular
        det = A[..., 0, 0] * A[..., 1, 1] - A[..., 0, 1] * A[..., 1, 0]
        ok = np.abs(det) > 1e-12 * np.abs(A[..., 0, 0] * A[..., 1, 1])
        safe = np.where(ok, det, 1.0)
        out = np.stack(
            [
                (A[..., 1, 1] * V[..., 0] - A[..., 0, 1] * V[..., 1]) / safe,
                (A[..., 0, 0] * V[..., 1] - A[..., 1, 0] * V[..., 0]) / safe,
            ],
            axis=-1,
        )
        if not np.all(ok):
            # (nearly) rank one, A ~ tr(A) u uᵀ: the minimum-norm solution is u (uᵀV) / tr(A), u the unit vector
            # along A's dominant column (for prices: the ratio hedge when the regressor has not moved)
            B, W = A[~ok], V[~ok]
            col = np.where((B[:, 0, 0] >= B[:, 1, 1])[:, None], B[:, :, 0], B[:, :, 1])
            norm = np.linalg.norm(col, axis=1)
            u = col / np.where(norm > 0, norm, 1.0)[:, None]
            tr = B[:, 0, 0] + B[:, 1, 1]
            out[~ok] = u * (np.einsum("ij,ij->i", u, W) / np.where(tr > 0, tr, 1.0))[:, None]
        return out
    return np.einsum("...ij,...j->...i", np.linalg.pinv(A, rcond=1e-13, hermitian=True), V)


def ew_regression(X, y, alpha: float, ridge: float = 0.0, burn_in: int = 1, state=None):
    """Batch EWRegression: (coefficients after each observation (n, p), final M, final V). Every entry of M and V
    is an exponentially weighted sum, computed for all prefixes at once."""
    alpha = _check_alpha(alpha)
    y = np.asarray(y, dtype=float)
    X = np.asarray(X, dtype=float).reshape(len(y), -1)
    n = len(y)
    Z = np.column_stack([np.ones(n), X])
    p = Z.shape[1]
    n0, M0, V0 = state if state is not None else (0, np.zeros((p, p)), np.zeros(p))
    M0, V0 = np.asarray(M0, dtype=float), np.asarray(V0, dtype=float)
    k = min(max(max(1, int(burn_in)) - n0, 0), n)  # equally weighted observations still to come
    Ms = np.empty((n, p, p))
    Vs = np.empty((n, p))
    for i in range(p):
        for j in range(i, p):
            zz = Z[:, i] * Z[:, j]
            col = np.empty(n)
            col[:k] = M0[i, j] + np.cumsum(zz[:k])
            col[k:] = _recursion(zz[k:], alpha, col[k - 1] if k else M0[i, j])
            Ms[:, i, j] = Ms[:, j, i] = col
        zy = Z[:, i] * y
        col = np.empty(n)
        col[:k] = V0[i] + np.cumsum(zy[:k])
        col[k:] = _recursion(zy[k:], alpha, col[k - 1] if k else V0[i])
        Vs[:, i] = col
    coefs = _solve(Ms, Vs, ridge) if n else np.empty((0, p))
    return coefs, (Ms[-1] if n else M0), (Vs[-1] if n else V0)
