"""Shared fixtures: real FMA material from tests/data (see tests/data/ATTRIBUTION.csv), and a small
synthetic demo set (`demo`, built once per session) for the training tests."""
import shutil
import subprocess
import sys
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


def make_large_tree(root: Path) -> Path:
    """Every one of the 30 tracks of the real excerpt (subset large) with audio in ROOT/fma_large/.

    The 6 fma_small tracks have their real clips; the other 24 get copies of real clips, since the
    excerpt ships no audio for them. Tests damage some of them.
    """
    from utils import audio_path, load_tracks
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
