"""A labelled collection of audio files as one table, whatever its layout (change how data is read here):

- FMA: DATA_DIR/fma_metadata/tracks.csv + genres.csv and the clips in DATA_DIR/fma_SUBSET/NNN/NNNNNN.mp3
  (`load_tracks`, `load_genres`, `select_subset`, `audio_path`; tracks.csv has a two-row header and
  Python-list columns; subsets are ordered small < medium < large). Its genre hierarchy ('Rock > Punk',
  `genre_path`, `genre_vocabulary`) gives the multi-label targets of `--target all`.
- a folder of class folders: ROOT/<label>/**/<audio> (GTZAN's layout);
- a CSV manifest: path,label[,split][,group], paths relative to the CSV; `a;b` labels make it multi-label.

`open_collection` detects the kind and returns a `Collection`: a table (index track_id; path, label, split,
group). A collection without splits is split by `split_table`: seeded, stratified by label, and never one
group in two splits. A malformed collection is a `DataError` naming the file and row.

    collection = open_collection("data/gtzan")           # or data (FMA), or my_songs.csv
    python main.py --data-dir data/gtzan                  # trains on it like on FMA
"""
from __future__ import annotations

import ast
import csv
import hashlib
import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

import numpy as np
import pandas as pd

from audio import SOUNDFILE_EXTENSIONS

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
    _first_bad(path, table["path"] == "", lambda i: "an empty path")
    if need_label:
        _first_bad(path, table["label"] == "", lambda i: "an empty label")
    _first_bad(path, ~table["split"].isin(SPLITS + ("",)),
               lambda i: f"a split that is not training, validation or test ({table['split'].iloc[i]!r})")
    table["path"] = [str((path.parent / p).resolve()) if not Path(p).is_absolute() else p for p in table["path"]]
    _first_bad(path, table["path"].duplicated(), lambda i: f"{table['path'].iloc[i]} is listed twice")
    if check_files:
        absent = ~table["path"].map(lambda p: Path(p).is_file())
        _first_bad(path, absent, lambda i: f"{table['path'].iloc[i]} not found"
                   + (f" (and {int(absent.sum()) - 1} more files)" if absent.sum() > 1 else ""))
    return table


def _first_bad(path: Path, bad: pd.Series, what) -> None:
    """A DataError naming the manifest's line (the header is line 1) of the first `bad` row and `what(i)` of it."""
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise DataError(f"{path}, line {i + 2}: {what(i)}")


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
# Any collection: FMA, class folders, a manifest

# Extensions searched for in folders (a file named explicitly is tried whatever its extension). Those that
# libsndfile does not read need ffmpeg (through audioread); without it they get a clear error.
AUDIO_EXTENSIONS = frozenset(SOUNDFILE_EXTENSIONS | {".m4a", ".aac", ".wma", ".mp4", ".webm", ".mka"})
MIN_PER_CLASS = 3  # a class split without a split column needs a track in each of training, validation, test


def find_audio(directory: Path) -> list[Path]:
    """Audio files under `directory`, recursively, sorted; hidden files and folders are skipped."""
    found = []
    for root, dirs, files in os.walk(directory, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(root) / f for f in sorted(files)
                  if not f.startswith(".") and Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return found


@dataclass
class Collection:
    """A labelled collection: `table` has one row per track (index track_id) with its audio `path`, `label`
    (FMA: genre_top; '' when none; several joined by ';'), `split` (training, validation or test) and `group`
    (what must not cross splits; '' when none). FMA also keeps its genre hierarchy for --target all."""

    kind: str                                # "fma", "folders" or "manifest"
    root: Path                               # the FMA root, the class-folder root, or the manifest file
    name: str                                # its name in the cache key: FMA's subset, "folders", "manifest-STEM"
    table: pd.DataFrame
    genres: Optional[pd.DataFrame] = None    # FMA's genres.csv
    genres_all: Optional[pd.Series] = None   # FMA's track id -> genres_all (genre ids)
    note: str = ""                           # how the splits were made, when they were

    def __str__(self) -> str:
        return f"{self.root}" + (f" (subset {self.name})" if self.kind == "fma" else f" ({self.kind})")

    @property
    def folder(self) -> Path:
        return self.root if self.root.is_dir() else self.root.parent

    @property
    def synthetic(self) -> bool:
        """The demo set of demo_data.py (in any of its layouts)."""
        return (self.folder / "demo_manifest.json").is_file()

    @property
    def default_cache_dir(self) -> Path:
        """DATA_DIR/cache for FMA; a hidden .cache/ beside a collection's files, which no scan of it sees."""
        return self.folder / ("cache" if self.kind == "fma" else ".cache")

    def digest(self) -> str:
        """What the cache's track list is: FMA's track ids, or the files' paths relative to the collection."""
        if self.kind == "fma":
            data = np.ascontiguousarray(self.table.index.to_numpy(dtype=np.int64)).tobytes()
        else:
            folder = self.folder  # a property that stats the root: read once
            data = "\n".join(os.path.relpath(p, folder) for p in self.table["path"]).encode()
        return hashlib.sha1(data).hexdigest()


def open_collection(data_dir, subset: str = "small", fractions: tuple = (0.8, 0.1, 0.1), seed: int = 0,
                    splits: bool = True) -> Collection:
    """The collection at `data_dir`: a CSV file is a manifest; a folder with fma_metadata/ (or without class
    folders of audio) is FMA, read as `subset`; a folder of class folders is that. A collection without a split
    column is split by `split_table(fractions, seed)` (unless not `splits`: its splits stay '')."""
    path, kind = Path(data_dir), collection_kind(data_dir)
    if kind == "fma":
        return fma_collection(path, subset)
    if kind == "manifest":
        collection = Collection("manifest", path.resolve(), f"manifest-{path.stem}",
                                read_manifest(path, check_files=True).rename_axis("track_id"))
    else:
        collection = folder_collection(path)
    return _with_splits(collection, fractions, seed) if splits else collection


def collection_kind(data_dir) -> str:
    """"manifest" (a .csv file), "folders" (a folder of class folders, without fma_metadata/) or "fma"."""
    path = Path(data_dir)
    if path.suffix.lower() == ".csv":
        return "manifest"
    if path.is_dir() and not (path / "fma_metadata").exists() and _class_folders(path):
        return "folders"
    return "fma"


def fma_collection(root: Path, subset: str) -> Collection:
    tracks, genres = load_metadata(root, subset)
    tracks = select_subset(tracks, subset)
    if len(tracks) == 0:
        raise DataError(f"{root / 'fma_metadata' / 'tracks.csv'} has no track in subset {subset!r}")
    audio_dir = find_audio_dir(root, subset)
    table = pd.DataFrame({"path": [str(audio_path(audio_dir, t)) for t in tracks.index],
                          "label": tracks[("track", "genre_top")].fillna("").astype(str).to_numpy(),
                          "split": tracks[("set", "split")].astype(str).to_numpy(), "group": "",
                          "subset": tracks[("set", "subset")].array},  # ordered: small < medium < large
                         index=pd.Index(tracks.index.to_numpy(dtype=np.int64), name="track_id"))
    return Collection("fma", root, subset, table, genres, tracks[("track", "genres_all")])


def _class_folders(root: Path) -> list[Path]:
    return sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))


def folder_collection(root: Path) -> Collection:
    """ROOT/<label>/**/<audio>: every audio file under a class folder is a track of that class."""
    rows = []
    for folder in _class_folders(root):
        files = find_audio(folder)
        if not files:
            raise DataError(f"{folder}: a class folder without audio files ({', '.join(sorted(AUDIO_EXTENSIONS))})")
        rows += [(str(f.resolve()), folder.name) for f in files]
    table = pd.DataFrame(rows, columns=["path", "label"]).assign(split="", group="")
    return Collection("folders", root.resolve(), "folders", table.rename_axis("track_id"))


def _with_splits(collection: Collection, fractions: tuple, seed: int) -> Collection:
    """The collection with its splits: the manifest's own when it has them (every row), else split_table's."""
    table, where = collection.table, collection.root
    given = table["split"] != ""
    if given.any() and not given.all():
        _first_bad(where, ~given, lambda i: "no split, where other rows have one (give every row a split, or none)")
    if given.all():
        _check_groups(table, where)
        trained = set(table.loc[table["split"] == "training", "label"].str.split(";").explode())
        untrained = sorted(set(table["label"].str.split(";").explode()) - trained)
        if untrained:
            raise DataError(f"{where}: class {untrained[0]!r} has no training track (every class needs one)")
        return collection
    grouped = table["group"] != ""
    if grouped.any() and not grouped.all():
        _first_bad(where, ~grouped, lambda i: "no group, where other rows have one (give every row a group, or none)")
    table["split"] = split_table(table, fractions, seed, where)
    train, val, test = fractions
    collection.note = (f"split {train:g}/{val:g}/{test:g} (seed {seed}), stratified by label"
                       + (", every group in one split" if grouped.all() else
                          "; no group column: songs of one artist may land in both training and test (add a group "
                          "column to a manifest to keep them apart)"))
    return collection


def _check_groups(table: pd.DataFrame, where) -> None:
    """A manifest's own splits must not put one group in two splits."""
    grouped = table[table["group"] != ""]
    spread = grouped.groupby("group")["split"].nunique()
    if (spread > 1).any():
        group = spread[spread > 1].index[0]
        raise DataError(f"{where}: group {group!r} is in {', '.join(sorted(set(grouped.loc[grouped['group'] == group, 'split'])))}: "
                        f"a group must stay in one split")


def split_table(table: pd.DataFrame, fractions: tuple, seed: int, where) -> np.ndarray:
    """training/validation/test for each row: seeded, stratified by label (a multi-label row by its first),
    and, when rows have groups, every group in one split (scikit-learn's StratifiedGroupKFold: the test and
    validation fractions are rounded to 1/k of the groups). DataError for a class with too few tracks."""
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split
    labels = table["label"].str.split(";").str[0].to_numpy()
    names, counts = np.unique(labels, return_counts=True)
    if counts.min() < MIN_PER_CLASS:
        raise DataError(f"{where}: class {names[counts.argmin()]!r} has {counts.min()} track(s): at least "
                        f"{MIN_PER_CLASS} are needed to split it into training, validation and test (or give a "
                        f"split column)")
    split = np.full(len(table), "training", dtype=object)
    rows, (train, val, test) = np.arange(len(table)), fractions
    groups = table["group"].to_numpy()
    if (groups != "").all():
        for name, part, rest in (("test", test, 1.0), ("validation", val, train + val)):
            k = max(2, round(rest / part))
            if len(set(groups[rows])) < k:
                raise DataError(f"{where}: {len(set(groups[rows]))} groups: at least {k} are needed for a {name} "
                                f"fraction of {part:g}")
            folds = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            keep, held = next(folds.split(rows, labels[rows], groups[rows]))
            split[rows[held]], rows = name, rows[keep]
        return split
    try:
        rest, held = train_test_split(rows, test_size=test, stratify=labels, random_state=seed)
        split[held] = "test"
        _, held = train_test_split(rest, test_size=val / (train + val), stratify=labels[rest], random_state=seed)
    except ValueError as e:  # too few tracks for a stratified split of these fractions
        raise DataError(f"{where}: cannot split {len(table)} tracks of {len(names)} classes {train:g}/{val:g}/{test:g} "
                        f"with a track of every class in each split ({e}); add tracks, change --split-fractions, or "
                        f"give the split in a manifest's split column") from None
    split[held] = "validation"
    return split
