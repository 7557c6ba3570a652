"""Data layer: FMA metadata, audio decoding, log-mel features and the on-disk feature cache.

Nothing here trains or defines a model. The pieces, in the order data flows through them:

- `load_tracks` / `load_genres` / `select_subset` / `audio_path`: FMA's metadata files
  (tracks.csv has a two-row header and Python-list columns; subsets are ordered small < medium < large).
  A malformed file (missing columns, bad ids, a genre parent cycle, ...) is a `DataError` naming it.
- `genre_path` / `genre_vocabulary` / `multi_hot`: the genre hierarchy of genres.csv ('Rock > Punk')
  and the multi-hot targets of `--target all`.
- `load_audio`: decode (libsndfile: mp3, wav, flac, ogg, ...) in blocks, mix to mono, resample with
  soxr; memory follows the audio in the file, whatever length its header claims. Every failure is an
  `AudioError` whose message names the file and the reason.
- `log_mel`: the one log-mel function used by training, evaluation and prediction.
- `prepare_cache`: decode every track of a subset once, in parallel, into a float16 array on disk
  (`features.npy`, read through a memmap) plus `index.csv` listing each track's status. Resumable
  (a journal records finished tracks), idempotent, and nothing is dropped silently. Reopening it stats
  every audio file and re-decodes the changed ones; builders take turns (a lock file beside the cache).
  Several processes can build one cache together (`shard=(k, n)`: torchrun ranks, or job-array tasks on
  machines sharing the file system), each decoding its slice, the rows with row % n == k: the slices
  decode at the same time (each holds the lock shared, and its slice's own lock exclusively), and the last
  to finish writes the index, leaving a cache byte-identical to a single build's.

Build a cache from the command line with `python main.py --data-dir DIR --subset small --prepare-only`
(`--shard K/N`: slice K of N only).
"""
from __future__ import annotations

import ast
import concurrent.futures as cf
import contextlib
import csv
import functools
import itertools
import json
import operator
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
# what the code reads from tracks.csv and genres.csv: a file without one of them is refused at once
REQUIRED_TRACK_COLUMNS = (("set", "split"), ("set", "subset"), ("track", "genre_top"), ("track", "genres_all"))
REQUIRED_GENRE_COLUMNS = ("parent", "title")
MAX_LISTED = 5  # offending values quoted in one DataError
DOWNLOAD_HINT = ("get FMA with `bash download_data.sh {subset} --data-dir {d}`, "
                 "or write the synthetic demo set with `python demo_data.py --out {d}`")  # subset: the one asked for


class DataError(Exception):
    """The data directory itself is unusable (missing or malformed metadata, no audio folder, ...)."""


def _require(path: Path, data_dir: Path, subset: str) -> Path:
    if not path.is_file():
        raise DataError(f"{path} not found: {DOWNLOAD_HINT.format(d=data_dir, subset=subset)}")
    return path


def _listed(values) -> str:
    """'a, b, c and 4 more': the first MAX_LISTED of `values` (an empty CSV cell shows as '(empty)')."""
    values = ["(empty)" if pd.isna(v) else repr(v) if isinstance(v, str) else str(v) for v in values]
    more = f" and {len(values) - MAX_LISTED} more" if len(values) > MAX_LISTED else ""
    return ", ".join(values[:MAX_LISTED]) + more


def _read_csv(path: Path, **kwargs) -> pd.DataFrame:
    """pd.read_csv, where a file that is not readable CSV text (empty, binary, ...) is a DataError."""
    try:
        return pd.read_csv(path, **kwargs)
    except (OSError, ValueError) as e:  # ValueError: pandas' parser and empty-file errors, UnicodeDecodeError
        detail = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(f"{path}: not a readable CSV file ({detail})") from None


def _integers(values, path: Path, what: str) -> np.ndarray:
    """`values` as int64, or a DataError quoting the ones that are not integers (text, empty, 2.5)."""
    numbers = pd.to_numeric(pd.Series(values, dtype=object), errors="coerce").to_numpy(dtype=np.float64)
    bad = ~np.isfinite(numbers) | (numbers % 1 != 0)
    if bad.any():
        raise DataError(f"{path}: non-integer {what} {_listed(np.asarray(values, dtype=object)[bad])}")
    return numbers.astype(np.int64)


def _ids(index: pd.Index, path: Path, what: str) -> pd.Index:
    """The id column (the index) as unique int64, or a DataError naming the non-integer or repeated ids."""
    ids = pd.Index(_integers(index, path, what), name=index.name)
    repeated = ids[ids.duplicated()].unique()
    if len(repeated):
        raise DataError(f"{path}: duplicate {what} {_listed(repeated)}")
    return ids


def _one_header_row(path: Path) -> bool:
    """FMA's tracks.csv has two header rows, the second starting with an empty cell (',comments,...');
    True when the second line is anything else (a data row, or the 'track_id' row)."""
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        rows = list(itertools.islice(csv.reader(f), 2))
    return len(rows) < 2 or rows[1][:1] != [""] or not any(rows[1][1:])


def load_tracks(path) -> pd.DataFrame:
    """Read FMA's tracks.csv: index track_id, two-level columns such as ('track', 'genre_top').

    List columns become Python lists, `('set', 'subset')` an ordered categorical (small < medium <
    large), `('set', 'split')` a categorical of training/validation/test.
    A malformed file is a DataError naming it and the problem: not CSV, a one-row header, a missing
    column of REQUIRED_TRACK_COLUMNS, no rows, non-integer or duplicate track ids, a subset or split
    value that FMA does not use, a list cell that is not a list.
    """
    path = Path(path)
    tracks = _read_csv(path, index_col=0, header=[0, 1])
    if _one_header_row(path):
        raise DataError(f"{path}: one header row; FMA's tracks.csv has two ('set' above 'split', 'track' "
                        f"above 'genre_top', ...), then a 'track_id' row")
    missing = [c for c in REQUIRED_TRACK_COLUMNS if c not in tracks.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join('/'.join(c) for c in missing)}")
    if len(tracks) == 0:
        raise DataError(f"{path}: no tracks (a header and nothing else)")
    tracks.index = _ids(tracks.index, path, "track id(s)")
    tracks.index.name = "track_id"
    for col, allowed in ((("set", "subset"), SUBSETS), (("set", "split"), SPLITS)):
        unknown = [v for v in tracks[col].dropna().unique() if v not in allowed]
        if unknown:
            raise DataError(f"{path}: unknown {'/'.join(col)} value(s) {_listed(unknown)} "
                            f"(FMA's are {', '.join(allowed)})")
    for col in LIST_COLUMNS:
        if col in tracks.columns:
            lists = tracks[col].map(_parse_list)
            if lists.isna().any():
                raise DataError(f"{path}: {'/'.join(col)} is not a list for track(s) "
                                f"{_listed(tracks.index[lists.isna()])}")
            tracks[col] = lists
    tracks[("set", "subset")] = pd.Categorical(tracks[("set", "subset")], categories=SUBSETS, ordered=True)
    tracks[("set", "split")] = pd.Categorical(tracks[("set", "split")], categories=SPLITS)
    return tracks


def _parse_list(value) -> Optional[list]:
    """A list cell ('[21, 17]') as a list; [] for a missing cell; None when it is not a list."""
    if not isinstance(value, str):
        return []  # missing cell
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return list(parsed) if isinstance(parsed, (list, tuple)) else None


def _parent_cycle(parents: dict) -> Optional[list]:
    """The genres of one cycle of genre -> parent links, in order and back to the first; None when every
    genre leads up to a root (parent 0). `parents` maps every genre to a genre of the map, or 0."""
    settled = {0}
    for start in parents:
        chain, at, g = [], {}, start  # the walk up from `start`, and each genre's position in it
        while g not in settled:
            if g in at:
                return chain[at[g]:] + [g]
            at[g] = len(chain)
            chain.append(g)
            g = parents[g]
        settled.update(chain)
    return None


def load_genres(path) -> pd.DataFrame:
    """Read FMA's genres.csv: index genre_id; columns #tracks, parent, title, top_level.

    A malformed file is a DataError naming it and the problem: not CSV, a missing column of
    REQUIRED_GENRE_COLUMNS, non-integer or duplicate genre ids, a non-integer parent, a parent that is
    not a genre of the file (0 is the root), or parents that form a cycle.
    """
    path = Path(path)
    genres = _read_csv(path, index_col=0)
    missing = [c for c in REQUIRED_GENRE_COLUMNS if c not in genres.columns]
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    genres.index = _ids(genres.index, path, "genre id(s)")
    genres["parent"] = _integers(genres["parent"], path, "parent(s)")
    orphans = genres.index[(genres["parent"] != 0) & ~genres["parent"].isin(genres.index)]
    if len(orphans):
        raise DataError(f"{path}: unknown parent(s) {_listed(genres.loc[orphans, 'parent'])} of genre(s) "
                        f"{_listed(orphans)} (a parent is a genre_id of the file, or 0 for a root genre)")
    cycle = _parent_cycle(dict(zip(genres.index, genres["parent"])))
    if cycle:
        raise DataError(f"{path}: parents form a cycle: {' -> '.join(map(str, cycle))} "
                        f"(each genre must lead up to a root genre, parent 0)")
    return genres


def load_metadata(data_dir, subset: str = "small") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(tracks, genres) from DATA_DIR/fma_metadata/, with a clear error when absent (whose download hint
    names `subset`, the one the caller will use)."""
    data_dir = Path(data_dir)
    meta = data_dir / "fma_metadata"
    tracks = load_tracks(_require(meta / "tracks.csv", data_dir, subset))
    genres = load_genres(_require(meta / "genres.csv", data_dir, subset))
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
    raise DataError(f"no audio folder fma_{subset}/ in {data_dir}: {DOWNLOAD_HINT.format(d=data_dir, subset=subset)}")


# --------------------------------------------------------------------------------------------------
# Audio decoding

class AudioError(Exception):
    """A file could not be turned into usable audio; str() names the file and the reason."""


# extensions libsndfile decodes; anything else goes to the fallback decoder
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".caf", ".w64"}
TRUNCATED_RATIO = 0.9  # decoded / declared length below this (and > 1 s missing) means a truncated file
# samples (all channels) decoded per read: 16 MB of float32, more than a 30 s stereo clip (2.6 M), which
# is thus read in one call: soundfile seeks to where it stands after every read, and libsndfile's MP3
# decoder resumes from a seek with 1-ulp differences (its FLAC decoder may fail to seek in a damaged file)
DECODE_BLOCK_SAMPLES = 1 << 22
MAX_DECODE_SECONDS = 2 * 3600.0  # load_audio's default max_seconds: longer audio fails (bounds memory)
SAMPLE_RATE_RANGE = (1000, 768_000)  # Hz; outside it a header is damaged (and resampling 1 Hz audio to
                                     # 22,050 Hz would multiply its samples 22,050 times)
WAV_PLACEHOLDER_SIZE = 0x7FFFF000  # RIFF data sizes from here up mean "unknown" (streaming writers)
WAV_MAX_CHUNKS = 64  # chunks looked at before a WAV's data chunk (real files have a handful)


def _too_long(path: Path, max_seconds: float) -> AudioError:
    return AudioError(f"{path}: too long (more than {max_seconds:g} s of audio, the most decoded)")


def _check_sample_rate(path: Path, sr: int) -> None:
    if not SAMPLE_RATE_RANGE[0] <= sr <= SAMPLE_RATE_RANGE[1]:
        raise AudioError(f"{path}: implausible sample rate {sr} Hz in its header (a damaged file)")


def _mix_down(blocks: Iterable[np.ndarray], sr: int, path: Path, max_seconds: float) -> np.ndarray:
    """(frames, channels) blocks -> one mono float32 array, mixed block by block, failing as soon as
    more than `max_seconds` are decoded: memory follows the audio decoded, not what a header claims."""
    parts, frames = [], 0
    for block in blocks:
        parts.append(block.mean(axis=1))
        frames += len(block)
        if frames > max_seconds * sr:
            raise _too_long(path, max_seconds)
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _wav_declared_frames(path: Path, frames: int) -> int:
    """The frames a RIFF/RF64 WAV's data chunk declares when it claims more bytes than the file holds,
    else `frames`. libsndfile silently reads what is there and reports that as the length, so a cut
    download or a lying header would pass as complete. Scaled from bytes: right for any WAV codec."""
    with open(path, "rb") as fh:
        riff = fh.read(12)
        if len(riff) < 12 or riff[:4] not in (b"RIFF", b"RF64") or riff[8:] != b"WAVE":
            return frames
        ds64_size = 0  # RF64: the data size, from the ds64 chunk (its data chunk says 0xFFFFFFFF)
        for _ in range(WAV_MAX_CHUNKS):
            head = fh.read(8)
            if len(head) < 8:
                break
            chunk, size = head[:4], int.from_bytes(head[4:], "little")
            if chunk == b"data":
                size = ds64_size if riff[:4] == b"RF64" and size == 0xFFFFFFFF else size
                if not size or (riff[:4] == b"RIFF" and size >= WAV_PLACEHOLDER_SIZE):
                    return frames  # length unknown to the writer
                held = os.fstat(fh.fileno()).st_size - fh.tell()
                return int(frames * size / held) if 0 < held < size else frames
            body = fh.read(min(size, 16)) if chunk == b"ds64" else b""
            if len(body) == 16:
                ds64_size = int.from_bytes(body[8:], "little")  # after the 8-byte RIFF size
            fh.seek(size + (size & 1) - len(body), os.SEEK_CUR)  # chunks are padded to even sizes
    return frames


def _soundfile_blocks(f, frames: int) -> Iterable[np.ndarray]:
    """(frames, channels) float32 blocks of an open soundfile.SoundFile, up to the first short one (the
    end, or where libsndfile gave up on damaged data, as a single read of the whole file would)."""
    while True:
        block = f.read(frames, dtype="float32", always_2d=True)
        if len(block):
            yield block
        if len(block) < frames:
            return


def _decode_soundfile(path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """(mono float32 samples, sample rate, frames the header declares) through libsndfile, read in
    blocks: a header may declare any length (a damaged MP3's Xing frame count: terabytes), and
    soundfile would allocate all of it before reading."""
    import soundfile as sf
    try:
        with sf.SoundFile(str(path)) as f:
            sr, declared = f.samplerate, _wav_declared_frames(path, f.frames)
            _check_sample_rate(path, sr)
            wave = _mix_down(_soundfile_blocks(f, max(1, DECODE_BLOCK_SAMPLES // f.channels)), sr, path,
                             max_seconds)
    except sf.LibsndfileError as e:
        # libsndfile reports data it does not recognise as "File does not exist or is not a regular file"
        detail = "not audio, or a corrupt file" if "regular file" in e.error_string else f"libsndfile: {e.error_string}"
        raise AudioError(f"{path}: not decodable audio ({detail})") from None
    return wave, sr, declared


def _decode_fallback(path: Path, max_seconds: float) -> tuple[np.ndarray, int, int]:
    """Formats libsndfile does not read (m4a, aac, wma, ...) through audioread, when it has a backend:
    (mono float32 samples, sample rate, frames decoded); at most `max_seconds` are read."""
    try:
        import audioread
        with audioread.audio_open(str(path)) as f:
            sr, channels = f.samplerate, f.channels
            _check_sample_rate(path, sr)
            raw, limit = bytearray(), max_seconds * sr * channels * 2  # 16-bit samples
            for buf in f:  # buffers need not hold whole frames: joined before they are split
                raw += buf
                if len(raw) > limit:
                    raise _too_long(path, max_seconds)
    except AudioError:
        raise
    except Exception as e:  # audioread raises backend-specific types; all mean "cannot decode"
        detail = f" ({type(e).__name__}: {e})" if str(e) else ""
        raise AudioError(f"{path}: no decoder for {path.suffix or 'extension-less'} files: convert it to "
                         f"wav/flac/ogg/mp3, or install ffmpeg so audioread can read it{detail}") from None
    data = np.frombuffer(raw, dtype="<i2", count=len(raw) // (2 * channels) * channels)
    wave = _mix_down([(data.astype(np.float32) / 32768.0).reshape(-1, channels)], sr, path, max_seconds)
    return wave, sr, len(wave)


def load_audio(path, sample_rate: int, min_seconds: float = 0.0, check_truncated: bool = True,
               max_seconds: float = MAX_DECODE_SECONDS) -> np.ndarray:
    """Decode a file to mono float32 at `sample_rate` Hz.

    Raises AudioError (naming the file and the reason) for a missing or empty file, undecodable
    data, an implausible sample rate, a file whose decoded length falls far short of the length its
    header declares (truncated; for WAV also a data chunk larger than the file), NaN/inf samples,
    audio shorter than `min_seconds`, or longer than `max_seconds` (decoding stops there). Audio is
    decoded and mixed to mono in blocks, so memory follows the audio in the file, never its header.
    """
    import soxr
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise AudioError(f"{path}: empty file (0 bytes)")
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        wave, sr, declared = _decode_soundfile(path, max_seconds)
    else:
        wave, sr, declared = _decode_fallback(path, max_seconds)
    if len(wave) == 0:
        raise AudioError(f"{path}: no audio decoded")
    if check_truncated and declared > 0 and len(wave) < TRUNCATED_RATIO * declared and declared - len(wave) > sr:
        raise AudioError(f"{path}: truncated (decoded {len(wave) / sr:.1f} s of the {declared / sr:.1f} s "
                         f"its header declares)")
    if not np.isfinite(wave).all():  # a NaN or inf in any channel leaves one in the mix
        raise AudioError(f"{path}: decoded samples contain NaN or inf")
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


def prepare_cache(data_dir, subset: str = "small", audio: AudioConfig = AudioConfig(), cache_dir=None,
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
    data_dir = Path(data_dir)
    tracks, _ = load_metadata(data_dir, subset)
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
    paths = [audio_path(audio_dir, tid) for tid in index["track_id"]]
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
    if check.unchanged:
        return FeatureCache(path, audio, check.index)
    return FeatureCache(path, audio, pd.read_csv(path / "index.csv", keep_default_na=False))


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
