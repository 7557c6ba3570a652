"""Songs to genre probabilities with a checkpoint: `Predictor` decodes a file (audio.load_audio, the one
log-mel function), cuts it into the model's windows and runs them, in batches, through test.infer, the one
inference function that evaluation uses too; `predict_songs` streams many songs (decoding threads, bounded
look-ahead) through one checkpoint or an ensemble. pre_trained_models.py (the command line) and app.py use it.

    predictors = load_predictors(["pretrained/musicnn_msd.pt"])
    for song in predict_songs(predictors, ["pretrained/musicnn_msd.pt"], [Song("song.mp3")], workers=2):
        print(song.probs)

How a song becomes windows is in docs/prediction.md ("How a song becomes probabilities").
"""
from __future__ import annotations

import collections
import concurrent.futures as cf
import contextlib
import dataclasses
import functools
import itertools
import math
import threading
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch

from audio import (AMIN, MAX_DECODE_SECONDS, AudioError, audio_blocks, clip_from_wave, join_blocks, log_mel,
                   log_mel_blocks)
from config import AudioConfig
from models_utils import CheckpointError, load_checkpoint, model_from_checkpoint, pick_device
from test import average_probs, ensemble_mismatch, infer
from utils import crop_starts, patch_starts, standardize

CLIP_SLACK_SECONDS = 1.0    # songs up to clip_seconds + this are treated exactly like the cached clip
MIN_SECONDS = 0.5           # shorter audio is refused; anything shorter than one window is padded with silence
SILENT_DBFS = -60.0         # a song whose RMS level is below this (dB full scale) is flagged near-silent
# windows per model call: on CPU a few, each call in a thread of its own (Predictor.model_threads), so that a
# call's activations stay in the CPU's caches (musicnn, one torch thread, CPU ms per window: 43 in batches of 1,
# 44 of 2, 59 of 5, 77 of 8; batches of 64 took 1.6 GB); on CUDA many, to fill the GPU
BATCH_WINDOWS = {"cpu": 2, "cuda": 64}


@dataclass
class Song:
    """One input and what became of it."""

    path: str
    track_id: Optional[int] = None     # --fma-dir only
    label: Optional[str] = None        # the true genre, when known (--fma-dir's genre_top, a manifest's label)
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
    warnings: list = dataclasses.field(default_factory=list)  # near-silent, padded: what makes its genres doubtful

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def windows(self) -> int:
        """Windows the song was predicted from (an ensemble's: every member's together)."""
        return sum(m.windows for _, m in self.members) if self.members else len(self.starts)


class Predictor:
    """A checkpoint's model with everything needed to turn audio files into genre probabilities."""

    def __init__(self, state: dict, device: torch.device, batch_windows: Optional[int] = None,
                 model_threads: Optional[int] = None, max_seconds: float = MAX_DECODE_SECONDS):
        self.max_seconds = max_seconds  # longer audio fails 'too long', decoding stopped there
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
            data = state.get("data") or {}  # what trained it (checkpoints of older versions: none)
            self.synthetic = bool(data.get("synthetic"))
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
        self.device = device
        self.batch_windows = max(1, batch_windows or BATCH_WINDOWS.get(device.type, BATCH_WINDOWS["cuda"]))
        # CPU: batches run in this many threads at once, one torch thread each (default: torch's thread count,
        # the cores): no thread of torch's pool waits for another, whatever else (decoding) runs beside them
        self.model_threads = max(1, model_threads or torch.get_num_threads()) if device.type == "cpu" else 1
        self.run_config = state.get("run_config") or {}

    @property
    def genre_names(self) -> list[str]:
        """The FMA genres a zero-shot tagger scores (tag_genres' keys), or its labels for any other model."""
        return list(self.tag_genres) if self.zero_shot else self.labels

    def genre_probs(self, probs: np.ndarray) -> np.ndarray:
        """Scores of `genre_names`: a zero-shot tagger's genre_scores, any other model's probabilities."""
        return self.genre_scores(probs) if self.zero_shot else probs

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

    @property
    def clip_samples(self) -> int:
        """Samples of the feature cache's clip (clip_seconds)."""
        return int(round(self.audio.clip_seconds * self.audio.sample_rate))

    @property
    def one_clip_samples(self) -> float:
        """Songs up to this many samples are treated exactly like the cached clip; longer ones in segments."""
        return self.clip_samples + CLIP_SLACK_SECONDS * self.audio.sample_rate

    # -- runs in decoding threads
    def load(self, song: Song, wait_turn: Optional[Callable[[], None]] = None) -> Song:
        """Decode `song.path` and compute its features and window starts (sets song.error on failure).
        `wait_turn` (decode_all's) is called before a song longer than a clip is decoded past its start."""
        a = self.audio
        try:
            song.features, valid, samples, energy = self._features(song.path, wait_turn)
            segments = math.ceil(samples / self.clip_samples) if samples > self.one_clip_samples else 1
            song.duration = samples / a.sample_rate
            rms_db = 10 * math.log10(energy / max(samples, 1) + 1e-20)
            if rms_db < SILENT_DBFS:
                song.warnings.append(f"near-silent (RMS {rms_db:.0f} dBFS): its genres mean little")
            if self.crop_frames and valid < self.window_frames:
                song.warnings.append(f"shorter than one window ({self.window_frames * a.hop_length / a.sample_rate:.2f}"
                                     f" s): padded with silence")
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

    def _features(self, path: str, wait_turn: Optional[Callable[[], None]]) -> tuple[np.ndarray, int, int, float]:
        """(float16 log-mel, frames of real audio in it, samples decoded, their sum of squares) of a song. Up to a
        clip long (clip_seconds + CLIP_SLACK_SECONDS) it is decoded whole: exactly the feature cache's clip, or
        with window_hop its log-mel. A longer song's log-mel is computed as it is decoded (audio.audio_blocks,
        log_mel_blocks: the same values) into song_features' buffer, once `wait_turn()` has returned: it holds
        its features alone, whatever its length."""
        a = self.audio
        most = self.one_clip_samples
        blocks = audio_blocks(path, a.sample_rate, MIN_SECONDS, max_seconds=self.max_seconds)
        head, n, energy = collections.deque(), 0, 0.0
        for block in blocks:
            head.append(block)
            n += len(block)
            energy += float(np.dot(block, block))
            if n > most:
                break
        if n <= most:  # all of it
            wave = join_blocks(head)
            if not self.window_hop:
                return (*clip_from_wave(wave, a), n, energy)
            features = log_mel(wave, a).astype(np.float16)  # musicnn's patches: the whole song, however short
            return features, features.shape[1], n, energy
        if wait_turn is not None:
            wait_turn()

        def rest() -> Iterator[np.ndarray]:
            nonlocal n, energy
            while head:
                yield head.popleft()
            for more in blocks:
                n += len(more)
                energy += float(np.dot(more, more))
                yield more
        features = song_features(rest(), a, self.max_seconds)
        return features, features.shape[1], n, energy

    # -- runs in the main thread (and _forward in the model threads)
    def _batch(self, queue: collections.deque, keep_features: bool) -> tuple[list, np.ndarray]:
        """Up to batch_windows queued (song, window) pairs and their standardised windows (B, n_mels, frames);
        a song's features are dropped with its last window (unless `keep_features`)."""
        batch = [queue.popleft() for _ in range(min(self.batch_windows, len(queue)))]
        wf = self.window_frames
        x = np.empty((len(batch), self.audio.n_mels, wf), dtype=np.float32)
        for i, (song, w) in enumerate(batch):
            s = int(song.starts[w])
            x[i] = standardize(song.features[:, s:s + wf], self.mean, self.std)
            if w == len(song.starts) - 1 and not keep_features:
                song.features = None
        return batch, x

    def _forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(B, n_mels, frames) windows -> probabilities (B, n_classes) and embeddings (B, D), through test.infer."""
        probs, emb = infer(self.model, torch.from_numpy(x).to(self.device), multilabel=self.multilabel, embed=True)
        return probs.cpu().numpy(), emb.cpu().numpy()

    @staticmethod
    def _store(batch: list, probs: np.ndarray, emb: np.ndarray) -> None:
        for i, (song, w) in enumerate(batch):
            song.window_probs[w] = probs[i]
            if song.window_embeddings is not None:
                song.window_embeddings[w] = emb[i]
            song.done += 1

    def predict(self, songs: Iterable[Song], keep_features: bool = False, embeddings: bool = False) -> Iterator[Song]:
        """Yield the songs, in order, with their probabilities (and, with `embeddings`, the mean of
        model.embed over their windows); windows of several songs share a batch. Batches are made in the
        order of the windows, whatever the threads, so the results do not depend on model_threads."""
        queue, pending, running = collections.deque(), collections.deque(), collections.deque()
        with model_pool(self.model_threads) as pool:
            def run(batch_x: tuple) -> None:  # submit one batch; store those done beyond model_threads in flight
                if pool is None:
                    self._store(batch_x[0], *self._forward(batch_x[1]))
                    return
                running.append((batch_x[0], pool.submit(self._forward, batch_x[1])))
                while len(running) > self.model_threads:
                    batch, future = running.popleft()
                    self._store(batch, *future.result())

            for song in songs:
                if song.ok:
                    song.window_probs = np.zeros((len(song.starts), len(self.classes)), dtype=np.float32)
                    if embeddings:
                        song.window_embeddings = np.zeros((len(song.starts), self.embedding_dim), dtype=np.float32)
                    queue.extend((song, w) for w in range(len(song.starts)))
                pending.append(song)
                while len(queue) >= self.batch_windows:
                    run(self._batch(queue, keep_features))
                    yield from self._finished(pending, keep_features)
            while queue:
                run(self._batch(queue, keep_features))
            while running:
                batch, future = running.popleft()
                self._store(batch, *future.result())
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


def load_predictor(checkpoint: str, device: str = "auto", batch_windows: Optional[int] = None) -> Predictor:
    """Load a checkpoint (weights_only, onto the CPU first) into a Predictor on `device`.

    CheckpointError when the checkpoint is missing, unsafe or unusable; ValueError for a bad device."""
    return load_predictors([checkpoint], device, batch_windows)[0]


def load_predictors(checkpoints: list[str], device: str = "auto", batch_windows: Optional[int] = None,
                    max_seconds: float = MAX_DECODE_SECONDS) -> list[Predictor]:
    """A Predictor of each checkpoint; several are an ensemble's members, and a ValueError names what
    keeps them from being averaged (test.ensemble_mismatch: kind, classes, genre vocabulary)."""
    dev = pick_device(device)
    states = [load_checkpoint(c, map_location="cpu") for c in checkpoints]
    problem = ensemble_mismatch(list(zip(map(str, checkpoints), states))) if len(states) > 1 else None
    if problem:
        raise ValueError(problem)
    return [Predictor(state, dev, batch_windows, max_seconds=max_seconds) for state in states]


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
            song.warnings = list(dict.fromkeys(w for m in per for w in m.warnings))
            song.probs = average_probs([m.probs for m in per])
        yield song


def decode_all(predictor: Predictor, songs: list[Song], workers: int) -> Iterator[Song]:
    """Decode songs in `workers` threads, yielding them in input order with a bounded look-ahead: one song
    beyond those the threads decode (decoding is a tenth of the work). A song longer than a clip holds its
    features (43 MB per hour of audio at musicnn's parameters): such a song is decoded only once every
    song before it is yielded (Predictor.load's wait_turn), so that one is decoded while the model runs
    on the one before, and memory does not grow with the length or number of the songs."""
    if workers <= 1:
        yield from (predictor.load(s) if s.ok else s for s in songs)
        return
    yielded = _Count()
    with cf.ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        inflight: collections.deque = collections.deque()
        for i, song in enumerate(songs):
            inflight.append(pool.submit(predictor.load, song, functools.partial(yielded.wait_for, i)) if song.ok
                            else _done(song))
            if len(inflight) > workers:
                done = inflight.popleft().result()
                yielded.add()
                yield done
        while inflight:
            done = inflight.popleft().result()
            yielded.add()
            yield done


class _Count:
    """A counter that threads can wait on (decode_all's count of songs yielded)."""

    def __init__(self):
        self.value, self.changed = 0, threading.Condition()

    def add(self) -> None:
        with self.changed:
            self.value += 1
            self.changed.notify_all()

    def wait_for(self, value: int) -> None:
        with self.changed:
            self.changed.wait_for(lambda: self.value >= value)


def song_features(blocks: Iterable[np.ndarray], audio: AudioConfig,
                  max_seconds: float = MAX_DECODE_SECONDS) -> np.ndarray:
    """float16 log-mel (n_mels, frames) of a signal that comes in blocks (audio.log_mel_blocks), written
    frame by frame into one buffer reserved for the longest audio decoded (`max_seconds`): pages
    never written take no memory, so that a song holds its features alone, never a second copy while
    they are joined. The result is a view of that buffer (the same values as a joined array)."""
    reserved = 2 + (int(max_seconds * audio.sample_rate) + audio.n_fft) // audio.hop_length
    frames = np.empty((reserved, audio.n_mels), dtype=np.float16)  # frame-major: written front to back
    t = 0
    for block in log_mel_blocks(blocks, audio):  # (n_mels, t) float32
        frames[t:t + block.shape[1]] = block.T
        t += block.shape[1]
    return frames[:t].T


@contextlib.contextmanager
def model_pool(threads: int):
    """None for one thread (the model runs in the caller's), else a pool of `threads` threads that run
    torch with one thread each (its thread count is per thread: the caller's own stays as it was)."""
    if threads <= 1:
        yield None
        return
    own = torch.get_num_threads()
    try:
        with cf.ThreadPoolExecutor(threads, thread_name_prefix="model", initializer=torch.set_num_threads,
                                   initargs=(1,)) as pool:
            yield pool
    finally:
        torch.set_num_threads(own)  # the default of threads started later (the pool's set it to 1)


def _done(song: Song) -> cf.Future:
    f: cf.Future = cf.Future()
    f.set_result(song)
    return f

