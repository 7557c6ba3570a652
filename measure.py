"""What a piece of work used: wall, user and sys seconds and peak RSS, of a function in a fresh process
(`in_fresh_process`) or of a command (`run_command`). bench.py measures every row with these, and the tests
use `run_command` to bound a command's memory and time.

    done, used = run_command([sys.executable, "pre_trained_models.py", "--checkpoint", CKPT, "songs/"])
    used  # {"wall_s": ..., "user_s": ..., "sys_s": ..., "rss_mb": ...}
"""
from __future__ import annotations

import concurrent.futures as cf
import json
import multiprocessing
import os
import resource
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Optional

from allocator import child_allocator, tune_malloc


def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: same number, KiB


def children_peak_rss_mb() -> float:
    """Largest peak RSS of any finished child process of this one (e.g. DataLoader workers), MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _times() -> tuple[float, float, float]:
    """(wall, user, sys) seconds so far: this process's and its finished children's CPU time."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.perf_counter(), me.ru_utime + kids.ru_utime, me.ru_stime + kids.ru_stime


def measured(fn, args, kwargs) -> dict:
    """fn(*args, **kwargs) -> dict, with `usage`: its wall, user and sys seconds, and the process's peak RSS."""
    before = _times()
    out = fn(*args, **kwargs)
    after = _times()
    rss = max(peak_rss_mb(), children_peak_rss_mb())
    return {**out, "usage": {"wall_s": after[0] - before[0], "user_s": after[1] - before[1],
                             "sys_s": after[2] - before[2], "rss_mb": rss}}


def in_fresh_process(fn, *args, malloc: str = "auto", **kwargs) -> dict:
    """Run fn(*args, **kwargs) -> dict in a new (spawned) process, so that its peak RSS is its own; the result
    gets `usage` (wall, user, sys of fn, DataLoader workers included, and peak RSS) and `allocator`. The process
    runs on allocator `malloc` (allocator.MODES): auto, the entry scripts' (tcmalloc where installed), or a
    baseline: mallopt (glibc's malloc with allocator.py's thresholds) or glibc (its defaults)."""
    ctx = multiprocessing.get_context("spawn")
    with child_allocator(malloc), cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(_measured_on_its_allocator, fn, args, kwargs).result()


def _measured_on_its_allocator(fn, args, kwargs) -> dict:
    """In in_fresh_process's process: the allocator settings of an entry script (tune_malloc), then measured."""
    return {"allocator": tune_malloc(), **measured(fn, args, kwargs)}


# Runs the command as its own child and writes what that child used (os.wait4: its descendants included) to
# argv[1]. A process started by a large one cannot be measured by it: Linux starts a child's peak RSS at its
# parent's (exec records the high-water mark of the address space it replaces, the parent's under vfork), and
# a test session's or bench.py's can be GBs. This launcher is small, so its child's peak is its own.
LAUNCHER = """
import json, os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, used = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    json.dump({"user_s": used.ru_utime, "sys_s": used.ru_stime, "rss_mb": used.ru_maxrss / 1024}, f)
code = os.waitstatus_to_exitcode(status)
if code < 0:
    os.kill(os.getpid(), -code)  # killed by a signal: so is the launcher
sys.exit(code)
"""


def run_command(cmd: list, timeout: Optional[float] = None, cwd=None) -> tuple[subprocess.CompletedProcess, dict]:
    """Run a command (no input, its output captured), killed with its process group after `timeout` seconds,
    and what it used: its wall, user and sys seconds and peak RSS (MiB), its own descendants' included (see
    LAUNCHER); zeros for a command killed before it was measured."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err, \
            tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "used.json"
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, str(report), *map(str, cmd)],
                                stdin=subprocess.DEVNULL, stdout=out, stderr=err, text=True, cwd=cwd,
                                start_new_session=timeout is not None)
        timer = threading.Timer(timeout, os.killpg, (proc.pid, signal.SIGKILL)) if timeout is not None else None
        if timer:
            timer.start()  # the launcher and its child
        try:
            proc.wait()
        finally:
            if timer:
                timer.cancel()
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        done = subprocess.CompletedProcess(cmd, proc.returncode, out.read(), err.read())
        used = json.loads(report.read_text()) if report.is_file() else {"user_s": 0.0, "sys_s": 0.0, "rss_mb": 0.0}
    return done, {"wall_s": wall, **used}


def failed(done: subprocess.CompletedProcess) -> str:
    """The note of a measured command that failed: the last line of its stderr."""
    return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"
