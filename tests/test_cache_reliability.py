"""Reliability of the feature cache (cache.prepare_cache): it checks the audio files on reopening, one
builder works at a time, kill -9 at any point and a full disk leave a cache that the next run completes
byte-identical to an uninterrupted build."""
import contextlib
import errno
import fcntl
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pandas as pd
import pytest

import cache as cache_module
from config import AudioConfig
from conftest import ROOT, start_together
from cache import cache_path, lock_path, prepare_cache
from collection import DataError, audio_path

AUDIO = AudioConfig()
KILL_SEED = 20240611   # fixed, so that a failure can be replayed; the points are drawn from it
EVENT_TIMEOUT = 120    # seconds a builder may take to reach a kill point (imports included)

# A builder in its own process: prepare_cache on DATA (subset), cache in CACHE, one worker, log lines on stdout.
# With GO other than '-', it first says it is ready (GO.<pid>.ready) and waits for GO to exist, so that
# two builders start together however long their imports take.
BUILDER = r"""
import os, sys, time
from pathlib import Path
from cache import prepare_cache
data, subset, cache, go = sys.argv[1:5]
if go != "-":
    Path(f"{go}.{os.getpid()}.ready").touch()
    while not Path(go).exists():
        time.sleep(0.001)
c = prepare_cache(data, subset, cache_dir=cache, workers=1, progress=False, log=lambda m: print(m, flush=True))
print(c.summary(), flush=True)
"""


@pytest.fixture
def start_builder():
    """start_builder(data, subset, cache, go='-') -> Popen of BUILDER; whatever still runs at the end is killed."""
    procs = []

    def start(data, subset, cache, go="-") -> subprocess.Popen:
        procs.append(subprocess.Popen([sys.executable, "-c", BUILDER, str(data), subset, str(cache), str(go)],
                                      cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        return procs[-1]
    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def build(data, subset, cache, **kw):
    """prepare_cache in this process, one worker, no progress bar; returns (cache, log lines)."""
    lines = []
    c = prepare_cache(data, subset, cache_dir=cache, workers=1, progress=False, log=lines.append, **kw)
    return c, lines


def files(cache_dir, subset) -> dict:
    """SHA-256 of the bytes of features.npy and index.csv of a cache (equal digests: byte-identical)."""
    path = cache_path(cache_dir, subset, AUDIO)
    return {name: hashlib.sha256((path / name).read_bytes()).hexdigest() for name in ("features.npy", "index.csv")}


def journal_ids(cache_dir, subset) -> list[int]:
    """Track ids of the complete journal lines, in order (one line per decode); each must be a JSON record."""
    journal = cache_path(cache_dir, subset, AUDIO) / "journal.jsonl"
    if not journal.exists():
        return []
    return [json.loads(ln)["track_id"] for ln in journal.read_text().splitlines(keepends=True) if ln.endswith("\n")]


def wait_for(condition, proc: subprocess.Popen, what: str):
    """Poll `condition` (every ms) until it holds; fail if the builder exits or the time runs out first."""
    deadline = time.time() + EVENT_TIMEOUT
    while not condition():
        assert proc.poll() is None, f"the builder ended before {what}: {proc.communicate()}"
        assert time.time() < deadline, f"no {what} after {EVENT_TIMEOUT} s"
        time.sleep(0.001)


# ------------------------------------------------------------------------------------------- kill -9

def test_kill_9_at_random_points_then_rerun_equals_uninterrupted(large_tree, tmp_path, start_builder):
    """SIGKILL a build at four points (the lock taken; started.json written; after a few tracks; near the
    end), each run resuming the previous one's leftovers; a last run completes it. Also shows that a
    killed lock holder blocks nobody (every rerun gets the lock at once)."""
    audio_path(large_tree / "fma_large", 20).write_bytes(b"")  # failed tracks too: their rows and reasons
    audio_path(large_tree / "fma_large", 46).unlink()
    build(large_tree, "large", tmp_path / "ref")
    cdir = tmp_path / "killed"
    path = cache_path(cdir, "large", AUDIO)
    rng = random.Random(KILL_SEED)
    k1, k2 = rng.randint(2, 10), rng.randint(18, 27)
    points = [  # (what the kill waits for, its test, the most it waits after that, in s)
        ("the lock file", lambda: lock_path(path).exists(), 0.005),
        ("started.json", lambda: (path / "started.json").exists(), 0.02),
        (f"{k1} journal lines", lambda: len(journal_ids(cdir, "large")) >= k1, 0.05),
        (f"{k2} journal lines", lambda: len(journal_ids(cdir, "large")) >= k2, 0.05)]
    for what, condition, max_delay in points:
        proc = start_builder(large_tree, "large", cdir)
        wait_for(condition, proc, what)
        time.sleep(rng.uniform(0, max_delay))
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=EVENT_TIMEOUT)
        assert proc.returncode == -signal.SIGKILL, f"killed after {what}"
        assert "waiting" not in out  # the builder killed before this one left no lock behind
        assert not (path / "meta.json").exists(), f"killed after {what}, yet marked complete"
    done = set(journal_ids(cdir, "large"))
    assert k1 <= len(done) < 30
    cache, log = build(large_tree, "large", cdir)
    assert log == [f"building log-mel cache for {30 - len(done)} of 30 tracks in {path} (1 workers)"]  # the rest
    assert cache.summary() == "prepared 30 tracks: 28 ok, 2 failed"
    assert files(cdir, "large") == files(tmp_path / "ref", "large")


# ------------------------------------------------------------------------------------------- lock

def test_two_concurrent_builders_decode_each_track_once(small_tree, tmp_path, start_builder):
    """Two builders started together on a fresh cache: one builds, the other waits, then reuses it."""
    go = tmp_path / "go"
    procs = [start_builder(small_tree, "small", tmp_path / "c", go) for _ in range(2)]
    start_together(procs, go, EVENT_TIMEOUT)
    outs = [p.communicate(timeout=EVENT_TIMEOUT) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    outs = sorted((out for out, _ in outs), key=lambda out: "waiting" in out)
    builder, waiter = outs
    lock = lock_path(cache_path(tmp_path / "c", "small", AUDIO))
    assert "building log-mel cache for 6 of 6 tracks" in builder and "waiting" not in builder
    assert f"waiting for {lock}: another process" in waiter, waiter
    assert "building log-mel cache" not in waiter and "checked 6 files: 0 changed, re-decoded 0" in waiter
    assert builder.splitlines()[-1] == waiter.splitlines()[-1] == "prepared 6 tracks: 6 ok, 0 failed"
    ids = journal_ids(tmp_path / "c", "small")
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 6  # every track decoded exactly once
    build(small_tree, "small", tmp_path / "ref")
    assert files(tmp_path / "c", "small") == files(tmp_path / "ref", "small")


@contextlib.contextmanager
def holding_lock(path):
    """Hold the build lock of cache `path` in this process, as another builder would."""
    with open(lock_path(path), "a+") as f:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield


def in_thread(fn, *args) -> tuple[threading.Thread, dict]:
    """Run fn(*args) in a daemon thread; its return value lands in the dict under 'value'."""
    result = {}
    thread = threading.Thread(target=lambda: result.update(value=fn(*args)), daemon=True)
    thread.start()
    return thread, result


def test_readers_of_an_unchanged_cache_take_no_lock_and_writers_wait(small_tree, tmp_path):
    build(small_tree, "small", tmp_path / "c")
    path = cache_path(tmp_path / "c", "small", AUDIO)
    with holding_lock(path):
        thread, result = in_thread(build, small_tree, "small", tmp_path / "c")
        thread.join(30)
        assert not thread.is_alive(), "a reader of a finished, unchanged cache waited for the lock"
        assert result["value"][1] == ["checked 6 files: 0 changed, re-decoded 0"]
        audio_path(small_tree / "fma_small", 5).write_bytes(b"")  # now there is something to write
        thread, result = in_thread(build, small_tree, "small", tmp_path / "c")
        time.sleep(1.0)
        assert thread.is_alive() and len(journal_ids(tmp_path / "c", "small")) == 6  # it waits, writing nothing
    thread.join(30)
    cache, log = result["value"]
    assert log[0] == f"waiting for {lock_path(path)}: another process (pid {os.getpid()}) is building this cache"
    assert log[-1] == "checked 6 files: 1 changed (1 modified), re-decoded 1"
    assert journal_ids(tmp_path / "c", "small")[6:] == [5]


# ------------------------------------------------------------------------------------------- stale files

def status(cache, track_id) -> tuple[str, str]:
    row = cache.index.set_index("track_id").loc[track_id]
    return row.status, row.reason


def test_changed_vanished_and_restored_files_are_re_decoded_alone(small_tree, tmp_path):
    cdir = tmp_path / "c"
    build(small_tree, "small", cdir)
    original = files(cdir, "small")["features.npy"]
    clip = audio_path(small_tree / "fma_small", 5)
    data = clip.read_bytes()
    steps = [  # (what is done to the tree, the track to re-decode, check line counts, status, reason contains)
        (lambda: os.truncate(clip, 0), 5, "1 changed (1 modified)", "failed", "empty file (0 bytes)"),
        (lambda: clip.write_bytes(data), 5, "1 changed (1 modified)", "ok", ""),
        (lambda: audio_path(small_tree / "fma_small", 140).unlink(), 140, "1 changed (1 vanished)", "failed",
         "file not found"),
        (lambda: None, None, "0 changed", None, None)]
    for change, track, counts, expected, reason in steps:
        before = journal_ids(cdir, "small")
        change()
        cache, log = build(small_tree, "small", cdir)
        decoded = [] if track is None else [track]
        assert log[-1] == f"checked 6 files: {counts}, re-decoded {len(decoded)}"
        assert journal_ids(cdir, "small") == before + decoded  # no other track was decoded
        if track is not None:
            assert status(cache, track)[0] == expected and reason in status(cache, track)[1]
        if track == 5 and expected == "ok":
            assert files(cdir, "small")["features.npy"] == original  # the restored clip's row is back
    assert cache.summary() == "prepared 6 tracks: 5 ok, 1 failed"
    assert (cache.features[3] == 0).all()  # the vanished track's row is blank, as in a fresh build
    build(small_tree, "small", tmp_path / "fresh")
    assert files(cdir, "small") == files(tmp_path / "fresh", "small")


def test_index_without_file_stats_is_re_decoded_in_place(small_tree, tmp_path):
    """A cache from before the file check (index and journal without size/mtime_ns) re-decodes every
    track where it is, and ends identical to a fresh build."""
    cdir = tmp_path / "c"
    build(small_tree, "small", cdir)
    path = cache_path(cdir, "small", AUDIO)
    index = pd.read_csv(path / "index.csv", keep_default_na=False)
    index.drop(columns=["size", "mtime_ns"]).to_csv(path / "index.csv", index=False)
    journal = path / "journal.jsonl"
    journal.write_text("".join(ln.split(', "size"')[0] + "}\n" for ln in journal.read_text().splitlines()))
    cache, log = build(small_tree, "small", cdir)
    assert log == [f"building log-mel cache for 6 of 6 tracks in {path} (1 workers)",
                   "checked 6 files: 6 changed (6 not recorded before), re-decoded 6"]
    build(small_tree, "small", tmp_path / "fresh")
    assert files(cdir, "small") == files(tmp_path / "fresh", "small")
    assert sorted(p.name for p in cdir.iterdir()) == sorted([path.name, lock_path(path).name])  # no second cache


# ------------------------------------------------------------------------------------------- disk full

def enospc() -> OSError:
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fail_features_row(monkeypatch, after: int):
    """os.pwrite (a features row) raises ENOSPC from its (after + 1)-th call on."""
    calls, real = [], os.pwrite

    def pwrite(fd, data, offset):
        calls.append(offset)
        if len(calls) > after:
            raise enospc()
        return real(fd, data, offset)
    monkeypatch.setattr(os, "pwrite", pwrite)


def fail_journal_line(monkeypatch, after: int):
    """The (after + 1)-th journal line is cut short by a full disk: a torn line stays in the file."""
    calls, real = [], cache_module._append_journal

    def append(f, record):
        calls.append(record)
        if len(calls) > after:
            f.write(json.dumps(record)[:20])
            f.flush()
            raise enospc()
        return real(f, record)
    monkeypatch.setattr(cache_module, "_append_journal", append)


@pytest.mark.parametrize("fault", [fail_features_row, fail_journal_line])
def test_disk_full_is_a_clear_error_and_the_rerun_resumes(small_tree, tmp_path, monkeypatch, fault):
    cdir = tmp_path / "c"
    path = cache_path(cdir, "small", AUDIO)
    with monkeypatch.context() as m:
        fault(m, after=3)
        with pytest.raises(DataError, match="disk full while writing the feature cache") as e:
            build(small_tree, "small", cdir)
    assert str(path) in str(e.value) and "No space left on device" in str(e.value)
    assert not (path / "meta.json").exists()
    assert journal_ids(cdir, "small") == [2, 5, 10]
    cache, log = build(small_tree, "small", cdir)
    assert log == [f"building log-mel cache for 3 of 6 tracks in {path} (1 workers)"]
    assert cache.summary() == "prepared 6 tracks: 6 ok, 0 failed"
    assert journal_ids(cdir, "small") == [2, 5, 10, 140, 141, 148]  # no torn line left inside the journal
    build(small_tree, "small", tmp_path / "ref")
    assert files(cdir, "small") == files(tmp_path / "ref", "small")


def test_main_prints_a_full_disk_as_an_error_line(small_tree, tmp_path, monkeypatch, capsys):
    import main
    fail_features_row(monkeypatch, after=0)
    code = main.main(["--data-dir", str(small_tree), "--subset", "small", "--prepare-only", "--workers", "1",
                      "--cache-dir", str(tmp_path / "c")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    path = cache_path(tmp_path / "c", "small", AUDIO)
    assert err[-1].startswith(f"error: disk full while writing the feature cache {path} (No space left on device)")
