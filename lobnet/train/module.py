"""The LightningModule: a lobnet model, its loss, the optimiser, and metrics at the end of each evaluation epoch.

Per-epoch logging only (``on_epoch=True``): MLflow's SQLite store costs ~13 ms per metric call, so per-step
logging would dominate a CPU run. Dropout's randomness is reseeded before every batch from (seed, epoch, batch),
so a run resumed from a checkpoint continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning.pytorch as L
import numpy as np
import torch

from lobnet.evaluation.metrics import classification_metrics, forecast_positions, trading_metrics
from lobnet.models import LOBModel
from lobnet.prep.labels import logit_mask
from lobnet.train.losses import LobLoss


@dataclass(frozen=True)
class OptimizerSettings:
    """The optimiser (``conf/optimizer``, built by ``_target_`` like a model)."""

    name: str = "adamw"  # adamw | adam
    lr: float = 1e-3
    weight_decay: float = 0.0

    def build(self, params) -> torch.optim.Optimizer:
        optimizers = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam}
        if self.name not in optimizers:
            raise ValueError(f"unknown optimizer {self.name!r}; known: {list(optimizers)}")
        return optimizers[self.name](params, lr=self.lr, weight_decay=self.weight_decay)


class LOBModule(L.LightningModule):
    def __init__(
        self,
        model: LOBModel,
        loss: LobLoss,
        horizons: tuple[int, ...],
        optimizer: OptimizerSettings | None = None,
        cost: float = 0.0,
        events_per_day: float = 1e5,
        seed: int = 0,
        classes: tuple[int, ...] = (0, 1, 2),
    ):
        super().__init__()
        self.model, self.loss_fn = model, loss
        self.classes = tuple(classes)
        # added to the logits (lobnet.prep.labels.logit_mask); not a parameter, not saved
        self.register_buffer("logit_mask", torch.from_numpy(logit_mask(self.classes)), persistent=False)
        self.horizons = tuple(horizons)
        self.optimizer, self.cost = optimizer or OptimizerSettings(), cost
        self.events_per_day, self.seed = events_per_day, seed
        self._outputs: dict[str, list] = {"val": [], "test": []}
        self.results: dict[str, dict] = {}  # the last evaluation's metrics per stage, and its raw arrays

    def forward(self, x: torch.Tensor):
        return self.model(x)

    def on_train_batch_start(self, batch, batch_idx: int) -> None:
        # dropout draws from (seed, epoch, batch) only, never from whatever else consumed the global generator:
        # a run resumed from a checkpoint (fresh process, different RNG history) replays the same batches exactly
        torch.manual_seed((self.seed * 1_000_003 + self.current_epoch) * 1_000_003 + batch_idx)

    def training_step(self, batch, batch_idx):
        x, y, r = batch
        logits, pos = self.model(x)
        logits = logits + self.logit_mask
        loss = self.loss_fn(logits, pos, y, r)
        self.log("train/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0])
        return loss

    def _eval_step(self, batch, stage: str):
        x, y, r = batch
        logits, pos = self.model(x)
        logits = logits + self.logit_mask
        loss = self.loss_fn(logits, pos, y, r)
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, batch_size=x.shape[0], prog_bar=stage == "val")
        self._outputs[stage].append((logits.softmax(-1).detach().cpu(), pos.detach().cpu(), y.cpu(), r.cpu()))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._eval_step(batch, "test")

    def _epoch_outputs(self, stage: str) -> list[np.ndarray] | None:
        """The evaluation epoch's collected outputs as arrays, each concatenated over batches in time order (under
        DDP, gathered from every rank); None when there were none. Clears the collection."""
        outs = self._outputs[stage]
        if not outs:
            return None
        tensors = [torch.cat(t) for t in zip(*outs, strict=True)]
        outs.clear()
        if self.trainer.world_size > 1:
            tensors = self._gather_in_time_order(tensors, stage)
        return [t.numpy() for t in tensors]

    def _log_results(self, stage: str, metrics: dict, **arrays) -> None:
        self.results[stage] = {"metrics": metrics, **arrays}
        for k, v in metrics.items():
            self.log(f"{stage}/{k}", v, on_step=False, on_epoch=True)

    def _eval_epoch_end(self, stage: str) -> None:
        arrays = self._epoch_outputs(stage)
        if arrays is None:
            return
        prob, pos, y, r = arrays
        metrics = evaluate(
            prob, pos, y, r, self.horizons, self.loss_fn.kind, self.cost, self.events_per_day, self.classes
        )
        self._log_results(stage, metrics, prob=prob, position=pos, y=y, returns=r)

    def _gather_in_time_order(self, tensors: list[torch.Tensor], stage: str) -> list[torch.Tensor]:
        """Under DDP each rank evaluates samples rank, rank + W, ... (DistributedSampler, no shuffling, padded to
        equal shards): gather every rank's outputs and restore time order, which the turnover metrics need."""
        loaders = self.trainer.val_dataloaders if stage == "val" else self.trainer.test_dataloaders
        n = len(loaders.dataset)
        out = []
        for t in tensors:
            g = self.all_gather(t)  # (world, n_local, ...)
            out.append(g.transpose(0, 1).reshape(-1, *t.shape[1:])[:n].cpu())
        return out

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self):
        return self.optimizer.build(self.parameters())


def evaluate(
    prob: np.ndarray,
    pos: np.ndarray,
    y: np.ndarray,
    r: np.ndarray,
    horizons: tuple[int, ...],
    loss_kind: str,
    cost: float,
    events_per_day: float,
    classes: tuple[int, ...] = (0, 1, 2),
) -> dict[str, float]:
    """Metrics per horizon, keyed ``<metric>_h<k>``, over the label's ``classes``. Trading uses the position head
    for Sharpe-trained models and the predicted class's sign for cross-entropy ones."""
    out: dict[str, float] = {}
    for h, k in enumerate(horizons):
        for name, v in classification_metrics(y[:, h], prob[:, h], classes).items():
            out[f"{name}_h{k}"] = v
        p = forecast_positions(prob[:, h], pos[:, h], loss_kind)
        for name, v in trading_metrics(p, r[:, h], cost, k, events_per_day).items():
            out[f"{name}_h{k}"] = v
    return out
