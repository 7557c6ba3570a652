"""Evaluation: one `evaluate(...)` for validation, test and evaluate-only runs, plus the run's plots.

Clip-level prediction uses either the whole cached clip, or the mean of the class probabilities
over K evenly spaced crops inside the real audio (utils.eval_windows): the same windowing that
pre_trained_models.py applies to songs of any length.

    python main.py --evaluate-only --checkpoint runs/NAME/best.pt   # re-evaluate a checkpoint on test
"""
from __future__ import annotations

import contextlib
import numpy as np
import torch

from models_utils import classification_metrics, multilabel_metrics, output_probs


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: torch.Tensor, amp: bool = False, multilabel: bool = False) -> torch.Tensor:
    """Standardised log-mels -> (B, n_classes) probabilities (softmax, or per-genre sigmoids when
    `multilabel`).

    x is (B, M, T) for one window per clip, or (B, K, M, T) for K windows per clip (utils.eval_windows),
    whose probabilities are averaged.
    """
    use_amp = amp and x.device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    windows = x if x.ndim == 4 else x[:, None]  # (B, M, T) -> (B, 1, M, T)
    B, K = windows.shape[:2]
    with autocast:
        logits = model(windows.flatten(0, 1)).float().view(B, K, -1)  # (B*K, M, T) -> (B, K, C)
    return output_probs(logits, multilabel).mean(1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, classes: list[str], amp: bool = False,
             multilabel: bool = False, threshold: float | None = None) -> dict:
    """Metrics of a model on a loader, plus `probs` (n_clips, n_classes) and `y_true` as arrays for
    callers that need them.

    Single-label (targets are class indices): loss (NLL of the clip probabilities), accuracy, macro-F1,
    per-class precision/recall, confusion matrix. Multi-label (`multilabel`, targets are multi-hot rows):
    loss (binary cross-entropy of the clip probabilities), macro/micro ROC-AUC, macro/micro AP, per-genre
    ROC-AUC and AP, and F1 at `threshold` (tuned on these clips when None: pass validation's to test);
    see models_utils.multilabel_metrics.

    The loader yields (x, y) with x as predict_proba takes it (whole clips, or K windows per clip).
    """
    model.eval()
    probs, targets = [], []
    for x, y in loader:
        probs.append(predict_proba(model, x.to(device, non_blocking=True), amp, multilabel).cpu())
        targets.append(y)
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(classes)), np.float32)
    if multilabel:
        y = torch.cat(targets).numpy() if targets else np.zeros((0, len(classes)), np.float32)
        q = np.clip(p, 1e-7, 1 - 1e-7)
        loss = float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean()) if len(y) else 0.0
        return {"loss": loss, **multilabel_metrics(y, p, classes, threshold), "probs": p, "y_true": y}
    y = torch.cat(targets).numpy() if targets else np.zeros(0, np.int64)
    loss = float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean()) if len(y) else 0.0
    return {"loss": loss, **classification_metrics(y, p.argmax(1), classes), "probs": p, "y_true": y}


def plot_confusion(cm, classes: list[str], path, title: str = "") -> None:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    cm = np.asarray(cm)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(5.0, 0.55 * len(classes) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(len(classes)):
        for j in range(len(classes)):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of true class")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_curves(history: list[dict], path, metric: str = "accuracy") -> None:
    """Loss and `metric` (accuracy; macro_roc_auc for multi-label runs) per epoch, train (when recorded)
    and validation, saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", metric)):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if f"train_{key}" in history[0]:
            ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_auc_vs_count(rows: list[dict], path, title: str = "") -> None:
    """Per-genre test ROC-AUC against the genre's number of training positives (log scale), one point
    per scored genre, top-level genres marked; saved as PNG. `rows` as in per_genre_auc.csv."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    rows = [r for r in rows if np.isfinite(r["roc_auc"])]
    fig, ax = plt.subplots(figsize=(8, 5))
    for top, style in ((False, dict(c="tab:blue", label="sub-genre")), (True, dict(c="tab:red", marker="s",
                                                                                    label="top-level genre"))):
        pts = [r for r in rows if (r["parent_id"] == 0) == top]
        if pts:
            ax.scatter([max(r["train_positives"], 1) for r in pts], [r["roc_auc"] for r in pts], alpha=0.7, **style)
    if len(rows) <= 40:  # name the points when they stay readable
        for r in rows:
            ax.annotate(r["title"], (max(r["train_positives"], 1), r["roc_auc"]), fontsize=6,
                        xytext=(3, 2), textcoords="offset points")
    ax.axhline(0.5, color="grey", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("training examples of the genre (positives)")
    ax.set_ylabel("test ROC-AUC")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
