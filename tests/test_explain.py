"""What a fold reads (lobnet.evaluation.explain, lobnet-explain, lobnet-train explain=true): attributions of a
model with a known answer, attention rows that sum to 1 and respect causality, and the command and training option
end to end with their MLflow logging."""

from __future__ import annotations

import json
from types import SimpleNamespace

import mlflow
import numpy as np
import pytest
import torch

from lobnet.models.base import LOBModel

from .test_train import _compose, _overrides

SMALL = [
    "explain_settings.windows=96",
    "explain_settings.attribution_windows=16",
    "explain_settings.ig_steps=8",
    "explain_settings.reps=49",
]


class ReadsOne(LOBModel):
    """Reads feature ``j`` at ``lag`` events before the last, and nothing else: up when it is positive."""

    def __init__(self, j: int, lag: int):
        super().__init__()
        self.j, self.lag = j, lag
        self.scale = torch.nn.Parameter(torch.tensor(3.0))

    def forward(self, x):
        v = x[:, -1 - self.lag, self.j] * self.scale
        return torch.stack([-v, torch.zeros_like(v), v], -1)[:, None], torch.tanh(v)[:, None]


def _known_answer(j: int, lag: int, n: int = 600, W: int = 12):
    from lobnet.features import FeatureSpec, feature_names
    from lobnet.prep.labels import LabelConfig, classify
    from lobnet.prep.windows import WindowDataset

    features = {"groups": ["mid", "spread", "ofi", "queue_imbalance", "depth_imbalance", "log_dt"], "levels": 2}
    spec = FeatureSpec(groups=tuple(features["groups"]))
    names = feature_names(spec.params(2), list(spec.groups))
    rng = np.random.default_rng(0)
    X = torch.from_numpy(rng.standard_normal((n + W, len(names))).astype(np.float32))
    samples = np.arange(W, n + W)
    target = np.full(n + W, np.nan)
    target[samples] = X[samples - lag, j].numpy()
    y = torch.from_numpy(classify(target, 0.43)[:, None])
    test = WindowDataset(X, samples, W, y, torch.zeros(n + W, 1))
    return SimpleNamespace(test=test, feature_names=names), features, LabelConfig(horizons=(1,)), names


def test_a_model_that_reads_one_feature_at_one_lag_gets_all_the_importance_there():
    from lobnet.evaluation.explain import ExplainSettings, explain_fold

    j, lag = 3, 4  # ofi_2 (the ofi group split by level), four events before the last
    data, features, labels, names = _known_answer(j, lag)
    assert names[j] == "ofi_2"
    s = ExplainSettings(windows=400, permutations=2, attribution_windows=64, ig_steps=16, reps=99)
    r = explain_fold(ReadsOne(j, lag), data, features, labels, 0, s)
    imp = r["importance"]
    assert imp["ofi_L2"]["f1_drop"] > 0.15 and imp["ofi_L2"]["f1_drop_ci"][0] > 0.1
    assert imp["ofi_L2"]["logloss_rise"] > 0.5 and imp["ofi_L2"]["logloss_rise_ci"][0] > 0.3
    for g, v in imp.items():  # shuffling a feature the model does not read changes nothing at all
        if g != "ofi_L2":
            assert v["f1_drop"] == 0.0 and v["logloss_rise"] == 0.0, g
    fl = np.array(r["attribution"]["abs_mean"])  # feature x lag
    assert fl.shape == (len(names), 12)
    assert fl[j, lag] / fl.sum() > 0.999
    by_group = {g: sum(v) for g, v in r["attribution"]["by_group"].items()}
    assert max(by_group, key=by_group.get) == "ofi_L2"
    assert r["attention"] is None  # no attention layers


@pytest.mark.parametrize("name", ["transformer", "hybrid"])
def test_attention_rows_sum_to_one_and_never_look_ahead(name):
    from lobnet.evaluation.explain import attention_weights
    from lobnet.models import build_model

    torch.manual_seed(0)
    model = build_model(name, n_features=6, n_horizons=2).eval()
    x = torch.randn(3, 30, 6)
    maps = attention_weights(model, x)
    assert maps and all(m.shape[0] == 3 and m.shape[-2:] == (30, 30) for m in maps)
    for m in maps:
        torch.testing.assert_close(m.sum(-1), torch.ones(m.shape[:-1]), atol=1e-5, rtol=0)
        assert (m.triu(1) == 0).all()  # no weight on a later event
    later = x.clone()
    later[:, 20:] = torch.randn(3, 10, 6)  # the future of event 19 changed
    for a, b in zip(maps, attention_weights(model, later), strict=True):
        torch.testing.assert_close(a[:, :, :20, :20], b[:, :, :20, :20], atol=1e-6, rtol=0)


def test_train_explain_true_and_lobnet_explain_log_every_reading_to_the_fold_run(tmp_path):
    from lobnet.cli import explain as explain_cli
    from lobnet.cli import train

    r = train.run(_compose("train", _overrides(tmp_path, "model=transformer", "explain=true", *SMALL)))
    db = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.tracking.MlflowClient(db)
    exp = client.get_experiment_by_name("t")
    folds = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{r['parent_run_id']}'")
    assert len(folds) == 2
    for f in folds:
        files = {a.path for a in client.list_artifacts(f.info.run_id, "explain")}
        want = {"explain.json", "importance.png", "attribution.png", "attention.png", "attention_examples.png"}
        assert {f"explain/{w}" for w in want} <= files
    path = client.download_artifacts(folds[0].info.run_id, "explain/explain.json", str(tmp_path))
    e = json.loads(open(path).read())
    assert e["windows"] == 96 and e["horizon"] == 10 and e["seconds"] > 0
    assert {"ofi_L1", "spread", "depth", "log_dt"} <= set(e["importance"])
    layer = e["attention"][0]
    assert np.array(layer["head_lag"]).shape == (4, 20) and abs(sum(layer["lag_profile"]) - 1) < 1e-4
    assert np.array(e["attribution"]["abs_mean"]).shape == (len(e["attribution"]["features"]), 20)

    # lobnet-explain on the checkpoint, then on the fold's MLflow model: the same reading, logged to the fold's run
    ckpt = next((tmp_path / "train").glob("run-*/fold_1/best.ckpt"))
    data = [o for o in _overrides(tmp_path) if o.startswith("data")]
    common = [*data, f"cache_dir={tmp_path.parent / 'cache'}", f"tracking_uri={db}", *SMALL]
    a = explain_cli.run(_compose("explain", [f"checkpoint={ckpt}", f"output_dir={tmp_path / 'ex'}", *common]))
    fold1 = next(f for f in folds if f.data.tags["lobnet.fold"] == "1").info.run_id
    assert a["mlflow_run_id"] == fold1 and (tmp_path / "ex" / "explain.json").exists()
    uri = f"runs:/{fold1}"
    b = explain_cli.run(_compose("explain", [f"checkpoint={uri}", f"output_dir={tmp_path / 'ex2'}", *common]))
    assert b["importance"] == a["importance"] and b["mlflow_run_id"] == fold1
    other = [o.replace("data.events=12000", "data.events=11000") for o in common]
    with pytest.raises(ValueError, match="not the data"):
        explain_cli.run(_compose("explain", [f"checkpoint={ckpt}", f"output_dir={tmp_path / 'ex3'}", *other]))
    assert not (tmp_path / "ex3").exists()


def test_baselines_are_explained_by_permutation_and_by_what_they_learned(tmp_path):
    from lobnet.cli import train

    r = train.run(_compose("train", _overrides(tmp_path, "model=logreg", "explain=true", "split.max_folds=1", *SMALL)))
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("t")
    (fold,) = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{r['parent_run_id']}'")
    e = json.loads(open(client.download_artifacts(fold.info.run_id, "explain/explain.json", str(tmp_path))).read())
    assert e["attention"] is None and e["attribution"] is None
    learned = e["learned"]  # at the explained (primary) horizon, as everything else in explain.json
    assert learned["kind"] == "abs_coef"
    assert set(learned["by_group"]) == set(e["importance"]) and sum(learned["by_group"].values()) > 0
    assert any(v["logloss_rise"] != 0 for v in e["importance"].values())

    # lobnet-explain on the baseline's fold run: refitted from the run's config, checked, the same reading
    from lobnet.cli import explain as explain_cli

    data = [o for o in _overrides(tmp_path) if o.startswith("data")]
    common = [*data, f"cache_dir={tmp_path.parent / 'cache'}", f"tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}"]
    a = explain_cli.run(
        _compose("explain", [f"checkpoint=runs:/{fold.info.run_id}", f"output_dir={tmp_path / 'ex'}", *common, *SMALL])
    )
    assert a["importance"] == e["importance"] and a["mlflow_run_id"] == fold.info.run_id
    other = [o.replace("data.events=12000", "data.events=11000") for o in common]
    with pytest.raises(ValueError, match="not the data"):
        explain_cli.run(
            _compose(
                "explain", [f"checkpoint=runs:/{fold.info.run_id}", f"output_dir={tmp_path / 'e2'}", *other, *SMALL]
            )
        )
