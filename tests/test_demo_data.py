"""Tests of the synthetic FMA-format demo set: the package demo/ and its entry point demo_data.py.

A tiny set (3 tracks per genre, 5 s clips, plus the broken clips) is generated once into a temporary
folder; it must look exactly like real FMA to the code that reads it (header, columns, list columns,
genre ids and hierarchy, artist-filtered split, audio layout and format), break where it says it
does, be deterministic for a seed whatever the number of workers, be idempotent, and stay what the
generator wrote before it became a package (GENERATOR_VERSION 2): its metadata byte for byte, its audio
by a fingerprint of the decoded clips. The MP3 bytes themselves are only reproducible on one machine:
numpy picks its SIMD kernels by CPU (NPY_DISABLE_CPU_FEATURES="X86_V3" changes the bytes of most clips
on the same machine), which moves the last bits of the synthesised floats; the decoded band energies
then move by at most 0.07 dB (measured), far inside the tolerance below.

    pytest tests/test_demo_data.py
    python tests/test_demo_data.py      # record tests/data/demo_fingerprint.json anew (after a
                                        # deliberate change of the output, with GENERATOR_VERSION)
"""
import ast
import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

import demo_data
from demo import BROKEN_KINDS, TOP_GENRES, cli, make_metadata, split_sizes

REAL = Path(__file__).parent / "data" / "fma_metadata"
TPG, SECONDS = 3, 5.0   # tracks per genre, clip length of the tiny set

# sha256 over the metadata of a set (metadata_sha256: fma_metadata/ and demo_manifest.json; none of it
# records the output folder), and the band energies of its decoded clips (FINGERPRINT), recorded with
# GENERATOR_VERSION 2. A change of the output must bump GENERATOR_VERSION and record new values here.
TINY_SHA256 = "8a1344f103a03563c1e3d762fa056eef4c7be0acde4f718a2f03e3cb3db6e327"  # `demo` fixture (seed 0)
NO_BROKEN_SHA256 = "f6c08cc2303fa69401e696d44b3e33130d6d4def9784444005c96b7dd6e273da"  # 1 x 2 s, --no-broken
FINGERPRINT = Path(__file__).parent / "data" / "demo_fingerprint.json"
BAND_EDGES_HZ = [0, 125, 250, 500, 1000, 2000, 4000, 8000, 16000, 22050]  # octave bands of the fingerprint
FINGERPRINT_TOLERANCE_DB = 0.5  # 7x the largest change measured between two SIMD targets of numpy


def generate(out, *extra, tracks_per_genre=TPG, seconds=SECONDS, seed=0, workers=1):
    argv = ["--out", str(out), "--tracks-per-genre", str(tracks_per_genre), "--seconds", str(seconds),
            "--seed", str(seed), "--workers", str(workers), *extra]
    cli.main(argv)
    return Path(out)


def read_tracks(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])


def metadata_sha256(root: Path) -> str:
    """One sha256 over the relative paths (sorted) and contents of the metadata files of a set."""
    files = [*(root / "fma_metadata").rglob("*"), root / "demo_manifest.json"]
    h = hashlib.sha256()
    for rel in sorted(p.relative_to(root).as_posix() for p in files if p.is_file()):
        h.update(rel.encode() + b"\0" + hashlib.sha256((root / rel).read_bytes()).digest())
    return h.hexdigest()


def fingerprint(root: Path) -> dict:
    """Band energies (dB) of every second of every clip that is not broken on purpose, by relative path."""
    broken = set(pd.read_csv(root / "broken.csv")["file"])
    out = {}
    for rel, y in decoded(root).items():
        if rel in broken:
            continue
        mono = y.astype(np.float64).mean(axis=1)
        seconds = mono[: len(mono) // 44100 * 44100].reshape(-1, 44100)      # (S, 44100): 1 s segments
        power = np.abs(np.fft.rfft(seconds, axis=1)) ** 2                      # (S, 22051): 1 Hz bins
        bands = np.add.reduceat(power, BAND_EDGES_HZ[:-1], axis=1)             # (S, 9)
        out[rel] = np.round(10 * np.log10(bands / seconds.shape[1] + 1e-10), 2).tolist()
    return out


def assert_fingerprint(root: Path, name: str):
    recorded = json.loads(FINGERPRINT.read_text())[name]
    ours = fingerprint(root)
    assert ours.keys() == recorded.keys()
    worst = max(float(np.max(np.abs(np.subtract(ours[k], recorded[k])))) for k in ours)
    assert worst <= FINGERPRINT_TOLERANCE_DB, f"decoded audio moved by {worst:.2f} dB"


def decoded(root: Path) -> dict:
    """Decoded audio of every readable clip, by relative path."""
    out = {}
    for p in sorted((root / "fma_small").rglob("*.mp3")):
        if p.stat().st_size:
            out[str(p.relative_to(root))] = sf.read(str(p), dtype="float32")[0]
    return out


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("demo") / "demo", workers=2)


def test_layout_and_audio_format(demo):
    tracks = read_tracks(demo)
    assert (demo / "fma_metadata" / "genres.csv").is_file()
    assert (demo / "broken.csv").is_file() and (demo / "demo_manifest.json").is_file()
    broken = pd.read_csv(demo / "broken.csv", index_col=0)
    for tid in tracks.index:
        tid6 = f"{tid:06d}"
        path = demo / "fma_small" / tid6[:3] / f"{tid6}.mp3"
        assert path.is_file(), path
        if tid in broken.index:
            continue
        info = sf.info(str(path))
        assert (info.format, info.samplerate, info.channels) == ("MP3", 44100, 2)
        assert abs(info.duration - SECONDS) < 0.1
    assert len(tracks) == 8 * TPG + len(BROKEN_KINDS)


def test_output_is_the_recorded_one(demo):
    assert metadata_sha256(demo) == TINY_SHA256
    assert_fingerprint(demo, "tiny")


def test_genres_csv_is_the_official_file(demo):
    assert (demo / "fma_metadata" / "genres.csv").read_bytes() == (REAL / "genres.csv").read_bytes()


def test_tracks_header_equals_the_real_file(demo):
    with open(REAL / "tracks.csv", newline="") as f:
        real = [next(csv.reader(f)) for _ in range(3)]
    with open(demo / "fma_metadata" / "tracks.csv", newline="") as f:
        ours = [next(csv.reader(f)) for _ in range(3)]
    for real_row, our_row in zip(real, ours):   # both header rows and the track_id row
        assert our_row == real_row
    real_cols = pd.read_csv(REAL / "tracks.csv", index_col=0, header=[0, 1]).columns
    tracks = read_tracks(demo)
    assert tracks.shape[1] == 52 and list(tracks.columns) == list(real_cols)
    assert tracks.index.name == "track_id" and tracks.index.is_unique


def test_values_genres_and_split(demo):
    tracks = read_tracks(demo)
    genres = pd.read_csv(REAL / "genres.csv", index_col=0)
    assert set(tracks[("set", "subset")]) == {"small"}
    assert set(tracks[("track", "genre_top")]) == set(TOP_GENRES)
    for col in [("track", "genres"), ("track", "genres_all"), ("track", "tags"), ("album", "tags"),
                ("artist", "tags")]:
        assert all(isinstance(ast.literal_eval(v), list) for v in tracks[col])
    for tid, row in tracks.iterrows():
        g = ast.literal_eval(row[("track", "genres")])
        g_all = set(ast.literal_eval(row[("track", "genres_all")]))
        assert g and set(g) <= g_all and g_all <= set(genres.index)
        for x in g_all:   # closed under parents
            parent = genres.at[x, "parent"]
            assert parent == 0 or parent in g_all
        top = genres.loc[sorted(g_all), "top_level"].unique()
        assert list(top) == [TOP_GENRES[row[("track", "genre_top")]]]
        assert row[("track", "duration")] > 0 and isinstance(row[("artist", "name")], str)
    # artist-filtered: every artist in exactly one split; per genre the 80/10/10 split (good clips)
    assert (tracks[("set", "split")].groupby(tracks[("artist", "id")]).nunique() == 1).all()
    broken = pd.read_csv(demo / "broken.csv", index_col=0)
    good = tracks.drop(index=broken.index)
    counts = pd.crosstab(good[("track", "genre_top")], good[("set", "split")])
    assert (counts[["training", "validation", "test"]] == list(split_sizes(TPG))).all().all()


def test_broken_clips(demo):
    tracks = read_tracks(demo)
    broken = pd.read_csv(demo / "broken.csv", index_col=0)
    assert sorted(broken["kind"]) == sorted(BROKEN_KINDS)
    assert set(broken.index) <= set(tracks.index)                       # listed in tracks.csv
    assert set(tracks.loc[broken.index, ("set", "split")]) == {"training"}
    path = {kind: demo / f for f, kind in zip(broken["file"], broken["kind"])}
    assert path["empty"].stat().st_size == 0
    declared = sf.info(str(path["truncated"])).frames                   # the header's (Xing) length
    assert declared == pytest.approx(SECONDS * 44100, rel=0.01)
    assert len(sf.read(str(path["truncated"]))[0]) < 0.5 * declared     # cut mid-file
    assert sf.info(str(path["short"])).duration < 3.0
    manifest = json.loads((demo / "demo_manifest.json").read_text())
    assert {int(k): v for k, v in manifest["broken"].items()} == broken["kind"].to_dict()


def test_readable_by_the_project_loader(demo):
    collection = pytest.importorskip("collection")
    tracks, genres = collection.load_metadata(demo)
    small = collection.select_subset(tracks, "small")
    assert len(small) == len(tracks) and len(genres) == 163
    assert isinstance(small[("track", "genres_all")].iloc[0], list)


def test_deterministic_and_independent_of_workers(tmp_path):
    kw = dict(tracks_per_genre=1, seconds=3.0)
    a = generate(tmp_path / "a", workers=1, **kw)
    b = generate(tmp_path / "b", workers=2, **kw)
    c = generate(tmp_path / "c", seed=1, **kw)
    csv_a = (a / "fma_metadata" / "tracks.csv").read_bytes()
    assert csv_a == (b / "fma_metadata" / "tracks.csv").read_bytes()
    audio_a, audio_b = decoded(a), decoded(b)
    assert audio_a.keys() == audio_b.keys()
    assert all(np.array_equal(audio_a[k], audio_b[k]) for k in audio_a)
    assert csv_a != (c / "fma_metadata" / "tracks.csv").read_bytes()
    first = np.concatenate([v[:44100, 0] for v in audio_a.values()])
    other = np.concatenate([v[:44100, 0] for v in decoded(c).values()])
    assert first.shape != other.shape or not np.array_equal(first, other)


def test_idempotent_and_regenerates_cleanly(tmp_path, capsys):
    kw = dict(tracks_per_genre=1, seconds=3.0)
    out = generate(tmp_path / "demo", **kw)
    files = sorted(p for p in out.rglob("*") if p.is_file())
    mtimes = {p: p.stat().st_mtime_ns for p in files}
    capsys.readouterr()
    generate(out, **kw)
    assert "nothing to do" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in files} == mtimes
    old_ids = set(read_tracks(out).index)
    (out / "cache").mkdir()                                # a feature cache of the old set goes too
    generate(out, seed=5, **kw)
    new_ids = set(read_tracks(out).index)
    on_disk = {int(p.stem) for p in (out / "fma_small").rglob("*.mp3")}
    assert on_disk == new_ids and new_ids != old_ids and not (out / "cache").exists()


def test_resumes_after_interruption(tmp_path, capsys):
    kw = dict(tracks_per_genre=1, seconds=3.0)
    out = generate(tmp_path / "demo", **kw)
    manifest = json.loads((out / "demo_manifest.json").read_text())
    victim = out / manifest["files"][0]
    victim.unlink()                                        # as if killed before this clip was written
    manifest["complete"] = False
    (out / "demo_manifest.json").write_text(json.dumps(manifest))
    keep = out / manifest["files"][1]
    mtime = keep.stat().st_mtime_ns
    generate(out, **kw)
    assert victim.exists() and keep.stat().st_mtime_ns == mtime
    assert json.loads((out / "demo_manifest.json").read_text())["complete"]


def test_no_broken_keeps_the_other_tracks(tmp_path):
    with_broken = make_metadata(2, seed=3, broken=True)
    without = make_metadata(2, seed=3, broken=False)
    strip = [t for t in with_broken if not t["_broken"]]
    assert [t["_id"] for t in strip] == [t["_id"] for t in without]
    assert all(t["_broken"] is None for t in without)
    out = generate_no_broken(tmp_path / "demo")
    assert len(read_tracks(out)) == 8
    assert len(pd.read_csv(out / "broken.csv")) == 0
    assert metadata_sha256(out) == NO_BROKEN_SHA256
    assert_fingerprint(out, "no_broken")


def generate_no_broken(out):
    return generate(out, "--no-broken", tracks_per_genre=1, seconds=2.0)


def test_split_sizes_and_unknown_options():
    assert split_sizes(60) == (48, 6, 6)
    assert split_sizes(3) == (1, 1, 1)
    assert sum(split_sizes(7)) == 7
    with pytest.raises(SystemExit):
        cli.main(["--bogus"])
    with pytest.raises(SystemExit):
        cli.main(["--tracks-per-genre", "0"])


def test_demo_data_py_is_the_entry_point():
    """demo_data.py runs demo.cli.main and keeps the names other code imports from it."""
    assert demo_data.main is cli.main
    assert (demo_data.BROKEN_KINDS, demo_data.TOP_GENRES) == (BROKEN_KINDS, TOP_GENRES)
    assert demo_data.split_sizes is split_sizes and demo_data.make_metadata is make_metadata
    assert (Path(cli.__file__).parent / "genres.csv").read_bytes() == (REAL / "genres.csv").read_bytes()


def test_evaluation_set_split(tmp_path):
    """--split sets each genre's split sizes (the larger evaluation set of the README: 0.4,0.3,0.3); a default
    split leaves the manifest as it was, a bad one is refused."""
    assert split_sizes(100, (0.4, 0.3, 0.3)) == (40, 30, 30)  # x 8 genres: 320 / 240 / 240 tracks
    out = generate(tmp_path / "eval", "--split", "0.4,0.3,0.3", "--no-broken", tracks_per_genre=10, seconds=1.0)
    counts = read_tracks(out)[("set", "split")].value_counts()
    assert counts.to_dict() == {"training": 32, "validation": 24, "test": 24}
    assert json.loads((out / "demo_manifest.json").read_text())["args"]["split"] == [0.4, 0.3, 0.3]
    for bad in ("0.5,0.5", "0.8,0.3,-0.1", "a,b,c", "0.5,0.3,0.3"):
        with pytest.raises(SystemExit):
            cli.main(["--out", str(tmp_path / "bad"), "--split", bad])
    assert not (tmp_path / "bad").exists()


if __name__ == "__main__":     # record the fingerprints and print the metadata hashes to paste above
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        sets = {"tiny": generate(Path(tmp) / "tiny"), "no_broken": generate_no_broken(Path(tmp) / "nb")}
        FINGERPRINT.write_text(json.dumps({k: fingerprint(v) for k, v in sets.items()}, sort_keys=True) + "\n")
        for name, root in sets.items():
            print(f"{name}: metadata sha256 {metadata_sha256(root)}")
    print(f"wrote {FINGERPRINT}")
