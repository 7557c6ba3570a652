"""The on-disk log-mel cache: every track of a collection decoded once into a float16 array read through
a memmap, with its index, journal, change detection and the builders' locks.

`prepare_cache` decodes every track of a subset once, in parallel, into a float16 array on disk
(`features.npy`, read through a memmap) plus `index.csv` listing each track's status. Resumable (a journal
records finished tracks), idempotent, and nothing is dropped silently. Reopening it stats every audio file
and re-decodes the changed ones; builders take turns (a lock file beside the cache). Several processes can
build one cache together (`shard=(k, n)`: torchrun ranks, or job-array tasks on machines sharing the file
system), each decoding its slice, the rows with row % n == k: the slices decode at the same time (each
holds the lock shared, and its slice's own lock exclusively), and the last to finish writes the index,
leaving a cache byte-identical to a single build's.

    python main.py --data-dir DIR --subset small --prepare-only     # build it from the command line
"""
from __future__ import annotations

import concurrent.futures as cf
import contextlib
import functools
import json
import operator
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd

from audio import AudioError, clip_from_wave, load_audio, quiet_native_stderr
from config import AudioConfig, RunConfig, parse_fractions, parse_shard
from distributed import Dist
from collection import Collection, DataError, open_collection

# --------------------------------------------------------------------------------------------------
# Feature cache

CACHE_VERSION = 1  # size/mtime_ns came without a bump: an index without them has every track re-decoded in place
INDEX_COLUMNS = ["row", "track_id", "split", "label", "status", "reason", "frames", "size", "mtime_ns"]
STAT_COLUMNS = ["size", "mtime_ns"]  # the audio file as it was decoded; a different size or mtime means re-decode
RECORD_COLUMNS = ["status", "reason", "frames", *STAT_COLUMNS]  # a track's journal record, in index.csv too
NO_FILE = -1      # size and mtime_ns recorded for a track whose audio file does not exist
UNRECORDED = -2   # what an index from before the file check stands for (it has no size/mtime_ns columns)


@dataclass
class FeatureCache:
    """A finished cache: `index` (one row per track of the subset) and `features` (memmap)."""

    path: Path
    audio: AudioConfig
    index: pd.DataFrame
    collection: Optional[Collection] = None  # what it caches: the labels and splits of its tracks

    @property
    def features(self) -> np.ndarray:
        """Read-only memmap of shape (n_tracks, n_mels, clip_frames), float16 log-mel dB."""
        return np.load(self.path / "features.npy", mmap_mode="r")

    @property
    def ok(self) -> pd.DataFrame:
        return self.index[self.index["status"] == "ok"]

    @property
    def failed(self) -> pd.DataFrame:
        return self.index[self.index["status"] != "ok"]

    def summary(self) -> str:
        return f"prepared {len(self.index)} tracks: {len(self.ok)} ok, {len(self.failed)} failed"

    def read(self, row: int) -> np.ndarray:
        """One track's log-mel, float16 (n_mels, clip_frames), by a positional read: no mapping stays
        resident, so memory does not grow with the number of tracks visited."""
        if getattr(self, "_fd", None) is None or self._pid != os.getpid():
            self._fd, self._pid = os.open(self.path / "features.npy", os.O_RDONLY), os.getpid()
            self._offset = _data_offset(self.path / "features.npy")
        shape = (self.audio.n_mels, self.audio.clip_frames)
        nbytes = shape[0] * shape[1] * 2
        buf = os.pread(self._fd, nbytes, self._offset + int(row) * nbytes)
        return np.frombuffer(buf, dtype=np.float16).reshape(shape)

    def __getstate__(self):  # file descriptors do not travel to worker processes
        return {k: v for k, v in self.__dict__.items() if k not in ("_fd", "_pid", "_offset")}


def cache_path(cache_dir, subset: str, audio: AudioConfig) -> Path:
    """One directory per (subset, audio parameters): changing any parameter builds a new cache."""
    return Path(cache_dir) / f"{subset}-{audio.key()}-v{CACHE_VERSION}"


def lock_path(path: Path) -> Path:
    """The builders' lock file of cache directory `path`: beside it, so that it outlives a removed directory."""
    return path.parent / f"{path.name}.lock"


def file_stats(paths: Iterable) -> np.ndarray:
    """(n, 2) int64: each file's size in bytes and modification time in ns; NO_FILE for both where none is."""
    paths = list(paths)
    out = np.full((len(paths), 2), NO_FILE, dtype=np.int64)
    for i, p in enumerate(paths):
        try:
            st = os.stat(p)
        except OSError:  # missing or unreachable: decoding it says which
            continue
        out[i] = st.st_size, st.st_mtime_ns
    return out


@dataclass
class FileCheck:
    """The subset's audio files now (`stats`, from file_stats) against the size and mtime that a finished
    cache's `index` recorded when it decoded them (`index` None: no finished cache to check against)."""

    stats: np.ndarray
    index: Optional[pd.DataFrame]

    @functools.cached_property
    def recorded(self) -> np.ndarray:
        if self.index is None or not set(STAT_COLUMNS) <= set(self.index.columns):
            return np.full_like(self.stats, UNRECORDED)
        return self.index[STAT_COLUMNS].to_numpy(dtype=np.int64)

    @functools.cached_property
    def changed(self) -> np.ndarray:
        """Rows whose file changed, appeared or vanished since it was decoded (or whose file was never recorded)."""
        return (self.recorded != self.stats).any(axis=1)

    @property
    def unchanged(self) -> bool:
        """A finished cache whose every file is as it was when decoded: reuse it as it is."""
        return self.index is not None and not self.changed.any()

    def line(self, decoded: int) -> str:
        """The log line: 'checked 58 files: 2 changed (1 modified, 1 vanished), re-decoded 2'."""
        was, now = self.recorded[self.changed, 0], self.stats[self.changed, 0]
        kinds = {"modified": (was >= 0) & (now >= 0), "appeared": (was == NO_FILE) & (now >= 0),
                 "vanished": (was >= 0) & (now == NO_FILE), "not recorded before": was == UNRECORDED}
        detail = ", ".join(f"{int(m.sum())} {kind}" for kind, m in kinds.items() if m.any())
        return (f"checked {len(self.stats)} files: {len(was)} changed{f' ({detail})' if detail else ''}, "
                f"re-decoded {decoded}")


def _check_cache(path: Path, meta: dict, paths: list, stats: Optional[np.ndarray] = None) -> FileCheck:
    """Stat every file of the subset (unless given their `stats`), against the index of the finished cache at
    `path` if there is one. Reads only: a reader of a finished, unchanged cache takes no lock and writes nothing."""
    stats = file_stats(paths) if stats is None else stats
    finished = _read_json(path / "meta.json") == meta and (path / "index.csv").exists()
    return FileCheck(stats, pd.read_csv(path / "index.csv", keep_default_na=False) if finished else None)


def _read_json(path: Path) -> Optional[dict]:
    """A JSON file's content; None when it is missing or torn."""
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _write_atomic(path: Path, text: str):
    """Replace `path` by `text` in one step: a reader, or the next run after a crash, sees the old file or the new."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def _build_lock(lock_file: Path, log: Callable[[str], None], shared: bool = False, wait: bool = True,
                what: str = "this cache"):
    """Hold an advisory lock (fcntl.flock) on `lock_file` for the block, exclusive or `shared`; wait, saying so,
    while another process holds it (or, with wait=False, yield False at once: not held). Yields True once held.
    The kernel drops the lock when its holder exits, however it exits (kill -9 included). The file keeps the
    pid of its last holder, for the waiting message; it is never removed (that would race)."""
    import fcntl
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    kind = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, kind | fcntl.LOCK_NB)
        except BlockingIOError:
            if not wait:
                yield False
                return
            f.seek(0)
            holder = (f.read().split() or [""])[-1]  # shared holders may each have written theirs
            log(f"waiting for {lock_file}: another process{f' (pid {holder})' if holder else ''} "
                f"is building {what}")
            fcntl.flock(f, kind)
        f.truncate(0)
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield True


@contextlib.contextmanager
def _disk_full_is_data_error(path: Path):
    """Turn 'no space left on device' (or over quota) while writing the cache into a DataError naming `path`."""
    import errno
    try:
        yield
    except OSError as e:
        if e.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise DataError(f"disk full while writing the feature cache {path} ({os.strerror(e.errno)}): free some "
                        f"space (fma_large takes about 35 GB) and rerun: the build resumes where it stopped") from e


def _append_journal(f, record: dict):
    """One journal line, written and flushed: a finished track (its features row is already in the array)."""
    f.write(json.dumps(record) + "\n")
    f.flush()


def _extract(job: tuple) -> tuple:
    """Worker: (track_id, path, audio) -> (track_id, status, reason, frames, features or None)."""
    track_id, path, audio = job
    try:
        wave = load_audio(path, audio.sample_rate, audio.min_seconds)
    except AudioError as e:
        return track_id, "failed", str(e), 0, None
    except Exception as e:  # an unexpected decoder crash is reported like any other failure
        return track_id, "failed", f"{path}: {type(e).__name__}: {e}", 0, None
    features, frames = clip_from_wave(wave, audio)
    return track_id, "ok", "", frames, features


def _run_jobs(jobs: list, workers: int) -> Iterable[tuple]:
    """Yield _extract results as they finish, with at most a few jobs in flight per worker.

    Workers are threads: decoding (libsndfile), resampling (soxr), the FFT (scipy) and the mel
    product release the GIL, so threads use every core, start at once (processes would each pay
    the import of torch and pandas, seconds on small builds) and hand back features without pickling.
    """
    if workers <= 1:
        yield from map(_extract, jobs)
        return
    with cf.ThreadPoolExecutor(workers, thread_name_prefix="extract") as pool:
        pending, queue = set(), iter(jobs)
        for job in queue:
            pending.add(pool.submit(_extract, job))
            if len(pending) >= 4 * workers:
                done, pending = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                yield from (f.result() for f in done)
        for f in cf.as_completed(pending):
            yield f.result()



def _read_journal(path: Path, truncate: bool = True) -> dict:
    """track_id -> its last complete journal record (status, reason, frames, size, mtime_ns). A torn last line
    (a write cut short by kill -9 or a full disk) is left out, and with `truncate` cut off the file, so that the
    next line starts afresh: only for a journal that this process owns (one another process is writing may
    merely end with a line not yet complete)."""
    done, end = {}, 0
    if not path.exists():
        return done
    with open(path, "rb") as f:
        for line in f:
            if not line.endswith(b"\n"):
                break
            rec = json.loads(line)
            done[rec["track_id"]] = rec
            end += len(line)
    if truncate and end < path.stat().st_size:
        os.truncate(path, end)
    return done


def shard_lock_path(path: Path, k: int, n: int) -> Path:
    """The lock file of slice k of n of cache directory `path`: its builders take turns (beside it, like lock_path)."""
    return path.parent / f"{path.name}.shard-{k}-of-{n}.lock"


def _shard_journal(path: Path, k: int, n: int) -> Path:
    return path / f"journal-{k}-of-{n}.jsonl"


def _shard_journals(path: Path) -> list[Path]:
    return sorted(path.glob("journal-*-of-*.jsonl"))


def _journals(path: Path) -> list[Path]:
    """Every journal of the cache at `path`, in the order that their records apply."""
    return [path / "journal.jsonl", *_shard_journals(path)]


def _read_journals(path: Path, owned: Optional[list] = None) -> dict:
    """track_id -> its current record: its last line in journal.jsonl, then in the shard journals, which are newer
    (they exist only between a sharded set-up and the fold that ends it) and of one slice count, so their slices
    do not overlap. `owned`: the journals whose torn last line this process may cut off (None: all of them, under
    the lock held exclusively)."""
    done = {}
    for journal in _journals(path):
        done.update(_read_journal(journal, truncate=owned is None or journal in owned))
    return done


def _current(records: dict, index: pd.DataFrame, stats: np.ndarray) -> dict:
    """The records of `records` whose file still has the recorded size and mtime (`stats`, rows of `index`)."""
    now = {int(tid): (int(size), int(mtime)) for tid, (size, mtime) in zip(index["track_id"], stats)}
    return {tid: rec for tid, rec in records.items() if (rec.get("size"), rec.get("mtime_ns")) == now.get(tid)}


def _is_set_up(path: Path, meta: dict, n: Optional[int] = None) -> bool:
    """Whether `path` holds the started build of `meta`: its started.json and its (perhaps partly written) array;
    with `n`, also the journals of slices 0..n-1 of n, and no other shard journal."""
    return (_read_json(path / "started.json") == meta and (path / "features.npy").exists()
            and (n is None or _shard_journals(path) == sorted(_shard_journal(path, k, n) for k in range(n))))


def _set_up(path: Path, meta: dict):
    """Make `path` the directory of a build of `meta` (<name>.lock held exclusively): a directory of other parameters or
    another track list, or of a build killed before it wrote started.json, is removed; then started.json, and the
    (sparse) array, whose loss makes every journal stale."""
    started, array = path / "started.json", path / "features.npy"
    if path.exists() and _read_json(started) != meta:
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if not started.exists():
        _write_atomic(started, json.dumps(meta))  # before anything else: a directory without it holds nothing
    if not array.exists():
        for journal in _journals(path):
            journal.unlink(missing_ok=True)  # its lines describe the rows of a lost array
        tmp = path / "features.npy.tmp"
        np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=tuple(meta["shape"]))  # sparse file
        os.replace(tmp, array)


def _fold_journals(path: Path):
    """Merge the shard journals into journal.jsonl, one line per track (its current record; replaced atomically),
    then remove them (<name>.lock held exclusively). A fold cut short is done again by the next one: it is
    idempotent."""
    shards = _shard_journals(path)
    if shards:
        records = _read_journals(path)
        _write_atomic(path / "journal.jsonl", "".join(json.dumps(rec) + "\n" for rec in records.values()))
        for journal in shards:
            journal.unlink()


def _finish(path: Path, meta: dict, index: pd.DataFrame, done: dict):
    """Write index.csv from each track's current record (`done`), then meta.json: the cache is complete."""
    index = index.assign(**{col: [done[int(tid)][col] for tid in index["track_id"]] for col in RECORD_COLUMNS})
    _write_atomic(path / "index.csv", index[INDEX_COLUMNS].to_csv(index=False))
    _write_atomic(path / "meta.json", json.dumps(meta))


def _check_shard(shard) -> Optional[tuple[int, int]]:
    """prepare_cache's `shard` as (k, n) with 0 <= k < n; None for none, or for the one slice of 1 (a full build)."""
    if shard is None:
        return None
    try:
        k, n = (operator.index(v) for v in shard)
    except (TypeError, ValueError):
        k, n = 0, 0
    if not 0 <= k < n:
        raise ValueError(f"shard {shard!r}: expected (k, n), slice k of n, with integers 0 <= k < n")
    return None if n == 1 else (k, n)


def open_cache(run: RunConfig, audio: AudioConfig, dist: Dist = Dist(),
               collection: Optional[Collection] = None) -> Optional[FeatureCache]:
    """Build or reopen the cache of `run`'s collection (`collection` when the caller has opened it already);
    list failed tracks, then the one-line summary (the last line).

    `--shard K/N` builds slice K only (a job-array task) and returns None while other slices are missing.
    Under torchrun every process builds its slice (rank of world size), waits for the others, and then
    all reopen the finished cache. Decoding threads default to the cores shared by this machine's ranks."""
    collection = collection or open_collection(run.data_dir, run.subset, parse_fractions(run.split_fractions),
                                               run.split_seed)
    if collection.note:
        print(f"{collection}: {collection.note}")
    build = functools.partial(prepare_cache, collection, audio=audio, cache_dir=run.cache_dir,
                              workers=run.workers or max(1, (os.cpu_count() or 1) // dist.local_world_size),
                              progress=dist.main)
    if run.shard:
        cache = build(shard=parse_shard(run.shard))
        if cache is None:
            return None
    elif dist.enabled:
        build(shard=(dist.rank, dist.world_size))
        dist.barrier()
        cache = build()  # every slice done: a check of the audio files, nothing to decode
    else:
        cache = build()
    for r in cache.failed.itertuples():
        print(f"failed {r.track_id:06d}: {r.reason}" if collection.kind == "fma" else f"failed: {r.reason}")
    print(cache.summary())
    return cache


def prepare_cache(data, subset: str = "small", audio: AudioConfig = AudioConfig(), cache_dir=None,
                  workers: Optional[int] = None, progress: bool = True, log: Callable[[str], None] = print,
                  shard: Optional[tuple[int, int]] = None) -> Optional[FeatureCache]:
    """Build (or reopen) the log-mel cache of every track of `subset`; see the module docstring.

    Reopening a finished cache stats every audio file of the subset, without a lock and writing nothing, and
    reuses the cache as it is when each file still has the size and mtime (ns) recorded when it was decoded.
    Tracks whose file changed, appeared or vanished (-> failed: file not found) are re-decoded in place: their
    features rows, journal lines, then index.csv and meta.json (replaced atomically); the log says
    'checked N files: K changed (...), re-decoded J'. An index without size/mtime_ns (an older cache) has
    every track re-decoded this way.

    Builders of one cache directory take an advisory lock, fcntl.flock of CACHE_DIR/<name>.lock (beside the
    directory, which a build with another track list removes), and check again once they hold it: a second
    builder says it is waiting, then finds the cache finished and reuses it. The kernel drops the lock when its
    holder dies, so a killed builder never blocks the next one. On NFS, flock is emulated with NFS byte-range
    locks (Linux >= 2.6.12) and excludes builders on other machines only where the mount supports locking
    (NFSv4, or NFSv3 with lockd; not with `nolock` or `local_lock=flock|all`, where each machine has its own
    locks); other network file systems depend on their mount options too.

    `shard=(k, n)`: decode only slice k of n, the rows with row % n == k, while other processes (torchrun ranks,
    job-array tasks on machines sharing the file system) decode theirs into the same directory at the same time.
    Returns the cache when it is complete once this slice is done (this process finished it, or found it
    finished), else None; `n == 1` is a full build. Locks: a full build holds <name>.lock exclusively throughout;
    a slice holds it shared while it decodes, so that slices run together but never beside a full build, and
    <name>.shard-K-of-N.lock exclusively, so that two processes of one slice take turns (the second then finds
    its slice done). Setting the directory up for slices of n (removing a stale directory, started.json, the
    array, the n empty shard journals) and finishing it take <name>.lock exclusively. A slice's tracks that any
    journal records with the file's current size and mtime are not decoded again. The last process to let go
    of the shared lock finalises: it merges the shard journals into journal.jsonl and writes index.csv and
    meta.json; the finished directory is byte-identical to a single build's (but journal.jsonl: a fresh
    build's lines in another order; after a rebuild, only each track's last line). The others log 'shard K/N done: D of T tracks decoded so far; ...'.

    A full disk (ENOSPC, EDQUOT) raises DataError naming the cache; the next run resumes from the journal.

    Layout of the cache directory:
      features.npy  float16 (n_tracks, n_mels, clip_frames), row i <-> index.csv row i (zeros for failed tracks)
      index.csv     row, track_id, split, label, status (ok/failed), reason, frames (before padding),
                    size, mtime_ns (the audio file as decoded; -1 for both: no file)
      meta.json     audio parameters, shape, track count (written last: its presence = complete)
      started.json  the same, written first: what the journal and the array belong to
      journal.jsonl one line per decoded track, appended (features row first, then the line): resumes a build
                    after a crash or kill -9; a track's last line is its current record
      journal-K-of-N.jsonl  the same for slice K of N, while slices are being built (merged into journal.jsonl
                    and removed when the cache is complete)
    """
    shard = _check_shard(shard)
    collection = data if isinstance(data, Collection) else open_collection(data, subset)
    table = collection.table
    path = cache_path(cache_dir or collection.default_cache_dir, collection.name, audio)
    index = pd.DataFrame({"row": np.arange(len(table)), "track_id": table.index.to_numpy(dtype=np.int64),
                          "split": table["split"].to_numpy(), "label": table["label"].to_numpy()})
    shape = (len(index), audio.n_mels, audio.clip_frames)
    meta = {"version": CACHE_VERSION, "subset": collection.name, "audio": asdict(audio), "shape": list(shape),
            "track_ids_sha1": collection.digest()}
    paths = [Path(p) for p in table["path"]]
    build = functools.partial(_build, path, meta, index, paths, audio=audio, workers=workers or os.cpu_count() or 1,
                              progress=progress, log=log)

    check, decoded = _check_cache(path, meta, paths), 0
    if not check.unchanged and shard:
        with _disk_full_is_data_error(path):
            check, decoded = _build_shard(path, meta, index, paths, build, shard, log)
        if check is None:
            return None
    elif not check.unchanged:  # something to write: one builder at a time, and look again once it is our turn
        with _disk_full_is_data_error(path), _build_lock(lock_path(path), log):
            check = _check_cache(path, meta, paths)
            if not check.unchanged:
                decoded = build(check.stats)
    if check.index is not None:
        log(check.line(decoded))
    index = check.index if check.unchanged else pd.read_csv(path / "index.csv", keep_default_na=False)
    return FeatureCache(path, audio, index, collection)


def _build_shard(path: Path, meta: dict, index: pd.DataFrame, paths: list, build: Callable,
                 shard: tuple[int, int], log: Callable[[str], None]) -> tuple[Optional[FileCheck], int]:
    """prepare_cache's slice k of n (`shard`): set the directory up for slices of n unless it is, decode the slice
    (`build`: _build bound to this cache), and finalise the cache if no slice is missing any more. Returns the
    check of the files (None: the cache is not complete yet) and the number of tracks decoded."""
    k, n = shard
    lock = lock_path(path)
    while True:
        with _build_lock(lock, log, shared=True):
            check = _check_cache(path, meta, paths)  # again, holding the lock: someone may have finished it
            if check.unchanged:
                return check, 0
            if _is_set_up(path, meta, n):
                with _build_lock(shard_lock_path(path, k, n), log, what=f"shard {k}/{n} of this cache"):
                    decoded = build(check.stats, shard=shard)
                so_far = len(_current(_read_journals(path, owned=[]), index, check.stats))
                break
        with _build_lock(lock, log):  # not set up for slices of n: set it up, unless someone did meanwhile
            if not _check_cache(path, meta, paths, check.stats).unchanged:
                _set_up(path, meta)
                if not _is_set_up(path, meta, n):
                    _fold_journals(path)  # those of another slice count (or of a set-up cut short)
                    for i in range(n):
                        _shard_journal(path, i, n).touch()
    # Why the last slice to finish always gets the cache finalised: every process that decodes a slice holds
    # <name>.lock shared, and once it lets go tries it exclusively, without waiting. That try fails only while
    # another process holds the lock, after this slice's records were written and its files closed. That
    # process either holds it exclusively and finalises itself (a finaliser or a full build, which read the
    # journals now) or goes on to try in turn (a set-up, which then decodes nothing of its done slice), or holds
    # it shared and tries in turn when it lets go. So the last try after every slice is done succeeds; if its
    # process is killed first, the next run of any slice (which decodes nothing) or a full build finalises.
    with _build_lock(lock, log, wait=False) as held:
        if held:
            final = _check_cache(path, meta, paths, check.stats)
            if final.unchanged:  # finalised by another process meanwhile
                return final, decoded
            if _is_set_up(path, meta):
                done = _current(_read_journals(path), index, check.stats)
                if len(done) == len(index):
                    _fold_journals(path)
                    _finish(path, meta, index, done)
                    return check, decoded
                so_far = len(done)
    log(f"shard {k}/{n} done: {so_far} of {len(paths)} tracks decoded so far; "
        f"the cache is complete when every shard is")
    return None, decoded


def _build(path: Path, meta: dict, index: pd.DataFrame, paths: list, stats: np.ndarray, audio: AudioConfig,
           workers: int, progress: bool, log: Callable[[str], None], shard: Optional[tuple[int, int]] = None) -> int:
    """Bring the cache at `path` up to date. Decodes every track that no journal records with its file's current
    size and mtime (`stats`, taken before decoding: a file changed meanwhile is seen next time), writes its
    features row and then its journal line. Returns the number of tracks decoded.

    Without `shard`, the caller holds <name>.lock exclusively: set the directory up, merge any shard journals, and
    end with index.csv and meta.json (last). With shard (k, n), the caller holds <name>.lock shared and the
    slice's lock, and the directory is set up for slices of n: only the slice's tracks, into its journal."""
    from tqdm import tqdm
    k, n = shard or (0, 1)
    array, journal = path / "features.npy", _shard_journal(path, k, n) if shard else path / "journal.jsonl"
    if not shard:
        _set_up(path, meta)
        _fold_journals(path)
    done = _current(_read_journals(path, owned=[journal] if shard else None), index, stats)
    now = dict(zip(ids := [int(tid) for tid in index["track_id"]], stats.tolist()))
    rows = dict(zip(ids, index["row"].tolist()))
    jobs = [(tid, p, audio) for tid, p in zip(ids, paths) if tid not in done and rows[tid] % n == k]
    if jobs:
        log(f"{f'shard {k}/{n}: ' if shard else ''}building log-mel cache for {len(jobs)} of {len(index)} tracks "
            f"in {path} ({workers} workers)")
        offset, row_bytes = _data_offset(array), audio.n_mels * audio.clip_frames * 2
        blank = bytes(row_bytes)  # a failed track's row, as in a fresh build (also over an earlier decode)
        with quiet_native_stderr(), open(array, "r+b") as arr, open(journal, "a", newline="") as jf:
            for tid, status, reason, frames, feats in tqdm(_run_jobs(jobs, workers), total=len(jobs),
                                                          unit="track", disable=not progress):
                # the features reach the file before the journal says so
                row = blank if feats is None else feats.tobytes()
                os.pwrite(arr.fileno(), row, offset + rows[tid] * row_bytes)
                size, mtime_ns = now[tid]
                done[tid] = {"track_id": tid, "status": status, "reason": reason, "frames": int(frames),
                             "size": size, "mtime_ns": mtime_ns}
                _append_journal(jf, done[tid])
    if not shard:
        _finish(path, meta, index, done)
    return len(jobs)


def _data_offset(npy: Path) -> int:
    """Byte offset of the array data inside a .npy file (after its header)."""
    return np.load(npy, mmap_mode="r").offset


