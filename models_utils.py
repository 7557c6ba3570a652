"""Helpers around models: device choice, seeding and RNG state, checkpoints, classification metrics.

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


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (lists)."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


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
