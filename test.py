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

from models_utils import classification_metrics


@torch.no_grad()
def predict_proba(model: torch.nn.Module, x: torch.Tensor, amp: bool = False) -> torch.Tensor:
    """Standardised log-mels -> (B, n_classes) probabilities.

    x is (B, M, T) for one window per clip, or (B, K, M, T) for K windows per clip (utils.eval_windows),
    whose probabilities are averaged.
    """
    use_amp = amp and x.device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    windows = x if x.ndim == 4 else x[:, None]  # (B, M, T) -> (B, 1, M, T)
    B, K = windows.shape[:2]
    with autocast:
        logits = model(windows.flatten(0, 1)).float().view(B, K, -1)  # (B*K, M, T) -> (B, K, C)
    return logits.softmax(-1).mean(1)


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, classes: list[str], amp: bool = False) -> dict:
    """Loss (NLL of the clip probabilities), accuracy, macro-F1, per-class precision/recall, confusion
    matrix; plus `probs` (n_clips, n_classes) and `y_true` as arrays for callers that need them.

    The loader yields (x, y) with x as predict_proba takes it (whole clips, or K windows per clip).
    """
    model.eval()
    probs, targets = [], []
    for x, y in loader:
        probs.append(predict_proba(model, x.to(device, non_blocking=True), amp).cpu())
        targets.append(y)
    p = torch.cat(probs).numpy() if probs else np.zeros((0, len(classes)), np.float32)
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


def plot_curves(history: list[dict], path) -> None:
    """Loss and accuracy per epoch (train and validation), saved as PNG."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    epochs = [h["epoch"] for h in history]
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, key in zip(axes, ("loss", "accuracy")):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.plot(epochs, [h[f"train_{key}"] for h in history], "o-", label="train")
        ax.plot(epochs, [h[f"val_{key}"] for h in history], "o-", label="validation")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
