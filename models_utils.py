"""Helpers around models: device choice, seeding and RNG state, checkpoints, initialising a model from
another checkpoint's weights (`load_backbone`, transfer learning), classification metrics
(single-label: `classification_metrics`; multi-label: `multilabel_metrics`, `tune_threshold`).

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
`torch.load(path, weights_only=True)`: a file that would run code when unpickled is refused.
"""
from __future__ import annotations

import os
import pickle
import random
from pathlib import Path

import numpy as np
import torch


class CheckpointError(Exception):
    """A checkpoint that is missing, unreadable, unsafe or incomplete."""


CHECKPOINT_KEYS = ("model", "model_config", "classes", "audio", "mean", "std")


def pick_device(name: str = "auto") -> torch.device:
    """'auto' -> cuda when available, else cpu; ValueError for 'cuda' without a GPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU (use --device auto or cpu)")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Python, NumPy and torch RNG states as plain types and tensors (weights_only-loadable)."""
    np_name, np_keys, np_pos, np_gauss, np_cached = np.random.get_state()
    return {
        "python": [list(x) if isinstance(x, tuple) else x for x in random.getstate()],
        "numpy": {"keys": torch.from_numpy(np_keys.astype(np.int64)), "pos": int(np_pos),
                  "has_gauss": int(np_gauss), "cached_gaussian": float(np_cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }


def set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path, state: dict) -> None:
    """Write atomically (temporary file, then rename): a crash never leaves half a checkpoint."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load with weights_only=True; a missing, corrupt or code-carrying file is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        path = path / "best.pt"
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        unsafe = [ln.strip() for ln in str(e).splitlines() if "unsupported global" in ln.lower()]
        if unsafe:  # the weights-only unpickler met an import: the file would run code under a full load
            raise CheckpointError(f"{path}: refused: it holds Python objects that would run code when loaded "
                                  f"(only plain weights and settings are accepted; {unsafe[0]})") from None
        raise CheckpointError(f"{path}: not a readable checkpoint ({str(e).splitlines()[0]})") from None
    except Exception as e:  # zip/pickle/torch format errors: not a checkpoint
        first = str(e).splitlines()[0] if str(e) else ""
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(e).__name__}: {first})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this project (missing {', '.join(missing)})")
    return state


def load_backbone(model: torch.nn.Module, state: dict, fresh_head: bool = False) -> tuple[list[str], list[str]]:
    """Initialise `model` (a models.SpectrogramModel) from a checkpoint `state` of the same architecture.

    Every backbone tensor of `model` (parameters and buffers: every state_dict key but the head's,
    `model.is_head`) is loaded from `state["model"]`, and must be there with the same shape; a backbone
    tensor missing, left over or of another shape is a ValueError naming it. Head tensors of the same
    shape are loaded too, unless `fresh_head` (new classes); the others keep their fresh initialisation.
    Returns (loaded keys, freshly initialised keys), in state_dict order.
    """
    src, own = state["model"], model.state_dict()
    missing = [k for k in own if k not in src and not model.is_head(k)]
    extra = [k for k in src if k not in own and not model.is_head(k)]
    shaped = [k for k in own if k in src and tuple(src[k].shape) != tuple(own[k].shape)]
    wrong = [k for k in shaped if not model.is_head(k)]
    if missing or extra or wrong:
        name = state.get("model_config", {}).get("name", "?")
        shapes = [f"{k} {tuple(src[k].shape)} (model {tuple(own[k].shape)})" for k in wrong]
        problems = [f"{what}: {', '.join(keys)}" for what, keys in
                    (("missing from the checkpoint", missing), ("not in the model", extra), ("other shape", shapes))
                    if keys]
        raise ValueError(f"the checkpoint's {name} weights do not fit this {type(model).__name__}: "
                         + "; ".join(problems))
    loaded = [k for k in own if k in src and k not in shaped and not (fresh_head and model.is_head(k))]
    model.load_state_dict({**own, **{k: src[k] for k in loaded}})
    return loaded, [k for k in own if k not in loaded]


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                           macro_over: list[int] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (lists).
    Macro-F1 averages over every class, or over the class indices `macro_over`."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels if macro_over is None else macro_over,
                                   average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def output_probs(logits: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Logits -> probabilities: softmax over the classes (single-label), or a sigmoid per genre
    (multi-label, `--target all`). Evaluation and prediction both use this."""
    return logits.sigmoid() if multilabel else logits.softmax(-1)


THRESHOLDS = np.round(np.linspace(0.01, 0.99, 99), 2)  # candidates for the multi-label decision threshold


def _scored(y_true: np.ndarray) -> np.ndarray:
    """Columns with at least one positive and one negative: the only ones ROC-AUC and AP are defined on."""
    pos = y_true.sum(0)
    return (pos > 0) & (pos < len(y_true))


def tune_threshold(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The one decision threshold (0.01-0.99) that maximises micro-F1 over the scored genres; tuned on
    the validation split and applied unchanged to the test split."""
    keep = _scored(y_true)
    if not keep.any():
        return 0.5
    y, p = y_true[:, keep].astype(bool), probs[:, keep]
    best, best_f1 = 0.5, -1.0
    for t in THRESHOLDS:
        pred = p >= t
        tp = np.count_nonzero(pred & y)
        f1 = 2 * tp / max(np.count_nonzero(pred) + np.count_nonzero(y), 1)
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                       threshold: float | None = None) -> dict:
    """Multi-label metrics of (n_clips, n_genres) 0/1 targets and probabilities.

    Genres without a positive (or without a negative) among these clips have no ROC-AUC or AP: they
    are listed in `dropped` and left out of every average, micro included. Macro = the mean of the
    per-genre values; micro = one curve over all (clip, genre) pairs. F1 (micro and macro, over the
    scored genres) is taken at `threshold`, tuned here with `tune_threshold` when not given.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
    y_true = np.asarray(y_true).astype(np.int64)
    keep = _scored(y_true) if len(y_true) else np.zeros(len(classes), bool)
    threshold = tune_threshold(y_true, probs) if threshold is None else float(threshold)
    per_genre, nan = {}, float("nan")
    for j, c in enumerate(classes):
        per_genre[c] = {"positives": int(y_true[:, j].sum()) if len(y_true) else 0,
                        "roc_auc": float(roc_auc_score(y_true[:, j], probs[:, j])) if keep[j] else nan,
                        "ap": float(average_precision_score(y_true[:, j], probs[:, j])) if keep[j] else nan}
    out = {"threshold": threshold, "scored_genres": int(keep.sum()),
           "dropped": [c for c, k in zip(classes, keep) if not k], "per_genre": per_genre}
    if not keep.any():
        return {"macro_roc_auc": nan, "micro_roc_auc": nan, "macro_ap": nan, "micro_ap": nan,
                "micro_f1": nan, "macro_f1": nan, **out}
    y, p = y_true[:, keep], probs[:, keep]
    pred = (p >= threshold).astype(np.int64)
    return {"macro_roc_auc": float(np.mean([per_genre[c]["roc_auc"] for c, k in zip(classes, keep) if k])),
            "micro_roc_auc": float(roc_auc_score(y.ravel(), p.ravel())),
            "macro_ap": float(np.mean([per_genre[c]["ap"] for c, k in zip(classes, keep) if k])),
            "micro_ap": float(average_precision_score(y.ravel(), p.ravel())),
            "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)), **out}


def accelerate(model: torch.nn.Module, device: torch.device, channels_last: bool | None = None,
               compile: bool = False) -> torch.nn.Module:
    """Speed settings for `model` on `device`, in place (state_dict keys and checkpoints unchanged).

    channels_last (None = on for CUDA, off on CPU): NHWC memory layout, which cuDNN's convolution
    kernels prefer under mixed precision. compile: `model.compile()` (torch.compile in place; the
    first steps are slow while it compiles, so it pays off over whole epochs on a GPU).
    """
    if channels_last if channels_last is not None else device.type == "cuda":
        model.to(memory_format=torch.channels_last)
    if compile:
        model.compile()
    return model
