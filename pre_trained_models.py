"""Predict the genres of songs with a trained checkpoint: any file, any length, any common format.

    python pre_trained_models.py --checkpoint runs/NAME/best.pt song.mp3 album/ @playlist.txt
    python pre_trained_models.py --checkpoint runs/NAME song.ogg --top-k 5 --format json --output out.json
    python pre_trained_models.py --checkpoint runs/NAME long_mix.flac --segments --plot mix.png
    python pre_trained_models.py --checkpoint runs/NAME --fma-dir data --subset medium --split test
    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt songs/ --embeddings songs.npz
    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt --fma-dir data --subset small

INPUT is an audio file, a directory (searched recursively for audio files; hidden files skipped), or
`@LIST` (a text file with one path per line; blank lines and lines starting with # are ignored;
relative paths are read from the current directory, else from the list's folder).

Everything the prediction needs comes from the checkpoint (loaded with `weights_only=True`, so a file
that would run code on load is refused): the model and its weights, the genre names, the audio
parameters (sample rate, FFT, hop, mels, clip length) and the training set's per-band normalisation.
Features come from the same functions as training (`utils.load_audio`, `utils.log_mel`), so there is
no train/predict skew.

How a song becomes probabilities (the evaluation's windows, utils.eval_windows, extended to any length):

- A song up to the training clip length (`clip_seconds`, 30 s; up to 1 s longer is tolerated) is
  turned into a clip exactly as the feature cache does it: its middle `clip_seconds`, padded with
  silence when shorter, log-mel rounded to float16. A model trained on crops (`crop_frames`) then
  sees `eval_crops` evenly spaced crops inside the real audio (not the padding; one centre crop when
  eval_crops is 0); a whole-clip model sees the padded clip once. A song of any length up to 30 s
  thus gets exactly the windows of main.py's evaluation (test.py), and the same probabilities.
- A longer song is covered whole: n = ceil(duration / clip_seconds) segments' worth of windows,
  i.e. n * eval_crops crops (or n whole-clip windows) evenly spaced from its start to its end.
- The song's probabilities are the mean of its windows' probabilities: softmax over the classes for a
  `--target top` checkpoint; one sigmoid per genre for a `--target all` (multi-label) checkpoint, whose
  genres are printed with their FMA hierarchy path (`Rock > Punk 0.83`), taken from the checkpoint.
  `--segments` prints each window's; `--plot` draws them under the log-mel spectrogram.
- A checkpoint with `window_hop` (the musicnn taggers of convert_musicnn.py) places its windows as
  musicnn places its patches instead, whatever the song's length: the log-mel of the whole song
  (float16, no middle-30 s clip), `crop_frames`-long windows starting at 0, window_hop, 2 window_hop,
  ... while they fit in the real audio (utils.patch_starts: musicnn's `range(0, T - n + 1, hop)`), at
  least one (padded with silence when the song is shorter than a window).
- A multi-label checkpoint without FMA genres is a tagger (pretrained/musicnn_msd.pt: 50 Last.fm tags):
  its labels are its class names, one sigmoid each.

An **ensemble**: `--checkpoint A --checkpoint B ...` (the option repeated; one path each). Each song goes
through every member with the member's own audio parameters, windows and normalisation (as above), and
its probabilities are the mean of the members' (test.average_probs, as `main.py --evaluate-only` with
several checkpoints). The members must agree on what their probabilities mean: the same classes in the
same order, for multi-label checkpoints the same FMA genre vocabulary, and a tagger only with taggers
of the same tags (test.ensemble_mismatch; anything else is a usage error naming the difference). The
table and csv give the ensemble's top genres and its windows (all members' together); json adds each
member's (`members`: checkpoint, windows, top_k, probabilities). A song that fails in one member fails.
`--segments`, `--plot`, `--embeddings` and `--fma-dir` take a single checkpoint.

`--embeddings FILE.npz` also writes one vector per predicted song: the mean over its windows of
`model.embed(window)` (the pooled backbone output that the model's head classifies; the logits come
from the head in the same pass), for any checkpoint. np.savez arrays: `embeddings` float32 (N, D),
`files` (N,) the input paths, `model` the checkpoint path, and with `--fma-dir` also `track_ids` and
`labels` (genre_top). Failed files are not in it (they still get their error line and exit status 1).

Files are decoded in parallel threads (libsndfile, soxr and NumPy release the GIL; threads beat
processes here, which would each pay torch's import) while the main thread runs the model on batches
of windows (`--batch-windows`), so memory stays bounded whatever the length; the model loads once.
The MP3 decoder's own warnings on damaged files are silenced: each bad file gets one line,
`error: PATH: reason`, on stderr, and the other files are still predicted.

Exit status: 0 when every file was predicted, 1 when some failed, 2 for usage errors (bad options, a
missing or invalid checkpoint, no input files).

`--fma-dir DIR --subset medium` scores FMA tracks the model was not trained on (e.g. fma_medium's
tracks outside fma_small for a model trained on fma_small): the tracks of the subset minus those of
the checkpoint's training subset, of the genres the model knows, optionally of one `--split`. It
prints the counts, accuracy, macro-F1 and a per-genre table (JSON with `--format json`; for a
multi-label checkpoint: every track with a genre, scored on all its genres with macro/micro ROC-AUC,
macro AP and F1 at the checkpoint's validation threshold);
`--output FILE` also writes the per-track predictions (with `track_id` and `label`).

A tagger with `tag_genres` (FMA top genre -> its tags, e.g. pretrained/musicnn_msd.pt) scores FMA
**zero-shot**: it never heard FMA, so no training subset is left out. The tracks of `--subset` (and
`--split`) whose genre_top is one of the mapped genres are scored (the others are left out and
counted); a genre's score is the highest probability among its tags and the predicted genre the
best-scoring mapped genre. The report gives the counts, accuracy, macro-F1 over the mapped genres
that have tracks in the selection,
the per-genre table and the FMA top genres that have no tag; `--output` rows add `predicted_genre`
(and, in JSON, every mapped genre's score).
"""
from __future__ import annotations

import argparse
import collections
import concurrent.futures as cf
import contextlib
import csv
import dataclasses
import functools
import itertools
import json
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import torch

from audio import AMIN, SOUNDFILE_EXTENSIONS, AudioError, clip_from_wave, load_audio, log_mel, quiet_native_stderr
from config import AudioConfig
from metrics import classification_metrics, multilabel_metrics
from models_utils import CheckpointError, load_checkpoint, model_from_checkpoint, pick_device
from plots import plot_timeline
from test import average_probs, ensemble_mismatch, infer
from utils import (SUBSETS, DataError, audio_path, crop_starts, find_audio_dir, load_metadata, multi_hot,
                   patch_starts, select_subset, standardize)

# Extensions searched for in directories (an explicitly named file is tried whatever its extension).
# Those libsndfile does not read need ffmpeg (through audioread); without it they get a clear error.
AUDIO_EXTENSIONS = frozenset(SOUNDFILE_EXTENSIONS | {".m4a", ".aac", ".wma", ".mp4", ".webm", ".mka"})
CLIP_SLACK_SECONDS = 1.0    # songs up to clip_seconds + this are treated exactly like the cached clip
PROGRESS_MIN_FILES = 5      # the progress bar shows (on a terminal) from this many files on
FORMATS = ("table", "csv", "json")


# ------------------------------------------------------------------------------------------ features

@dataclass
class Song:
    """One input and what became of it."""

    path: str
    track_id: Optional[int] = None     # --fma-dir only
    label: Optional[str] = None        # --fma-dir only: the track's genre_top
    genre_ids: Optional[list] = None   # --fma-dir with a multi-label model: the track's genres_all
    error: Optional[str] = None        # "PATH: reason" when it failed
    duration: float = 0.0              # seconds of decoded audio (before padding)
    features: Optional[np.ndarray] = None       # float16 (n_mels, frames), dropped once predicted
    starts: Optional[np.ndarray] = None         # start frame of each window
    window_probs: Optional[np.ndarray] = None   # (n_windows, n_classes)
    probs: Optional[np.ndarray] = None          # (n_classes,) mean over windows
    window_embeddings: Optional[np.ndarray] = None  # (n_windows, D) model.embed per window, --embeddings only
    embedding: Optional[np.ndarray] = None      # (D,) mean over windows, --embeddings only
    done: int = 0                               # windows predicted so far
    members: Optional[list] = None              # an ensemble's: (checkpoint, the member's Song) per member

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def windows(self) -> int:
        """Windows the song was predicted from (an ensemble's: every member's together)."""
        return sum(m.windows for _, m in self.members) if self.members else len(self.starts)


class Predictor:
    """A checkpoint's model with everything needed to turn audio files into genre probabilities."""

    def __init__(self, state: dict, device: torch.device, batch_windows: int = 64):
        try:
            self.audio = AudioConfig(**state["audio"])
            self.model = model_from_checkpoint(state, device)
            self.classes = [str(c) for c in state["classes"]]
            self.mean = state["mean"].float().numpy()
            self.std = state["std"].float().numpy()
            self.crop_frames = state.get("crop_frames")
            self.eval_crops = int(state.get("eval_crops") or 0)
            self.window_hop = int(state.get("window_hop") or 0)  # > 0: patches every window_hop frames
            self.multilabel = state.get("target", "top") == "all"
            self.genres = state.get("genres") if self.multilabel else None  # absent for a tagger
            # what the outputs call each class: the hierarchy path of a multi-label genre ('Rock > Punk'),
            # else the class name (an FMA genre, or a tag)
            self.labels = [str(p) for p in self.genres["paths"]] if self.genres else self.classes
            self.threshold = float(state.get("threshold", 0.5))
            # a tagger's FMA top genre -> its tags (zero-shot scoring); {} for models trained on FMA
            self.tag_genres = {str(g): [str(t) for t in tags] for g, tags in (state.get("tag_genres") or {}).items()}
            self.tagger = self.multilabel and not self.genres  # its classes are tags, not FMA genres
        except (TypeError, ValueError, KeyError, RuntimeError, AttributeError) as e:
            raise CheckpointError(f"checkpoint does not describe a usable model ({type(e).__name__}: {e})") from None
        if len(self.classes) != self.model.n_classes or len(self.labels) != len(self.classes) or self.mean.shape != (self.audio.n_mels,):
            raise CheckpointError("checkpoint is inconsistent: classes, model outputs and normalisation disagree")
        unknown = sorted({t for tags in self.tag_genres.values() for t in tags} - set(self.classes))
        if unknown:
            raise CheckpointError(f"checkpoint is inconsistent: tag_genres names tags that are not classes "
                                  f"({', '.join(unknown)})")
        if self.window_hop < 0:
            raise CheckpointError(f"checkpoint is inconsistent: window_hop {self.window_hop} < 0")
        # (n_mapped_genres, n_classes): True where a class is one of the mapped genre's tags
        self.tag_mask = np.array([[c in tags for c in self.classes] for tags in self.tag_genres.values()], dtype=bool)
        self.device, self.batch_windows = device, max(1, batch_windows)
        self.run_config = state.get("run_config") or {}

    @property
    def zero_shot(self) -> bool:
        """A tagger whose tags map to FMA top genres: it scores FMA tracks zero-shot (it never heard FMA)."""
        return bool(self.tag_genres)

    def genre_scores(self, probs: np.ndarray) -> np.ndarray:
        """Tag probabilities (..., n_classes) -> (..., n_mapped_genres): each mapped FMA genre's score is
        the highest probability among its tags (in tag_genres' order)."""
        return np.where(self.tag_mask, probs[..., None, :], -np.inf).max(-1)  # (..., G, C) -> (..., G)

    @functools.cached_property
    def embedding_dim(self) -> int:
        """D of model.embed (one silent window through the backbone)."""
        x = torch.full((1, self.audio.n_mels, self.window_frames), 10 * math.log10(AMIN), device=self.device)
        with torch.inference_mode():
            return int(self.model.embed(self.model.check_input(x)).shape[1])

    @property
    def decoding(self) -> tuple:
        """What `load` depends on: predictors with equal keys decode a song into the same features and windows."""
        return self.audio, self.window_hop, self.window_frames, self.crop_frames, self.windows_per_clip

    @property
    def window_frames(self) -> int:
        """Frames of one window: the training crop, or the whole clip for a whole-clip model."""
        return int(self.crop_frames) if self.crop_frames else self.audio.clip_frames

    @property
    def windows_per_clip(self) -> int:
        """Windows per clip_seconds of audio: eval_crops (at least 1) for crop models, else 1."""
        return max(self.eval_crops, 1) if self.crop_frames else 1

    def window_starts(self, n_frames: int, valid_frames: int, segments: int) -> np.ndarray:
        """Start frames of a song's windows: with window_hop, patches from the start every window_hop
        frames while they fit in the `valid_frames` of real audio (utils.patch_starts, musicnn's rule);
        else `segments * windows_per_clip` evenly spaced windows inside the real audio --
        utils.eval_windows' rule -- or, for a whole-clip model, `segments` windows of the clip length
        over all `n_frames`."""
        if self.window_hop:
            return patch_starts(valid_frames, self.window_frames, self.window_hop)
        if not self.crop_frames:
            return crop_starts(n_frames, self.window_frames, segments)
        return crop_starts(max(valid_frames, self.window_frames), self.window_frames,
                           segments * self.windows_per_clip)

    # -- runs in decoding threads
    def load(self, song: Song) -> Song:
        """Decode `song.path` and compute its features and window starts (sets song.error on failure)."""
        a = self.audio
        try:
            wave = load_audio(song.path, a.sample_rate, a.min_seconds)
            clip = int(round(a.clip_seconds * a.sample_rate))
            song.duration = len(wave) / a.sample_rate
            if self.window_hop or len(wave) > clip + CLIP_SLACK_SECONDS * a.sample_rate:
                song.features = log_mel(wave, a).astype(np.float16)  # the whole song
                valid = song.features.shape[1]
                segments = math.ceil(len(wave) / clip)
            else:
                song.features, valid = clip_from_wave(wave, a)  # exactly the feature cache's clip
                segments = 1
            del wave
            if song.features.shape[1] < self.window_frames:  # a crop longer than the audio: pad with silence
                song.features = np.pad(song.features, ((0, 0), (0, self.window_frames - song.features.shape[1])),
                                       constant_values=10 * np.log10(AMIN))
            song.starts = self.window_starts(song.features.shape[1], valid, segments)
        except AudioError as e:
            song.error = str(e)
        except MemoryError:
            song.error = f"{song.path}: out of memory while decoding"
        except Exception as e:  # a decoder crash on one file must not stop the batch
            song.error = f"{song.path}: {type(e).__name__}: {e}"
        return song

    # -- runs in the main thread
    @torch.inference_mode()
    def _run(self, queue: collections.deque) -> None:
        """Predict up to batch_windows queued (song, window) pairs."""
        batch = [queue.popleft() for _ in range(min(self.batch_windows, len(queue)))]
        wf = self.window_frames
        x = np.empty((len(batch), self.audio.n_mels, wf), dtype=np.float32)
        for i, (song, w) in enumerate(batch):
            s = int(song.starts[w])
            x[i] = standardize(song.features[:, s:s + wf], self.mean, self.std)
        probs, emb = infer(self.model, torch.from_numpy(x).to(self.device), multilabel=self.multilabel, embed=True)
        probs, emb = probs.cpu().numpy(), emb.cpu().numpy()  # (B, n_classes), (B, D)
        for i, (song, w) in enumerate(batch):
            song.window_probs[w] = probs[i]
            if song.window_embeddings is not None:
                song.window_embeddings[w] = emb[i]
            song.done += 1

    def predict(self, songs: Iterable[Song], keep_features: bool = False, embeddings: bool = False) -> Iterator[Song]:
        """Yield the songs, in order, with their probabilities (and, with `embeddings`, the mean of
        model.embed over their windows); windows of several songs share a batch."""
        queue, pending = collections.deque(), collections.deque()
        for song in songs:
            if song.ok:
                song.window_probs = np.zeros((len(song.starts), len(self.classes)), dtype=np.float32)
                if embeddings:
                    song.window_embeddings = np.zeros((len(song.starts), self.embedding_dim), dtype=np.float32)
                queue.extend((song, w) for w in range(len(song.starts)))
            pending.append(song)
            while len(queue) >= self.batch_windows:
                self._run(queue)
                yield from self._finished(pending, keep_features)
        while queue:
            self._run(queue)
        yield from self._finished(pending, keep_features)

    @staticmethod
    def _finished(pending: collections.deque, keep_features: bool) -> Iterator[Song]:
        while pending and (not pending[0].ok or pending[0].done == len(pending[0].starts)):
            song = pending.popleft()
            if song.ok:
                song.probs = torch.from_numpy(song.window_probs).mean(0).numpy()  # as test.infer's windows
                if song.window_embeddings is not None:
                    song.embedding, song.window_embeddings = song.window_embeddings.mean(0), None
                if not keep_features:
                    song.features = None
            yield song


def load_predictor(checkpoint: str, device: str = "auto", batch_windows: int = 64) -> Predictor:
    """Load a checkpoint (weights_only, onto the CPU first) into a Predictor on `device`.

    CheckpointError when the checkpoint is missing, unsafe or unusable; ValueError for a bad device."""
    return load_predictors([checkpoint], device, batch_windows)[0]


def load_predictors(checkpoints: list[str], device: str = "auto", batch_windows: int = 64) -> list[Predictor]:
    """load_predictor of each checkpoint; several are an ensemble's members, and a ValueError names what
    keeps them from being averaged (test.ensemble_mismatch: kind, classes, genre vocabulary)."""
    dev = pick_device(device)
    states = [load_checkpoint(c, map_location="cpu") for c in checkpoints]
    problem = ensemble_mismatch(list(zip(map(str, checkpoints), states))) if len(states) > 1 else None
    if problem:
        raise ValueError(problem)
    return [Predictor(state, dev, batch_windows) for state in states]


def predict_songs(predictors: list[Predictor], checkpoints: list[str], songs: list[Song], workers: int,
                  keep_features: bool = False, embeddings: bool = False) -> Iterator[Song]:
    """Yield the songs, in order, predicted by one Predictor, or by an ensemble: each song is decoded and
    windowed once per distinct `Predictor.decoding` of the members (their audio parameters may differ;
    the decoding threads are shared out), every member predicts its own copy, and the song gets the mean
    of the members' probabilities and their Songs (`members`); a song that fails in a member fails with
    that member's error."""
    if len(predictors) == 1:
        yield from predictors[0].predict(decode_all(predictors[0], songs, workers), keep_features, embeddings)
        return
    groups: dict = {}
    for p in predictors:
        groups.setdefault(p.decoding, []).append(p)
    share = max(1, workers // len(groups))
    copies = {key: iter(itertools.tee(decode_all(ps[0], [dataclasses.replace(s) for s in songs], share), len(ps)))
              for key, ps in groups.items()}
    streams = [p.predict(dataclasses.replace(s) for s in next(copies[p.decoding])) for p in predictors]
    for song, per in zip(songs, zip(*streams)):
        failed = next((m for m in per if not m.ok), None)
        if failed:
            song.error = failed.error
        else:
            song.duration, song.members = per[0].duration, list(zip(map(str, checkpoints), per))
            song.probs = average_probs([m.probs for m in per])
        yield song


def decode_all(predictor: Predictor, songs: list[Song], workers: int) -> Iterator[Song]:
    """Decode songs in `workers` threads, yielding them in input order with a bounded look-ahead."""
    if workers <= 1:
        yield from (predictor.load(s) if s.ok else s for s in songs)
        return
    with cf.ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        inflight: collections.deque = collections.deque()
        for song in songs:
            inflight.append(pool.submit(predictor.load, song) if song.ok else _done(song))
            if len(inflight) >= 2 * workers:
                yield inflight.popleft().result()
        while inflight:
            yield inflight.popleft().result()


def _done(song: Song) -> cf.Future:
    f: cf.Future = cf.Future()
    f.set_result(song)
    return f


# ------------------------------------------------------------------------------------------ inputs

def find_audio(directory: Path) -> list[Path]:
    """Audio files under `directory`, recursively, sorted; hidden files and folders are skipped."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return found


def expand_inputs(inputs: list[str], warn) -> list[Song]:
    """Files, directories and @lists -> Songs (missing paths become Songs with an error), deduplicated."""
    songs, seen = [], set()

    def add(path: Path, origin: Optional[Path] = None):
        if path.is_dir():
            found = find_audio(path)
            if not found:
                warn(f"warning: {path}: no audio files found ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            for f in found:
                add(f)
            return
        key = os.path.abspath(path)
        if key in seen:
            return
        seen.add(key)
        song = Song(str(path))
        if not path.exists():
            song.error = f"{path}: file not found" + (f" (listed in {origin})" if origin else "")
        songs.append(song)

    for item in inputs:
        if item.startswith("@") and len(item) > 1:
            listing = Path(item[1:])
            try:
                lines = listing.read_text().splitlines()
            except (OSError, UnicodeDecodeError) as e:
                song = Song(str(listing), error=f"{listing}: cannot read the list file ({e.strerror or e})"
                            if isinstance(e, OSError) else f"{listing}: list file is not text")
                songs.append(song)
                continue
            for line in lines:
                line = line.strip()
                if not line or line.startswith("#"):
                    continue
                p = Path(line).expanduser()
                if not p.is_absolute() and not p.exists() and (listing.parent / p).exists():
                    p = listing.parent / p
                add(p, origin=listing)
        else:
            add(Path(item).expanduser())
    return songs


# ------------------------------------------------------------------------------------------ outputs

def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def window_times(song: Song, predictor: Predictor) -> list[tuple[float, float]]:
    sec = predictor.audio.hop_length / predictor.audio.sample_rate
    return [(float(s) * sec, float(s + predictor.window_frames) * sec) for s in song.starts]


def fmt_time(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:05.2f}"


def label_scores(probs: np.ndarray, predictor: Predictor, k: int) -> dict:
    """{"top_k": the k most probable labels, "probabilities": every label's} of one probability vector."""
    return {"top_k": [{"genre": g, "probability": p} for g, p in top_k(probs, predictor.labels, k)],
            "probabilities": {c: float(p) for c, p in zip(predictor.labels, probs)}}


def record(song: Song, predictor: Predictor, k: int, segments: bool) -> dict:
    """The JSON object of one song (also the source of the CSV row)."""
    rec = {"path": song.path}
    if song.track_id is not None:
        rec.update(track_id=song.track_id, label=song.label)
        if predictor.zero_shot:  # every mapped FMA genre's score, and the best one (first on ties, as argmax)
            scores = dict(zip(predictor.tag_genres, map(float, predictor.genre_scores(song.probs)))) if song.ok else {}
            rec.update(predicted_genre=max(scores, key=scores.get) if scores else None, genre_scores=scores)
    rec.update(status="ok" if song.ok else "error", error=song.error or "",
               duration_s=round(song.duration, 3) if song.ok else None,
               windows=song.windows if song.ok else 0)
    if song.ok:
        rec.update(label_scores(song.probs, predictor, k))
        if segments:
            rec["segments"] = [{"start_s": round(a, 3), "end_s": round(b, 3), **label_scores(wp, predictor, k)}
                               for (a, b), wp in zip(window_times(song, predictor), song.window_probs)]
        if song.members:
            rec["members"] = [{"checkpoint": path, "windows": m.windows, **label_scores(m.probs, predictor, k)}
                              for path, m in song.members]
    else:
        rec["top_k"], rec["probabilities"] = [], {}
    return rec


def track_columns(predictor: Predictor, fma: bool) -> list[str]:
    """The CSV columns of an FMA track after its path: track_id, label (+ predicted_genre, zero-shot)."""
    if not fma:
        return []
    return ["track_id", "label"] + (["predicted_genre"] if predictor.zero_shot else [])


def csv_header(k: int, track_cols: list[str]) -> list[str]:
    cols = ["path"] + track_cols + ["status", "error", "duration_s", "windows"]
    for i in range(1, k + 1):
        cols += [f"genre_{i}", f"prob_{i}"]
    return cols


def csv_row(rec: dict, k: int, track_cols: list[str]) -> list:
    row = [rec["path"]] + [rec[c] for c in track_cols]  # None (a failed track's predicted_genre) -> ""
    row += [rec["status"], rec["error"], "" if rec["duration_s"] is None else f"{rec['duration_s']:.3f}",
            rec["windows"]]
    for i in range(k):
        t = rec["top_k"][i] if i < len(rec["top_k"]) else None
        row += [t["genre"], f"{t['probability']:.6f}"] if t else ["", ""]
    return row


def table_lines(songs: list[Song], predictor: Predictor, k: int, segments: bool) -> list[str]:
    ok = [s for s in songs if s.ok]
    if not ok:
        return []
    width = min(max(len("file"), *(len(s.path) for s in ok)), 80)
    lines = [f"{'file':<{width}}  {'duration':>9}  {'windows':>7}  top {k} {'tags' if predictor.tagger else 'genres'}"]
    for s in ok:
        genres = "  ".join(f"{g} {p:.2f}" for g, p in top_k(s.probs, predictor.labels, k))
        lines.append(f"{s.path:<{width}}  {fmt_time(s.duration):>9}  {s.windows:>7}  {genres}")
        if segments:
            for (a, b), wp in zip(window_times(s, predictor), s.window_probs):
                genres = "  ".join(f"{g} {p:.2f}" for g, p in top_k(wp, predictor.labels, k))
                pad = "  (partly padding)" if b > s.duration + 0.5 else ""
                lines.append(f"    {fmt_time(a)}-{fmt_time(b)}  {genres}{pad}")
    return lines


def write_predictions(songs: list[Song], predictor: Predictor, fmt: str, k: int, segments: bool,
                      out, fma: bool = False) -> None:
    if fmt == "json":
        json.dump([record(s, predictor, k, segments) for s in songs], out, indent=2)
        out.write("\n")
    elif fmt == "csv":
        cols = track_columns(predictor, fma)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(csv_header(k, cols))
        for s in songs:
            writer.writerow(csv_row(record(s, predictor, k, False), k, cols))
    else:
        for line in table_lines(songs, predictor, k, segments):
            out.write(line + "\n")


def write_embeddings(path: str, songs: list[Song], predictor: Predictor, checkpoint: str, fma: bool) -> None:
    """--embeddings: np.savez of `embeddings` float32 (N, D), one per predicted song (the mean of
    model.embed over its windows), `files` (N,) and `model` (the checkpoint); with --fma-dir also
    `track_ids` and `labels` (genre_top). Failed songs are left out."""
    ok = [s for s in songs if s.ok]
    emb = np.stack([s.embedding for s in ok]) if ok else np.zeros((0, predictor.embedding_dim))  # (N, D)
    arrays = {"embeddings": emb.astype(np.float32), "files": np.array([s.path for s in ok], dtype=str),
              "model": np.array(str(checkpoint))}
    if fma:
        arrays.update(track_ids=np.array([s.track_id for s in ok], dtype=np.int64),
                      labels=np.array([s.label for s in ok], dtype=str))
    with _open_output(path, binary=True) as out:  # a file object: np.savez adds no ".npz" to the name
        np.savez(out, **arrays)


def plot_song(song: Song, predictor: Predictor, path: Path, k: int = 3) -> None:
    """--plot: the song's log-mel with each window's genre probabilities under it (plots.plot_timeline)."""
    best = ", ".join(f"{g} {p:.2f}" for g, p in top_k(song.probs, predictor.labels, k))
    plot_timeline(song.features, predictor.audio.hop_length / predictor.audio.sample_rate,
                  window_times(song, predictor), song.window_probs, song.probs, predictor.labels, song.duration,
                  f"{Path(song.path).name} ({fmt_time(song.duration)}): {best}", path)


class PlotNames:
    """FILE.png when there is one input; FILE-<song name>.png (numbered when names repeat) for several."""

    def __init__(self, base: Path, n_inputs: int):
        self.base, self.single, self.used = base, n_inputs == 1, set()

    def __call__(self, song: Song) -> Path:
        if self.single:
            return self.base
        name, i = f"{self.base.stem}-{Path(song.path).stem}", 1
        while name in self.used:
            i += 1
            name = f"{self.base.stem}-{Path(song.path).stem}-{i}"
        self.used.add(name)
        return self.base.with_name(name + (self.base.suffix or ".png"))


# ------------------------------------------------------------------------------------------ FMA scoring

def fma_selection(args, predictor: Predictor, warn) -> tuple[list[Song], dict]:
    """Songs for --fma-dir: tracks of --subset outside the training subset, of --split, known genres.
    A zero-shot tagger (tag_genres) never heard FMA: no track is left out for training, and the known
    genres are the FMA top genres its tags map to."""
    if predictor.tagger and not predictor.zero_shot:
        raise ValueError("the checkpoint's classes are tags with no FMA genre (neither genres nor tag_genres): "
                         "it cannot score FMA tracks")
    tracks, genres = load_metadata(args.fma_dir, args.subset)
    trained_on = predictor.run_config.get("subset")
    order = list(SUBSETS) + ["full"]
    sel = select_subset(tracks, args.subset)
    excluded = None
    if predictor.zero_shot:
        pass  # nothing to leave out, nothing to warn about: the report says "zero-shot"
    elif trained_on in SUBSETS and order.index(args.subset) > order.index(trained_on):
        sel = sel[~(sel[("set", "subset")] <= trained_on).fillna(False).astype(bool)]
        excluded = trained_on
    elif trained_on in order:
        if args.split in ("all", "training"):
            warn(f"warning: the model was trained on {trained_on}'s training split; these tracks include it")
    else:
        warn("warning: the checkpoint does not say which subset it was trained on: no track is left out")
    if args.split != "all":
        sel = sel[(sel[("set", "split")] == args.split).fillna(False).astype(bool)]
    labels = sel[("track", "genre_top")].fillna("").astype(str)
    if predictor.zero_shot:  # top genres with a tag
        genre_ids, known = None, labels.isin(predictor.tag_genres)
    elif predictor.multilabel:  # every track with at least one of the model's genres
        vocab = set(predictor.genres["ids"])
        genre_ids = sel[("track", "genres_all")]
        known = genre_ids.map(lambda gs: any(g in vocab for g in gs)).astype(bool)
    else:
        genre_ids, known = None, labels.isin(predictor.classes)
    audio_dir = find_audio_dir(args.fma_dir, args.subset)
    songs = [Song(str(audio_path(audio_dir, tid)), track_id=int(tid), label=lab,
                  genre_ids=list(genre_ids[tid]) if genre_ids is not None else None)
             for tid, lab in labels[known].items()]
    info = {"fma_dir": str(args.fma_dir), "subset": args.subset, "split": args.split,
            "training_subset": trained_on, "excluded_subset": excluded, "selected": int(len(sel)),
            "known_genre": int(known.sum()), "other_genre": int((~known).sum())}
    if predictor.zero_shot:
        top = genres.loc[genres["parent"] == 0, "title"].astype(str)
        info.update(zero_shot=True, unmapped_genres=sorted(set(top) - set(predictor.tag_genres)))
    return songs, info


def fma_report(songs: list[Song], predictor: Predictor, info: dict) -> dict:
    """Metrics of the predicted tracks against their FMA genres: genre_top (single-label model), all
    their genres (multi-label model), or, for a zero-shot tagger, genre_top among the mapped genres,
    each track predicted as its best-scoring mapped genre."""
    ok = [s for s in songs if s.ok]
    counts = {"predicted": len(ok), "failed": len(songs) - len(ok)}
    probs = np.stack([s.probs for s in ok]) if ok else np.zeros((0, len(predictor.classes)))  # (N, n_classes)
    if predictor.multilabel and not predictor.zero_shot:
        y = multi_hot([s.genre_ids for s in ok], predictor.genres["ids"])
        metrics = multilabel_metrics(y, probs, predictor.labels, predictor.threshold) if ok else {}
        return {**info, **counts, "classes": predictor.classes, "multilabel": True, **metrics}
    if predictor.zero_shot:
        classes, extra = list(predictor.tag_genres), {"tag_genres": predictor.tag_genres}
        scores = predictor.genre_scores(probs)  # (N, n_classes) -> (N, n_mapped_genres)
    else:
        classes, extra, scores = predictor.classes, {}, probs
    lookup = {c: i for i, c in enumerate(classes)}
    y_true = np.array([lookup[s.label] for s in ok], dtype=np.int64)
    y_pred = scores.argmax(1)  # (N, n_genres) -> (N,)
    # a zero-shot tagger's map names more genres than the selection holds: macro-F1 over those it holds
    present = sorted(set(y_true.tolist())) if predictor.zero_shot else None
    metrics = classification_metrics(y_true, y_pred, classes, macro_over=present) if ok else {}
    if present is not None:
        extra["macro_f1_genres"] = [classes[i] for i in present]
    return {**info, **counts, "classes": classes, **extra, **metrics}


def report_lines(rep: dict) -> list[str]:
    where = f"fma_{rep['subset']}" + (f" outside fma_{rep['excluded_subset']} (the training subset)"
                                      if rep["excluded_subset"] else "")
    split = "all splits" if rep["split"] == "all" else f"split {rep['split']}"
    zero_shot = rep.get("zero_shot", False)
    known = "a top genre its tags map to" if zero_shot else "a genre the model knows"
    lines = [f"{where}, {split}: {rep['selected']} tracks; {rep['known_genre']} with {known}, "
             f"{rep['other_genre']} with another or no {'' if rep.get('multilabel') else 'top '}genre (left out)"]
    if zero_shot:
        lines += ["zero-shot: a tagger that never heard FMA (no track left out for training); a genre's score is "
                  "the highest probability of its tags",
                  "FMA top genres with no tag (not scored): " + (", ".join(rep["unmapped_genres"]) or "none")]
    lines.append(f"predicted {rep['predicted']}, failed {rep['failed']}")
    if not rep["predicted"]:
        return lines + ["no track predicted: nothing to score"]
    if rep.get("multilabel"):
        lines += [f"macro ROC-AUC {rep['macro_roc_auc']:.4f}  micro ROC-AUC {rep['micro_roc_auc']:.4f}  macro AP "
                  f"{rep['macro_ap']:.4f}  micro-F1 {rep['micro_f1']:.4f} at threshold {rep['threshold']:.2f}  "
                  f"({rep['scored_genres']} of {len(rep['classes'])} genres scored)", "",
                  f"{'genre':<40} {'roc_auc':>7} {'ap':>6} {'positives':>9}"]
        for c, m in rep["per_genre"].items():
            lines.append(f"{c[:40]:<40} {m['roc_auc']:>7.3f} {m['ap']:>6.3f} {m['positives']:>9d}")
        return lines
    over = (f"the {len(rep['macro_f1_genres'])} mapped genres with tracks here" if zero_shot
            else f"the model's {len(rep['classes'])} genres")
    lines += [f"accuracy {rep['accuracy']:.4f}  macro-F1 {rep['macro_f1']:.4f}  ({rep['predicted']} tracks; "
              f"macro-F1 over {over})", "",
              f"{'genre':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for c, m in rep["per_class"].items():
        lines.append(f"{c:<20} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8d}")
    return lines


# ------------------------------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="pre_trained_models.py", allow_abbrev=False,
        description="Predict the genres (or tags) of audio files, or score FMA tracks, with a trained or "
                    "converted checkpoint.",
        epilog="Exit status: 0 all files predicted, 1 some failed (one 'error: PATH: reason' line each "
               "on stderr), 2 usage error (bad options, missing or invalid checkpoint, no input files).")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="audio files, directories (searched recursively) or @LIST files (one path per line)")
    p.add_argument("--checkpoint", required=True, action="append",
                   help="checkpoint written by main.py (a .pt file, or a run directory: its best.pt); repeated "
                        "(--checkpoint A --checkpoint B), an ensemble: the mean of the members' probabilities")
    p.add_argument("--top-k", type=int, default=3, help="genres reported per song (default: 3)")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format: table (readable), csv (one row per file), json (default: table)")
    p.add_argument("--output", default=None, help="write the predictions to this file (default: stdout)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: auto picks cuda when available (default: auto)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding threads (default: all cores, %d here)" % (os.cpu_count() or 1))
    p.add_argument("--batch-windows", type=int, default=64,
                   help="windows per model batch; bounds memory for long songs (default: 64)")
    p.add_argument("--segments", action="store_true",
                   help="also give each window's time span and genres (table and json; default: off)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="draw the log-mel spectrogram with each window's genre probabilities under it; "
                        "with several songs, one FILE-<song>.png each (default: no plot)")
    p.add_argument("--embeddings", default=None, metavar="FILE.npz",
                   help="also write each predicted song's embedding (the mean over its windows of the model's "
                        "pooled backbone output, what its head classifies) with np.savez: embeddings float32 "
                        "(N, D), files (N,), model (the checkpoint); with --fma-dir also track_ids, labels. "
                        "Failed files are left out (default: none)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress bar on stderr (default: on a terminal with {PROGRESS_MIN_FILES}+ files)")
    g = p.add_argument_group("scoring FMA tracks the model did not train on")
    g.add_argument("--fma-dir", default=None,
                   help="FMA root (fma_metadata/, fma_<subset>/): score its tracks instead of INPUTs; a tagger "
                        "with a tag -> genre map (tag_genres, e.g. pretrained/musicnn_msd.pt) scores the FMA "
                        "top genres zero-shot")
    g.add_argument("--subset", choices=("small", "medium", "large", "full"), default="medium",
                   help="subset to score; tracks of the checkpoint's training subset are left out when it "
                        "is smaller; none for a zero-shot tagger (default: medium)")
    g.add_argument("--split", choices=("training", "validation", "test", "all"), default="all",
                   help="only tracks of this official split (default: all)")
    return p


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.fma_dir and args.inputs:
        parser.error("give INPUT files or --fma-dir, not both")
    if not args.fma_dir and not args.inputs:
        parser.error("no INPUT given (audio files, directories or @LIST), and no --fma-dir")
    if args.top_k < 1:
        parser.error("--top-k must be >= 1")
    if args.workers is not None and args.workers < 1:
        parser.error("--workers must be >= 1")
    single = [o for o, given in (("--segments", args.segments), ("--plot", args.plot), ("--embeddings", args.embeddings),
                                 ("--fma-dir", args.fma_dir)) if given]
    if len(args.checkpoint) > 1 and single:
        parser.error(f"{', '.join(single)}: one --checkpoint only (not an ensemble of {len(args.checkpoint)})")
    with quiet_native_stderr():
        return _run(args)


def _run(args) -> int:
    from tqdm import tqdm

    def warn(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    try:
        predictors = load_predictors(args.checkpoint, args.device, args.batch_windows)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    predictor = predictors[0]  # the members share their classes and labels (load_predictors)
    k = min(args.top_k, len(predictor.classes))
    fma = args.fma_dir is not None
    if fma:
        try:
            songs, info = fma_selection(args, predictor, warn)
        except (DataError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
    else:
        songs = expand_inputs(args.inputs, warn)
    if not songs:
        print("error: no input files found" + ("" if fma else f" in {' '.join(args.inputs)}"), file=sys.stderr)
        return 2
    if args.segments and args.format == "csv":
        warn("warning: --segments is not part of the csv output (one row per file); use table or json")

    workers = args.workers or os.cpu_count() or 1
    show = args.progress if args.progress is not None else (len(songs) >= PROGRESS_MIN_FILES and sys.stderr.isatty())
    bar = tqdm(total=len(songs), unit="song", file=sys.stderr, disable=not show, dynamic_ncols=True)
    plot_name = PlotNames(Path(args.plot), len(songs)) if args.plot else None
    results = []
    for song in predict_songs(predictors, args.checkpoint, songs, workers, keep_features=bool(args.plot),
                              embeddings=bool(args.embeddings)):
        if not song.ok:
            warn(f"error: {song.error}")
        elif plot_name:
            path = plot_name(song)
            plot_song(song, predictor, path, k)
            song.features = None
            warn(f"wrote {path}")
        results.append(song)
        bar.update(1)
    bar.close()
    failed = sum(not s.ok for s in results)
    if args.embeddings:
        write_embeddings(args.embeddings, results, predictor, args.checkpoint[0], fma)

    if fma:
        report = fma_report(results, predictor, info)
        if args.output:
            with _open_output(args.output) as out:
                write_predictions(results, predictor, args.format, k, args.segments, out, fma=True)
        if args.format == "json":
            json.dump(report, sys.stdout, indent=2)
            print()
        else:
            print("\n".join(report_lines(report)))
    else:
        if args.output:
            with _open_output(args.output) as out:
                write_predictions(results, predictor, args.format, k, args.segments, out)
        else:
            write_predictions(results, predictor, args.format, k, args.segments, sys.stdout)
            sys.stdout.flush()
    print(f"predicted {len(results) - failed} of {len(results)} files"
          + (f" with an ensemble of {len(predictors)} checkpoints" if len(predictors) > 1 else "")
          + (f"; {failed} failed" if failed else "") + (f"; wrote {args.output}" if args.output else "")
          + (f"; wrote {args.embeddings}" if args.embeddings else ""),
          file=sys.stderr)
    return 1 if failed else 0


@contextlib.contextmanager
def _open_output(path: str, binary: bool = False):
    p = Path(path)
    if p.parent != Path(""):
        p.parent.mkdir(parents=True, exist_ok=True)
    with (open(p, "wb") if binary else open(p, "w", newline="", encoding="utf-8")) as f:
        yield f


if __name__ == "__main__":
    sys.exit(main())
