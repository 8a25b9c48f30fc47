"""The CUDA path: every model computes on the GPU what it computes on the CPU, the step modules stream there, and
``trainer=gpu`` trains a model that exports for the CPU streamer with parity. CI has no GPU, so these skip there
(with the reason); on a machine with one: ``pytest tests/test_cuda.py``."""

from __future__ import annotations

import pytest
import torch

from .test_train import _compose, _overrides

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="no CUDA device (torch.cuda.is_available() is False): the GPU path is untested",
)

ARCHS = ["lstm", "tcn", "transformer", "hybrid", "deeplob"]


@pytest.fixture
def fp32():
    """Plain float32 on the GPU (no TF32 in matrix products and convolutions), as on the CPU."""
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize("name", ARCHS)
def test_every_model_and_its_step_compute_on_the_gpu_what_they_compute_on_the_cpu(name, fp32):
    from lobnet.models import build_model
    from lobnet.models.streaming import StepModule, carry, has_step, sequence_outputs

    F, W = 44, 50
    extra = {"book_columns": list(range(40))} if name == "deeplob" else {}
    if name in ("transformer", "hybrid"):
        extra["dt_index"] = F - 1
    torch.manual_seed(0)
    model = build_model(name, n_features=F, n_horizons=3, **extra).eval()
    x = torch.randn(4, W, F)
    with torch.no_grad():
        ref = model(x)
        got = model.to("cuda")(x.cuda())
    for r, g in zip(ref, got, strict=True):
        assert g.is_cuda and (g.cpu() - r).abs().max() < 1e-4
    if not has_step(model):
        return
    model.to("cpu")
    step = StepModule(model, span=W).eval().to("cuda")
    state = [s.cuda() for s in step.initial_state(4)]
    shapes = [shape for _, shape in step.state_shapes()]
    seq = torch.randn(4, 2 * W, F)
    with torch.no_grad():
        ref_logits, _ = sequence_outputs(model, seq, W)
        for t in range(seq.shape[1]):  # past the window: the attention cache's ring wraps round
            logits, _, *new = step(seq[:, t].cuda(), *state)
            state = [carry(n, s) for n, s in zip(new, shapes, strict=True)]
            assert (logits.cpu() - ref_logits[:, t]).abs().max() < 1e-4, f"event {t}"


def test_trainer_gpu_trains_a_model_that_exports_for_the_cpu_streamer(tmp_path):
    from lobnet.cli import train
    from lobnet.live.export import export_checkpoint

    r = train.run(_compose("train", _overrides(tmp_path, "model=tcn", "trainer=gpu")))
    assert len(r["folds"]) == 2 and 0 <= r["summary"]["test/macro_f1"] <= 1
    ckpt = next((tmp_path / "train").glob("run-*/fold_0/best.ckpt"))
    weights = torch.load(ckpt, weights_only=False)["state_dict"]  # tensors come back where they were saved from
    assert {w.device.type for w in weights.values()} == {"cuda"}
    rep = export_checkpoint(ckpt, tmp_path / "export")  # on the CPU, as the streamer runs it
    assert rep["max_abs_diff_window"] <= 1e-5 and rep["max_abs_diff_step"] <= 1e-5
