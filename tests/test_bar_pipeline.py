"""Bars through the research pipeline: the bar features of the catalogue (causal, warmed up per session), the
next-bar binary labels, lobnet-prepare / lobnet-train / lobnet-compare on the real LEAN minute bars, and the
minute-bar direction experiment's script."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from tests.conftest import DATA_DIR, REPO, need
from tests.test_train import _compose

MINUTE = DATA_DIR / "bars" / "minute"


@pytest.fixture(scope="module")
def spy():
    from lobnet.data.bars import read_bars

    return read_bars(need(MINUTE / "spy"), session=("09:30", "16:00"))


def _bar_features(bars: pl.DataFrame) -> pl.DataFrame:
    from lobnet.features import BAR_GROUPS, FeatureSpec, compute_features

    spec = FeatureSpec(groups=tuple(BAR_GROUPS))
    return compute_features(bars, spec.params(0), BAR_GROUPS)


def test_bar_features_match_their_definitions_and_warm_up_in_every_session(spy):
    from lobnet.features.catalogue import BAR_VOL_WINDOW

    f = _bar_features(spy)
    assert f.height == spy.height
    close = spy["close"].to_numpy()
    for s in (0, *np.flatnonzero(np.diff(spy["date"].to_physical().to_numpy())) + 1):
        day = slice(s, s + 200)
        ret = np.log(close[day][1:] / close[day][:-1])
        got = f["ret"].to_numpy()[day]
        assert np.isnan(got[0])  # the first bar of a session has no previous close of its own day
        np.testing.assert_allclose(got[1:], ret, rtol=2e-6, atol=1e-9)
        vol = f[f"volatility_{BAR_VOL_WINDOW}"].to_numpy()[day]
        assert np.isnan(vol[:BAR_VOL_WINDOW]).all() and np.isfinite(vol[BAR_VOL_WINDOW:]).all()
        t = BAR_VOL_WINDOW + 17
        np.testing.assert_allclose(vol[t], np.std(ret[t - BAR_VOL_WINDOW : t], ddof=1), rtol=1e-5)
    hl = np.log(spy["high"].to_numpy() / spy["low"].to_numpy())
    np.testing.assert_allclose(f["range"].to_numpy(), hl, rtol=2e-6, atol=1e-9)
    loc = f["close_location"].to_numpy()
    assert np.nanmin(loc) >= 0 and np.nanmax(loc) <= 1


def test_bar_features_are_causal(spy):
    """Changing every bar after row t (prices and volume) leaves every feature at rows <= t unchanged."""
    t = 1000
    rng = np.random.default_rng(0)
    scale = np.ones(spy.height)
    scale[t + 1 :] = rng.uniform(0.9, 1.1, spy.height - t - 1)
    changed = spy.with_columns(
        *(pl.col(c) * scale for c in ("open", "high", "low", "close")),
        pl.col("volume") * (scale**2),
    )
    a, b = _bar_features(spy), _bar_features(changed)
    names = [c for c in a.columns if c not in ("symbol", "date", "time")]
    for c in names:
        np.testing.assert_array_equal(a[c].to_numpy()[: t + 1], b[c].to_numpy()[: t + 1], err_msg=c)
    assert any(not np.allclose(a[c].to_numpy()[t + 1 :], b[c].to_numpy()[t + 1 :], equal_nan=True) for c in names)


def test_next_bar_labels_are_up_or_not_and_never_cross_a_session(spy):
    from hydra.utils import instantiate

    from lobnet.features import FeatureSpec
    from lobnet.prep.labels import DOWN, UP, classify, compute_targets

    cfg = instantiate(_compose("train", ["labels=next_bar"]).labels, _convert_="all")
    assert cfg.binary and cfg.classes == (DOWN, UP) and cfg.target(1) == "logret_1"
    targets = compute_targets(spy, cfg, FeatureSpec(groups=("bar_return",)).params(0))
    y = classify(targets[cfg.target(1)].to_numpy(), 0.0, binary=True)
    close, date = spy["close"].to_numpy(), spy["date"].to_numpy()
    last = np.append(date[1:] != date[:-1], True)  # the last bar of each session: its next bar is another day's
    assert (y[last] == -1).all() and set(np.unique(y[~last])) == {DOWN, UP}
    up = np.append(close[1:] > close[:-1], False)
    np.testing.assert_array_equal(y[~last] == UP, up[~last])  # an unchanged close is "not up"
    assert cfg.logit_mask().tolist() == [0.0, -np.inf, 0.0]


def test_bars_and_book_features_do_not_mix(tmp_path):
    from lobnet.cli import prepare as prepare_cli
    from lobnet.features import FeatureSpec
    from lobnet.features.incremental import IncrementalFeatures

    base = [f"data.path={need(MINUTE / 'aapl')}", f"output_dir={tmp_path / 'p'}", f"cache_dir={tmp_path / 'c'}"]
    with pytest.raises(ValueError, match="the data are bars.*use features=bars"):
        prepare_cli.run(_compose("prepare", ["data=bars", "labels=next_bar", *base]))
    assert not (tmp_path / "p").exists()
    daily = [f"data.path={need(DATA_DIR / 'bars' / 'daily' / 'spy.zip')}", *base[1:]]
    with pytest.raises(ValueError, match="at most 1 bars per session.*intraday bars"):
        prepare_cli.run(_compose("prepare", ["data=bars", "features=bars", "labels=next_bar", *daily]))
    with pytest.raises(ValueError, match="mix book events and bars"):
        FeatureSpec(groups=("ofi", "bar_return"))
    with pytest.raises(ValueError, match="batch only"):
        IncrementalFeatures(FeatureSpec(groups=("bar_range",)).params(1), ["bar_range"])


def test_stats_macro_f1_averages_over_the_label_classes():
    from sklearn.metrics import f1_score

    from lobnet.evaluation import stats

    rng = np.random.default_rng(1)
    y, pred = rng.choice([0, 2], 500), rng.choice([0, 2], 500)
    ref = f1_score(y, pred, average="macro", labels=[0, 2])
    assert stats.macro_f1(y, pred, (0, 2)) == pytest.approx(ref, abs=1e-12)
    assert stats.macro_f1(y, pred) == pytest.approx(ref * 2 / 3, abs=1e-12)  # three classes: flat scores 0


def test_lstm_and_baselines_train_and_compare_on_minute_bars(tmp_path):
    """lobnet-train on the real AAPL minute bars (three sessions: one chronological fold) with the minute-bar
    experiment's settings: binary cross-entropy, two-class metrics, no flat probability, then lobnet-compare."""
    import mlflow
    from sklearn.metrics import f1_score

    from lobnet.cli import compare, train
    from lobnet.evaluation import predictions

    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    common = [
        "experiment=minute_direction",
        f"data.path={need(MINUTE / 'aapl')}",
        "split.train_days=1",
        "trainer.max_epochs=2",
        f"cache_dir={tmp_path / 'cache'}",
        f"mlflow.tracking_uri={db}",
        f"mlflow.artifact_location={tmp_path / 'art'}",
        "progress=false",
    ]
    results = {}
    for model in ("lstm", "majority", "logreg"):
        results[model] = train.run(_compose("train", [*common, f"model={model}", f"output_dir={tmp_path / model}"]))
    r = results["lstm"]
    assert len(r["folds"]) == 1 and r["primary_horizon"] == 1
    m = r["folds"][0]
    assert "precision_flat" not in m and "bt_net_h1" not in m  # two classes; trade bars have no spread to trade
    client = mlflow.tracking.MlflowClient(db)
    fold = client.get_run(r["parent_run_id"])
    (child,) = client.search_runs([fold.info.experiment_id], f"tags.`mlflow.parentRunId` = '{r['parent_run_id']}'")
    p = predictions.load(Path(client.download_artifacts(child.info.run_id, predictions.PREDICTIONS, str(tmp_path))))
    assert p["classes"].tolist() == [0, 2] and (p["prob"][..., 1] == 0).all()
    y, pred = p["y"][:, 0], p["prob"][:, 0].argmax(-1)
    assert m["macro_f1_h1"] == pytest.approx(f1_score(y, pred, average="macro", labels=[0, 2]), abs=1e-6)
    arts = {a.path for a in client.list_artifacts(child.info.run_id)}
    assert {"loss_curves.png", "confusion_matrices.png"} <= arts
    assert fold.data.tags["lobnet.dataset"] == "AAPL bars 3d"
    out = compare.run(
        _compose(
            "compare",
            [
                f"mlflow.tracking_uri={db}",
                "mlflow.experiment_name=minute_direction",
                f"output_dir={tmp_path / 'compare'}",
                "significance.reps=49",
            ],
        )
    )
    table = pl.read_csv(tmp_path / "compare" / "comparison.csv")
    assert set(table["model"]) == {"lstm", "majority", "logreg"} and not out.is_empty()


@pytest.mark.realdata
def test_minute_direction_script_runs_end_to_end(tmp_path):
    """experiments/minute_direction/run.sh's short version on AAPL: trains, compares and writes its tables."""
    need(MINUTE / "aapl")
    env = {**os.environ, "QUICK": "1", "OUT": str(tmp_path / "m"), "LOBNET_DATA_DIR": str(DATA_DIR)}
    r = subprocess.run(
        ["bash", "experiments/minute_direction/run.sh", "aapl"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    res = tmp_path / "m" / "results"
    metrics = pl.read_csv(res / "metrics.csv")
    assert set(metrics["model"]) == {"lstm", "majority", "logreg"}
    conf = pl.read_csv(res / "confusion.csv")
    total = conf.select(pl.sum_horizontal(pl.col("^true_.*$"))).to_series()
    assert (total == total[0]).all()  # every model scored on the same test minutes
    assert (res / "loss_curves.png").stat().st_size > 0 and "| AAPL | lstm |" in (res / "tables.md").read_text()
