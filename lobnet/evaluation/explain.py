"""What a trained fold reads, on its test block (``lobnet-explain``; ``lobnet-train explain=true`` for every fold).

Three readings, each on the same evenly spaced test windows (``ExplainSettings.windows``), at the primary horizon:

* **Attention** (Transformer, hybrid): the weights of every layer and head. The prediction is made from the last
  event's representation, so what a head reads is its last query row: its weights over the window by lag (0 the
  current event), averaged over the windows, overall and per predicted class; each head's mean lag; a few single
  windows beside the mid and OFI they saw.
* **Permutation importance by feature group**, for every model, baselines included: a group's columns shuffled
  across the explained samples (whole windows for a deep model, the design columns a baseline reads, which come
  from the same features), ``permutations`` times; the drop in macro-F1 and the rise in log-loss against the
  unshuffled inputs, each with a circular block-bootstrap interval over the samples (:mod:`arch`; the drop's by
  :func:`lobnet.evaluation.stats.paired_delta_f1`). Groups are the feature catalogue's, with OFI and the book
  split by level (:func:`feature_groups`).
* **Integrated gradients** (Captum), for the deep models: the attribution of the predicted class's probability to
  every feature at every lag of the window, from a baseline that carries no information: the training mean, which
  is 0 in the z-scored inputs. Reported as the mean absolute attribution, feature x lag, overall and per predicted
  class, and summed by group and by lag. ``attribution_windows`` bounds its cost (``ig_steps`` forward and
  backward passes per window).

For ``logreg`` and ``gbdt`` the fitted coefficients (sum of absolute standardised coefficients) and gain
importances are added in the same group terms (``learned``). Cost is bounded by the window counts and stated in
``explain.json`` (``seconds``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from lobnet.evaluation import stats
from lobnet.prep.labels import CLASS_NAMES

EXPLAIN = "explain.json"


@dataclass(frozen=True)
class ExplainSettings:
    """``conf/explain`` (lobnet-train ``explain.*``, lobnet-explain)."""

    windows: int = 512  # test windows explained, evenly spaced over the test block
    permutations: int = 3  # shuffles per feature group
    attribution_windows: int = 128  # of those, the ones integrated gradients attributes (the costly part)
    ig_steps: int = 32  # integrated gradients' steps from the baseline to the input
    examples: int = 3  # single windows shown with their attention
    reps: int = 499  # bootstrap draws of the intervals
    level: float = 0.95  # of the intervals
    seed: int = 0


def feature_groups(names: list[str], features: dict) -> dict[str, list[int]]:
    """Feature group -> column indices in ``names``, from the catalogue: each group of the card's feature spec
    (``features``: its fields and ``levels``), with ``ofi`` and ``book`` split by level (``ofi_L1``, ...)."""
    from lobnet.features import CATALOGUE, FeatureSpec

    spec = FeatureSpec(**{k: v for k, v in features.items() if k != "levels"})
    params = spec.params(int(features.get("levels", 0)))
    out: dict[str, list[int]] = {}
    for g in spec.groups:
        for c in CATALOGUE[g].columns(params):
            if c not in names:
                continue
            key = f"{g}_L{c.rsplit('_', 1)[1]}" if g in ("ofi", "book") else g
            out.setdefault(key, []).append(names.index(c))
    seen = {i for cols in out.values() for i in cols}
    for i, n in enumerate(names):  # a column no group names (should not happen) is its own group
        if i not in seen:
            out[n] = [i]
    return out


def attention_weights(model: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The causal attention weights of every attention layer for input ``x`` (B, W, F): [(B, heads, W, W)], each
    query row summing to 1 over the keys at or before it. Empty for models without attention."""
    from lobnet.models.transformer import CausalSelfAttention

    maps, hooks = [], []

    def hook(mod, args):
        maps.append(mod.weights(args[0], args[1] if len(args) > 1 else None).detach())

    for m in model.modules():
        if isinstance(m, CausalSelfAttention):
            hooks.append(m.register_forward_pre_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return maps


def _block(n: int, horizon_samples: int) -> int:
    return stats.block_length(n, max(1, horizon_samples))


def _mean_interval(x: np.ndarray, block: int, s: ExplainSettings) -> list[float]:
    from arch.bootstrap import CircularBlockBootstrap

    bs = CircularBlockBootstrap(block, x, seed=s.seed)
    draws = np.array([d[0][0].mean() for d in bs.bootstrap(s.reps)])
    lo, hi = np.quantile(draws, [(1 - s.level) / 2, (1 + s.level) / 2])
    return [float(lo), float(hi)]


def permutation_importance(
    predict,
    Z: np.ndarray,
    sources: list[int],
    y: np.ndarray,
    groups: dict[str, list[int]],
    classes,
    block: int,
    s: ExplainSettings,
) -> dict[str, dict]:
    """``predict``: inputs like ``Z`` (samples first, columns last) -> (N, 3) probabilities; ``sources[c]``: the
    feature column ``Z``'s column c comes from; ``groups``: group -> feature columns. Per group: ``f1_drop``
    (macro-F1 unshuffled minus shuffled) and ``logloss_rise`` (shuffled minus unshuffled), each with its interval;
    a group the inputs do not read scores exactly 0."""
    base = predict(Z)
    base_pred, base_ll = base.argmax(-1), stats.log_loss(y, base)
    rng = np.random.default_rng(s.seed)
    src = np.asarray(sources, dtype=np.int64)
    out = {}
    for g, feats in groups.items():
        cols = np.flatnonzero(np.isin(src, feats))
        if cols.size == 0:
            out[g] = {"f1_drop": 0.0, "f1_drop_ci": [0.0, 0.0], "logloss_rise": 0.0, "logloss_rise_ci": [0.0, 0.0]}
            continue
        preds, lls = [], []
        for _ in range(s.permutations):
            perm = rng.permutation(len(Z))
            Zp = Z.copy()
            Zp[..., cols] = Z[perm][..., cols]
            p = predict(Zp)
            preds.append(p.argmax(-1))
            lls.append(stats.log_loss(y, p))
        drop, lo, hi = stats.paired_delta_f1(y, base_pred, np.stack(preds), block, s.reps, s.level, s.seed, classes)
        rise = np.mean(lls, axis=0) - base_ll
        out[g] = {
            "f1_drop": drop,
            "f1_drop_ci": [lo, hi],
            "logloss_rise": float(rise.mean()),
            "logloss_rise_ci": _mean_interval(rise, block, s),
        }
    return out


def _deep_predict(model, h: int, mask: torch.Tensor, batch: int = 256):
    def predict(X: np.ndarray) -> np.ndarray:
        out = []
        with torch.no_grad():
            for i in range(0, len(X), batch):
                logits, _ = model(torch.from_numpy(np.ascontiguousarray(X[i : i + batch])))
                out.append(torch.softmax(logits[:, h] + mask, -1).numpy())
        return np.concatenate(out)

    return predict


def integrated_gradients(
    model, X: np.ndarray, target: np.ndarray, h: int, mask: torch.Tensor, steps: int
) -> np.ndarray:
    """Captum's integrated gradients of the probability of class ``target`` (per window) at horizon ``h`` with
    respect to the window, from the all-zero window (the training mean of z-scored inputs): (N, W, F)."""
    from captum.attr import IntegratedGradients

    def forward(x):
        logits, _ = model(x)
        return torch.softmax(logits[:, h] + mask, -1)

    x = torch.from_numpy(np.ascontiguousarray(X))
    ig = IntegratedGradients(forward)
    with torch.enable_grad():
        attr = ig.attribute(
            x, baselines=torch.zeros_like(x), target=torch.from_numpy(target), n_steps=steps, internal_batch_size=256
        )
    return attr.detach().numpy()


def _by_class(values: np.ndarray, pred: np.ndarray, classes) -> dict[str, list]:
    """The mean of ``values`` (N, ...) over the windows predicted as each class."""
    return {CLASS_NAMES[c]: values[pred == c].mean(0).tolist() for c in classes if (pred == c).any()}


def attention_summary(model, X: np.ndarray, pred: np.ndarray, classes) -> list[dict] | None:
    """Per layer: the last query's weights by lag, (heads, W) averaged over the windows (``head_lag``), overall and
    per predicted class, the mean over heads (``lag_profile``) and each head's mean lag."""
    layers = None
    for i in range(0, len(X), 128):
        got = attention_weights(model, torch.from_numpy(np.ascontiguousarray(X[i : i + 128])))
        if not got:
            return None  # no attention layers
        last = [m[:, :, -1, :].flip(-1).numpy() for m in got]  # (B, heads, W), lag 0 first
        layers = last if layers is None else [np.concatenate([a, b]) for a, b in zip(layers, last, strict=True)]
    out = []
    for w in layers:
        mean = w.mean(0)  # (heads, W)
        lags = np.arange(w.shape[-1])
        out.append(
            {
                "head_lag": mean.tolist(),
                "lag_profile": mean.mean(0).tolist(),
                "mean_lag_per_head": (mean * lags).sum(-1).tolist(),
                "per_class": _by_class(w, pred, classes),
            }
        )
    return out


def learned_importance(learned: dict, sources_of: dict[str, int], groups: dict[str, list[int]]) -> dict | None:
    """A fitted logreg's coefficients (sum of |coefficient| over classes and design columns, standardised inputs)
    or a gbdt's gains at one horizon (``learned``: its entry of the baseline's summary), summed by feature group:
    the baselines' own reading, beside the permutations. None for baselines with neither."""
    if "coef" in learned:
        kind, per_col = "abs_coef", {c: float(np.abs(v).sum()) for c, v in learned["coef"].items()}
    elif "gain" in learned:
        kind, per_col = "gain", {c: float(v) for c, v in learned["gain"].items()}
    else:
        return None
    owner = {i: g for g, cols in groups.items() for i in cols}
    by_group = dict.fromkeys(groups, 0.0)
    for c, v in per_col.items():
        by_group[owner[sources_of[c.split("@")[0]]]] += v
    return {"kind": kind, "by_group": by_group}


def explain_fold(
    model,
    data,
    features: dict,
    labels,
    horizon_index: int,
    s: ExplainSettings,
    frame=None,
    baseline_view=None,
) -> dict:
    """The fold's readings (module docstring) on its test block. ``model``: a deep model, or a fitted baseline
    with its ``baseline_view`` (:class:`lobnet.models.baselines.TabularView`); ``data``: its
    :class:`~lobnet.prep.windows.FoldData`; ``features``: the card's feature spec and levels; ``frame``: the
    prepared table, for the mid and OFI beside the attention examples."""
    t0 = time.perf_counter()
    test = data.test
    h, k = horizon_index, labels.horizons[horizon_index]
    n = min(s.windows, len(test))
    idx = np.unique(np.linspace(0, len(test) - 1, n).astype(int))
    spacing = max(1, len(test) // max(len(idx), 1))  # test samples between two explained windows
    y = test.y[test.samples[idx]][:, h].numpy()
    names = list(data.feature_names)
    groups = feature_groups(names, features)
    block = _block(len(idx), int(np.ceil(k / spacing)))
    classes = labels.classes
    mask = torch.from_numpy(labels.logit_mask())
    result = {
        "horizon": k,
        "windows": len(idx),
        "test_samples": len(test),
        "settings": asdict(s),
        "groups": {g: [names[i] for i in cols] for g, cols in groups.items()},
        "attention": None,
        "attribution": None,
        "learned": None,
    }
    if baseline_view is not None:
        Z, cols = model.inputs(baseline_view, "test")
        Z = Z[idx]
        sources = [names.index(c) for c in cols]

        def predict(Zp):
            return model.predict_inputs(Zp)[:, h]

        result["importance"] = permutation_importance(predict, Z, sources, y, groups, classes, block, s)
        learned = model.summary()["learned"][h]
        result["learned"] = learned_importance(learned, {n: i for i, n in enumerate(names)}, groups)
        result["seconds"] = time.perf_counter() - t0
        return result
    model.eval()
    X = np.stack([test[int(i)][0].numpy() for i in idx]).astype(np.float32)  # (N, W, F)
    predict = _deep_predict(model, h, mask)
    pred = predict(X).argmax(-1)
    result["importance"] = permutation_importance(predict, X, list(range(len(names))), y, groups, classes, block, s)
    result["attention"] = attention_summary(model, X, pred, classes)
    m = min(s.attribution_windows, len(X))
    sub = np.unique(np.linspace(0, len(X) - 1, m).astype(int))
    attr = np.abs(integrated_gradients(model, X[sub], pred[sub], h, mask, s.ig_steps))  # (m, W, F)
    fl = attr.transpose(0, 2, 1)[:, :, ::-1]  # (m, F, W): feature x lag, lag 0 the current event
    result["attribution"] = {
        "windows": len(sub),
        "features": names,
        "abs_mean": fl.mean(0).tolist(),
        "per_class": _by_class(fl, pred[sub], classes),
        "by_group": {g: fl[:, cols].sum(1).mean(0).tolist() for g, cols in groups.items()},
        "by_lag": fl.sum(1).mean(0).tolist(),
    }
    if frame is not None and s.examples:
        rows = test.samples[idx].numpy()
        ex = np.unique(np.linspace(0, len(idx) - 1, min(s.examples, len(idx))).astype(int))
        W = X.shape[1]
        result["_examples"] = [
            {
                "row": int(rows[e]),
                "predicted": CLASS_NAMES[int(pred[e])],
                "true": CLASS_NAMES[int(y[e])],
                "mid": _column(frame, "mid", rows[e], W),
                "ofi_1": _column(frame, "ofi_1", rows[e], W),
                "attention": [
                    a[0, :, -1, :].mean(0).flip(-1).tolist()
                    for a in attention_weights(model, torch.from_numpy(X[e : e + 1]))
                ],
            }
            for e in ex
        ]
    result["seconds"] = time.perf_counter() - t0
    return result


def _column(frame, name: str, row: int, W: int) -> list[float] | None:
    if name not in frame.columns:
        return None
    return frame[name][row - W + 1 : row + 1].cast(float).fill_null(float("nan")).to_list()


def write(out: Path, result: dict, title: str) -> list[Path]:
    """``explain.json`` and the figures into ``out``; returns the files written."""
    from lobnet.evaluation.plots import pyplot

    plt = pyplot()
    out.mkdir(parents=True, exist_ok=True)
    files = []
    examples = result.pop("_examples", None)
    imp = result["importance"]
    order = sorted(imp, key=lambda g: -imp[g]["logloss_rise"])[:25]
    fig, axes = plt.subplots(1, 2, figsize=(10, 0.28 * len(order) + 1.5), sharey=True)
    for ax, key, label in ((axes[0], "f1_drop", "drop in macro-F1"), (axes[1], "logloss_rise", "rise in log-loss")):
        v = np.array([imp[g][key] for g in order])
        ci = np.array([imp[g][f"{key}_ci"] for g in order])
        ax.barh(range(len(order)), v, xerr=np.abs(ci.T - v), color="tab:blue", ecolor="grey")
        ax.axvline(0, color="k", lw=0.6)
        ax.set_xlabel(label)
    axes[0].set_yticks(range(len(order)), order, fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(
        f"{title}: permutation importance, h={result['horizon']} ({result['windows']} test windows)", fontsize=9
    )
    fig.tight_layout()
    files.append(out / "importance.png")
    fig.savefig(files[-1], dpi=100)
    plt.close(fig)
    if result["attribution"] is not None:
        a = result["attribution"]
        fl = np.array(a["abs_mean"])
        top = np.argsort(-fl.sum(1))[:30]
        fig, ax = plt.subplots(figsize=(8, 0.22 * len(top) + 1.5))
        im = ax.imshow(fl[top], aspect="auto", cmap="magma")
        ax.set_yticks(range(len(top)), [a["features"][i] for i in top], fontsize=6)
        ax.set_xlabel("lag (events before the prediction)")
        ax.set_title(f"{title}: |integrated gradients|, feature x lag ({a['windows']} windows)", fontsize=9)
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        files.append(out / "attribution.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
    if result["attention"]:
        layers = result["attention"]
        fig, axes = plt.subplots(1, len(layers) + 1, figsize=(4 * (len(layers) + 1), 3.2), squeeze=False)
        for i, layer in enumerate(layers):
            ax = axes[0, i]
            ax.imshow(np.array(layer["head_lag"]), aspect="auto", cmap="viridis")
            ax.set_xlabel("lag")
            ax.set_ylabel("head")
            ax.set_title(f"layer {i}: last query's attention", fontsize=9)
            axes[0, -1].plot(layer["lag_profile"], label=f"layer {i}")
        axes[0, -1].set_xlabel("lag")
        axes[0, -1].set_title("mean over heads", fontsize=9)
        axes[0, -1].legend(fontsize=7)
        fig.tight_layout()
        files.append(out / "attention.png")
        fig.savefig(files[-1], dpi=100)
        plt.close(fig)
        if examples:
            fig, axes = plt.subplots(2, len(examples), figsize=(4 * len(examples), 5), squeeze=False)
            for j, e in enumerate(examples):
                top, bottom = axes[0, j], axes[1, j]
                if e["mid"] is not None:
                    top.plot(e["mid"][::-1], color="k", lw=0.8)
                    top.set_ylabel("mid")
                if e["ofi_1"] is not None:
                    top.twinx().bar(range(len(e["ofi_1"])), e["ofi_1"][::-1], color="tab:orange", alpha=0.4)
                top.set_title(f"row {e['row']}: predicted {e['predicted']}, true {e['true']}", fontsize=8)
                for i, att in enumerate(e["attention"]):
                    bottom.plot(att, label=f"layer {i}")
                bottom.set_xlabel("lag")
                bottom.legend(fontsize=6)
                top.invert_xaxis()
                bottom.invert_xaxis()
            fig.tight_layout()
            files.append(out / "attention_examples.png")
            fig.savefig(files[-1], dpi=100)
            plt.close(fig)
    files.append(out / EXPLAIN)
    files[-1].write_text(json.dumps(result, indent=1, default=float))
    return files
