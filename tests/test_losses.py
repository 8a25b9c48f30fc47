"""Losses on hand-made cases: gradient signs, the turnover charge, class weights, contiguous batches."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lobnet.train.losses import (
    ContiguousBatchSampler,
    LobLoss,
    class_weights,
    cross_entropy,
    sharpe_loss,
    strategy_returns,
)


def test_sharpe_gradient_pushes_positions_towards_the_return_sign():
    returns = torch.tensor([[0.02], [0.01], [0.03], [-0.01]])
    pos = torch.full((4, 1), 0.1, requires_grad=True)
    sharpe_loss(pos, returns).backward()
    g = pos.grad.flatten()
    assert (g[:3] < 0).all()  # a longer position where the return is positive lowers the loss
    assert g[3] > 0  # and a shorter one where it is negative


def test_turnover_is_charged_and_constant_positions_pay_nothing():
    returns = torch.tensor([[0.01], [0.012], [0.009], [0.011], [0.01], [0.013]])
    flip = torch.tensor([[0.9], [-0.9], [0.9], [-0.9], [0.9], [-0.9]])
    hold = torch.full((6, 1), 0.9)
    assert sharpe_loss(flip, returns, cost=1e-3) > sharpe_loss(flip, returns, cost=0.0)
    assert sharpe_loss(hold, returns, cost=1e-3) == sharpe_loss(hold, returns, cost=0.0)
    r = strategy_returns(flip, returns, 0.5)
    assert r[0, 0] == pytest.approx(0.9 * 0.01)  # the first sample pays no turnover
    assert r[1, 0] == pytest.approx(-0.9 * 0.012 - 0.5 * 1.8)
    # returns that alternate in sign: flipping with them beats holding when trading is free, and loses once
    # each unit of turnover costs more than the edge
    alt = torch.tensor([[0.01], [-0.01]] * 10) + 0.002
    follow = torch.tensor([[0.9], [-0.9]] * 10)
    hold = torch.full((20, 1), 0.9)
    assert sharpe_loss(follow, alt, cost=0.0) < sharpe_loss(hold, alt, cost=0.0)
    assert sharpe_loss(follow, alt, cost=0.02) > sharpe_loss(hold, alt, cost=0.02)


def test_class_weights_are_inverse_frequency():
    y = np.array([[0, 1], [1, 1], [1, 1], [1, 2]])
    w = class_weights(y)
    assert w.shape == (2, 3)
    assert w[0, 0] > w[0, 1] and w[0, 2] == 0  # class 2 absent at horizon 0
    assert w[0, 0] == pytest.approx(4 / (3 * 1)) and w[0, 1] == pytest.approx(4 / (3 * 3))
    logits = torch.zeros(4, 2, 3)
    yt = torch.as_tensor(y)
    assert cross_entropy(logits, yt) == pytest.approx(np.log(3))
    assert torch.isfinite(cross_entropy(logits, yt, w))


def test_combined_loss_and_config_errors():
    torch.manual_seed(0)
    logits, pos = torch.randn(8, 2, 3), torch.tanh(torch.randn(8, 2))
    y, r = torch.randint(0, 3, (8, 2)), torch.randn(8, 2) * 1e-3
    ce, sh = LobLoss("ce")(logits, pos, y, r), LobLoss("sharpe")(logits, pos, y, r)
    assert LobLoss("ce_sharpe", lam=0.5)(logits, pos, y, r) == pytest.approx(ce + 0.5 * sh)
    with pytest.raises(ValueError):
        LobLoss("mse")


def test_contiguous_batches_cover_every_sample_once_in_time_order_within_a_batch():
    s = ContiguousBatchSampler(103, 10, shuffle=True, seed=3)
    batches = list(s)
    assert len(batches) == len(s) == 11
    assert sorted(i for b in batches for i in b) == list(range(103))
    assert all(b == list(range(b[0], b[0] + len(b))) for b in batches)
    assert [b[0] for b in batches] != sorted(b[0] for b in batches)  # batch order is shuffled
    assert [b[0] for b in ContiguousBatchSampler(103, 10, seed=3)] == [b[0] for b in batches]  # per seed
