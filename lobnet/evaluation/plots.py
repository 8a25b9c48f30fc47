"""Figures logged with every fold: loss curves, confusion matrices, precision-recall curves (also as JSON, so
``lobnet-compare`` can overlay them through MLflow's API), and attention maps for attention models."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_curve

from lobnet.prep.labels import CLASS_NAMES


def pyplot():
    """matplotlib's pyplot on the Agg backend (files, no display): the one matplotlib setup of lobnet."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def attention_maps(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Attention weights (heads averaged) of every causal attention layer for input x (1, W, F): [(W, W)]."""
    from lobnet.evaluation.explain import attention_weights

    return [w.mean(1)[0] for w in attention_weights(model, x)]


def _loss_curves(out: Path, plt, client, run_id) -> Path:
    """Train and validation loss by step, from the run's own metric history."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for key in ("train/loss", "val/loss"):
        hist = client.get_metric_history(run_id, key)
        if hist:
            hist = sorted(hist, key=lambda m: m.step)
            ax.plot([m.step for m in hist], [m.value for m in hist], "o-", ms=3, label=key)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "loss_curves.png", dpi=100)
    plt.close(fig)
    return out / "loss_curves.png"


def fold_artifacts(out: Path, module, data, labels, result: dict, feature_names, client, run_id) -> list[Path]:
    """The fold's figures and JSON; ``module`` None for a baseline (no loss curves, no attention)."""
    plt = pyplot()
    files: list[Path] = []
    horizons = labels.horizons
    if module is not None:
        files.append(_loss_curves(out, plt, client, run_id))
    prob, y = result["prob"], result["y"]
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.2 * len(horizons), 3.2))
    axes = np.atleast_1d(axes)
    for h, (k, ax) in enumerate(zip(horizons, axes, strict=True)):
        classes = list(labels.classes)  # binary labels: down (not up) and up
        cm = confusion_matrix(y[:, h], prob[:, h].argmax(1), labels=classes)
        ax.imshow(cm, cmap="Blues")
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8)
        names = [CLASS_NAMES[c] for c in classes]
        ax.set_xticks(range(len(classes)), names)
        ax.set_yticks(range(len(classes)), names)
        ax.set_title(f"h={k} (rows: true)")
    fig.tight_layout()
    files.append(out / "confusion_matrices.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    curves = {}
    fig, axes = plt.subplots(1, len(horizons), figsize=(3.2 * len(horizons), 3.2))
    axes = np.atleast_1d(axes)
    for h, (k, ax) in enumerate(zip(horizons, axes, strict=True)):
        curves[str(k)] = {}
        for c, name in enumerate(CLASS_NAMES):
            if not (y[:, h] == c).any():
                continue
            p, r, _ = precision_recall_curve(y[:, h] == c, prob[:, h, c])
            idx = np.unique(np.linspace(0, len(p) - 1, min(200, len(p))).astype(int))
            curves[str(k)][name] = {"precision": p[idx].tolist(), "recall": r[idx].tolist()}
            ax.plot(r, p, label=name)
        ax.set_xlabel("recall")
        ax.set_ylabel("precision")
        ax.set_title(f"h={k}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    files.append(out / "pr_curves.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    files.append(out / "pr_curves.json")
    files[-1].write_text(json.dumps(curves))
    files.append(out / "test_metrics.json")
    files[-1].write_text(json.dumps(result["metrics"], indent=1))
    if module is None:
        return files
    x0, _, _ = data.test[len(data.test) // 2]
    module.model.eval()
    maps = attention_maps(module.model, x0.unsqueeze(0))
    if maps:
        fig, axes = plt.subplots(1, len(maps), figsize=(3.6 * len(maps), 3.4))
        for i, (m, ax) in enumerate(zip(maps, np.atleast_1d(axes), strict=True)):
            ax.imshow(m.numpy(), cmap="viridis")
            ax.set_title(f"attention, layer {i} (query rows)")
        fig.tight_layout()
        files.append(out / "attention_maps.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    return files
