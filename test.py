"""Evaluation: one `evaluate(...)` for validation, test and evaluate-only runs, plus the run's plots;
an ensemble's metrics are `score(...)` of its members' averaged probabilities (`average_probs`), once
`ensemble_mismatch` has found nothing that keeps them apart.

Clip-level prediction uses either the whole cached clip, or the mean of the class probabilities
over K evenly spaced crops inside the real audio (utils.eval_windows): the same windowing that
pre_trained_models.py applies to songs of any length.

    python main.py --evaluate-only --checkpoint runs/NAME/best.pt   # re-evaluate a checkpoint on test
    python main.py --evaluate-only --checkpoint runs/A runs/B       # an ensemble of two checkpoints
"""
from __future__ import annotations

import contextlib
import numpy as np
import torch

from distributed import Dist, gather_batches
from metrics import classification_metrics, multilabel_metrics
from models_utils import output_probs
from train import BatchProgress


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
             multilabel: bool = False, threshold: float | None = None, progress: bool = False,
             dist: Dist | None = None) -> dict:
    """Metrics of a model on a loader (`score` of its clip probabilities), plus `probs` (n_clips,
    n_classes) and `y_true` as arrays for callers that need them (test_predictions.csv, intervals,
    ensembles).

    The loader yields (x, y) with x as predict_proba takes it (whole clips, or K windows per clip).
    `progress` shows a per-batch bar on a terminal (train.BatchProgress; off by default).
    Under torchrun (`dist`), each rank's loader yields its share of the batches (distributed.ShardedBatches)
    and `model` is the plain module (not its DistributedDataParallel); the batches are gathered on rank 0
    in single-process order and scored there, and every rank returns rank 0's result.
    """
    model.eval()
    batches = []
    with BatchProgress(loader, progress, "evaluate") as bar:
        for x, y in loader:
            batches.append((predict_proba(model, x.to(device, non_blocking=True), amp, multilabel).cpu(), y))
            bar.update(len(y), clip_loss(y.numpy(), batches[-1][0].numpy(), multilabel) if bar.shown else None)
    if dist is not None and dist.enabled:
        batches = gather_batches(dist, batches)
        return dist.broadcast(_score_batches(batches, classes, multilabel, threshold) if dist.main else None)
    return _score_batches(batches, classes, multilabel, threshold)


def _score_batches(batches: list, classes: list[str], multilabel: bool, threshold: float | None) -> dict:
    """`score` of evaluated (probabilities, targets) batches."""
    p = torch.cat([b[0] for b in batches]).numpy() if batches else np.zeros((0, len(classes)), np.float32)
    if batches:
        y = torch.cat([b[1] for b in batches]).numpy()
    else:
        y = np.zeros((0, len(classes)), np.float32) if multilabel else np.zeros(0, np.int64)
    return score(y, p, classes, multilabel, threshold)


def score(y: np.ndarray, p: np.ndarray, classes: list[str], multilabel: bool = False,
          threshold: float | None = None) -> dict:
    """Metrics of clip probabilities `p` (n_clips, n_classes) against targets `y`, with `probs` and
    `y_true`: what `evaluate` returns, and what an ensemble's averaged probabilities get.

    Single-label (targets are class indices): loss (NLL of the clip probabilities), accuracy, macro-F1,
    per-class precision/recall, confusion matrix. Multi-label (`multilabel`, targets are multi-hot rows):
    loss (binary cross-entropy of the clip probabilities), macro/micro ROC-AUC, macro/micro AP, per-genre
    ROC-AUC and AP, and F1 at `threshold` (tuned on these clips when None: pass validation's to test);
    see metrics.multilabel_metrics.
    """
    loss = clip_loss(y, p, multilabel)
    if multilabel:
        return {"loss": loss, **multilabel_metrics(y, p, classes, threshold), "probs": p, "y_true": y}
    return {"loss": loss, **classification_metrics(y, p.argmax(1), classes), "probs": p, "y_true": y}


def clip_loss(y: np.ndarray, p: np.ndarray, multilabel: bool = False) -> float:
    """Mean loss of clip probabilities `p` against targets `y`: NLL of the true class (class indices), or
    binary cross-entropy over every genre (multi-hot rows, `multilabel`); 0 without clips. The loss of
    `score`, and of each batch in evaluate's progress bar."""
    if not len(y):
        return 0.0
    if multilabel:
        q = np.clip(p, 1e-7, 1 - 1e-7)
        return float(-(y * np.log(q) + (1 - y) * np.log(1 - q)).mean())
    return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())


# ------------------------------------------------------------------------------------------ ensembles

def average_probs(probs: list[np.ndarray]) -> np.ndarray:
    """An ensemble's probabilities: the mean of its members' (each (n, n_classes), same rows and classes)."""
    return np.mean(np.stack(probs), axis=0)


def _kind(state: dict) -> str:
    """What a checkpoint predicts, in words: the one thing ensemble members must share before classes."""
    if state.get("target", "top") != "all":
        return "a genre classifier (--target top)"
    if not state.get("genres"):
        return f"a tagger ({len(state['classes'])} tags, no FMA genres)"
    return "a multi-label genre classifier (--target all)"


def _vocabulary(state: dict) -> list[str]:
    genres = state.get("genres") or {}
    return [f"{i} {t}" for i, t in zip(genres.get("ids", []), genres.get("titles", []))]


def _differ(a: list, b: list) -> tuple[str, str]:
    """The items of `a` and of `b` that tell them apart: those only one has, else (same items in
    another order) the first position where they differ."""
    only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
    if only_a or only_b or len(a) != len(b):
        return f"[{', '.join(map(str, only_a))}]", f"[{', '.join(map(str, only_b))}]"
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"{a[i]!r} at position {i}", f"{b[i]!r} there (the same items in another order)"


def ensemble_mismatch(members: list[tuple[str, dict]]) -> str | None:
    """Why the checkpoints `members` ((path, state) pairs) cannot be averaged, or None when they can:
    their probabilities must mean the same things, i.e. the same kind of model (a tagger only with
    taggers), the same classes in the same order and, multi-label, the same FMA genre vocabulary.
    Audio parameters, windows and normalisation may differ: each member uses its own."""
    (first, ref), rest = members[0], members[1:]
    for path, state in rest:
        if _kind(state) != _kind(ref):
            return (f"members disagree on what they predict: {first} is {_kind(ref)}, {path} is {_kind(state)}; "
                    f"only models of one kind can be ensembled")
        for what, get in (("their classes", lambda s: [str(c) for c in s["classes"]]),
                          ("their genre vocabulary", _vocabulary)):
            if get(state) != get(ref):
                mine, theirs = _differ(get(ref), get(state))
                return f"members disagree on {what}: {first} has {mine}, {path} has {theirs}"
    return None


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
