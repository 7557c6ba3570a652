"""Helpers around models: device choice, seeding, RNG state and reproducibility settings, checkpoints (save,
load, checkpoint -> model), initialising a model from another checkpoint's weights (`load_backbone`, transfer
learning), logits to probabilities (`output_probs`), opt-in speed-ups (`accelerate`) and the per-batch
progress bar. Metrics live in metrics.py.

Checkpoints hold only tensors, numbers, strings, lists and dicts, so they load with
`torch.load(path, weights_only=True)`: a file that would run code when unpickled is refused.
"""
from __future__ import annotations

import os
import pickle
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from tqdm import tqdm

from models import MODELS, ModelConfig, SpectrogramModel, build_model


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


def machine(device: torch.device | None = None) -> str:
    """This machine in words, for results.json and BENCHMARKS.md: CPU model, cores, memory, the GPU of `device`
    (default: the first, if any), OS, Python and torch versions."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30 if hasattr(os, "sysconf") else 0
    cuda = device.type == "cuda" if device is not None else torch.cuda.is_available()
    gpu = torch.cuda.get_device_name(device if device is not None else 0) if cuda else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}; {platform.system()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_reproducible(threads: int | None, deterministic: bool, device: torch.device) -> int:
    """Fix what a seed alone does not: the number of CPU threads (reductions split their work by it) and,
    when `deterministic`, torch's choice of kernels (cuBLAS workspace, cuDNN without autotuning).
    Returns the thread count, for the run's config."""
    if threads is not None:
        if threads < 1:
            raise ValueError(f"--threads must be at least 1 (got {threads})")
        torch.set_num_threads(threads)
    if device.type == "cuda" and deterministic:  # cuBLAS is deterministic only with a fixed workspace
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    # torch would also fill every new tensor with NaN (a debugging aid against reading uninitialised memory),
    # which cost the CRNN's CPU training step about 25% and changes no result of correct code
    torch.utils.deterministic.fill_uninitialized_memory = False
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic
    return torch.get_num_threads()


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
    """Write atomically and durably: a temporary file beside `path`, fsync, rename, fsync of the folder.
    A process killed at any point leaves the previous checkpoint or the new one, never half of one.
    A failed write (disk full, quota, I/O error) is a CheckpointError; the previous file stays intact."""
    path = Path(path)
    tmp = path.with_suffix(path.suffix + ".tmp")
    try:
        with open(tmp, "wb") as f:  # a Python file, so that a failed write is an OSError with its errno
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        kept = f"the previous {path.name} is intact" if path.exists() else f"no {path.name} was written"
        raise CheckpointError(f"could not write the checkpoint {path} ({e.strerror or e}); {kept}: "
                              "free some space and rerun") from e
    folder = os.open(path.parent, os.O_RDONLY)
    try:  # the rename itself survives a power cut only once the folder is on disk
        os.fsync(folder)
    finally:
        os.close(folder)


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
        raise CheckpointError(f"{path}: not a readable checkpoint (not a file that torch.save wrote)") from None
    except Exception as e:  # zip/pickle/torch format errors: not a checkpoint
        first = str(e).splitlines()[0] if str(e) else ""
        detail = "not a file that torch.save wrote" if "weights_only" in first else f"{type(e).__name__}: {first}"
        raise CheckpointError(f"{path}: not a readable checkpoint ({detail})") from None
    missing = [k for k in CHECKPOINT_KEYS if not isinstance(state, dict) or k not in state]
    if missing:
        raise CheckpointError(f"{path}: not a checkpoint of this project (missing {', '.join(missing)})")
    return state


def model_from_checkpoint(state: dict, device: torch.device | str = "cpu") -> SpectrogramModel:
    """The model a checkpoint describes, with its weights, on `device`, in eval mode."""
    model = build_model(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.to(device).eval()


def model_audio(run, audio, given: set):
    """The model's own audio parameters (its class's `audio`, e.g. musicnn's 16 kHz / 96 mels) as the
    run's defaults: a parameter set explicitly (preset or command line) wins."""
    own = MODELS[run.model].audio
    return replace(audio, **{k: v for k, v in own.items() if k not in given})


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


def output_probs(logits: torch.Tensor, multilabel: bool = False) -> torch.Tensor:
    """Logits -> probabilities: softmax over the classes (single-label), or a sigmoid per genre
    (multi-label, `--target all`). Evaluation and prediction both use this."""
    return logits.sigmoid() if multilabel else logits.softmax(-1)


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


class BatchProgress:
    """A per-batch tqdm bar on stderr: batches done of the loader's, ETA, and the running mean loss and
    clips/s of the batches so far. Shown only when `show` and stderr is a terminal (piped or logged
    output gets nothing); erased when closed (leave=False), so the caller's one line per epoch that
    follows it stays clean. Use it as a context manager and call `update(clips, loss)` after each batch."""

    def __init__(self, loader, show: bool, desc: str, max_steps: Optional[int] = None):
        total = len(loader) if hasattr(loader, "__len__") else None
        if max_steps is not None:
            total = max_steps if total is None else min(total, max_steps)
        self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True, file=sys.stderr,
                        disable=not show or not sys.stderr.isatty())
        if self.shown and self.bar.dynamic_ncols and (self.bar.ncols or 0) <= 0:  # a terminal that reports no
            self.bar.dynamic_ncols = self.bar.ncols = self.bar.nrows = None       # size (script, some CI): tqdm
            #                                                                      would hide the bar
        self.clips, self.loss_clips, self.loss_sum, self.start = 0, 0, 0.0, time.perf_counter()

    @property
    def shown(self) -> bool:
        return not self.bar.disable

    def update(self, clips: int, loss: Optional[float] = None) -> None:
        """One batch of `clips` clips done; `loss` is its mean loss (None: not measured; the bar shows the
        mean over the batches that gave one)."""
        if not self.shown:
            return
        self.clips += clips
        if loss is not None:
            self.loss_sum, self.loss_clips = self.loss_sum + loss * clips, self.loss_clips + clips
        text = f"{self.clips / max(time.perf_counter() - self.start, 1e-9):,.0f} clips/s"
        if self.loss_clips:
            text = f"loss {self.loss_sum / self.loss_clips:.4f}, {text}"
        self.bar.set_postfix_str(text, refresh=False)  # drawn by update(), at most every 0.1 s
        self.bar.update(1)

    def __enter__(self) -> "BatchProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
