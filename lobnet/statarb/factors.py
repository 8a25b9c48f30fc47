"""PCA residual mean reversion in the style of Avellaneda & Lee (2010), "Statistical arbitrage in the US equities
market".

Each day t, on the ``corr_window`` days before it: the correlation matrix of the universe's standardised
returns, its top ``k`` eigenvectors, and the eigenportfolios (weights v / sigma) whose returns are the factors.
Each stock's returns over the last ``reg_window`` days are regressed on the factors; the cumulated residual X is
fitted as an Ornstein–Uhlenbeck process through its AR(1) form X_(l+1) = a + b X_l + e, giving the speed
kappa = -ln(b) 252, the mean m = a / (1 - b) and the equilibrium deviation sigma_eq = sqrt(var(e) / (1 - b^2)).
The s-score (X - m) / sigma_eq, with m centred across stocks as in the paper, opens a long below -``open`` and a
short above +``open``, closes a long above -``close_long`` and a short below ``close_short``; a stock whose
residual does not revert fast enough (kappa below 252 / (``reg_window`` / 2)) gets no new position.

A position is one unit of the stock hedged by its factor exposures, so it earns the stock's residual return.
Everything on day t uses returns up to t only, and a position taken at t's close earns t + 1's returns. The
attribution splits the unhedged position's PnL (p R) into the factors' part (p beta F) and the residual's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from lobnet.data.bars import panel_returns


@dataclass
class PCASettings:
    k: int = 2  # factors (eigenportfolios); a universe of a dozen assets carries few
    corr_window: int = 252  # days for the correlation matrix
    reg_window: int = 60  # days for the residual regression and its OU fit
    open: float = 1.25  # |s| that opens
    close_long: float = 0.5  # a long closes when s rises above -close_long
    close_short: float = 0.75  # a short closes when s falls below close_short
    cost_bps: float = 5.0  # per unit traded, the stock and its hedge each


def s_scores(R: np.ndarray, t: int, cfg: PCASettings) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """(s-scores (N,), factor loadings (N, k), eigenportfolio weights (k, N), usable (N,) mask) from the returns
    R[:t + 1] (rows: days, columns: assets), using the last ``corr_window`` and ``reg_window`` days."""
    W = R[t + 1 - cfg.corr_window : t + 1]
    mu, sd = W.mean(0), W.std(0, ddof=1)
    Z = (W - mu) / sd
    vals, vecs = np.linalg.eigh(np.corrcoef(Z, rowvar=False))
    V = vecs[:, np.argsort(vals)[::-1][: cfg.k]]  # (N, k)
    V *= np.sign(V.sum(0, keepdims=True) + 1e-300)  # a factor long the market, not its mirror image
    Q = (V / sd[:, None]).T  # (k, N): eigenportfolio weights
    Rr = R[t + 1 - cfg.reg_window : t + 1]
    F = Rr @ Q.T  # (L, k) factor returns
    X = np.column_stack([np.ones(len(F)), F])
    coef, *_ = np.linalg.lstsq(X, Rr, rcond=None)  # (1 + k, N)
    eps = Rr - X @ coef
    cum = np.cumsum(eps, axis=0)  # (L, N)
    x0, x1 = cum[:-1], cum[1:]
    s = np.full(R.shape[1], np.nan)
    ok = np.zeros(R.shape[1], dtype=bool)
    ms, sig = np.full(R.shape[1], np.nan), np.full(R.shape[1], np.nan)
    for i in range(R.shape[1]):
        A = np.column_stack([np.ones(len(x0)), x0[:, i]])
        (a, b), *_ = np.linalg.lstsq(A, x1[:, i], rcond=None)
        if not 0 < b < 1:
            continue
        kappa = -np.log(b) * 252
        e = x1[:, i] - A @ np.array([a, b])
        ms[i], sig[i] = a / (1 - b), np.sqrt(e.var(ddof=1) / (1 - b * b))
        ok[i] = kappa > 252 / (cfg.reg_window / 2)
    m_c = ms - np.nanmean(ms)
    s = (cum[-1] - m_c) / sig
    return s, coef[1:].T, Q, ok


def _step(p: float, s: float, ok: bool, cfg: PCASettings) -> float:
    if not np.isfinite(s):
        return 0.0
    if p > 0:
        return 0.0 if s > -cfg.close_long else p
    if p < 0:
        return 0.0 if s < cfg.close_short else p
    if not ok:
        return 0.0
    return 1.0 if s < -cfg.open else (-1.0 if s > cfg.open else 0.0)


@dataclass
class PCAResult:
    returns: pl.DataFrame  # date, ret (net, hedged book), gross, factor_pnl, residual_pnl, n_long, n_short
    s_scores: pl.DataFrame  # date then one column per asset


def pca_strategy(prices: pl.DataFrame, cfg: PCASettings) -> PCAResult:
    """Trade the s-scores over a close-price panel (``date`` then one column per asset, no nulls). The book's
    daily return is the sum of its unit positions' returns over the number of assets (its gross capacity)."""
    names, P, R, dates = panel_returns(prices)
    T, N = R.shape
    start = max(cfg.corr_window, cfg.reg_window)
    if T <= start + 1:
        raise ValueError(f"{T} days of returns cannot fill the {start}-day windows of the PCA strategy")
    if cfg.k >= N:
        raise ValueError(f"{cfg.k} factors need more than {N} assets")
    pos = np.zeros(N)
    rows, scores = [], []
    for t in range(start - 1, T - 1):
        s, beta, Q, ok = s_scores(R, t, cfg)
        new = np.array([_step(pos[i], s[i], ok[i], cfg) for i in range(N)])
        r_next, F_next = R[t + 1], Q @ R[t + 1]
        factor = beta @ F_next  # (N,) the factors' part of each stock's return
        resid = r_next - factor
        hedge_turn = np.abs(new - pos) * (1 + np.abs(beta).sum(1))
        cost = hedge_turn.sum() * cfg.cost_bps * 1e-4
        rows.append(
            {
                "date": dates[t + 1],
                "gross": float(new @ resid) / N,
                "ret": float(new @ resid - cost) / N,
                "factor_pnl": float(new @ factor) / N,
                "residual_pnl": float(new @ resid) / N,
                "n_long": int((new > 0).sum()),
                "n_short": int((new < 0).sum()),
                "turnover": float(np.abs(new - pos).sum()),
            }
        )
        scores.append([dates[t], *s.tolist()])
        pos = new
    return PCAResult(pl.DataFrame(rows), pl.DataFrame(scores, schema=["date", *names], orient="row"))
