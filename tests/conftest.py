"""Shared fixtures: real FMA material from tests/data (see tests/data/ATTRIBUTION.csv), a small
synthetic demo set (`demo`, built once per session) for the training tests, and a 3-epoch CNN1D run on it
(`run_a`), the uninterrupted reference of the same-seed, resume and fault-injection tests."""
import csv
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
REAL_CLIPS = sorted((DATA / "fma_small").glob("*/*.mp3"))
STEREO_44K = DATA / "fma_small" / "000" / "000002.mp3"
MONO_44K = DATA / "extra_audio" / "000666.mp3"
STEREO_48K = DATA / "extra_audio" / "001642.mp3"


def run_main(*args, cwd=ROOT, timeout=300):
    """Run `python main.py ARGS` in a subprocess; return the CompletedProcess (text)."""
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def start_together(procs, go: Path, timeout: float) -> None:
    """Wait until each process in `procs` has said it is ready (a file GO.*.ready beside `go`), then create
    `go` to release them all at once."""
    deadline = time.time() + timeout
    while len(list(go.parent.glob(f"{go.name}.*.ready"))) < len(procs):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "builders did not start"
        time.sleep(0.001)
    go.touch()


def write_mp3(path: Path, seconds: float, sr: int = 44100, seed: int = 0):
    import soundfile as sf
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(len(t))
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.stack([x, x], 1).astype(np.float32), sr, format="MP3", subtype="MPEG_LAYER_III")


@pytest.fixture
def small_tree(tmp_path):
    """The real metadata excerpt + the 6 real fma_small clips, in FMA's layout."""
    root = tmp_path / "fma"
    shutil.copytree(DATA / "fma_metadata", root / "fma_metadata")
    shutil.copytree(DATA / "fma_small", root / "fma_small")
    return root


TINY_SPLITS = {5: "validation", 141: "test", 148: "test"}  # 3 training classes, 1 validation and 1 test track


def tiny_tree(root: Path, splits: dict = TINY_SPLITS) -> Path:
    """The real metadata excerpt and the 6 real fma_small clips in FMA's layout, with the official split of some
    tracks replaced (`splits`: track id -> split): by default Hip-Hop, Pop and Folk tracks to train on, a Hip-Hop
    validation track and a Folk test track (and an Experimental one, a genre no training track has)."""
    shutil.copytree(DATA / "fma_metadata", root / "fma_metadata")
    shutil.copytree(DATA / "fma_small", root / "fma_small")
    path = root / "fma_metadata" / "tracks.csv"
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    column = next(i for i, (a, b) in enumerate(zip(rows[0], rows[1])) if (a, b) == ("set", "split"))
    for row in rows[3:]:
        if int(row[0]) in splits:
            row[column] = splits[int(row[0])]
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def make_large_tree(root: Path) -> Path:
    """Every one of the 30 tracks of the real excerpt (subset large) with audio in ROOT/fma_large/.

    The 6 fma_small tracks have their real clips; the other 24 get copies of real clips, since the
    excerpt ships no audio for them. Tests damage some of them.
    """
    from collection import audio_path, load_tracks
    shutil.copytree(DATA / "fma_metadata", root / "fma_metadata")
    tracks = load_tracks(root / "fma_metadata" / "tracks.csv")
    real = {int(p.stem): p for p in REAL_CLIPS}
    for i, tid in enumerate(tracks.index):
        dst = audio_path(root / "fma_large", tid)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(real.get(tid, REAL_CLIPS[i % len(REAL_CLIPS)]), dst)  # copies: tests damage them
    return root


@pytest.fixture
def large_tree(tmp_path):
    return make_large_tree(tmp_path / "fma")


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """A small synthetic demo set (20 tracks per genre, 4 s clips) and its cache directory."""
    root = tmp_path_factory.mktemp("demo")
    subprocess.run([sys.executable, str(ROOT / "demo_data.py"), "--out", str(root / "data"),
                    "--tracks-per-genre", "20", "--seconds", "4", "--workers", "2"],
                   check=True, capture_output=True, cwd=ROOT)
    r = run_main("--data-dir", root / "data", "--cache-dir", root / "cache", "--prepare-only")
    assert r.returncode == 0, r.stderr
    return root


TIMING = ("seconds", "clips_per_s")
NO_AUG = ["--no-augment", "--eq-db", 0, "--contrast", 0]  # the recipe the learning tests were calibrated on


def demo_args(demo, out, *extra):
    return ["--data-dir", demo / "data", "--cache-dir", demo / "cache", "--out", out, "--model", "cnn1d",
            "--batch-size", 8, "--crop-seconds", 2, "--eval-crops", 3, "--scheduler", "plateau", "--lr", 3e-3,
            *NO_AUG, *extra]


def metrics(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def results(run_dir):
    data = json.loads((run_dir / "results.json").read_text())
    return {k: v for k, v in data.items() if k not in ("train_seconds", "machine")}


@pytest.fixture(scope="session")
def run_a(demo, tmp_path_factory):
    """Three epochs of CNN1D on the demo set, W&B offline."""
    out = tmp_path_factory.mktemp("runs") / "a"
    r = run_main(*demo_args(demo, out, "--epochs", 3, "--wandb", "offline"))
    assert r.returncode == 0, r.stdout + r.stderr
    return out


def assert_same_run(out, straight):
    """The run in `out` (resumed, perhaps several times) reached the metrics of the uninterrupted run
    `straight`: every epoch row up to float rounding (restored optimizer state tensors may take other
    vectorised code paths than the ones that were never saved), and the same test accuracy."""
    for resumed, ref in zip(metrics(out), metrics(straight), strict=True):
        assert resumed.keys() == ref.keys()
        for k in resumed:
            assert float(resumed[k]) == pytest.approx(float(ref[k]), rel=1e-5, abs=1e-7), (resumed["epoch"], k)
    assert results(out)["test"]["accuracy"] == results(straight)["test"]["accuracy"]
