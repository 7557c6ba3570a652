"""Sharded builds of the feature cache (cache.prepare_cache(shard=(k, n))): slices built one after the other,
at the same time in two processes, resumed, or finished by a full build all end byte-identical to a single
build; two processes of one slice take turns; a live slice keeps full builds and finalising out."""
import contextlib
import errno
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time

import pytest

import cache as cache_module
from config import AudioConfig
from conftest import ROOT, start_together
from cache import cache_path, lock_path, prepare_cache, shard_lock_path
from collection import DataError

AUDIO = AudioConfig()
COMPARED = ("features.npy", "index.csv", "meta.json", "started.json")
TIMEOUT = 120  # seconds for a builder process, imports included
NOT_DONE = "the cache is complete when every shard is"

# Slice K of N of subset small in its own process: DATA, CACHE, K, N, GO; says it is ready (GO.K.ready), waits
# for GO to exist, then builds, each log line on stdout after its time.time().
SHARD_BUILDER = r"""
import sys, time
from pathlib import Path
from cache import prepare_cache
data, cache, k, n, go = sys.argv[1:6]
Path(f"{go}.{k}.ready").touch()
while not Path(go).exists():
    time.sleep(0.001)
c = prepare_cache(data, "small", cache_dir=cache, workers=1, progress=False, shard=(int(k), int(n)),
                  log=lambda m: print(f"{time.time():.6f} {m}", flush=True))
print(f"{time.time():.6f} {'None' if c is None else c.summary()}", flush=True)
"""


def build(data, cache_dir, **kw):
    """prepare_cache of subset small in this process, one worker, no progress bar; returns (cache, log lines)."""
    lines = []
    c = prepare_cache(data, "small", cache_dir=cache_dir, workers=1, progress=False, log=lines.append, **kw)
    return c, lines


def assert_same_as_a_single_build(data, cache_dir, tmp_path):
    """The cache in `cache_dir` equals a single build (in another cache_dir) byte for byte, journal lines aside
    (the same lines, in any order), with the same file names."""
    build(data, tmp_path / "single")
    path, ref = cache_path(cache_dir, "small", AUDIO), cache_path(tmp_path / "single", "small", AUDIO)
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in ref.iterdir())
    for name in COMPARED:
        assert (path / name).read_bytes() == (ref / name).read_bytes(), name
    lines = [sorted((p / "journal.jsonl").read_text().splitlines()) for p in (path, ref)]
    assert lines[0] == lines[1] and len(lines[0]) == 6  # each track decoded once


def building(k, n, todo, path) -> str:
    return f"shard {k}/{n}: building log-mel cache for {todo} of 6 tracks in {path} (1 workers)"


@contextlib.contextmanager
def holding(lock_file, shared=False):
    """Hold `lock_file` in this process, as another builder would (exclusively, or shared as a slice decoder)."""
    with open(lock_file, "a+") as f:
        fcntl.flock(f, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        yield


def in_thread(fn, *args, **kw) -> tuple[threading.Thread, dict]:
    """Run fn(*args, **kw) in a daemon thread; its return value lands in the dict under 'value'."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=fn(*args, **kw)), daemon=True)
    thread.start()
    return thread, result


def test_slices_one_after_the_other_equal_a_single_build(small_tree, tmp_path):
    path = cache_path(tmp_path / "c", "small", AUDIO)
    cache, log = build(small_tree, tmp_path / "c", shard=(0, 2))
    assert cache is None
    assert log == [building(0, 2, 3, path), f"shard 0/2 done: 3 of 6 tracks decoded so far; {NOT_DONE}"]
    assert not (path / "meta.json").exists()
    cache, log = build(small_tree, tmp_path / "c", shard=(1, 2))
    assert log == [building(1, 2, 3, path)]  # the last slice: it finalises
    assert cache.summary() == "prepared 6 tracks: 6 ok, 0 failed"
    assert_same_as_a_single_build(small_tree, tmp_path / "c", tmp_path)
    cache, log = build(small_tree, tmp_path / "c", shard=(0, 2))  # a finished cache: reopened, nothing decoded
    assert cache.summary() == "prepared 6 tracks: 6 ok, 0 failed"
    assert log == ["checked 6 files: 0 changed, re-decoded 0"]


def test_two_slices_at_the_same_time_in_two_processes(small_tree, tmp_path):
    go, cdir = tmp_path / "go", tmp_path / "c"
    procs = [subprocess.Popen([sys.executable, "-c", SHARD_BUILDER, str(small_tree), str(cdir), str(k), "2", str(go)],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for k in (0, 1)]
    try:
        start_together(procs, go, TIMEOUT)
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    logs = [[line.split(" ", 1) for line in out.splitlines()] for out, _ in outs]
    path = cache_path(cdir, "small", AUDIO)
    starts = [next(float(t) for t, m in log if m == building(k, 2, 3, path)) for k, log in enumerate(logs)]
    ends = [float(log[-1][0]) for log in logs]
    assert starts[0] < ends[1] and starts[1] < ends[0], "the slices were decoded one after the other"
    results = sorted(log[-1][1] for log in logs)  # one finalised; the other either saw that or left it to it
    assert results[-1] == "prepared 6 tracks: 6 ok, 0 failed"
    assert results[0] in (results[-1], "None")
    assert_same_as_a_single_build(small_tree, cdir, tmp_path)


def test_a_second_process_of_a_slice_waits_then_decodes_nothing(small_tree, tmp_path):
    """While one process decodes slice 0/2 (the test holds its lock and writes its results), another process of
    slice 0/2 waits; then it finds the slice done and decodes nothing."""
    build(small_tree, tmp_path / "other", shard=(0, 2))  # the results the lock holder writes
    done = cache_path(tmp_path / "other", "small", AUDIO)
    path = cache_path(tmp_path / "c", "small", AUDIO)
    path.parent.mkdir()
    slice_lock = shard_lock_path(path, 0, 2)
    with holding(slice_lock):
        thread, result = in_thread(build, small_tree, tmp_path / "c", shard=(0, 2))
        deadline = time.time() + 30
        while not (path / "journal-0-of-2.jsonl").exists():  # set up; it is waiting for the slice lock
            assert time.time() < deadline and thread.is_alive(), "the second process did not set up"
            time.sleep(0.01)
        time.sleep(0.5)
        assert thread.is_alive() and (path / "journal-0-of-2.jsonl").stat().st_size == 0  # waits, decoding nothing
        for name in ("features.npy", "journal-0-of-2.jsonl"):  # the holder decodes the slice
            shutil.copyfile(done / name, path / name)
    thread.join(30)
    cache, log = result["value"]
    assert cache is None
    assert log == [f"waiting for {slice_lock}: another process is building shard 0/2 of this cache",
                   f"shard 0/2 done: 3 of 6 tracks decoded so far; {NOT_DONE}"]
    assert (path / "journal-0-of-2.jsonl").read_bytes() == (done / "journal-0-of-2.jsonl").read_bytes()


def test_a_live_slice_keeps_finalising_and_full_builds_out(small_tree, tmp_path):
    """While the test holds <name>.lock shared (a slice still decoding, in the middle of a journal line), the
    last slice neither finalises nor touches that journal, and a full build waits; then the full build finds
    everything decoded and finalises (mending the torn line)."""
    cdir = tmp_path / "c"
    path = cache_path(cdir, "small", AUDIO)
    build(small_tree, cdir, shard=(0, 2))
    journal0 = path / "journal-0-of-2.jsonl"
    with open(journal0, "a") as f:
        f.write('{"track_id": 2, "sta')  # the live decoder's line, half written
    torn = journal0.read_bytes()
    with holding(lock_path(path), shared=True):
        cache, log = build(small_tree, cdir, shard=(1, 2))
        assert cache is None
        assert log == [building(1, 2, 3, path), f"shard 1/2 done: 6 of 6 tracks decoded so far; {NOT_DONE}"]
        assert journal0.read_bytes() == torn and not (path / "meta.json").exists()
        thread, result = in_thread(build, small_tree, cdir)
        time.sleep(0.5)
        assert thread.is_alive()
    thread.join(30)
    cache, log = result["value"]
    assert log == [f"waiting for {lock_path(path)}: another process (pid {os.getpid()}) is building this cache"]
    assert cache.summary() == "prepared 6 tracks: 6 ok, 0 failed"
    assert_same_as_a_single_build(small_tree, cdir, tmp_path)


def tear_journal_line(monkeypatch, at: int):
    """The journal line `at` (1: the first) of the next build is cut short by a full disk, as kill -9 would."""
    calls, real = [], cache_module._append_journal

    def append(f, record):
        calls.append(record)
        if len(calls) == at:
            f.write(json.dumps(record)[:20])
            f.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(f, record)
    monkeypatch.setattr(cache_module, "_append_journal", append)


def journal_ids(journal) -> list[int]:
    return [json.loads(ln)["track_id"] for ln in journal.read_text().splitlines()]


def test_killed_builds_resume_from_every_journal(small_tree, tmp_path, monkeypatch):
    """A full build and slice 1/3 (tracks 5, 141) each stop at their second journal line; the rerun of the slice
    decodes only 141; slice 0/3 (2, 140) only 140, as the full build's journal has 2; then a full build decodes
    only the tracks of no journal, and merges the shard journals away."""
    cdir = tmp_path / "c"
    path = cache_path(cdir, "small", AUDIO)
    for shard in (None, (1, 3)):
        with monkeypatch.context() as m, pytest.raises(DataError, match="disk full"):
            tear_journal_line(m, at=2)
            build(small_tree, cdir, shard=shard)
    cache, log = build(small_tree, cdir, shard=(1, 3))
    assert cache is None
    assert log == [building(1, 3, 1, path), f"shard 1/3 done: 3 of 6 tracks decoded so far; {NOT_DONE}"]
    assert journal_ids(path / "journal-1-of-3.jsonl") == [5, 141]  # the torn line was cut off
    cache, log = build(small_tree, cdir, shard=(0, 3))
    assert cache is None
    assert log == [building(0, 3, 1, path), f"shard 0/3 done: 4 of 6 tracks decoded so far; {NOT_DONE}"]
    cache, log = build(small_tree, cdir)
    assert log == [f"building log-mel cache for 2 of 6 tracks in {path} (1 workers)"]
    assert cache.summary() == "prepared 6 tracks: 6 ok, 0 failed"
    assert_same_as_a_single_build(small_tree, cdir, tmp_path)


@pytest.mark.parametrize("shard", [(2, 2), (-1, 2), (0, 0), (1,), (0, 2, 1), (0.5, 2), "0/2"])
def test_bad_shards_are_refused(tmp_path, shard):
    with pytest.raises(ValueError, match=re.escape(f"shard {shard!r}: expected (k, n)")):
        prepare_cache(tmp_path, "small", shard=shard)
