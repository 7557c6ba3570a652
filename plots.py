"""The figures of a run and of a prediction: confusion matrix, training curves, per-genre AUC against
training examples, and a song's genre timeline under its log-mel (change a figure here).

Every function writes one PNG with matplotlib's Agg backend (no display needed).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np


def _pyplot():
    """matplotlib.pyplot on the Agg backend (imported on first use: it costs a second at start-up)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_confusion(cm, classes: list[str], path, title: str = "") -> None:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    plt = _pyplot()
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
    plt = _pyplot()
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
    plt = _pyplot()
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


TIMELINE_MAX_GENRES = 24  # a multi-label model's timeline shows the song's most probable genres, not all 163


def plot_timeline(spec: np.ndarray, seconds_per_frame: float, times: list[tuple[float, float]],
                  window_probs: np.ndarray, probs: np.ndarray, labels: list[str], duration: float, title: str,
                  path: Path) -> None:
    """A song's log-mel spectrogram `spec` (dB, (M, T)) on top and each window's genre probabilities under it,
    on the same time axis; windows span `times` (seconds), `window_probs` (n_windows, C). At most
    TIMELINE_MAX_GENRES genres: the song's most probable ones (`probs`), in the model's order. Audio after
    `duration` (padding) is marked."""
    plt = _pyplot()
    spec = spec.astype(np.float32)
    total = spec.shape[1] * seconds_per_frame
    centres = np.array([(t0 + t1) / 2 for t0, t1 in times])
    if len(centres) > 1:
        mids = (centres[1:] + centres[:-1]) / 2
        edges = np.concatenate([[max(0.0, 2 * centres[0] - mids[0])], mids, [min(total, 2 * centres[-1] - mids[-1])]])
    else:
        edges = np.array([times[0][0], min(total, times[0][1])])
    shown = np.sort(np.argsort(-probs, kind="stable")[:TIMELINE_MAX_GENRES])
    names = [labels[i] for i in shown]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(12, 3 + 0.28 * len(names) + 3), sharex=True,
                                   gridspec_kw={"height_ratios": [3, max(1.5, 0.25 * len(names))]})
    im = ax1.imshow(spec, origin="lower", aspect="auto", cmap="magma", extent=(0, total, 0, spec.shape[0]))
    ax1.set_ylabel("mel band")
    fig.colorbar(im, ax=ax1, pad=0.01, label="dB")
    if duration < total - 1e-6:
        for ax in (ax1, ax2):
            ax.axvline(duration, color="cyan", ls="--", lw=1)
        ax1.text(duration, spec.shape[0] * 0.95, " padding", color="cyan", va="top", fontsize=8)
    ax1.set_title(title)
    mesh = ax2.pcolormesh(edges, np.arange(len(names) + 1), window_probs[:, shown].T, cmap="viridis",
                          vmin=0, vmax=1, shading="flat")
    ax2.set_yticks(np.arange(len(names)) + 0.5, names, fontsize=8)
    window_seconds = times[0][1] - times[0][0]
    ax2.set_xlabel(f"time (s); {len(times)} windows of {window_seconds:.2f} s")
    fig.colorbar(mesh, ax=ax2, pad=0.01, label="probability")
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
