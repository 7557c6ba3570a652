"""The memory allocator of every entry script: `restart_with_tcmalloc()` on its first line, `tune_malloc()` first
in main(). Not run by itself; `FMA_MALLOC=auto|mallopt|glibc` chooses (below).

Why: with glibc's malloc defaults a block larger than its mmap threshold (128 KiB at first, raised as such
blocks are freed, but never above 32 MiB) is a fresh mmap, unmapped when freed; the kernel zeroes every page of
the next one on first touch. A training step's activations are tens of MiB (the CRNN's first block: 32 clips x 16
channels x 128 mels x 130 frames x 4 bytes = 34 MiB; musicnn's first timbral output 288 MB), so every step
mapped them anew and a third of a training run's CPU time was page faults (sys time). The PyTorch CPU
performance tuning guide's first advice: an allocator that reuses memory.

- auto (the default): tcmalloc (gperftools: `apt-get install libtcmalloc-minimal4`, or conda's gperftools) where
  it is installed, else `mallopt` below. tcmalloc keeps freed blocks in lists by size for the next step: in one
  run on 2 cores, CRNN training 110-113 against 49 clips/s with glibc's defaults, at 0.97x their peak RSS;
  musicnn 6.6 against 3.6 clips/s at 1.27x. A library is preloaded only at a process's start, so an entry
  script run as a program starts itself again at its first line, before torch is loaded (os.execve: the same
  process id, arguments, environment and open files, plus LD_PRELOAD; about 30 ms). Its children (DataLoader
  workers, torchrun's, bench.py's) inherit it.
- mallopt: glibc's malloc with blocks up to MMAP_THRESHOLD from the heap, and free memory at the heap's top
  kept up to TRIM_THRESHOLD, so that the next step reuses what the last one freed. As fast as tcmalloc, but
  large blocks fragment the heap: peak RSS 1.3x glibc's defaults for the CRNN, 1.9x for shortchunk_res, 2-2.3x
  for musicnn trained whole. The thresholds are 1 GiB for musicnn's 288 MB blocks (at 256 MiB, training a
  head on the frozen musicnn still spent 40% of its user time in the kernel; at 1 GiB 3%). The number of
  arenas is left alone: capping it (M_ARENA_MAX) mapped the main thread's large blocks again (4x the page faults).
- glibc: the C library's defaults, for a comparison (FMA_MALLOC=glibc python main.py ...).

None of them changes a computed value (tests/test_speed.py). Where the C library is not glibc (macOS, musl,
Windows) nothing is done.
"""
from __future__ import annotations

import ctypes
import functools
import os
import sys
import sysconfig
from contextlib import contextmanager
from pathlib import Path

ENV = "FMA_MALLOC"                   # auto (default) | mallopt | glibc
MODES = ("auto", "mallopt", "glibc")
TCMALLOC = ("libtcmalloc_minimal.so.4", "libtcmalloc.so.4")  # gperftools' library, without and with its profiler
QUIET = {"TCMALLOC_LARGE_ALLOC_REPORT_THRESHOLD": str(1 << 50)}  # bytes: no "large alloc" line on stderr

MMAP_THRESHOLD = 1 << 30    # bytes: smaller blocks come from the heap (glibc's default: dynamic, at most 32 MiB)
TRIM_THRESHOLD = 1 << 30    # bytes: free memory at the heap's top kept for reuse (default: twice the mmap threshold)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def mode() -> str:
    """FMA_MALLOC's value; ValueError for one not in MODES."""
    value = os.environ.get(ENV, "auto").strip().lower() or "auto"
    if value not in MODES:
        raise ValueError(f"{ENV} must be one of {', '.join(MODES)}, not {value!r}")
    return value


def restart_with_tcmalloc() -> None:
    """At the first line of an entry script run as a program: start this process again with tcmalloc preloaded,
    where FMA_MALLOC is auto, the C library is glibc, tcmalloc is installed and LD_PRELOAD names no allocator
    (*malloc*: another one of the user's, or tcmalloc that could not be preloaded: the restart happens once).
    Returns when there is nothing to do or the restart fails; never returns otherwise."""
    try:
        auto = mode() == "auto"
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    other = any("malloc" in Path(p).name for p in os.environ.get("LD_PRELOAD", "").split(":") if p)
    if (not auto or other or not sys.executable or not _glibc()
            or tcmalloc_loaded() or find_tcmalloc() is None):
        return
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execve(sys.executable, sys.orig_argv, environment("auto"))
    except OSError:  # not executable after all: go on with tune_malloc's settings
        return


def tune_malloc() -> str:
    """The allocator this process runs on, after applying FMA_MALLOC's settings: 'tcmalloc', 'mallopt' (glibc
    with the thresholds above) or 'default' (the C library's own settings)."""
    if tcmalloc_loaded():
        return "tcmalloc"
    if mode() == "glibc" or not _glibc():
        return "default"
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library the interpreter runs on
    except (OSError, AttributeError):
        return "default"
    applied = all(mallopt(param, value) == 1 for param, value in
                  ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD)))
    return "mallopt" if applied else "default"


def tcmalloc_loaded() -> bool:
    """Whether tcmalloc serves this process's malloc (it was preloaded)."""
    try:
        return hasattr(ctypes.CDLL(None), "tc_version")
    except OSError:
        return False


@functools.cache  # asked at the restart, and for every child process environment() prepares
def find_tcmalloc() -> str | None:
    """The path of an installed tcmalloc (Python's prefix first: conda's gperftools), or None."""
    arch = sysconfig.get_config_var("MULTIARCH") or ""  # e.g. x86_64-linux-gnu (Debian's library folder)
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, "/usr/local", "/usr")):
        for lib in ("lib", f"lib/{arch}", "lib64"):
            for name in TCMALLOC:
                if (Path(prefix) / lib / name).is_file():
                    return str(Path(prefix) / lib / name)
    return None


def environment(malloc: str) -> dict:
    """os.environ for a child process that is to run on allocator `malloc` (one of MODES): for auto, tcmalloc in
    LD_PRELOAD where it is installed; otherwise none of it."""
    env = dict(os.environ)
    preload = [p for p in env.get("LD_PRELOAD", "").split(":") if p and Path(p).name not in TCMALLOC]
    lib = find_tcmalloc() if malloc == "auto" and _glibc() else None
    if lib:
        preload.insert(0, lib)
        env = {**QUIET, **env}
    env[ENV] = malloc
    if preload:
        env["LD_PRELOAD"] = ":".join(preload)
    else:
        env.pop("LD_PRELOAD", None)
    return env


@contextmanager
def child_allocator(malloc: str):
    """os.environ as `environment(malloc)` within the block, for the processes started there; restored after."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(environment(malloc))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # no confstr (Windows), or a name the C library lacks
        return False
