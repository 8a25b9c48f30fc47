"""Models on the one-pass factors' own targets (labels=liquidity | volatility | pairs): the time-horizon targets and
their purging, the merged pair table's features, the factor as known at each row, the target scale and QLIKE, and
one model end to end on the real AMZN day: trained, scored against the calibrated factor, exported with parity,
streamed beside the factor, and compared in lobnet-compare."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest
import torch

from lobnet.prep import targets
from lobnet.prep.splits import walk_forward
from lobnet.prep.targets import TargetConfig, TargetScale

from .conftest import AMZN5, QUOTES, need
from .test_train import _compose, _overrides


def test_target_configs_refuse_what_they_cannot_define():
    with pytest.raises(ValueError, match="either in seconds"):
        TargetConfig(kind="liquidity", horizon_s=10, horizon_events=5)
    with pytest.raises(ValueError, match="time grid"):
        TargetConfig(kind="volatility", horizon_s=None, horizon_events=50)
    with pytest.raises(ValueError, match="qlike"):
        TargetConfig(kind="liquidity", loss="qlike")
    with pytest.raises(ValueError, match="symbol_a"):
        TargetConfig(kind="pairs", horizon_s=60)
    assert TargetConfig(kind="pairs", symbol_a="AIG", symbol_b="BAC", horizon_s=60).name == "pairs_AIG_BAC_60s"
    assert TargetConfig(kind="liquidity", horizon_s=None, horizon_events=100).name == "liquidity_100ev"


def test_purging_by_each_samples_own_label_span():
    """With a time horizon, every sample's label span ends at its own row: no training or validation sample may
    read (input window or label span) a row that a later block's samples read, and rows whose target is unknown
    are no samples."""
    rng = np.random.default_rng(0)
    n, W = 3000, 20
    reach = rng.integers(1, 80, n)  # a time horizon: a varying number of rows ahead
    end = np.minimum(np.arange(n) + reach, n - 1)
    end[rng.random(n) < 0.05] = -1  # unknown targets
    end[-100:] = -1
    folds = walk_forward([(0, n)], window=W, max_horizon=0, unit="blocks", blocks=5, train_blocks=2, label_end=end)
    assert folds
    for f in folds:
        for s in (f.train, f.val, f.test):
            assert (end[s] >= 0).all()

        def read(rows):
            return set(np.concatenate([np.arange(t - W + 1, end[t] + 1) for t in rows]).tolist())

        later_t, later_v = read(f.val) | read(f.test), read(f.test)
        assert not read(f.train) & later_t
        assert not read(f.val) & later_v
        assert f.purged_train > 0  # the spans reach across block edges, so something was purged


def test_target_scale_and_qlike():
    y = np.array([1.0, 2.0, 4.0, np.nan])
    z = TargetScale.fit(y, "mse")
    assert np.allclose(z.invert(z.apply(y[:3])), y[:3])
    q = TargetScale.fit(y, "qlike")
    # qlike: the loss reads y² / v and the model predicts a log variance s; exp(s) = y² / v gives back y
    s = np.log(q.apply(y[:3]))
    assert np.allclose(q.invert(s), y[:3])
    from lobnet.train.losses import regression_loss

    # QLIKE's minimum over a constant forecast is at exp(s) = E[y]
    yy = torch.tensor([0.5, 1.0, 2.5])
    grid = torch.linspace(-2, 2, 4001)
    losses = torch.stack([regression_loss("qlike", torch.full_like(yy, g), yy) for g in grid])
    assert abs(float(torch.exp(grid[losses.argmin()])) - float(yy.mean())) < 5e-3


@pytest.mark.realdata
def test_time_horizon_targets_are_causal_and_stay_in_their_day(amzn5):
    """On the real AMZN day: a target H seconds ahead reads no row past its day's end or before its own row, and
    perturbing the future (every event after a cut) leaves the features and the factor as known at each earlier
    row unchanged."""
    from lobnet.features import FeatureSpec, compute_features
    from lobnet.online.factors import factor_for, on_rows

    ev = amzn5.head(30_000)
    cut = 20_000
    future = ev.with_columns(
        pl.when(pl.int_range(pl.len()) >= cut).then(pl.col(c) + 7).otherwise(pl.col(c)).alias(c)
        for c in ("bid_sz_1", "ask_sz_1", "bid_px_1", "ask_px_1")
    )
    for kind, h in (("liquidity", 10.0), ("volatility", 60.0)):
        cfg = TargetConfig(kind=kind, horizon_s=h)
        tt = targets.target_table(ev, cfg, 100, 10_000)
        end, t = tt["target_end"].to_numpy(), ev["time"].to_numpy()
        known = end >= 0
        assert known.mean() > 0.5 and (end[known] >= np.flatnonzero(known)).all()
        assert (t[end[known]] >= t[known] + int(h * 1e9)).all()  # the first event at or after t + H ...
        prev = end[known] - 1  # ... the event before it is earlier than t + H (or is the sample itself)
        assert ((t[prev] < t[known] + int(h * 1e9)) | (prev < np.flatnonzero(known))).all()
        assert not known[-50:].any()  # the last events' horizons reach past the end of the day
        factor = factor_for(cfg)
        for frame in (ev, future):
            p = factor.problem(frame)
            f = on_rows(p, p.evaluate(0.99)[0], frame)
            if frame is ev:
                base = f
        assert np.array_equal(base[:cut], f[:cut], equal_nan=True)
        assert not np.array_equal(base[cut + 100 :], f[cut + 100 :], equal_nan=True)
    spec = FeatureSpec(groups=())
    a, b = (compute_features(x, spec.params(5)) for x in (ev, future))
    assert a.head(cut).equals(b.head(cut))


def _pair_days(tmp_path):
    """A folder of AIG's and BAC's first two AlgoSeek days (links to the shared files)."""
    two_days = tmp_path / "quotes"
    for sym in ("aig", "bac"):
        (two_days / sym).mkdir(parents=True)
        for day in ("20131007", "20131008"):
            for kind in ("quote", "trade"):
                (two_days / sym / f"{day}_{kind}.zip").symlink_to(need(QUOTES) / sym / f"{day}_{kind}.zip")
    return two_days


@pytest.mark.realdata
def test_the_merged_pair_table_is_prepared_with_both_symbols_features(tmp_path):
    """labels=pairs: the prepared table is the merged AIG/BAC quote table (one stream per day), with each symbol's
    Level-I features under a_ and b_ (as the card's spec names them), the target known only within its day."""
    from lobnet.card import spec_feature_names
    from lobnet.features import FeatureSpec
    from lobnet.prep.prepared import prepare

    two_days = _pair_days(tmp_path)
    cfg = TargetConfig(kind="pairs", symbol_a="AIG", symbol_b="BAC", horizon_s=60)
    spec = FeatureSpec(groups=("mid", "spread", "ofi", "queue_imbalance", "log_dt"))
    data = {"_target_": "lobnet.data.read_quotes", "path": str(two_days), "trades": False}
    split = {"unit": "blocks", "blocks": 5, "train_blocks": 2, "max_folds": 1, "max_eval_samples": 2000}
    p = prepare(data, spec, cfg, split, 50, tmp_path / "prep", tmp_path / "cache")
    frame, names = p.frame, p.summary["feature_names"]
    assert set(frame["symbol"].unique()) == {"AIG-BAC"} and p.summary["task"] == "regression"
    assert names == spec_feature_names({**spec.__dict__, "groups": list(spec.groups), "levels": 1, "pair": True}, "x")
    assert "log_dt" in names and "a_mid" in names and "b_queue_imbalance" in names
    assert np.allclose(frame["a_mid"].to_numpy(), (frame["raw.a_bid_px_1"] + frame["raw.a_ask_px_1"]) / 20_000)
    end = frame["target_end"].to_numpy()
    day = frame["date"].rle_id().to_numpy()
    known = end >= 0
    assert known.mean() > 0.9 and (day[end[known]] == day[known]).all()
    for s in (p.folds[0].train, p.folds[0].val, p.folds[0].test):
        assert (end[s] >= 0).all()
    with pytest.raises(ValueError, match="features=level1"):
        prepare(data, FeatureSpec(groups=("mid", "signed_volume")), cfg, split, 50, tmp_path / "p2", tmp_path / "cache")


def _check_regression_fold_model(uri: str, ckpt, card: dict) -> str:
    """The fold of a regression model is a logged MLflow model of its run, as a classifier's is: as a pyfunc it
    forecasts the target in its own units from raw feature windows. Returns its runs:/ URI."""
    import mlflow

    from lobnet.card import load_model
    from lobnet.prep.normalization import ZScore
    from lobnet.tracking.runs import tracking_uri

    with tracking_uri(uri):
        runs = mlflow.search_runs(experiment_names=["t"])
        (fold_id,) = runs[runs["tags.lobnet.kind"] == "fold"]["run_id"]
        pyfunc = mlflow.pyfunc.load_model(f"runs:/{fold_id}/model")
    z = np.load(ckpt.parent / "parity_windows.npy")
    zscore = ZScore.from_card(card)
    out = pyfunc.predict(z * zscore.std + zscore.mean)
    model, _ = load_model(ckpt)
    with torch.inference_mode():
        (pred,) = model(torch.from_numpy(z))
    assert set(out) == {"prediction"} and out["prediction"].shape == (len(z), 1)
    np.testing.assert_allclose(out["prediction"], TargetScale(**card["target_scale"]).invert(pred.numpy()), rtol=1e-4)
    assert [o.name for o in pyfunc.metadata.get_output_schema().inputs] == ["prediction"]
    return f"runs:/{fold_id}"


@pytest.mark.realdata
def test_a_model_of_a_factor_target_trains_exports_streams_and_compares(tmp_path):
    """The whole path on the real AMZN day, volatility over the next minute: an LSTM and the ridge baseline
    against the EW factor calibrated on the same training samples; the LSTM exported (window, step and native
    graphs with parity) and streamed beside the factor; lobnet-compare's regression table."""
    from lobnet.cli import compare, train
    from lobnet.live.export import export_checkpoint

    base = [o for o in _overrides(tmp_path) if not o.startswith(("data", "labels.", "primary_horizon"))]
    real = [
        "data=lobster",
        f"data.path={need(AMZN5)}",
        "labels=volatility",
        "split.max_folds=1",
        "split.max_eval_samples=3000",
    ]
    r = train.run(_compose("train", [*base, "model=lstm", *real, "trainer.max_epochs=1"]))
    s = r["summary"]
    for k in ("mse", "r2", "corr", "mse_vs_factor", "factor_mse", "delta_mse_lo", "delta_mse_hi"):
        assert np.isfinite(s[f"test/{k}"]), k
    # test/mse is the module's epoch mean (float32); the ratio's MSE is the comparison's, in float64
    assert s["test/mse_vs_factor"] == pytest.approx(s["test/mse"] / s["test/factor_mse"], rel=1e-6)
    assert s["test/delta_mse_lo"] <= s["test/delta_mse"] <= s["test/delta_mse_hi"]
    ckpt = next((tmp_path / "train").glob("run-*/fold_0/best.ckpt"))
    card = json.loads((ckpt.parent / "model.json").read_text())
    assert card["task"] == "regression" and card["factor"]["kind"] == "volatility"
    assert 0.5 <= card["factor"]["alpha"] <= 0.9999 and card["target_scale"]["std"] > 0
    fold_uri = _check_regression_fold_model(f"sqlite:///{tmp_path / 'mlflow.db'}", ckpt, card)
    ridge = train.run(_compose("train", [*base, "model=ridge", *real]))
    assert np.isfinite(ridge["summary"]["test/mse_vs_factor"])
    # the same test samples and the same calibrated factor for both
    assert ridge["summary"]["test/factor_mse"] == pytest.approx(s["test/factor_mse"], rel=1e-12)

    rep = export_checkpoint(fold_uri, tmp_path / "export", tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert rep["max_abs_diff_window"] <= 1e-5 and rep["max_abs_diff_step"] <= 1e-5
    assert rep["max_abs_diff_native"] <= 1e-5
    import onnx

    outs = [o.name for o in onnx.load(str(tmp_path / "export" / "model_step.onnx")).graph.output]
    assert outs[0] == "prediction" and "logits" not in outs

    from .test_stream import _stream

    st = _stream(tmp_path, tmp_path / "export")
    assert st["task"] == "regression" and st["parity_ok"], st["parity"]
    assert set(st["engines"]) == {"native_step", "onnx_step", "onnx_window", "ew_factor"}
    assert st["engines"]["ew_factor"]["mse_vs_factor"] == 1.0
    mse = {k: e["mse"] for k, e in st["engines"].items()}
    assert mse["native_step"] == pytest.approx(mse["onnx_step"], rel=1e-4)
    assert (tmp_path / "stream" / "stream.md").read_text().count("| ew_factor |") == 1

    summary = compare.run(
        _compose(
            "compare",
            [
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                "mlflow.experiment_name=t",
                f"output_dir={tmp_path / 'compare'}",
                "significance.reps=99",
            ],
        )
    )
    csv = pl.read_csv(tmp_path / "compare" / "comparison.csv")
    assert {"mse", "r2", "mse_vs_factor", "p_holm", "beats_factor"} <= set(csv.columns)
    assert {"lstm", "ridge", "EW factor"} <= set(csv["model"].to_list())
    fac = csv.filter(pl.col("model") == "EW factor").row(0, named=True)
    assert fac["mse_vs_factor"] == 1.0 and fac["mse"] == pytest.approx(s["test/factor_mse"], rel=1e-9)
    assert summary.height == csv.height
    assert "volatility_60s" in (tmp_path / "compare" / "comparison.md").read_text()


@pytest.mark.realdata
def test_a_pairs_model_streams_on_the_merged_table_beside_the_pairs_factor(tmp_path):
    """labels=pairs end to end on AIG/BAC: a TCN trained on the merged table, exported, and replayed by
    lobnet-stream on a stretch of the second merged day: both symbols' feature updates per row equal the batch
    pair features (the engines' parity), the one-pass EW-regression spread equals the batch pairs factor on every
    row, and all are scored on the pairs PnL target of the replay."""
    from lobnet.cli import train
    from lobnet.live.export import export_checkpoint

    from .test_stream import _stream

    data = ["data=quotes", f"data.path={_pair_days(tmp_path)}", "data.trades=false"]
    base = [o for o in _overrides(tmp_path) if not o.startswith(("data", "labels.", "primary_horizon"))]
    pairs = [
        "labels=pairs",
        "features=level1",
        "split.max_folds=1",
        "split.max_eval_samples=3000",
        "trainer.max_epochs=1",
    ]
    train.run(_compose("train", [*base, "model=tcn", *data, *pairs]))
    ckpt = next((tmp_path / "train").glob("run-*/fold_0/best.ckpt"))
    card = json.loads((ckpt.parent / "model.json").read_text())
    assert card["features"]["pair"] and card["factor"]["kind"] == "pairs"
    rep = export_checkpoint(ckpt, tmp_path / "export")
    assert rep["max_abs_diff_step"] <= 1e-5 and rep["max_abs_diff_native"] <= 1e-5
    st = _stream(
        tmp_path,
        tmp_path / "export",
        "stream.day=1",
        "stream.offset=20000",
        "stream.events=4000",
        "stream.engines=[native_step,onnx_step]",
        data=tuple(data),
    )
    assert st["symbol"] == "AIG-BAC" and st["date"] == "2013-10-08", (st["symbol"], st["date"])
    assert st["parity_ok"], st["parity"]
    assert st["parity"]["native_step"]["events"] == 600 and st["parity"]["ew_factor"]["events"] == 4000
    assert set(st["engines"]) == {"native_step", "onnx_step", "ew_factor"}
    assert st["scored_events"] > 1000 and st["engines"]["ew_factor"]["mse_vs_factor"] == 1.0
    assert st["factor_alpha"] == card["factor"]["alpha"]
    from lobnet.live.replay import ModelDir, ModelDirError, StreamSettings, stream

    with pytest.raises(ModelDirError, match=r"pairs_AIG_BAC_60s does not fit the data: .*has no \['BAC'\]"):
        stream(ModelDir.load(tmp_path / "export"), pl.DataFrame({"symbol": ["AIG"]}), StreamSettings())
