"""lobnet-stream on a short real replay (the AMZN level-5 day): the streamed predictions equal the batch
pipeline's (polars features, the training fold's z-score, the torch model), and bad model directories fail with
a clear error."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from .conftest import AMZN5, need
from .test_export import train_real
from .test_train import _compose


def _stream(tmp_path, model_dir, *extra, data: tuple[str, ...] | None = None):
    """lobnet-stream on 3,000 events of ``data`` (overrides; default the real AMZN level-5 day)."""
    from lobnet.cli import stream as stream_cli

    return stream_cli.run(
        _compose(
            "stream",
            [
                f"model_dir={model_dir}",
                *(data or ("data=lobster", f"data.path={need(AMZN5)}")),
                f"cache_dir={tmp_path.parent / 'cache'}",
                f"output_dir={tmp_path / 'stream'}",
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                f"mlflow.artifact_location={tmp_path / 'art'}",
                "stream.events=3000",
                "stream.calibration_events=1000",
                "stream.parity_events=600",
                *extra,
            ],
        )
    )


@pytest.fixture(scope="module")
def exported(real_export):
    """The export folder of a model trained on the real day, by architecture (the session's, tests/conftest.py)."""
    return lambda name: real_export(name)[0] / "export"


@pytest.mark.parametrize("name", ["lstm", "hybrid", "deeplob"])
def test_stream_equals_the_batch_pipeline_on_a_real_replay(tmp_path, exported, name):
    r = _stream(tmp_path, exported(name))
    assert r["parity_ok"], r["parity"]
    engines = r["engines"]
    if name == "deeplob":  # no step graph: the full window is its streaming path
        assert "onnx_step" not in engines and "native_step" not in engines and r["step"] == "window_fallback"
        assert r["signal_engine"] == "onnx_window"
    else:
        for e in ("onnx_step", "native_step"):  # both step engines against the batch pipeline
            p = r["parity"][e]
            assert p["events"] == 600 and p["max_abs_diff_logits"] <= 1e-4 and p["same_classes"], e
        assert 0.0 <= r["parity"]["step_vs_window_class_agreement"] <= 1.0
        assert r["signal_engine"] == "native_step"
        n, o = engines["native_step"], engines["onnx_step"]  # the same forecasts, so the same trades
        assert n["macro_f1"] == o["macro_f1"] and n["signal"] == o["signal"] == "class head"
    assert r["parity"]["onnx_window"]["parity"]
    for e in ("onnx_window", "ew_ofi", "ew_regression"):
        stats = engines[e]
        assert stats["scored_events"] > 1000 and 0.0 <= stats["macro_f1"] <= 1.0
        t = stats["total"]
        assert 0 < t["p50_us"] <= t["p90_us"] <= t["p99_us"] <= t["p999_us"] <= t["max_us"]
    for e, stats in engines.items():  # every engine's forecasts traded net of costs, with its own compute time
        bt = stats["backtest"]
        assert bt["compute_delay_charged"] and bt["costs"]["latency_us"] == 100.0
        assert bt["net"] == pytest.approx(bt["gross"] - bt["latency"] - bt["spread"] - bt["fees"], abs=1e-6), e
        for rows in bt["regimes"].values():
            assert sum(row["net"] for row in rows.values()) == pytest.approx(bt["net"], abs=1e-6), e
        naive = bt["naive"]  # beside always flat, buy-and-hold and random forecasts with the engine's turnover
        assert naive["random_draws"] == 200 and 0 < naive["p_random"] <= 1 and naive["flat"] == 0.0
    saved = json.loads((tmp_path / "stream" / "stream.json").read_text())
    assert saved["engines"].keys() == engines.keys() and saved["mlflow_run_id"]
    import mlflow

    run = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_run(saved["mlflow_run_id"])
    assert run.info.status == "FINISHED"
    assert run.info.artifact_uri.startswith((tmp_path / "art").as_uri()), run.info.artifact_uri  # not ./mlruns
    assert (tmp_path / "stream" / ".lobnet-output.json").exists()
    assert saved["engines"]["ew_ofi"]["backtest"]["trades"] == engines["ew_ofi"]["backtest"]["trades"]
    assert (tmp_path / "stream" / "latency.png").stat().st_size > 0
    assert (tmp_path / "stream" / "equity.png").stat().st_size > 0
    md = (tmp_path / "stream" / "stream.md").read_text()
    assert "| onnx_window |" in md and "Net of costs" in md and "| volatility low" in md and "buy-and-hold" in md


def test_stream_executes_parent_orders_by_every_schedule_with_each_engines_forecast(tmp_path, exported):
    ex = ["execution=twap", "execution.orders=6", "execution.events=500", "execution.quantity=500"]
    r = _stream(tmp_path, exported("lstm"), *ex, "mlflow.tracking_uri=null")
    saved = json.loads((tmp_path / "stream" / "execution.json").read_text())
    engines = ["native_step", "onnx_step", "onnx_window", "ew_ofi", "ew_regression"]
    assert list(saved["schedules"]) == ["immediate", "twap", *(f"forecast_{e}" for e in engines)]
    assert "not run" in saved["vwap"]  # one LOBSTER day: no earlier day to take a volume profile from
    for name, e in saved["schedules"].items():
        assert e["orders"] == 6
        parts = sum(e[f"{p}_bps"] for p in ("timing", "spread", "impact", "fees"))
        assert e["shortfall_bps"] == pytest.approx(parts), name
        assert e["spread_bps"] > 0 and e["fees_bps"] > 0
    assert saved["schedules"]["twap"]["saving_vs_twap_bps"] == 0.0
    assert len(saved["orders"]) == 6 * 7 and {o["side"] for o in saved["orders"]} == {1, -1}
    assert r["execution"]["schedules"].keys() == saved["schedules"].keys() and "orders" not in r["execution"]
    assert (tmp_path / "stream" / "execution.png").stat().st_size > 0
    assert "| forecast_ew_ofi |" in (tmp_path / "stream" / "stream.md").read_text()


def test_stream_trades_a_sharpe_trained_model_by_its_position_head(tmp_path):
    """The Sharpe loss trains the position head alone: the stream trades that head's fractional positions (as
    the fold's backtest does), scores and times execution by its sign, and holds it to the batch pipeline."""
    from lobnet.live.export import export_checkpoint

    ckpt = train_real(tmp_path, "lstm", "loss=sharpe")
    assert json.loads((ckpt.parent / "model.json").read_text())["loss"] == "sharpe"
    export_checkpoint(ckpt, tmp_path / "export")
    ex = ["execution=twap", "execution.orders=4", "execution.events=400", "mlflow.tracking_uri=null"]
    r = _stream(tmp_path, tmp_path / "export", "stream.engines=[onnx_step,ew_ofi]", *ex)
    assert r["traded_head"] == "position" and r["parity_ok"], r["parity"]
    p = r["parity"]["onnx_step"]
    assert p["max_abs_diff_position"] <= 1e-4 and p["same_position_signs"]
    step, factor = r["engines"]["onnx_step"], r["engines"]["ew_ofi"]
    assert step["signal"] == "position head" and factor["signal"] == "factor"
    bt = step["backtest"]  # fractional positions: less exposure than the time in the market at full size
    assert 0 < bt["mean_abs_position"] < bt["time_in_market"] - 1e-3
    fb = factor["backtest"]  # a class forecast holds +-1 whenever it is in the market
    assert fb["mean_abs_position"] == pytest.approx(fb["time_in_market"])
    assert "forecast_onnx_step" in r["execution"]["schedules"]


def test_a_card_with_an_unknown_loss_is_refused(tmp_path, exported):
    from lobnet.data.errors import LobDataError
    from lobnet.live.replay import ModelDir

    bad = tmp_path / "bad"
    shutil.copytree(exported("lstm"), bad)
    card = json.loads((bad / "model.json").read_text())
    assert card["loss"] == "ce"
    (bad / "model.json").write_text(json.dumps({**card, "loss": "hinge"}))
    with pytest.raises(LobDataError, match="loss 'hinge' is not one of"):
        ModelDir.load(bad)


def test_stream_rejects_a_model_directory_with_a_missing_file(tmp_path, exported):
    from lobnet.live.replay import ModelDirError

    bad = tmp_path / "bad"
    shutil.copytree(exported("lstm"), bad)
    (bad / "model_step.onnx").unlink()
    with pytest.raises(ModelDirError, match="model_step.onnx"):
        _stream(tmp_path, bad)
    (bad / "model.onnx").unlink()
    with pytest.raises(ModelDirError, match="model.onnx: missing"):
        _stream(tmp_path, bad)
    assert not (tmp_path / "stream").exists()


def test_stream_rejects_a_feature_list_that_differs_from_the_data(tmp_path, exported):
    from lobnet.data import LobDataError
    from lobnet.live.replay import ModelDirError

    bad = tmp_path / "bad"
    shutil.copytree(exported("lstm"), bad)
    card = json.loads((bad / "model.json").read_text())
    card["features"]["groups"] = [g for g in card["features"]["groups"] if g != "spread"]
    (bad / "model.json").write_text(json.dumps(card))
    # refused where the card is read (lobnet.card.read_card), before any data
    with pytest.raises(LobDataError, match="feature list differs"):
        _stream(tmp_path, bad)
    # a card consistent in itself (a 10-level model) given the 5-level day: refused by the replay
    from lobnet.card import spec_feature_names

    card = json.loads((exported("lstm") / "model.json").read_text())
    card["features"]["levels"] = 10
    card["feature_names"] = spec_feature_names(card["features"], bad / "model.json")
    card["config"]["n_features"] = len(card["feature_names"])
    (bad / "model.json").write_text(json.dumps(card))
    # the export's native step weights no longer fit the card: refused when the directory is loaded
    with pytest.raises(LobDataError, match=r"model_native.npz: its weights are for config .*'n_features': 35"):
        _stream(tmp_path, bad)
    export = json.loads((bad / "export.json").read_text())
    del export["native"]  # as exported without the native step
    (bad / "export.json").write_text(json.dumps(export))
    with pytest.raises(ModelDirError, match="10 book levels"):
        _stream(tmp_path, bad)


def test_factor_engines_use_no_label_realised_after_the_forecast(exported, amzn5):
    """The one-pass factors learn from labels only once they are realised: the EW-OFI flat band from the prefix
    labels known when scoring starts (an event's label is known k events later), the EW regression from each
    target k events late. Rewriting every later label must leave their forecasts unchanged."""
    import numpy as np

    from lobnet.live.replay import ModelDir, Replay, StreamSettings, replay_day, run_factors
    from lobnet.prep.labels import FLAT, UP

    s = StreamSettings(events=3000, calibration_events=1000)
    r = Replay(ModelDir.load(exported("lstm")), replay_day(amzn5, s), s)
    c0, k = int(np.flatnonzero(r.scored)[0]), r.horizon
    ofi = run_factors(r, s, "ew_ofi")[2]
    cut = c0 + 500  # the regression may use target[t] from event t + k on
    rls = run_factors(r, s, "ew_regression")[2]
    assert (ofi[c0:] >= 0).all() and (rls[c0:] >= 0).all()
    for late in (FLAT, UP):  # the labels after the last one realised by the first scored event
        r.y[c0 - k + 1 :] = late
        np.testing.assert_array_equal(run_factors(r, s, "ew_ofi")[2], ofi)
    r.target[cut:] = -r.target[cut:] + 1.0
    moved = run_factors(r, s, "ew_regression")[2]
    np.testing.assert_array_equal(moved[: cut + k], rls[: cut + k])
    assert (moved[cut + k :] != rls[cut + k :]).any()  # and it does learn from the targets once realised


def test_stream_cli_reports_a_missing_model_directory(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "lobnet.cli.stream",
            f"model_dir={tmp_path / 'nope'}",
            f"hydra.run.dir={tmp_path / 'h'}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode != 0 and r.stderr.strip().startswith("error:") and "no such model directory" in r.stderr


def test_stream_replays_level_one_ticks_with_parity(tmp_path):
    """The same path on an AlgoSeek AIG tick day (NBBO rows and trades, one level): train on its first blocks,
    export, replay its last 3,000 events."""
    from lobnet.cli import stream as stream_cli
    from lobnet.cli import train
    from lobnet.live.export import export_checkpoint

    from .conftest import AIG
    from .test_train import _overrides

    data = ["data=quotes", f"data.path={need(AIG / '20131008_quote.zip')}"]
    base = [o for o in _overrides(tmp_path) if not o.startswith("data")]
    train.run(_compose("train", [*base, "model=tcn", *data, "split.max_folds=1", "trainer.max_epochs=1"]))
    export_checkpoint(next((tmp_path / "train").glob("run-*/fold_0/best.ckpt")), tmp_path / "export")
    r = stream_cli.run(
        _compose(
            "stream",
            [
                f"model_dir={tmp_path / 'export'}",
                *data,
                f"cache_dir={tmp_path.parent / 'cache'}",
                f"output_dir={tmp_path / 'stream'}",
                "mlflow.tracking_uri=null",
                "stream.offset=-3000",
                "stream.events=3000",
                "stream.calibration_events=1000",
                "stream.parity_events=600",
            ],
        )
    )
    assert r["symbol"] == "AIG" and r["parity_ok"], r["parity"]
    assert r["parity"]["onnx_step"]["events"] == 600


def test_the_streams_signal_is_the_engine_asked_for_or_the_first_model_engine_that_ran():
    from lobnet.live.replay import signal_engine

    ran = ["onnx_step", "onnx_window", "ew_ofi"]
    assert signal_engine("auto", ["native_step", *ran]) == "native_step"
    assert signal_engine("auto", ["ew_ofi", "onnx_window"]) == "onnx_window"  # a model without a step graph
    assert signal_engine("ew_ofi", ran) == "ew_ofi"
    with pytest.raises(ValueError, match="native_step.*does not run for this model"):
        signal_engine("native_step", ran)
    with pytest.raises(ValueError, match="needs one of the model engines"):
        signal_engine("auto", ["ew_ofi", "ew_regression"])
