"""lobnet-train and lobnet-compare end to end on tiny synthetic runs: configs, MLflow contents, determinism,
resume after SIGKILL, a multirun sweep, and DDP over two CPU processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import numpy as np
import polars as pl
import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lobnet.cli import CONF_DIR

TINY = [
    "data=synthetic",
    "data.events=12000",
    "data.levels=5",
    "window=20",
    "batch_size=64",
    "split.unit=blocks",
    "split.blocks=5",
    "split.train_blocks=2",
    "split.max_folds=2",
    "labels.horizons=[5,10]",
    "primary_horizon=10",
    "trainer.max_epochs=2",
    "++trainer.extra.limit_train_batches=6",
    "++trainer.extra.limit_val_batches=4",
]


def _overrides(tmp: Path, *extra: str) -> list[str]:
    return [
        *TINY,
        f"output_dir={tmp / 'train'}",
        f"cache_dir={tmp.parent / 'cache'}",
        f"mlflow.tracking_uri=sqlite:///{tmp / 'mlflow.db'}",
        "mlflow.experiment_name=t",
        f"mlflow.artifact_location={tmp / 'art'}",
        "progress=false",
        *extra,
    ]


def _compose(name: str, overrides: list[str]):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=overrides)


GROUPS = {
    "data": ["synthetic", "lobster", "quotes", "bars"],
    "features": ["default", "with_book", "bars", "level1"],
    "labels": ["default", "tlob", "next_bar", "liquidity", "volatility", "pairs"],
    "model": ["lstm", "tcn", "transformer", "hybrid", "deeplob", "majority", "ew_ofi", "logreg", "gbdt", "ridge"],
    "loss": ["ce", "sharpe", "ce_sharpe"],
    "optimizer": ["adamw"],
    "trainer": ["cpu", "gpu", "ddp"],
    "backtest": ["default"],
    "experiment": [
        "synthetic_quick",
        "demo",
        "amzn_stream",
        "benchmark",
        "benchmark_amzn",
        "benchmark_aapl",
        "benchmark_aig",
        "benchmark_bac",
        "minute_direction",
        "factor_targets",
        "factor_targets_amzn",
        "factor_targets_ticks",
    ],
}


@pytest.mark.parametrize("group,option", [(g, o) for g, opts in GROUPS.items() for o in opts])
def test_every_config_group_and_experiment_composes(group, option):
    cfg = _compose(
        "train", [f"{group}={option}"] + (["data.path=x"] if group == "data" and option != "synthetic" else [])
    )
    build = instantiate(cfg.model)
    kw = {"levels": 10} if cfg.model.name == "deeplob" else {}
    from lobnet.models import Baseline

    model = build(n_features=40, n_horizons=3, **kw)
    assert isinstance(model, Baseline) or model.n_params() > 0
    labels, features = instantiate(cfg.labels, _convert_="all"), instantiate(cfg.features, _convert_="all")
    assert labels.horizons and features.groups
    assert cfg.loss.kind in ("ce", "sharpe", "ce_sharpe")
    for name in ("prepare", "calibrate", "compare", "demo"):
        assert _compose(name, [])


def test_training_is_tracked_in_mlflow_and_deterministic(tmp_path):
    from lobnet.cli import train

    a, b = tmp_path / "a", tmp_path / "b"
    ra = train.run(_compose("train", _overrides(a, "model=lstm")))
    rb = train.run(_compose("train", _overrides(b, "model=lstm")))
    assert ra["folds"] == rb["folds"]  # the same seed gives identical metrics on CPU
    mlflow.set_tracking_uri(f"sqlite:///{a / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["t"])
    parents = runs[runs["tags.lobnet.kind"] == "parent"]
    children = runs[runs["tags.lobnet.kind"] == "fold"]
    assert len(parents) == 1 and len(children) == 2
    p = parents.iloc[0]
    assert set(children["tags.mlflow.parentRunId"]) == {p.run_id}
    for m in ("macro_f1", "accuracy", "majority_f1", "net_sharpe", "bt_net"):
        assert f"metrics.test/{m}" in runs.columns and f"metrics.test/{m}_std" in runs.columns
        assert p[f"metrics.test/{m}"] == pytest.approx(ra["summary"][f"test/{m}"])
    assert p["metrics.test/macro_f1"] == p["metrics.test/macro_f1_h10"]
    for _, c in children.iterrows():  # each fold's test forecasts traded net of costs: the split adds up
        g, lat, spr, fee = (c[f"metrics.test/bt_{x}_h10"] for x in ("gross", "latency", "spread", "fees"))
        assert c["metrics.test/bt_net_h10"] == pytest.approx(g - lat - spr - fee, abs=1e-6)
        assert c["metrics.test/bt_trades_h10"] > 0 and spr > 0 and fee > 0
        # beside the naive benchmarks under the same costs: buy-and-hold and random forecasts with its turnover
        assert 0 < c["metrics.test/bt_p_random_h10"] <= 1
        assert c["metrics.test/bt_random_mean_h10"] <= c["metrics.test/bt_random_p95_h10"]
        assert np.isfinite(c["metrics.test/bt_buy_and_hold_h10"])
    assert p["params.model.name"] == "lstm" and p["params.seed"] == "0" and len(p["params.git.commit"]) >= 7
    assert p["params.data.fingerprint"] == p["tags.lobnet.data"]
    client = mlflow.tracking.MlflowClient()
    c = children.iloc[0]
    arts = {x.path for x in client.list_artifacts(c.run_id)}
    assert {"confusion_matrices.png", "pr_curves.png", "pr_curves.json", "loss_curves.png"} <= arts
    assert len(client.get_metric_history(c.run_id, "val/loss")) == 2  # one point per epoch
    assert "config.yaml" in {x.path for x in client.list_artifacts(p.run_id)}
    fold0 = children[children["tags.lobnet.fold"] == "0"].iloc[0]
    _check_fold_model(fold0.run_id, next(a.glob("train/run-*/fold_0")))


def _check_fold_model(run_id: str, fold_dir: Path) -> None:
    """The fold is a logged MLflow model of its run; as a pyfunc it forecasts from *raw* feature windows: given
    the parity windows un-normalised with the card's statistics, it returns the model's outputs on them."""
    import numpy as np
    import torch

    from lobnet.card import load_model
    from lobnet.prep.normalization import ZScore

    assert len(mlflow.tracking.MlflowClient().get_run(run_id).outputs.model_outputs) == 1
    pyfunc = mlflow.pyfunc.load_model(f"runs:/{run_id}/model")
    model, card = load_model(fold_dir / "best.ckpt")
    z = np.load(fold_dir / "parity_windows.npy")
    zscore = ZScore.from_card(card)
    out = pyfunc.predict(z * zscore.std + zscore.mean)
    with torch.inference_mode():
        logits, position = model(torch.from_numpy(z))
    assert out["prob"].shape == (len(z), len(card["horizons"]), 3)
    np.testing.assert_allclose(out["prob"], torch.softmax(logits, -1).numpy(), atol=1e-5)
    np.testing.assert_allclose(out["position"], position.numpy(), atol=1e-5)
    assert pyfunc.metadata.get_input_schema().inputs[0].shape == (-1, -1, len(card["feature_names"]))
    with pytest.raises(mlflow.exceptions.MlflowException, match="does not match expected shape"):
        pyfunc.predict(z[..., :-1])  # a feature missing


def test_logging_to_a_fold_run_works_inside_a_callers_own_active_run(tmp_path):
    """Training (and export) log the fold's model through MLflow's fluent API; called from a notebook inside the
    caller's own ``mlflow.start_run()``, MLflow would refuse a second active run. The caller's run and tracking
    URI are as they were afterwards."""
    from lobnet.tracking.model import in_run

    mine, store = f"sqlite:///{tmp_path / 'mine.db'}", f"sqlite:///{tmp_path / 'store.db'}"
    client = mlflow.tracking.MlflowClient(store)
    fold = client.create_run(client.create_experiment("e")).info.run_id
    mlflow.set_tracking_uri(mine)
    with mlflow.start_run() as outer:
        with in_run(store, fold):
            mlflow.log_param("p", 1)
        assert mlflow.active_run().info.run_id == outer.info.run_id and mlflow.get_tracking_uri() == mine
    assert client.get_run(fold).data.params == {"p": "1"}
    assert "mlflow.parentRunId" not in client.get_run(fold).data.tags


def test_attention_models_log_attention_maps(tmp_path):
    from lobnet.cli import train

    r = train.run(_compose("train", _overrides(tmp_path, "model=hybrid", "split.max_folds=1")))
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    fold = client.search_runs([client.get_experiment_by_name("t").experiment_id], "tags.`lobnet.kind` = 'fold'")[0]
    assert "attention_maps.png" in {x.path for x in client.list_artifacts(fold.info.run_id)}
    assert r["summary"]["test/macro_f1"] > 0


def _cmd(tmp: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "lobnet.cli.train",
        *_overrides(tmp, *extra),
        f"hydra.run.dir={tmp / 'hydra'}",
        f"hydra.sweep.dir={tmp / 'sweep'}",
    ]


@pytest.mark.slow
def test_a_killed_run_resumes_and_ends_with_the_same_metrics(tmp_path):
    extra = ("model=tcn", "trainer.max_epochs=5", "++trainer.extra.limit_train_batches=20", "trainer.patience=10")
    ref = subprocess.run(_cmd(tmp_path / "ref", *extra), capture_output=True, text=True, cwd=tmp_path)
    assert ref.returncode == 0, ref.stderr[-3000:]
    run = tmp_path / "killed"
    run.mkdir()
    proc = subprocess.Popen(
        _cmd(run, *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path
    )
    seen = []
    for line in proc.stdout:  # kill it in the middle of the first fold, after epoch 1 was checkpointed
        seen.append(line)
        if line.startswith("fold 0 epoch 1:"):
            time.sleep(0.5)
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "".join(seen[-20:])
    again = subprocess.run(_cmd(run, *extra), capture_output=True, text=True, cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "fold 0 epoch 0:" not in again.stdout  # it resumed instead of starting over
    summary = lambda out: [line for line in out.splitlines() if " folds, horizon " in line][-1].split("; MLflow")[0]  # noqa: E731
    assert summary(again.stdout) == summary(ref.stdout)
    for db in (tmp_path / "ref", run):
        mlflow.set_tracking_uri(f"sqlite:///{db / 'mlflow.db'}")
        runs = mlflow.search_runs(experiment_names=["t"])
        assert (runs["tags.lobnet.kind"] == "parent").sum() == 1 and (runs["tags.lobnet.kind"] == "fold").sum() == 2


@pytest.mark.slow
def test_multirun_sweep_then_compare(tmp_path):
    cmd = _cmd(tmp_path, "split.max_folds=1", "model=lstm,transformer")
    r = subprocess.run([*cmd[:3], "-m", *cmd[3:]], capture_output=True, text=True, cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    from lobnet.cli import compare

    table = compare.run(
        _compose(
            "compare",
            [
                f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                "mlflow.experiment_name=t",
                f"output_dir={tmp_path / 'cmp'}",
            ],
        )
    )
    assert sorted(table["model"].to_list()) == ["lstm", "transformer"]
    md = (tmp_path / "cmp" / "comparison.md").read_text()
    assert "| lstm | ce | 10 | 1 |" in md and "majority F1" in md
    assert (tmp_path / "cmp" / "comparison.csv").exists() and (tmp_path / "cmp" / "pr_curves.png").stat().st_size > 5000
    # the console table, printed to a pipe: the backtest's net beside the Sharpe proxy, one line per model (a pipe
    # would otherwise get Rich's 80 columns and every cell wrapped)
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    cli = [
        str(Path(sys.executable).parent / "lobnet-compare"),
        f"mlflow.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]
    r = subprocess.run(
        [*cli, "mlflow.experiment_name=t", f"output_dir={tmp_path / 'cmp'}"], capture_output=True, text=True, env=env
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert "backtest net $/fold" in r.stdout and "net Sharpe/day" in r.stdout
    row = next(line for line in r.stdout.splitlines() if "│ lstm " in line)
    bt = table.filter(pl.col("model") == "lstm").row(0, named=True)
    assert f"{bt['bt_net']:,.2f} ± {bt['bt_net_std']:,.2f}" in row
    # any list of metrics: the first orders the table, the console and the plot show what the list holds
    r = subprocess.run(
        [*cli, "mlflow.experiment_name=t", f"output_dir={tmp_path / 'cmp2'}", "metrics=[accuracy]"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert (
        "accuracy" in r.stdout and "macro-F1" not in r.stdout and (tmp_path / "cmp2" / "metric_by_model.png").exists()
    )
    r = subprocess.run(
        [*cli, "mlflow.experiment_name=t", f"output_dir={tmp_path / 'cmp3'}", "metrics=[]"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert r.returncode == 2 and "metrics is empty" in r.stderr and not (tmp_path / "cmp3").exists()


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(tmp_path):
    env = dict(os.environ, PL_DISABLE_FORK="1")
    r = subprocess.run(
        _cmd(
            tmp_path,
            "trainer=ddp",
            "split.max_folds=1",
            "++trainer.extra.limit_train_batches=4",
            "++trainer.extra.limit_val_batches=2",
            "trainer.max_epochs=1",
        ),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=600,
    )
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])
    assert "1 folds, horizon 10" in r.stdout
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    runs = mlflow.search_runs(experiment_names=["t"])
    assert (runs["tags.lobnet.kind"] == "parent").sum() == 1  # rank 1 logged nothing of its own


def test_sharpe_losses_train_on_contiguous_batches_and_trade_the_position_head(tmp_path):
    from lobnet.cli import train

    r = train.run(_compose("train", _overrides(tmp_path, "model=lstm", "loss=ce_sharpe", "split.max_folds=1")))
    m = r["folds"][0]
    assert {"net_sharpe_h10", "gross_sharpe_h10", "hit_rate_h10", "turnover_h10"} <= m.keys()
    # the position head's tanh output moves continuously, unlike a class sign (turnover 0, 1 or 2 per step)
    assert 0 < m["turnover_h10"] < 2
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    p = mlflow.search_runs(experiment_names=["t"], filter_string="tags.`lobnet.kind` = 'parent'").iloc[0]
    assert p["tags.lobnet.loss"] == "ce_sharpe" and p["params.loss.kind"] == "ce_sharpe"


@pytest.mark.parametrize("uri,needle", [("null", "needs a tracking URI"), ("./mlruns", "file tracking store")])
def test_train_refuses_a_store_it_cannot_record_to_before_reading_any_data(tmp_path, uri, needle):
    """lobnet-train records every run: no tracking URI, or a file store (which MLflow 3 refuses), is an error
    before the data is read, not after the first fold has trained."""
    from lobnet.cli import train
    from lobnet.data.errors import LobDataError

    with pytest.raises((ValueError, LobDataError), match=needle):
        train.run(_compose("train", _overrides(tmp_path, f"mlflow.tracking_uri={uri}")))
    assert not list(tmp_path.rglob("*.parquet")) and not (tmp_path / "mlflow.db").exists()
