"""From a cached collection to batches: the targets and splits of a run (`make_targets`: one label per track,
or multi-hot rows for `--target all`), the training split's band statistics, the `Dataset` of cached clips
(random crops for training, evenly spaced windows for evaluation) and the DataLoaders of training and
evaluation. Collections are read in collection.py, decoded in audio.py, cached in cache.py.

    classes, splits, vocab = make_targets("top", cache)
    loader = make_loader(cache, *splits["training"], mean, std, run, device, crop_frames, train=True)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import numpy as np
import pandas as pd
import torch

from audio import AMIN
from collection import genre_vocabulary, multi_hot
from augment import crop_start
from distributed import Dist, ShardedBatches, train_sampler

if TYPE_CHECKING:
    from cache import FeatureCache
    from config import RunConfig

# --------------------------------------------------------------------------------------------------
# Targets and splits of a cache

def decoded_tracks(cache) -> pd.DataFrame:
    """The cache's decoded tracks (row, track_id) with their label and split: the collection's current ones
    (relabelling or re-splitting a collection needs no new cache), or the cache index's without a collection."""
    ok = cache.ok
    if cache.collection is None:
        return ok
    table = cache.collection.table.loc[ok["track_id"]]
    return ok.assign(label=table["label"].to_numpy(), split=table["split"].to_numpy())


def split_rows(cache, classes: list[str] | None = None) -> tuple[list[str], dict]:
    """Classes (sorted labels of the usable training tracks) and {split: (rows, targets)}.

    Failed tracks and tracks whose label is not a training class (FMA: no genre_top) are left out and counted.
    """
    ok = decoded_tracks(cache)
    if classes is None:
        classes = sorted(ok.loc[(ok.split == "training") & (ok.label != ""), "label"].unique())
    lookup = {c: i for i, c in enumerate(classes)}
    usable = ok[ok.label.isin(lookup)]
    skipped = len(ok) - len(usable)
    if skipped:
        fma = cache.collection is None or cache.collection.kind == "fma"
        print(f"left out {skipped} decoded tracks without a known {'top genre' if fma else 'class'}")
    splits = {s: (g["row"].to_numpy(), g["label"].map(lookup).to_numpy(dtype=np.int64))
              for s, g in ((s, usable[usable.split == s]) for s in ("training", "validation", "test"))}
    return classes, splits


def label_lists(cache, ok: pd.DataFrame, vocab: dict | None) -> tuple[list[list[int]], dict | None]:
    """Each decoded track's labels as vocabulary ids, and the vocabulary's fields from the collection (None: to be
    made from the training tracks): FMA's genres_all (genre ids, closed under parents) with genres.csv's titles,
    parents and paths; a collection's ';'-separated labels, numbered in sorted order, flat (no hierarchy)."""
    collection = cache.collection
    if collection.kind == "fma":
        genres = collection.genres
        return [[int(g) for g in gs if int(g) in genres.index]
                for gs in collection.genres_all.reindex(ok["track_id"]).to_numpy()], vocab
    names = [[x for x in str(label).split(";") if x] for label in ok["label"]]
    if vocab is None:
        titles = sorted({x for xs, s in zip(names, ok["split"]) if s == "training" for x in xs})
        vocab = {"ids": list(range(len(titles))), "titles": titles, "parents": [0] * len(titles), "paths": titles}
    ids = dict(zip(vocab["titles"], vocab["ids"]))
    return [[ids[x] for x in xs if x in ids] for xs in names], vocab


def split_rows_all(cache, vocab: dict | None = None) -> tuple[dict, dict]:
    """Multi-label targets (--target all): the vocabulary and {split: (rows, multi-hot uint8)}.

    The vocabulary is every genre (label) with at least one positive among the usable training tracks (or
    `vocab`, from a checkpoint): ids, titles, parents and hierarchy paths (FMA: from genres.csv), and each
    one's number of training positives. Failed tracks and tracks without any known genre are left out and
    counted; FMA tracks without a genre_top stay in (most of fma_large's)."""
    ok = decoded_tracks(cache)
    lists, vocab = label_lists(cache, ok, vocab)
    has = np.array([len(gs) > 0 for gs in lists], dtype=bool)
    if (~has).sum():
        print(f"left out {int((~has).sum())} decoded tracks without any genre")
    split = ok["split"].to_numpy()
    training = has & (split == "training")
    if vocab is None:
        vocab = genre_vocabulary({g for gs, t in zip(lists, training) if t for g in gs}, cache.collection.genres)
    targets = multi_hot(lists, vocab["ids"])
    rows = ok["row"].to_numpy()
    splits = {s: (rows[has & (split == s)], targets[has & (split == s)]) for s in ("training", "validation", "test")}
    vocab.setdefault("train_positives", splits["training"][1].sum(0).astype(int).tolist())
    return vocab, splits


def make_targets(target: str, cache, state: dict | None = None) -> tuple[list[str], dict, dict | None]:
    """(classes, {split: (rows, targets)}, genre vocabulary or None) for `--target top` or `all`;
    a checkpoint's `state` fixes the classes (and vocabulary) it was trained with."""
    if target == "top":
        classes, splits = split_rows(cache, state["classes"] if state else None)
        return classes, splits, None
    vocab, splits = split_rows_all(cache, state.get("genres") if state else None)
    return list(vocab["titles"]), splits, vocab


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """`--balance sampler`: a training clip's draw weight, 1 / (training clips of its class); for
    multi-hot targets 1 / (positives of its rarest genre)."""
    if targets.ndim == 1:
        return 1.0 / np.bincount(targets)[targets]
    inv = 1.0 / np.maximum(targets.sum(0), 1)
    w = (targets * inv).max(1)
    return np.where(w > 0, w, inv.min())


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
                start = crop_start(self.frames[i], self.crop_frames)
                x = x[:, start:start + self.crop_frames]
            else:
                x = eval_windows(x, self.frames[i], self.crop_frames, max(self.eval_crops, 1))
                x = x if self.eval_crops else x[0]
        return torch.from_numpy(standardize(x, self.mean, self.std)), y


def make_loader(cache, rows, targets, mean, std, run: RunConfig, device, crop_frames=None, train=False,
                eval_crops=0, generator=None, dist: Dist = Dist(), persistent: bool = False):
    """The DataLoader of training (shuffled, random crops; `--balance sampler` draws with replacement)
    or evaluation (in order). Under torchrun (`dist`) each rank loads its share: of an epoch's clips
    (distributed.train_sampler; call its set_epoch) or of the evaluation batches (ShardedBatches)."""
    ds = ClipDataset(cache, rows, targets, mean, std, crop_frames=crop_frames, random_crop=train,
                     eval_crops=eval_crops)
    workers = run.loader_workers if run.loader_workers is not None else (4 if device.type == "cuda" else 0)
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", generator=generator,
                  persistent_workers=persistent and workers > 0)  # persistent: bench.py's timed windows
    if dist.enabled and not train:
        return torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatches(len(ds), run.batch_size, dist), **common)
    weights = sample_weights(np.asarray(targets)) if train and run.balance == "sampler" else None
    sampler = None
    if train and dist.enabled:
        sampler = train_sampler(len(ds), weights, dist, run.seed)
    elif weights is not None:  # with replacement, as many draws as clips per epoch
        sampler = torch.utils.data.WeightedRandomSampler(torch.from_numpy(weights), len(ds), replacement=True,
                                                         generator=generator)
    clips = len(sampler) if sampler is not None else len(ds)  # this rank's
    return torch.utils.data.DataLoader(ds, batch_size=run.batch_size, shuffle=train and sampler is None,
                                       sampler=sampler, drop_last=train and clips > run.batch_size, **common)
