"""Every model: shapes, causality, the TCN's receptive field, and a few training steps on real and synthetic data."""

from __future__ import annotations

import polars as pl
import pytest
import torch

from lobnet.data.schema import day_groups
from lobnet.features import DEFAULT_GROUPS, FeatureParams, compute_features, feature_names
from lobnet.models import MODELS, TCNConfig, TCNModel, build_model
from lobnet.prep.labels import LabelConfig, compute_targets
from lobnet.prep.splits import walk_forward
from lobnet.prep.windows import FoldData
from lobnet.train.losses import LobLoss

F_, H_ = 24, 3


def _model(name: str, n_features: int = F_, **kw):
    if name in ("transformer", "hybrid"):
        kw.setdefault("dt_index", n_features - 1)
    if name == "deeplob":
        kw.setdefault("levels", 5)
    return build_model(name, n_features=n_features, n_horizons=H_, **kw)


@pytest.mark.parametrize("name", list(MODELS))
def test_shapes_and_position_range(name):
    torch.manual_seed(0)
    m = _model(name).eval()
    x = torch.randn(3, 50, F_)
    logits, pos = m(x)
    assert logits.shape == (3, H_, 3) and pos.shape == (3, H_)
    assert (pos.abs() < 1).all()
    seq_logits, seq_pos = m.forward_sequence(x)
    assert seq_logits.shape == (3, 50, H_, 3) and seq_pos.shape == (3, 50, H_)
    torch.testing.assert_close(seq_logits[:, -1], logits)


@pytest.mark.parametrize("name", list(MODELS))
@pytest.mark.parametrize("s", [1, 17, 49])
def test_causality_changing_step_s_never_changes_earlier_outputs(name, s):
    torch.manual_seed(1)
    m = _model(name).eval()
    x = torch.randn(2, 50, F_)
    x2 = x.clone()
    x2[:, s:] = torch.randn_like(x2[:, s:]) * 3
    a, pa = m.forward_sequence(x)
    b, pb = m.forward_sequence(x2)
    assert torch.equal(a[:, :s], b[:, :s]) and torch.equal(pa[:, :s], pb[:, :s])
    assert not torch.equal(a[:, s:], b[:, s:])


def test_tcn_receptive_field_is_exact_and_warns():
    m = TCNModel(TCNConfig(n_features=4, n_horizons=1, channels=8, levels=3, kernel_size=3, dropout=0.0)).eval()
    assert m.receptive_field == 1 + 2 * 2 * (2**3 - 1) == 29
    x = torch.randn(1, 60, 4, requires_grad=True)
    m(x)[0].sum().backward()
    seen = (x.grad[0].abs().sum(dim=1) > 0).nonzero().flatten()
    assert seen.min().item() == 60 - 29  # the last step sees exactly the last 29 events
    with pytest.warns(UserWarning, match="receptive field 29 is shorter than the window 100"):
        m.check_window(100)


def test_deeplob_needs_the_book_columns():
    with pytest.raises(ValueError, match="book columns"):
        build_model("deeplob", n_features=40, levels=10, book_columns=[0, 1, 2])


def _fold(events, levels, groups):
    p = FeatureParams(levels=levels)
    cfg = LabelConfig()
    fr = pl.concat([compute_features(events, p, groups), compute_targets(events, cfg, p)], how="horizontal")
    fold = walk_forward([(s, e) for *_, s, e in day_groups(fr)], window=50, max_horizon=100, blocks=4, train_blocks=2)[
        0
    ]
    names = feature_names(p, groups)
    return FoldData.build(fr, names, fold, cfg, window=50), names


def _train_steps(name, data, names, levels, steps=15):
    torch.manual_seed(0)
    kw = {"dt_index": names.index("log_dt")} if name in ("transformer", "hybrid") else {}
    if name == "deeplob":
        kw = {
            "levels": levels,
            "book_columns": [
                i for i, n in enumerate(names) if n.startswith(("ask_dist", "ask_sz", "bid_dist", "bid_sz"))
            ],
        }
    m = build_model(name, n_features=len(names), n_horizons=3, **kw)
    loss_fn = LobLoss("ce_sharpe", lam=0.1, cost=1e-5)
    opt = torch.optim.Adam(m.parameters(), lr=3e-3)
    loader = torch.utils.data.DataLoader(data.train, batch_size=64, shuffle=False)
    xb, yb, rb = next(iter(loader))
    losses = []
    for _ in range(steps):  # overfit one real batch: the model, heads and both losses train end to end
        opt.zero_grad()
        logits, pos = m(xb)
        loss = loss_fn(logits, pos, yb, rb)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0], (name, losses)


@pytest.mark.realdata
@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_trains_on_real_amzn(amzn5, name):
    groups = DEFAULT_GROUPS + ["book"]
    data, names = _fold(amzn5.head(20_000), 5, groups)
    _train_steps(name, data, names, 5)


@pytest.mark.parametrize("name", list(MODELS))
def test_each_model_trains_on_synthetic(synthetic_events, name):
    data, names = _fold(synthetic_events.head(8_000), 10, DEFAULT_GROUPS + ["book"])
    _train_steps(name, data, names, 10)
