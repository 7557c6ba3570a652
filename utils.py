"""The data: FMA metadata (tracks.csv, genres.csv, subsets, splits, the genre hierarchy), targets and
splits of a cache, the `Dataset` of cached clips, and the DataLoaders of training and evaluation.

- `load_tracks` / `load_genres` / `select_subset` / `audio_path`: FMA's metadata files
  (tracks.csv has a two-row header and Python-list columns; subsets are ordered small < medium < large).
  A malformed file (missing columns, bad ids, a genre parent cycle, ...) is a `DataError` naming it.
- `genre_path` / `genre_vocabulary` / `multi_hot`: the genre hierarchy of genres.csv ('Rock > Punk')
  and the multi-hot targets of `--target all`.
- `ClipDataset`, `make_loader`: standardised crops or windows of cached clips, for training and evaluation.

Decoding and log-mel are in audio.py, the feature cache in cache.py.
"""
from __future__ import annotations

import ast
import csv
import itertools
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional

import numpy as np
import pandas as pd
import torch

from audio import AMIN
from augment import crop_start
from distributed import Dist, ShardedBatches, train_sampler

if TYPE_CHECKING:
    from cache import FeatureCache
    from config import RunConfig

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


MANIFEST_COLUMNS = ("path", "label", "split", "group")  # a manifest's header: path,label[,split][,group]


def read_manifest(path, need_label: bool = True, check_files: bool = False) -> pd.DataFrame:
    """A CSV manifest -> a table of str columns path (absolute: relative paths are read from the CSV's folder),
    label ('' when absent; several labels separated by ';'), split and group ('' when absent).

    A DataError names the file and the first offending row (its line number) for: no path column (or no label
    column when `need_label`), an empty path, an empty label (`need_label`), a split other than training,
    validation or test, a path listed twice and, with `check_files`, a file that does not exist."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"manifest {path} not found")
    table = _read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    table.columns = [str(c).strip().lower() for c in table.columns]
    missing = [c for c in MANIFEST_COLUMNS[:2 if need_label else 1] if c not in table.columns]
    if missing:
        raise DataError(f"{path}: no {' or '.join(missing)} column (a manifest's header is path,label[,split][,group]; "
                        f"it has {','.join(table.columns) or 'nothing'})")
    if table.empty:
        raise DataError(f"{path}: no rows under its header")
    table = table.reindex(columns=MANIFEST_COLUMNS, fill_value="").apply(lambda c: c.str.strip())
    line = lambda i: f"{path}, line {int(i) + 2}"  # noqa: E731 (the header is line 1)
    problems = (("an empty path", table["path"] == ""),
                ("an empty label", (table["label"] == "") if need_label else table["path"] != table["path"]),
                ("a split that is not training, validation or test",
                 ~table["split"].isin(SPLITS + ("",))))
    for what, bad in problems:
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"{line(i)}: {what}" + (f" ({table['split'].iloc[i]!r})" if "split" in what else ""))
    table["path"] = [str((path.parent / p).resolve()) if not Path(p).is_absolute() else p for p in table["path"]]
    twice = table["path"].duplicated()
    if twice.any():
        i = int(np.flatnonzero(twice.to_numpy())[0])
        raise DataError(f"{line(i)}: {table['path'].iloc[i]} is listed twice")
    if check_files:
        absent = [i for i, p in enumerate(table["path"]) if not Path(p).is_file()]
        if absent:
            raise DataError(f"{line(absent[0])}: {table['path'].iloc[absent[0]]} not found"
                            + (f" (and {len(absent) - 1} more files)" if len(absent) > 1 else ""))
    return table


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
# Targets and splits of a cache

def split_rows(cache, classes: list[str] | None = None) -> tuple[list[str], dict]:
    """Classes (sorted top genres of the usable training tracks) and {split: (rows, targets)}.

    Failed tracks and tracks whose genre is not a training class (no genre_top) are left out and counted.
    """
    ok = cache.ok
    if classes is None:
        classes = sorted(ok.loc[(ok.split == "training") & (ok.label != ""), "label"].unique())
    lookup = {c: i for i, c in enumerate(classes)}
    usable = ok[ok.label.isin(lookup)]
    skipped = len(ok) - len(usable)
    if skipped:
        print(f"left out {skipped} decoded tracks without a known top genre")
    splits = {s: (g["row"].to_numpy(), g["label"].map(lookup).to_numpy(dtype=np.int64))
              for s, g in ((s, usable[usable.split == s]) for s in ("training", "validation", "test"))}
    return classes, splits


def split_rows_all(cache, genres_all, genres, vocab: dict | None = None) -> tuple[dict, dict]:
    """Multi-label targets (--target all): the genre vocabulary and {split: (rows, multi-hot uint8)}.

    `genres_all` maps track_id -> the track's genres (tracks.csv's genres_all, closed under parents);
    `genres` is genres.csv. The vocabulary is every genre with at least one positive among the usable
    training tracks (or `vocab`, from a checkpoint), with ids, titles, parents and hierarchy paths from
    genres.csv and each genre's number of training positives. Failed tracks and tracks without any
    genre are left out and counted; tracks without a genre_top stay in (most of fma_large's).
    """
    ok = cache.ok
    lists = [[int(g) for g in gs if int(g) in genres.index] for gs in genres_all.reindex(ok["track_id"]).to_numpy()]
    has = np.array([len(gs) > 0 for gs in lists], dtype=bool)
    if (~has).sum():
        print(f"left out {int((~has).sum())} decoded tracks without any genre")
    split = ok["split"].to_numpy()
    training = has & (split == "training")
    if vocab is None:
        vocab = genre_vocabulary({g for gs, t in zip(lists, training) if t for g in gs}, genres)
    targets = multi_hot(lists, vocab["ids"])
    rows = ok["row"].to_numpy()
    splits = {s: (rows[has & (split == s)], targets[has & (split == s)]) for s in ("training", "validation", "test")}
    vocab.setdefault("train_positives", splits["training"][1].sum(0).astype(int).tolist())
    return vocab, splits


def make_targets(target: str, run: RunConfig, cache, state: dict | None = None) -> tuple[list[str], dict, dict | None]:
    """(classes, {split: (rows, targets)}, genre vocabulary or None) for `--target top` or `all`;
    a checkpoint's `state` fixes the classes (and vocabulary) it was trained with."""
    if target == "top":
        classes, splits = split_rows(cache, state["classes"] if state else None)
        return classes, splits, None
    tracks, genres = load_metadata(run.data_dir)
    vocab, splits = split_rows_all(cache, tracks[("track", "genres_all")], genres, state.get("genres") if state else None)
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
