"""Malformed FMA metadata: every damaged tracks.csv / genres.csv (made by damaging a copy of the real
excerpt in tests/data/fma_metadata) is a utils.DataError naming the file and the problem, and through
`python main.py --data-dir BAD --prepare-only` an `error: ...` line, exit status 2, and nothing written.
"""
import re
import shutil
from dataclasses import asdict

import pandas as pd
import pytest
import torch

import main
import pre_trained_models
from config import AudioConfig
from conftest import DATA, run_main
from models import ModelConfig, build_model
from models_utils import save_checkpoint
from collection import DataError, load_genres, load_metadata, load_tracks

TRACKS, GENRES = "tracks.csv", "genres.csv"
REAL = DATA / "fma_metadata"
FIRST_TRACK = 2  # the excerpt's first track id ...
SECOND_TRACK = 3  # ... and its second


def _lines(name: str) -> list[str]:
    return (REAL / name).read_text(encoding="utf-8").splitlines(keepends=True)


def _tracks() -> pd.DataFrame:
    """tracks.csv as its raw cells (no list parsing), to damage and write back with to_csv."""
    return pd.read_csv(REAL / TRACKS, index_col=0, header=[0, 1])


def _genres() -> pd.DataFrame:
    return pd.read_csv(REAL / GENRES, index_col=0)


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv()


def _flat_header() -> str:
    """The two header rows merged into one ('set_split'), as a careless export would write them."""
    first, second, *rest = _lines(TRACKS)
    names = [f"{a}_{b}" if b else a for a, b in zip(first.rstrip("\n").split(","), second.rstrip("\n").split(","))]
    return ",".join(names) + "\n" + "".join(rest[1:])


def _with_id(value: str) -> str:
    """tracks.csv with the first track's id replaced by `value` (the rest of the row untouched)."""
    head, (row, *rest) = _lines(TRACKS)[:3], _lines(TRACKS)[3:]
    assert row.startswith(f"{FIRST_TRACK},")
    return "".join(head) + value + row[len(str(FIRST_TRACK)):] + "".join(rest)


def _set_cell(col, value) -> str:
    t = _tracks()
    t.loc[FIRST_TRACK, col] = value
    return _csv(t)


def _set_parent(genre: int, parent) -> str:
    g = _genres()
    g["parent"] = g["parent"].astype(object)
    g.loc[genre, "parent"] = parent
    return _csv(g)


# name -> (damaged file, its text, regex the DataError must match after the file's path)
CASES = {
    "tracks_one_row_header": (TRACKS, lambda: "".join(_lines(TRACKS)[:1] + _lines(TRACKS)[2:]), r"one header row"),
    "tracks_flat_header": (TRACKS, _flat_header, r"one header row"),
    "tracks_no_split": (TRACKS, lambda: _csv(_tracks().drop(columns=[("set", "split")])),
                        r"missing column\(s\) set/split$"),
    "tracks_no_subset": (TRACKS, lambda: _csv(_tracks().drop(columns=[("set", "subset")])),
                         r"missing column\(s\) set/subset$"),
    "tracks_no_genre_top": (TRACKS, lambda: _csv(_tracks().drop(columns=[("track", "genre_top")])),
                            r"missing column\(s\) track/genre_top$"),
    "tracks_no_set": (TRACKS, lambda: _csv(_tracks().drop(columns="set", level=0)),
                      r"missing column\(s\) set/split, set/subset$"),
    "tracks_duplicate_id": (TRACKS, lambda: _with_id(str(SECOND_TRACK)), rf"duplicate track id\(s\) {SECOND_TRACK}$"),
    "tracks_text_id": (TRACKS, lambda: _with_id("abc"), r"non-integer track id\(s\) 'abc'$"),
    "tracks_fractional_id": (TRACKS, lambda: _with_id("2.5"), r"non-integer track id\(s\) 2\.5$"),
    "tracks_empty_id": (TRACKS, lambda: _with_id(""), r"non-integer track id\(s\) \(empty\)$"),
    "tracks_unknown_subset": (TRACKS, lambda: _set_cell(("set", "subset"), "tiny"),
                              r"unknown set/subset value\(s\) 'tiny' \(FMA's are small, medium, large\)"),
    "tracks_unknown_split": (TRACKS, lambda: _set_cell(("set", "split"), "train"), r"unknown set/split value\(s\) 'train'"),
    "tracks_bad_list": (TRACKS, lambda: _set_cell(("track", "genres_all"), "[21, 17"),
                        rf"track/genres_all is not a list for track\(s\) {FIRST_TRACK}$"),
    "tracks_header_only": (TRACKS, lambda: "".join(_lines(TRACKS)[:3]), r"no tracks"),
    "tracks_empty_file": (TRACKS, lambda: "", r"not a readable CSV file"),
    "genres_cycle": (GENRES, lambda: _set_parent(12, 25), r"parents form a cycle: 12 -> 25 -> 12 "),
    "genres_self_parent": (GENRES, lambda: _set_parent(21, 21), r"parents form a cycle: 21 -> 21 "),
    "genres_unknown_parent": (GENRES, lambda: _set_parent(25, 9999), r"unknown parent\(s\) 9999 of genre\(s\) 25 "),
    "genres_text_parent": (GENRES, lambda: _set_parent(25, "Rock"), r"non-integer parent\(s\) 'Rock'$"),
    "genres_no_parent": (GENRES, lambda: _csv(_genres().drop(columns="parent")), r"missing column\(s\) parent$"),
    "genres_no_title": (GENRES, lambda: _csv(_genres().drop(columns="title")), r"missing column\(s\) title$"),
    "genres_duplicate_id": (GENRES, lambda: _csv(pd.concat([_genres(), _genres().iloc[:1]])),
                            r"duplicate genre id\(s\) 1$"),
    "genres_empty_file": (GENRES, lambda: "", r"not a readable CSV file"),
}
SUBPROCESS_CASES = ("tracks_one_row_header", "genres_cycle")  # also through a real `python main.py`


def bad_tree(root, case: str):
    """An FMA tree (metadata only, plus an empty fma_small/) whose file of `case` is damaged."""
    name, text, _ = CASES[case]
    shutil.copytree(REAL, root / "fma_metadata")
    (root / "fma_small").mkdir()
    (root / "fma_metadata" / name).write_text(text(), encoding="utf-8")
    return root


def snapshot(*dirs) -> set:
    return {p for d in dirs for p in d.rglob("*")}


@pytest.mark.parametrize("case", CASES)
def test_malformed_metadata_is_a_data_error(tmp_path, case):
    root = bad_tree(tmp_path / "fma", case)
    name, _, pattern = CASES[case]
    with pytest.raises(DataError) as e:
        load_metadata(root)
    message = str(e.value)
    assert message.startswith(f"{root / 'fma_metadata' / name}: "), message
    assert re.search(pattern, message.split(": ", 1)[1]), message


@pytest.mark.parametrize("case", CASES)
def test_prepare_only_refuses_and_writes_nothing(tmp_path, monkeypatch, capsys, case):
    """main.main in-process (the same code as `python main.py`, without a torch import per case)."""
    root = bad_tree(tmp_path / "fma", case)
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    assert main.main(["--data-dir", str(root), "--prepare-only", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'fma_metadata' / CASES[case][0]}: ") and err.count("\n") == 1, err
    assert snapshot(tmp_path) == before  # no cache dir, no runs/, nothing else


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_main_py_prepare_only_exits_2(tmp_path, case):
    root = bad_tree(tmp_path / "fma", case)
    before = snapshot(tmp_path)
    r = run_main("--data-dir", root, "--prepare-only", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith(f"error: {root / 'fma_metadata' / CASES[case][0]}: ") and "Traceback" not in r.stderr
    assert snapshot(tmp_path) == before  # run from tmp_path: a runs/ dir would be in it


def test_real_excerpt_and_its_round_trip_still_load(tmp_path):
    """The real two-row-header file loads, and so does the same table written back by pandas (what the
    corrupt-file cases start from), with the same values."""
    tracks, genres = load_metadata(DATA)
    assert tracks.shape == (30, 52) and len(genres) == 163
    (tmp_path / TRACKS).write_text(_csv(_tracks()), encoding="utf-8")
    again = load_tracks(tmp_path / TRACKS)
    assert again.index.equals(tracks.index) and again[("track", "genres_all")].equals(tracks[("track", "genres_all")])
    (tmp_path / GENRES).write_text(_csv(_genres()), encoding="utf-8")
    assert load_genres(tmp_path / GENRES).equals(genres)


def test_pre_trained_models_fma_dir_reports_malformed_metadata(tmp_path, capsys):
    """pre_trained_models.py --fma-dir reads the metadata through load_metadata: the same DataError,
    as `error: ...` and exit status 2 (the checkpoint is checked first, so it must be a valid one)."""
    audio = AudioConfig()
    model = build_model(ModelConfig(name="cnn1d", n_classes=2, n_mels=audio.n_mels))
    save_checkpoint(tmp_path / "c.pt", {"model": model.state_dict(), "model_config": asdict(model.config),
                                        "audio": asdict(audio), "classes": ["Rock", "Pop"],
                                        "mean": torch.zeros(audio.n_mels), "std": torch.ones(audio.n_mels)})
    root = bad_tree(tmp_path / "fma", "genres_unknown_parent")
    argv = ["--checkpoint", str(tmp_path / "c.pt"), "--fma-dir", str(root), "--subset", "small"]
    assert pre_trained_models.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {root / 'fma_metadata' / GENRES}: unknown parent(s) 9999"), err
