"""The benchmark (issue 22): baselines as models, the comparison's statistics on cases with known answers, the
walk-forward test units behind the decay, and the short version of the study on real data."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import f1_score
from statsmodels.stats.multitest import multipletests

from lobnet.evaluation import stats

from .conftest import AMZN5, DATA_DIR, need
from .test_train import _compose, _overrides

REPO = Path(__file__).resolve().parents[1]


# --- statistics with known answers ---------------------------------------------------------------------------


def _noisy(y: np.ndarray, correct: float, rng) -> np.ndarray:
    """Predictions equal to y with probability ``correct``, else a random class."""
    return np.where(rng.random(len(y)) < correct, y, rng.integers(0, 3, len(y)))


def _prob(pred: np.ndarray, sharp: float) -> np.ndarray:
    p = np.full((len(pred), 3), (1 - sharp) / 2)
    p[np.arange(len(pred)), pred] = sharp
    return p


def test_macro_f1_is_scikit_learns_including_absent_classes():
    rng = np.random.default_rng(0)
    for y, pred in [
        (rng.integers(0, 3, 500), rng.integers(0, 3, 500)),
        (rng.integers(0, 2, 300), rng.integers(1, 3, 300)),  # class 0 never forecast, class 2 never true
        (np.zeros(50, int), np.zeros(50, int)),
    ]:
        ref = f1_score(y, pred, average="macro", labels=[0, 1, 2], zero_division=0)
        assert stats.macro_f1(y, pred) == pytest.approx(ref, abs=1e-12)


def test_a_better_model_is_detected_and_identical_models_give_no_signal():
    rng = np.random.default_rng(1)
    y = np.repeat(rng.integers(0, 3, 4000), 5)  # labels in runs of 5, as overlapping horizons make them
    good, bench = _noisy(y, 0.6, rng), _noisy(y, 0.3, rng)
    block = stats.block_length(len(y), 50)
    assert block == 50
    d, lo, hi = stats.paired_delta_f1(y, good, bench, block, reps=199)
    assert d > 0.15 and 0 < lo < d < hi
    stat, p = stats.diebold_mariano(stats.log_loss(y, _prob(good, 0.6)), stats.log_loss(y, _prob(bench, 0.6)), block)
    assert stat < -5 and p < 1e-6
    # the worse model against the better benchmark: negative, not significant in the one-sided test
    d2, lo2, hi2 = stats.paired_delta_f1(y, bench, good, block, reps=199)
    assert hi2 < 0 and d2 == pytest.approx(-d)
    assert (
        stats.diebold_mariano(stats.log_loss(y, _prob(bench, 0.6)), stats.log_loss(y, _prob(good, 0.6)), block)[1]
        > 0.99
    )
    # identical: exactly nothing
    assert stats.paired_delta_f1(y, bench, bench.copy(), block, reps=99) == (0.0, 0.0, 0.0)
    loss = stats.log_loss(y, _prob(bench, 0.5))
    assert stats.diebold_mariano(loss, loss.copy(), block) == (0.0, 1.0)
    # several seeds: a run's score is the mean over its seeds
    two = np.stack([good, bench])
    d3, _, _ = stats.paired_delta_f1(y, two, bench, block, reps=19)
    assert d3 == pytest.approx((stats.macro_f1(y, good) + stats.macro_f1(y, bench)) / 2 - stats.macro_f1(y, bench))


def test_adjusted_p_values_are_statsmodels_and_nan_is_left_out():
    p = np.array([0.001, 0.04, np.nan, 0.03, 0.5, 0.011])
    holm, bh = stats.adjust(p)
    ok = np.isfinite(p)
    assert np.allclose(holm[ok], multipletests(p[ok], method="holm")[1])
    assert np.allclose(bh[ok], multipletests(p[ok], method="fdr_bh")[1])
    assert np.isnan(holm[2]) and np.isnan(bh[2])


def test_spa_and_the_model_confidence_set_on_known_losses():
    rng = np.random.default_rng(2)
    n = 3000
    bench = rng.normal(1.0, 0.3, n)
    useless = np.column_stack([bench + rng.normal(0.05, 0.3, n) for _ in range(5)])  # all worse than the benchmark
    assert stats.spa(bench, useless, 20, reps=199)["consistent"] > 0.2
    better = np.column_stack([useless, bench - 0.1 + rng.normal(0, 0.3, n)])  # one better by construction
    assert stats.spa(bench, better, 20, reps=199)["consistent"] < 0.01
    losses = np.column_stack([bench, bench + 0.5 + rng.normal(0, 0.3, n), bench - 0.1 + rng.normal(0, 0.3, n)])
    included = stats.confidence_set(losses, 20, size=0.1, reps=199)
    assert included.tolist() == [2]  # the clearly better one alone


def test_deflated_sharpe_is_the_probabilistic_sharpe_for_one_trial_and_falls_with_more_trials():
    from scipy.stats import norm

    rng = np.random.default_rng(3)
    r = rng.normal(0.05, 1.0, 2000)
    sr = stats.sharpe(r)
    psr, sr0 = stats.deflated_sharpe(r, np.array([sr]))
    assert sr0 == 0.0
    # Gaussian returns: skew ~ 0, kurtosis ~ 3, so PSR ~ Phi(SR sqrt(T - 1) / sqrt(1 + SR^2 / 2))
    assert psr == pytest.approx(norm.cdf(sr * np.sqrt(1999) / np.sqrt(1 + sr**2 / 2)), abs=0.02)
    trials = rng.normal(0, 0.05, 50)
    dsr, sr0_many = stats.deflated_sharpe(r, trials)
    assert sr0_many > 0 and dsr < psr
    # the expected maximum of N standard normal Sharpe ratios grows with N
    assert stats.deflated_sharpe(r, rng.normal(0, 0.05, 500))[1] > sr0_many


# --- walk-forward test units ---------------------------------------------------------------------------------


def test_test_units_span_several_blocks_or_days_and_round_trip(tmp_path):
    from lobnet.evaluation.predictions import test_units
    from lobnet.prep.prepared import load_folds, save_folds
    from lobnet.prep.splits import walk_forward

    folds = walk_forward([(0, 5000)], window=10, max_horizon=5, unit="blocks", blocks=5, test_units=2)
    assert len(folds) == 1
    f = folds[0]
    assert len(f.test_starts) == 2 and f.test_starts[0] == f.test[0] and f.test.size > 1500
    assert f.labels[2] == "block 3..block 4"
    units = test_units(f.test, f.test_starts)
    assert units[0] == 2 and units[-1] == 3 and set(np.unique(units)) == {2, 3}
    days = walk_forward([(i * 1000, (i + 1) * 1000) for i in range(5)], window=10, max_horizon=5, test_units=3)
    assert len(days) == 1 and len(days[0].test_starts) == 3
    assert set(np.unique(test_units(days[0].test, days[0].test_starts))) == {2, 3, 4}
    for name, fs in (("blocks", folds), ("days", days)):
        save_folds(tmp_path / f"{name}.npz", fs)
        assert [b.test_starts for b in load_folds(tmp_path / f"{name}.npz")] == [x.test_starts for x in fs]
    with pytest.raises(ValueError, match="1 val \\+ 3 test days"):
        walk_forward([(i * 1000, (i + 1) * 1000) for i in range(4)], window=10, max_horizon=5, test_units=3)
    with pytest.raises(ValueError, match="test_units must be at least 1"):
        walk_forward([(0, 5000)], window=10, max_horizon=5, unit="blocks", test_units=0)


def test_max_eval_samples_thins_validation_and_test_alike_and_leaves_training_whole(tmp_path):
    from lobnet.evaluation.predictions import test_units
    from lobnet.prep.prepared import load_folds, save_folds
    from lobnet.prep.splits import eval_stride, walk_forward

    days = [(i * 1000, (i + 1) * 1000) for i in range(5)]
    kw = dict(window=10, max_horizon=5, unit="days", train_days=2, test_units=2)
    (full,) = walk_forward(days, **kw)
    (thin,) = walk_forward(days, **kw, max_eval_samples=500)
    assert full.eval_stride == 1 and thin.eval_stride == eval_stride(full.test.size, 500) == 4
    assert np.array_equal(thin.train, full.train)  # training is not thinned, nor purged differently
    assert np.array_equal(thin.test, full.test[::4]) and np.array_equal(thin.val, full.val[::4])
    assert thin.test.size <= 500 and thin.val.size <= 500
    # both test days keep their samples, so the decay by day is still measured
    assert set(np.unique(test_units(thin.test, thin.test_starts))) == {2, 3}
    assert "one validation and test sample in 4 kept" in thin.describe()
    save_folds(tmp_path / "f.npz", [thin])
    assert load_folds(tmp_path / "f.npz")[0].eval_stride == 4
    assert eval_stride(100, None) == 1 and eval_stride(100, 100) == 1 and eval_stride(101, 100) == 2
    with pytest.raises(ValueError, match="max_eval_samples must be at least 1"):
        walk_forward(days, **kw, max_eval_samples=0)


# --- baselines as models --------------------------------------------------------------------------------------


def test_the_tabular_view_is_causal(synthetic_events):
    from lobnet.features import compute_features
    from lobnet.features.catalogue import FeatureParams
    from lobnet.models.baselines import TabularView, memory_alpha
    from lobnet.prep.labels import LabelConfig
    from lobnet.prep.splits import walk_forward
    from lobnet.prep.windows import FoldData

    assert (1 + memory_alpha(10)) / (1 - memory_alpha(10)) == pytest.approx(10)
    ev = synthetic_events.head(6000)
    frame = compute_features(ev, FeatureParams(levels=10))
    from lobnet.prep.labels import compute_targets

    frame = pl.concat(
        [frame, compute_targets(ev, LabelConfig(horizons=(10,)), FeatureParams(levels=10))], how="horizontal"
    )
    fold = walk_forward([(0, frame.height)], window=20, max_horizon=10, unit="blocks", blocks=5, warmup=30)[0]
    names = [c for c in ("ofi_1", "queue_imbalance", "spread") if c in frame.columns]
    data = FoldData.build(frame, names, fold, LabelConfig(horizons=(10,)), 20)
    view = TabularView(frame, data, (10, 100))
    X = view.design("test")
    assert X.shape == (len(data.test), 3 * len(names)) and view.names[len(names)] == f"{names[0]}@ew10"
    # the future changed: nothing at or before a sample's row moves
    t = int(data.test.samples[100])
    data.train.X[t + 1 :] = 99.0
    view2 = TabularView(frame, data, (10, 100))
    assert np.array_equal(view2.design("test")[:101], X[:101])
    assert not np.array_equal(view2.design("test")[101:], X[101:])


@pytest.mark.parametrize("name", ["majority", "ew_ofi", "logreg", "gbdt"])
def test_every_baseline_trains_logs_and_is_scored_like_a_model(tmp_path, name):
    import mlflow

    from lobnet.cli import train
    from lobnet.evaluation.predictions import PREDICTIONS, load
    from lobnet.tracking.runs import FOLD, Tag

    extra = ["+model.C=[0.01,0.1]"] if name == "logreg" else []
    r = train.run(_compose("train", _overrides(tmp_path, f"model={name}", "split.max_folds=1", *extra)))
    m = r["folds"][0]
    for key in ("macro_f1_h10", "mcc_h10", "pr_auc_up_h10", "bt_net_h10", "net_sharpe_h5", "majority_f1_h10"):
        assert np.isfinite(m[key]), key
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("t")
    (child,) = client.search_runs([exp.experiment_id], f"tags.`{Tag.KIND}` = '{FOLD}'")
    assert child.info.status == "FINISHED" and child.data.tags[Tag.MODEL] == name
    assert child.data.metrics["test/macro_f1_h10"] == pytest.approx(m["macro_f1_h10"])
    assert "val_best/macro_f1_h10" in child.data.metrics
    arts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {PREDICTIONS, "baseline.json", "confusion_matrices.png", "pr_curves.json"} <= arts
    pred = load(Path(client.download_artifacts(child.info.run_id, PREDICTIONS, str(tmp_path))))
    assert pred["prob"].shape == (len(pred["rows"]), 2, 3) and np.allclose(pred["prob"].sum(-1), 1, atol=1e-5)
    summary = json.loads(Path(client.download_artifacts(child.info.run_id, "baseline.json", str(tmp_path))).read_text())
    assert summary["model"] == name and len(summary["chosen"]) == 2
    if name == "majority":  # the training block's most frequent class, every sample
        shares = np.array(summary["learned"][1]["class_shares"])
        assert (pred["prob"][:, 1].argmax(-1) == shares.argmax()).all()
    if name == "logreg":
        assert summary["chosen"][1]["C"] in (0.01, 0.1) and "ofi_1@ew100" in summary["learned"][1]["coef"]
    if name == "gbdt":
        assert summary["chosen"][0]["n_trees"] >= 1


def test_a_baseline_refuses_a_trading_loss(tmp_path):
    from lobnet.cli import train

    with pytest.raises(ValueError, match="classifier baseline: it trains with loss=ce only"):
        train.run(_compose("train", _overrides(tmp_path, "model=majority", "loss=sharpe", "split.max_folds=1")))


def test_compare_marks_models_against_the_best_baseline_chosen_on_validation(tmp_path):
    """A sweep with baselines and a deep model over two configurations: the significance columns, one row per
    model and horizon, the chosen configuration, the snooping test over every configuration, and the decay."""
    from lobnet.cli import compare, train

    base = ["split.max_folds=1", "split.test_units=2", "split.blocks=5"]
    for extra in (["model=majority"], ["model=ew_ofi"], ["model=tcn"], ["model=tcn", "+model.dropout=0.3"]):
        train.run(_compose("train", _overrides(tmp_path, *base, *extra)))
    cfg = _compose(
        "compare",
        [
            f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
            "mlflow.experiment_name=t",
            f"output_dir={tmp_path / 'cmp'}",
            "horizon=all",
            "significance.reps=99",
        ],
    )
    table = compare.run(cfg)
    csv = pl.read_csv(tmp_path / "cmp" / "comparison.csv")
    for col in ("delta_macro_f1", "delta_ci_low", "delta_ci_high", "p_value", "p_holm", "p_bh", "beats_baseline"):
        assert col in csv.columns, col
    assert sorted(csv.filter(pl.col("horizon") == 10)["model"].to_list()) == ["ew_ofi", "majority", "tcn"]
    assert csv.height == 6  # three models x two horizons
    assert csv.filter(pl.col("model") == "tcn")["configs"].to_list() == [2, 2]
    for h in (5, 10):
        rows = table.filter(pl.col("horizon") == h)
        base_rows = rows.filter(pl.col("model").is_in(["majority", "ew_ofi"]))
        bench = base_rows.sort("val_macro_f1", descending=True).row(0, named=True)["model"]
        assert set(rows["benchmark"].to_list()) == {bench}  # the baseline best on validation
        b = rows.filter(pl.col("model") == bench).row(0, named=True)
        assert b["delta_macro_f1"] == 0 and b["p_value"] is None or np.isnan(b["p_value"])
        other = rows.filter(pl.col("model") != bench)
        for r in other.iter_rows(named=True):
            assert r["delta_ci_low"] <= r["delta_macro_f1"] <= r["delta_ci_high"]
            assert r["delta_macro_f1"] == pytest.approx(r["macro_f1"] - b["macro_f1"], abs=1e-6)
            assert r["beats_baseline"] == (r["p_holm"] < 0.05 and r["delta_ci_low"] > 0)
    # the family: every non-benchmark row of every horizon, adjusted together
    p = table["p_value"].to_numpy()
    ok = np.isfinite(p)
    assert ok.sum() == 4 and np.allclose(table["p_holm"].to_numpy()[ok], multipletests(p[ok], method="holm")[1])
    snoop = pl.read_csv(tmp_path / "cmp" / "snooping.csv")
    assert snoop.height == 2 and (snoop["configurations"] == 3).all()  # the other baseline and both tcn configs
    assert ((snoop["spa_p_consistent"] >= 0) & (snoop["spa_p_consistent"] <= 1)).all()
    decay = pl.read_csv(tmp_path / "cmp" / "decay.csv")
    assert set(decay["unit"].to_list()) == {2, 3}  # two test blocks after the validation block
    assert (tmp_path / "cmp" / "decay.png").exists() and (tmp_path / "cmp" / "stability.png").exists()
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "Δ macro-F1 vs benchmark" in md and "benchmark" in md and "SPA p" in md


@pytest.mark.realdata
def test_the_short_benchmark_runs_on_real_data(tmp_path):
    """experiments/benchmark/run.sh's short version (one seed, one horizon, a few batches) on the AMZN day, so
    that the study cannot rot."""

    need(AMZN5)
    env = {**os.environ, "QUICK": "1", "OUT": str(tmp_path / "bench"), "LOBNET_DATA_DIR": str(DATA_DIR)}
    r = subprocess.run(
        ["bash", "experiments/benchmark/run.sh", "amzn"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    csv = pl.read_csv(tmp_path / "bench" / "compare" / "comparison.csv")
    assert sorted(csv["model"].to_list()) == ["ew_ofi", "gbdt", "logreg", "majority", "tcn"]
    assert csv["beats_baseline"].dtype == pl.Boolean and csv["dataset"].unique().to_list() == ["AMZN lobster L5 1d"]
