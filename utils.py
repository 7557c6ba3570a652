"""Data layer: FMA metadata, audio decoding, log-mel features and the on-disk feature cache.

Nothing here trains or defines a model. The pieces, in the order data flows through them:

- `load_tracks` / `load_genres` / `select_subset` / `audio_path`: FMA's metadata files
  (tracks.csv has a two-row header and Python-list columns; subsets are ordered small < medium < large).
- `genre_path` / `genre_vocabulary` / `multi_hot`: the genre hierarchy of genres.csv ('Rock > Punk')
  and the multi-hot targets of `--target all`.
- `load_audio`: decode (libsndfile: mp3, wav, flac, ogg, ...), mix to mono, resample with soxr.
  Every failure is an `AudioError` whose message names the file and the reason.
- `log_mel`: the one log-mel function used by training, evaluation and prediction.
- `prepare_cache`: decode every track of a subset once, in parallel, into a float16 array on disk
  (`features.npy`, read through a memmap) plus `index.csv` listing each track's status. Resumable
  (a journal records finished tracks), idempotent, and nothing is dropped silently.

Build a cache from the command line with `python main.py --data-dir DIR --subset small --prepare-only`.
"""
from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import functools
import json
import os
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np
import pandas as pd
import torch

from config import AudioConfig

# --------------------------------------------------------------------------------------------------
# FMA metadata

SUBSETS = ("small", "medium", "large")  # ordered: small is inside medium, which is inside large
SPLITS = ("training", "validation", "test")
LIST_COLUMNS = (("track", "genres"), ("track", "genres_all"), ("track", "tags"),
                ("album", "tags"), ("artist", "tags"))
DOWNLOAD_HINT = ("get FMA with `bash download_data.sh small --data-dir {d}`, "
                 "or write the synthetic demo set with `python demo_data.py --out {d}`")


class DataError(Exception):
    """The data directory itself is unusable (missing metadata, no audio folder, ...)."""


def _require(path: Path, data_dir: Path) -> Path:
    if not path.is_file():
        raise DataError(f"{path} not found: {DOWNLOAD_HINT.format(d=data_dir)}")
    return path


def load_tracks(path) -> pd.DataFrame:
    """Read FMA's tracks.csv: index track_id, two-level columns such as ('track', 'genre_top').

    List columns become Python lists, `('set', 'subset')` an ordered categorical (small < medium <
    large), `('set', 'split')` a categorical of training/validation/test.
    """
    tracks = pd.read_csv(path, index_col=0, header=[0, 1])
    tracks.index.name = "track_id"
    for col in LIST_COLUMNS:
        if col in tracks.columns:
            tracks[col] = tracks[col].map(_parse_list)
    tracks[("set", "subset")] = pd.Categorical(tracks[("set", "subset")], categories=SUBSETS, ordered=True)
    tracks[("set", "split")] = pd.Categorical(tracks[("set", "split")], categories=SPLITS)
    return tracks


def _parse_list(value) -> list:
    if isinstance(value, str):
        return list(ast.literal_eval(value))
    return []  # missing cell


def load_genres(path) -> pd.DataFrame:
    """Read FMA's genres.csv: index genre_id; columns #tracks, parent, title, top_level."""
    return pd.read_csv(path, index_col=0)


def load_metadata(data_dir) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tracks, genres) from DATA_DIR/fma_metadata/, with a clear error when absent."""
    data_dir = Path(data_dir)
    meta = data_dir / "fma_metadata"
    tracks = load_tracks(_require(meta / "tracks.csv", data_dir))
    genres = load_genres(_require(meta / "genres.csv", data_dir))
    return tracks, genres


def genre_path(genre_id: int, genres: pd.DataFrame, sep: str = " > ") -> str:
    """'Rock > Punk': the titles from the root down to the genre, following genres.csv's parent column."""
    chain, g = [], int(genre_id)
    while g != 0 and len(chain) <= len(genres):  # the bound guards against a cycle in a damaged file
        chain.append(str(genres.at[g, "title"]))
        g = int(genres.at[g, "parent"])
    return sep.join(reversed(chain))


def genre_vocabulary(genre_ids: Iterable[int], genres: pd.DataFrame) -> dict:
    """The genres of a multi-label model, sorted by id: ids, titles, parent ids and hierarchy paths,
    all read from genres.csv (plain lists, so they go into checkpoints and config.json as they are)."""
    ids = sorted({int(g) for g in genre_ids})
    return {"ids": ids,
            "titles": [str(genres.at[g, "title"]) for g in ids],
            "parents": [int(genres.at[g, "parent"]) for g in ids],
            "paths": [genre_path(g, genres) for g in ids]}


def multi_hot(genre_lists: Iterable[list], ids: list[int]) -> np.ndarray:
    """(n_tracks, len(ids)) uint8: 1 where the track has that genre; genres outside `ids` are ignored."""
    col = {g: j for j, g in enumerate(ids)}
    lists = list(genre_lists)
    out = np.zeros((len(lists), len(ids)), dtype=np.uint8)
    for i, gs in enumerate(lists):
        out[i, [col[g] for g in gs if g in col]] = 1
    return out


def select_subset(tracks: pd.DataFrame, subset: str) -> pd.DataFrame:
    """Tracks of a subset: `small` within `medium` within `large`; `full` is every track."""
    if subset == "full":
        return tracks
    if subset not in SUBSETS:
        raise ValueError(f"unknown subset {subset!r}: choose from {SUBSETS + ('full',)}")
    return tracks[tracks[("set", "subset")] <= subset]


def audio_path(audio_dir, track_id: int) -> Path:
    """fma_small/098/098565.mp3: the id zero-padded to 6 digits, folder = its first 3."""
    tid = f"{int(track_id):06d}"
    return Path(audio_dir) / tid[:3] / f"{tid}.mp3"


def find_audio_dir(data_dir, subset: str) -> Path:
    """DATA_DIR/fma_<subset>, or a larger subset's folder (which holds the smaller subsets' clips)."""
    data_dir = Path(data_dir)
    order = list(SUBSETS) + ["full"]
    for name in order[order.index(subset):]:
        if (data_dir / f"fma_{name}").is_dir():
            return data_dir / f"fma_{name}"
    raise DataError(f"no audio folder fma_{subset}/ in {data_dir}: {DOWNLOAD_HINT.format(d=data_dir)}")


# --------------------------------------------------------------------------------------------------
# Audio decoding

class AudioError(Exception):
    """A file could not be turned into usable audio; str() names the file and the reason."""


# extensions libsndfile decodes; anything else goes to the fallback decoder
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
TRUNCATED_RATIO = 0.9  # decoded / declared length below this (and > 1 s missing) means a truncated file


def _decode_soundfile(path: Path) -> tuple[np.ndarray, int, int]:
    import soundfile as sf
    try:
        with sf.SoundFile(str(path)) as f:
            declared, sr = f.frames, f.samplerate
            data = f.read(dtype="float32", always_2d=True)
    except sf.LibsndfileError as e:
        # libsndfile reports data it does not recognise as "File does not exist or is not a regular file"
        detail = "not audio, or a corrupt file" if "regular file" in e.error_string else f"libsndfile: {e.error_string}"
        raise AudioError(f"{path}: not decodable audio ({detail})") from None
    return data, sr, declared


def _decode_fallback(path: Path) -> tuple[np.ndarray, int, int]:
    """Formats libsndfile does not read (m4a, aac, wma, ...) through audioread, when it has a backend."""
    try:
        import audioread
        with audioread.audio_open(str(path)) as f:
            sr, channels = f.samplerate, f.channels
            raw = b"".join(f)
    except Exception as e:  # audioread raises backend-specific types; all mean "cannot decode"
        detail = f" ({type(e).__name__}: {e})" if str(e) else ""
        raise AudioError(f"{path}: no decoder for {path.suffix or 'extension-less'} files: convert it to "
                         f"wav/flac/ogg/mp3, or install ffmpeg so audioread can read it{detail}") from None
    data = np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
    data = data.reshape(-1, channels)
    return data, sr, len(data)


def load_audio(path, sample_rate: int, min_seconds: float = 0.0, check_truncated: bool = True) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate` Hz.

    Raises AudioError (naming the file and the reason) for a missing or empty file, undecodable
    data, a file whose decoded length falls far short of the length its header declares
    (truncated), NaN/inf samples, or audio shorter than `min_seconds`.
    """
    import soxr
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        data, sr, declared = _decode_soundfile(path)
    else:
        data, sr, declared = _decode_fallback(path)
    if len(data) == 0:
        raise AudioError(f"{path}: no audio decoded")
    if check_truncated and declared > 0 and len(data) < TRUNCATED_RATIO * declared and declared - len(data) > sr:
        raise AudioError(f"{path}: truncated (decoded {len(data) / sr:.1f} s of the {declared / sr:.1f} s "
                         f"its header declares)")
    if not np.isfinite(data).all():
        raise AudioError(f"{path}: decoded samples contain NaN or inf")
    wave = data.mean(axis=1)  # (samples, channels) -> (samples,)
    if sr != sample_rate:
        wave = soxr.resample(wave, sr, sample_rate)
    seconds = len(wave) / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{path}: too short ({seconds:.2f} s < {min_seconds:g} s minimum)")
    return np.ascontiguousarray(wave, dtype=np.float32)


def fit_length(wave: np.ndarray, samples: int) -> np.ndarray:
    """Pad with silence at the end, or keep the middle `samples` of a longer signal."""
    if len(wave) >= samples:
        start = (len(wave) - samples) // 2
        return wave[start:start + samples]
    return np.pad(wave, (0, samples - len(wave)))


# --------------------------------------------------------------------------------------------------
# Log-mel spectrogram

AMIN = 1e-10  # power floor before log10: silence maps to -100 dB


@functools.lru_cache(maxsize=8)
def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: Optional[float]) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) Slaney-normalised mel filters, as librosa's defaults."""
    import librosa
    return librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max).astype(np.float32)


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int) -> np.ndarray:
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)  # periodic


@functools.lru_cache(maxsize=8)
def _sparse_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: Optional[float]):
    """mel_filterbank as a sparse matrix: each triangular filter spans a few FFT bins (about 2,000
    non-zeros of 131,000 at the defaults), so applying it sparsely is ~10x less work than densely."""
    import scipy.sparse
    return scipy.sparse.csr_array(mel_filterbank(sample_rate, n_fft, n_mels, f_min, f_max))


LOG_MEL_BLOCK_FRAMES = 256  # frames transformed at a time: a block's spectrum (1 MB) stays in cache


def log_mel(wave: np.ndarray, audio: AudioConfig) -> np.ndarray:
    """Log-mel power spectrogram in dB (ref 1.0), float32, shape (n_mels, 1 + len(wave) // hop).

    Centred STFT with zero padding and a periodic Hann window, |X|^2, mel filters, 10 log10. It
    equals `librosa.power_to_db(librosa.feature.melspectrogram(...), ref=1.0, top_db=None)`;
    tests check that. This is the only feature function: training, evaluation and prediction use it.
    Signals are transformed in blocks of frames (bounded memory for songs of many minutes, and
    cache-sized working sets); scipy.fft is used for the FFT (several times faster than numpy.fft on
    float32) and the mel filters are applied as a sparse matrix. See bench.py for the timings.
    """
    import scipy.fft
    n_fft, hop = audio.n_fft, audio.hop_length
    padded = np.pad(np.asarray(wave, dtype=np.float32), n_fft // 2)
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]  # (T, n_fft), a view
    fbank = _sparse_filterbank(audio.sample_rate, n_fft, audio.n_mels, audio.f_min, audio.f_max)
    out = np.empty((audio.n_mels, len(frames)), dtype=np.float32)
    for t0 in range(0, len(frames), LOG_MEL_BLOCK_FRAMES):
        block = frames[t0:t0 + LOG_MEL_BLOCK_FRAMES] * _hann(n_fft)  # (t, n_fft), a copy
        spectrum = scipy.fft.rfft(block, axis=-1, overwrite_x=True)  # (t, n_fft // 2 + 1)
        power = spectrum.real ** 2 + spectrum.imag ** 2
        out[:, t0:t0 + len(block)] = fbank @ power.T  # (n_mels, t)
    return 10.0 * np.log10(np.maximum(out, AMIN), out=out)


def clip_from_wave(wave: np.ndarray, audio: AudioConfig) -> tuple[np.ndarray, int]:
    """The cached clip of a decoded signal: float16 log-mel (n_mels, clip_frames) of its middle
    `clip_seconds` (zero-padded when shorter), and the number of frames of real audio in it."""
    valid = min(1 + len(wave) // audio.hop_length, audio.clip_frames)
    wave = fit_length(wave, int(round(audio.clip_seconds * audio.sample_rate)))
    return log_mel(wave, audio).astype(np.float16), valid


# --------------------------------------------------------------------------------------------------
# Feature cache

CACHE_VERSION = 1
INDEX_COLUMNS = ["row", "track_id", "split", "label", "status", "reason", "frames"]


@dataclass
class FeatureCache:
    """A finished cache: `index` (one row per track of the subset) and `features` (memmap)."""

    path: Path
    audio: AudioConfig
    index: pd.DataFrame

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


@contextlib.contextmanager
def quiet_native_stderr():
    """Send what C libraries write straight to file descriptor 2 (libmpg123's 'Warning: Xing stream
    size off', 'Note: Trying to resync...') to /dev/null, while Python's own stderr (our error lines,
    the progress bar, tracebacks) keeps going to the real stderr."""
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured): nothing to do
        yield
        return
    old = sys.stderr
    old.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    sys.stderr = open(saved, "w", buffering=1, encoding=getattr(old, "encoding", None) or "utf-8",
                      errors="backslashreplace")
    os.dup2(devnull, fd)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, fd)
        sys.stderr.close()
        sys.stderr = old


def _read_journal(path: Path) -> dict:
    """track_id -> (status, reason, frames) for every complete line (a torn last line is ignored)."""
    done = {}
    if not path.exists():
        return done
    with open(path, newline="") as f:
        for line in f:
            if not line.endswith("\n"):
                break  # killed mid-write
            rec = json.loads(line)
            done[rec["track_id"]] = (rec["status"], rec["reason"], rec["frames"])
    return done


def prepare_cache(data_dir, subset: str = "small", audio: AudioConfig = AudioConfig(), cache_dir=None,
                  workers: Optional[int] = None, progress: bool = True,
                  log: Callable[[str], None] = print) -> FeatureCache:
    """Build (or reopen) the log-mel cache of every track of `subset`; see the module docstring.

    Layout of the cache directory:
      features.npy  float16 (n_tracks, n_mels, clip_frames), row i <-> index.csv row i
      index.csv     row, track_id, split, label, status (ok/failed), reason, frames (before padding)
      meta.json     audio parameters, shape, track count (written last: its presence = complete)
      journal.jsonl one line per finished track while building (resume after a crash or kill -9)
    """
    from tqdm import tqdm
    data_dir = Path(data_dir)
    tracks, _ = load_metadata(data_dir)
    tracks = select_subset(tracks, subset)
    if len(tracks) == 0:
        raise DataError(f"{data_dir / 'fma_metadata' / 'tracks.csv'} has no track in subset {subset!r}")
    audio_dir = find_audio_dir(data_dir, subset)
    path = cache_path(cache_dir or data_dir / "cache", subset, audio)
    index = pd.DataFrame({
        "row": np.arange(len(tracks)),
        "track_id": tracks.index.to_numpy(dtype=np.int64),
        "split": tracks[("set", "split")].astype(str).to_numpy(),
        "label": tracks[("track", "genre_top")].fillna("").astype(str).to_numpy(),
    })
    shape = (len(index), audio.n_mels, audio.clip_frames)
    meta = {"version": CACHE_VERSION, "subset": subset, "audio": asdict(audio), "shape": list(shape),
            "track_ids_sha1": _ids_digest(index["track_id"])}

    meta_file, journal, array = path / "meta.json", path / "journal.jsonl", path / "features.npy"
    if meta_file.exists() and json.loads(meta_file.read_text()) == meta:
        return FeatureCache(path, audio, pd.read_csv(path / "index.csv", keep_default_na=False))
    started = path / "started.json"  # what the journal belongs to; a different track list restarts
    if path.exists() and not (started.exists() and json.loads(started.read_text()) == meta):
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    if not array.exists():
        np.lib.format.open_memmap(array, mode="w+", dtype=np.float16, shape=shape)  # sparse file
        started.write_text(json.dumps(meta))

    done = _read_journal(journal)
    rows = dict(zip(index["track_id"], index["row"]))
    jobs = [(tid, audio_path(audio_dir, tid), audio) for tid in index["track_id"] if tid not in done]
    workers = workers or os.cpu_count() or 1
    if jobs:
        log(f"building log-mel cache for {len(jobs)} of {len(index)} tracks in {path} ({workers} workers)")
        offset, row_bytes = _data_offset(array), audio.n_mels * audio.clip_frames * 2
        with quiet_native_stderr(), open(array, "r+b") as arr, open(journal, "a", newline="") as jf:
            for tid, status, reason, frames, feats in tqdm(_run_jobs(jobs, workers), total=len(jobs),
                                                          unit="track", disable=not progress):
                if feats is not None:  # the features reach the file before the journal says so
                    os.pwrite(arr.fileno(), feats.tobytes(), offset + rows[tid] * row_bytes)
                jf.write(json.dumps({"track_id": int(tid), "status": status, "reason": reason,
                                     "frames": int(frames)}) + "\n")
                jf.flush()
                done[tid] = (status, reason, frames)
    index["status"] = [done[t][0] for t in index["track_id"]]
    index["reason"] = [done[t][1] for t in index["track_id"]]
    index["frames"] = [done[t][2] for t in index["track_id"]]
    index = index[INDEX_COLUMNS]
    index.to_csv(path / "index.csv.tmp", index=False)
    os.replace(path / "index.csv.tmp", path / "index.csv")
    (path / "meta.json.tmp").write_text(json.dumps(meta))
    os.replace(path / "meta.json.tmp", meta_file)
    return FeatureCache(path, audio, pd.read_csv(path / "index.csv", keep_default_na=False))


def _ids_digest(ids: pd.Series) -> str:
    import hashlib
    return hashlib.sha1(np.ascontiguousarray(ids.to_numpy(dtype=np.int64)).tobytes()).hexdigest()


def _data_offset(npy: Path) -> int:
    """Byte offset of the array data inside a .npy file (after its header)."""
    return np.load(npy, mmap_mode="r").offset


# --------------------------------------------------------------------------------------------------
# Normalisation, crops and datasets

def band_stats(cache: FeatureCache, rows, max_rows: int = 2000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-mel-band mean and std (float32, (n_mels,)) over the real (unpadded) frames of `rows`.

    Computed on the training rows only (at most `max_rows` of them, drawn with `seed`) and saved in
    the checkpoint, so evaluation and prediction standardise exactly as training did.
    """
    rows = np.asarray(rows)
    if len(rows) > max_rows:
        rows = np.sort(np.random.default_rng(seed).choice(rows, max_rows, replace=False))
    frames = cache.index["frames"].to_numpy()
    total = np.zeros(cache.audio.n_mels)
    squares = np.zeros(cache.audio.n_mels)
    count = 0
    for r in rows:
        x = cache.read(r)[:, : frames[r]].astype(np.float64)
        total += x.sum(axis=1)
        squares += (x ** 2).sum(axis=1)
        count += x.shape[1]
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean ** 2, 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(..., n_mels, T) log-mel dB -> zero mean, unit variance per band (float32)."""
    return (x.astype(np.float32) - mean[:, None]) / std[:, None]


def crop_starts(n_frames: int, crop_frames: int, k: int) -> np.ndarray:
    """Start frames of `k` evenly spaced crops of `crop_frames` covering a clip of `n_frames`."""
    last = max(n_frames - crop_frames, 0)
    return np.linspace(0, last, k).round().astype(int) if k > 1 else np.array([last // 2])


def patch_starts(n_frames: int, crop_frames: int, hop: int) -> np.ndarray:
    """Start frames of musicnn-style patches: `crop_frames`-long windows from the start every `hop`
    frames, while they fit in `n_frames` (musicnn's `range(0, T - n + 1, hop)`); at least one (at 0,
    to be padded) when the audio is shorter than a window."""
    return np.arange(0, max(n_frames - crop_frames, 0) + 1, hop)


def eval_windows(x: np.ndarray, valid_frames: int, crop_frames: int, k: int) -> np.ndarray:
    """(M, T) -> (k, M, crop_frames): k evenly spaced crops inside the first `valid_frames` (the real
    audio, not the padding), zero-padded (in dB) when the audio is shorter than one crop.

    The one windowing rule for evaluation and prediction: a clip's probability is the mean over these.
    """
    span = max(int(valid_frames), crop_frames)
    if x.shape[-1] < span:
        x = np.pad(x, ((0, 0), (0, span - x.shape[-1])), constant_values=10 * np.log10(AMIN))
    return np.stack([x[:, s:s + crop_frames] for s in crop_starts(span, crop_frames, k)])


class ClipDataset(torch.utils.data.Dataset):
    """Standardised log-mel clips of a FeatureCache with their targets: class indices (`--target top`)
    or multi-hot rows (`--target all`; stored as uint8, returned as float).

    - `crop_frames=None`: the whole cached clip, (M, clip_frames).
    - `crop_frames` and `random_crop` (training only): a random crop inside the track's real frames.
    - `crop_frames` and `eval_crops=K`: K evenly spaced crops, (K, M, crop_frames) (see eval_windows).
    - `crop_frames` alone: the centre crop.
    """

    def __init__(self, cache: FeatureCache, rows, targets, mean: np.ndarray, std: np.ndarray,
                 crop_frames: Optional[int] = None, random_crop: bool = False, eval_crops: int = 0):
        self.cache, self.rows, self.targets = cache, np.asarray(rows), torch.tensor(np.asarray(targets))
        self.frames = cache.index["frames"].to_numpy()[self.rows]
        self.mean, self.std = mean, std
        self.crop_frames, self.random_crop, self.eval_crops = crop_frames, random_crop, eval_crops

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int):
        y = self.targets[i]
        y = y.float() if y.ndim else y  # multi-hot rows are stored as uint8 (memory), served as float
        x = self.cache.read(self.rows[i])  # (M, clip_frames) float16
        if self.crop_frames:
            if self.random_crop:
                span = max(int(self.frames[i]), self.crop_frames)  # stay inside the real audio
                start = int(torch.randint(0, span - self.crop_frames + 1, ()))
                x = x[:, start:start + self.crop_frames]
            else:
                x = eval_windows(x, self.frames[i], self.crop_frames, max(self.eval_crops, 1))
                x = x if self.eval_crops else x[0]
        return torch.from_numpy(standardize(x, self.mean, self.std)), y
