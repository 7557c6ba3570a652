"""Memory allocator settings applied by every entry script at start-up: `tune_malloc()`.

glibc's malloc serves a block larger than its mmap threshold (128 KiB at first, raised as such blocks are
freed, but never above 32 MiB) with a fresh mmap, and unmaps it when it is freed; the kernel then zeroes
every page of the next such block on first touch. A training step's activations are tens of MiB each (the
CRNN's first block: 32 clips x 16 channels x 128 mels x 130 frames x 4 bytes = 34 MiB), so every step
mapped them anew: a third of a training run's CPU time was page faults (sys time). musicnn's are larger:
its first timbral filter's output for a batch of 32 patches is 32 x 204 x 187 x 59 x 4 bytes = 288 MB, hence
thresholds of 1 GiB (at 256 MiB, training a head on the frozen musicnn still spent 40% of its user time in
the kernel; at 1 GiB 3%, with a lower peak RSS). With the settings below blocks up to MMAP_THRESHOLD come
from the heap, and the next step reuses the memory the last one freed (the PyTorch CPU performance tuning
guide's first advice: an allocator that reuses memory).

What bounds the memory: the heap holds the largest working set the program needs (plus fragmentation), and
free memory at its top is given back beyond TRIM_THRESHOLD; blocks of MMAP_THRESHOLD and more are still
mapped and unmapped as before. The settings change where memory comes from, never a computed value.

The number of arenas is left alone: capping it (M_ARENA_MAX) moves a thread that meets a locked arena into
another one, whose heaps are at most 64 MiB, so that the main thread's large blocks were mapped again
(measured: 4x the page faults of the uncapped setting in the CRNN run).

A no-op where the C library is not glibc (macOS, musl, Windows), and when the environment variable
FMA_MALLOPT is 0 (to compare with glibc's defaults: FMA_MALLOPT=0 python main.py ...).
"""
from __future__ import annotations

import ctypes
import os

MMAP_THRESHOLD = 1 << 30    # bytes: smaller blocks come from the heap (glibc's default: dynamic, at most 32 MiB)
TRIM_THRESHOLD = 1 << 30    # bytes: free memory at the heap's top kept for reuse (default: twice the mmap threshold)
ENV = "FMA_MALLOPT"         # FMA_MALLOPT=0 leaves glibc's defaults

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def tune_malloc() -> bool:
    """Apply the settings above to this process's glibc malloc; True when they were applied."""
    if os.environ.get(ENV, "1") == "0" or not _glibc():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return False
    return all(mallopt(param, value) == 1 for param, value in
               ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a name the C library lacks
        return False
