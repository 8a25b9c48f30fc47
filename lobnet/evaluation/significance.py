"""Does a model beat the best baseline? The comparison's statistics, from every fold run's ``predictions.npz``
(:mod:`lobnet.evaluation.predictions`), per data set and horizon:

1. The **benchmark** is the baseline (:data:`lobnet.models.BASELINES`) with the best mean validation macro-F1:
   chosen on validation, never on test. Each model is represented by its configuration chosen on validation
   (:func:`lobnet.evaluation.compare.select`); its seeds are its runs, its folds' test blocks are concatenated.
2. For every model (baselines included) against the benchmark, on the test samples both were scored on: the
   difference in macro-F1 with a block-bootstrap interval, and a one-sided Diebold–Mariano test on per-sample
   log-loss (``p_value``). The p-values of every model x horizon x data set in the comparison form one family:
   Holm (``p_holm``) and Benjamini–Hochberg (``p_bh``). ``beats_baseline``: Holm-adjusted p below ``alpha``
   *and* a macro-F1 interval above zero, so a model marked better is better in both the proper score and the
   headline metric, after the number of comparisons.
3. Across the sweep, over **every configuration tried** (every hyperparameter setting of every model, not only
   the chosen ones): Hansen's SPA test of the benchmark against all of them, and the model confidence set, on
   log-loss averaged over consecutive blocks of samples (``snooping.csv``); and each row's deflated Sharpe ratio
   of the traded forecast given that number of trials.
4. **Decay**: macro-F1 by test unit (day or block) counted from the end of training (``decay.csv``).

Statistics in :mod:`lobnet.evaluation.stats`.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from lobnet.evaluation import predictions, stats


@dataclass(frozen=True)
class SignificanceSettings:
    reps: int = 999  # bootstrap draws (intervals, SPA, MCS)
    level: float = 0.95  # of the macro-F1 interval
    alpha: float = 0.05  # a row beats the benchmark when p_holm < alpha and the interval is above 0
    mcs_size: float = 0.1  # the model confidence set holds the best models with probability 1 - mcs_size
    block: int | None = None  # bootstrap block and HAC lags in samples; None: stats.block_length(n, horizon)
    seed: int = 0


def load_all(client, run_ids: list[str]) -> dict[str, dict]:
    """Each fold run's predictions, downloaded through MLflow's API; runs without the file (logged by an older
    lobnet) are left out."""
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rid in run_ids:
            try:
                path = client.download_artifacts(rid, predictions.PREDICTIONS, tmp)
            except Exception:  # noqa: BLE001 - MLflow raises several kinds for a missing artifact
                continue
            out[rid] = predictions.load(Path(path))
            Path(path).unlink()
    return out


@dataclass
class Runs:
    """One configuration's test predictions at one horizon over its seeds: per seed, the folds concatenated."""

    rows: np.ndarray  # (N,) the samples all its seeds were scored on
    y: np.ndarray  # (N,)
    prob: np.ndarray  # (S, N, 3)
    position: np.ndarray  # (S, N)
    returns: np.ndarray  # (N,)
    unit: np.ndarray  # (N,)
    cost: float
    classes: tuple[int, ...] = (0, 1, 2)  # the label's classes, which macro-F1 averages over

    @classmethod
    def build(cls, preds: list[list[dict]], horizon: int) -> Runs | None:
        """``preds``: per seed, its folds' predictions."""
        seeds = []
        for folds in preds:
            if not folds:
                continue
            h = int(np.flatnonzero(folds[0]["horizons"] == horizon)[0])
            cat = {k: np.concatenate([f[k] if k in ("rows", "unit") else f[k][:, h] for f in folds]) for k in KEYS}
            seeds.append((cat, float(folds[0]["cost"])))
        if not seeds:
            return None
        common = seeds[0][0]["rows"]
        for cat, _ in seeds[1:]:
            common = np.intersect1d(common, cat["rows"])
        picked = []
        for cat, _ in seeds:
            order = np.argsort(cat["rows"], kind="stable")
            idx = order[np.searchsorted(cat["rows"], common, sorter=order)]
            picked.append({k: v[idx] for k, v in cat.items()})
        first = picked[0]
        return cls(
            common,
            first["y"].astype(np.int64),
            np.stack([p["prob"] for p in picked]),
            np.stack([p["position"] for p in picked]),
            first["returns"].astype(float),
            first["unit"],
            seeds[0][1],
            tuple(int(c) for c in preds[0][0].get("classes", range(3))) if preds[0] else (0, 1, 2),
        )

    def restrict(self, rows: np.ndarray) -> Runs:
        idx = np.searchsorted(self.rows, rows)
        return Runs(
            rows,
            self.y[idx],
            self.prob[:, idx],
            self.position[:, idx],
            self.returns[idx],
            self.unit[idx],
            self.cost,
            self.classes,
        )

    def log_loss(self) -> np.ndarray:
        """(N,) the per-sample log-loss, averaged over seeds."""
        return np.mean([stats.log_loss(self.y, p) for p in self.prob], axis=0)

    def period_returns(self, horizon: int) -> np.ndarray:
        """Net returns of the traded forecast per non-overlapping holding period (every ``horizon``-th sample),
        p_t R_t - cost |p_t - p_(t-1)|, averaged over seeds."""
        pos = self.position[:, ::horizon]
        turnover = np.abs(np.diff(pos, axis=1, prepend=pos[:, :1]))
        return np.mean(pos * self.returns[::horizon] - self.cost * turnover, axis=0)


KEYS = ("rows", "y", "prob", "position", "returns", "unit")


def horizon_in_samples(rows: np.ndarray, horizon: int) -> int:
    """A horizon of ``horizon`` events in test samples: the samples are every event's, or every k-th's when the
    evaluation blocks were thinned (``split.max_eval_samples``), so neighbouring labels overlap for h / k samples.
    k is the typical spacing of the test rows (their median step)."""
    spacing = int(np.median(np.diff(rows))) if len(rows) > 1 else 1
    return max(1, -(-int(horizon) // max(spacing, 1)))


def _by_config(runs: pl.DataFrame, loaded: dict, horizon: int) -> dict[tuple, Runs]:
    out = {}
    for (model, loss, config), g in runs.group_by(["model", "loss", "config"], maintain_order=True):
        per_seed = []
        for _, gs in g.sort("fold").group_by("seed", maintain_order=True):
            per_seed.append([loaded[r] for r in gs["run"] if r in loaded])
        built = Runs.build(per_seed, horizon)
        if built is not None:
            out[(model, loss, config)] = built
    return out


def significance(
    summary: pl.DataFrame, runs: pl.DataFrame, loaded: dict, settings: SignificanceSettings, baselines
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """(the summary with the significance columns, the data-snooping table, the decay table).
    ``runs``: every fold run (every configuration), ``summary``: the chosen configurations' rows."""
    extra, snooping, decay = [], [], []
    for (events, horizon), srows in summary.group_by(["events", "horizon"], maintain_order=True):
        cfgs = _by_config(runs.filter((pl.col("events") == events) & (pl.col("horizon") == horizon)), loaded, horizon)
        base_rows = srows.filter(pl.col("model").is_in(list(baselines)))
        if base_rows.is_empty() or not cfgs:
            continue
        bench = base_rows.sort("val_macro_f1", descending=True, nulls_last=True).row(0, named=True)
        bkey = (bench["model"], bench["loss"], bench["config"])
        if bkey not in cfgs:
            continue
        common = cfgs[bkey].rows
        for c in cfgs.values():
            common = np.intersect1d(common, c.rows)
        cfgs = {k: c.restrict(common) for k, c in cfgs.items()}
        b = cfgs[bkey]
        n = len(common)
        step = horizon_in_samples(common, int(horizon))
        block = settings.block or stats.block_length(n, step)
        b_pred, b_loss = b.prob.argmax(-1), b.log_loss()
        trial_sharpes = [
            stats.sharpe(Runs.period_returns(_one_seed(c, s), step)) for c in cfgs.values() for s in range(len(c.prob))
        ]
        for r in srows.iter_rows(named=True):
            key = (r["model"], r["loss"], r["config"])
            out = {"events": events, "horizon": horizon, "model": r["model"], "loss": r["loss"], "config": r["config"]}
            out["benchmark"] = bench["model"]
            out["n_test"] = n
            if key not in cfgs:
                extra.append(out)
                continue
            c = cfgs[key]
            if key == bkey:
                out.update(delta_macro_f1=0.0, delta_ci_low=0.0, delta_ci_high=0.0, p_value=float("nan"), dm_stat=0.0)
            else:
                d, lo, hi = stats.paired_delta_f1(
                    b.y, c.prob.argmax(-1), b_pred, block, settings.reps, settings.level, settings.seed, c.classes
                )
                dm, p = stats.diebold_mariano(c.log_loss(), b_loss, block)
                out.update(delta_macro_f1=d, delta_ci_low=lo, delta_ci_high=hi, p_value=p, dm_stat=dm)
            dsr, sr0 = stats.deflated_sharpe(c.period_returns(step), np.array(trial_sharpes))
            out.update(deflated_sharpe=dsr, sharpe_period=stats.sharpe(c.period_returns(step)), sharpe0=sr0)
            extra.append(out)
            for u in np.unique(c.unit):
                m = c.unit == u
                f1 = np.mean([stats.macro_f1(c.y[m], p[m], c.classes) for p in c.prob.argmax(-1)])
                decay.append(
                    {
                        "dataset": r["dataset"],
                        "model": r["model"],
                        "loss": r["loss"],
                        "horizon": horizon,
                        "unit": int(u),
                        "n": int(m.sum()),
                        "macro_f1": f1,
                    }
                )
        others = [k for k in cfgs if k != bkey]
        if others:
            # on the means of consecutive blocks of samples: the same mean loss, without most of the overlap between
            # neighbours, and a series short enough for SPA's studentisation (quadratic in its length)
            bl = _block_means(np.column_stack([b_loss, *(cfgs[k].log_loss() for k in others)]), block)
            bb = stats.block_length(len(bl), 1)
            spa = stats.spa(bl[:, 0], bl[:, 1:], bb, settings.reps, settings.seed)
            keys = [bkey, *others]
            mcs = stats.confidence_set(bl, bb, settings.mcs_size, settings.reps, settings.seed)
            snooping.append(
                {
                    "dataset": srows["dataset"][0],
                    "horizon": horizon,
                    "benchmark": bench["model"],
                    "configurations": len(others),
                    "n_test": n,
                    "spa_p_consistent": spa["consistent"],
                    "spa_p_lower": spa["lower"],
                    "spa_p_upper": spa["upper"],
                    "mcs": ", ".join(sorted({keys[i][0] for i in mcs})),
                    "mcs_configurations": len(mcs),
                }
            )
    cols = ["events", "horizon", "model", "loss", "config"]
    sig = pl.DataFrame(extra, infer_schema_length=None) if extra else None
    out = summary if sig is None else summary.join(sig, on=cols, how="left")
    if "p_value" in out.columns:
        holm, bh = stats.adjust(out["p_value"].to_numpy())
        out = out.with_columns(pl.Series("p_holm", holm), pl.Series("p_bh", bh))
        beats = pl.col("p_holm").fill_nan(1.0).fill_null(1.0).lt(settings.alpha) & pl.col("delta_ci_low").fill_null(
            0.0
        ).gt(0.0)
        out = out.with_columns(beats.alias("beats_baseline"))
    return out, pl.DataFrame(snooping), pl.DataFrame(decay)


def _block_means(x: np.ndarray, block: int) -> np.ndarray:
    """(N // block, K): the means of consecutive, non-overlapping blocks of ``block`` rows (a last partial block
    dropped)."""
    n = (len(x) // block) * block
    return x[:n].reshape(-1, block, x.shape[1]).mean(axis=1)


def _one_seed(c: Runs, s: int) -> Runs:
    return Runs(c.rows, c.y, c.prob[s : s + 1], c.position[s : s + 1], c.returns, c.unit, c.cost)
