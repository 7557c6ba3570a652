"""Mutation fuzz of audio decoding (utils.load_audio) through its two batch users.

About 200 damaged files are derived, deterministically (seeded), from the real FMA clips of
tests/data and from wav/flac/ogg copies of one decoded clip: cut at random offsets, random bytes
flipped (anywhere, or inside the header), the header alone, random bytes under an audio name (bare,
or behind a format's magic bytes), zero-length files, headers that declare 10 hours over a few
seconds of real data, and the undamaged sources as controls. They go once through
`utils.prepare_cache` (placed at the track paths of an FMA tree whose tracks.csv copies the real
excerpt's rows) and once through `pre_trained_models.py` (a folder of them, a random-weight CNN1D
checkpoint). Each file must end ok or failed with one of load_audio's reasons, in bounded time and
memory, with no traceback; both tools must agree on which files failed.
"""
import io
import json
import os
import shutil
import struct
import sys
import tracemalloc
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch

from config import AudioConfig
from conftest import DATA, REAL_CLIPS, ROOT, STEREO_44K, MONO_44K, STEREO_48K
from models import ModelConfig, build_model
from models_utils import save_checkpoint
from audio import MAX_DECODE_SECONDS, AudioError, _soundfile_source, join_blocks, load_audio
from collection import audio_path
from measure import run_command

pytestmark = pytest.mark.slow  # minutes of work: pytest -m "not slow" leaves it out

SEED = 1234
SOURCE_MP3S = REAL_CLIPS + [MONO_44K, STEREO_48K]   # the 8 real clips
EXCERPT_SECONDS = 12        # the wav/flac/ogg sources: this much of a decoded real clip
# mutants per source file
CUTS, FLIPS, HEADER_ONLY = 6, 4, 2
HEADER_FLIP_REGIONS = (64, 64, 1024, 1024)  # one mutant per entry: bytes flipped within the first N bytes
MAX_FLIPS = 64              # a flip mutant changes 1..MAX_FLIPS bytes
RANDOM_SIZES = 3            # random-bytes files per extension
MAGIC = {".mp3": b"ID3\x04\x00\x00\x00\x00\x00\x00", ".wav": b"RIFF\x24\x00\x10\x00WAVEfmt ",
         ".flac": b"fLaC\x00\x00\x00\x22", ".ogg": b"OggS\x00\x02"}
LYING_HOURS = 10            # what the lying headers declare ...
LYING_DATA_SECONDS = 4      # ... over this much real audio
LYING_SR = 44100
LYING_RATE = 100            # the sample rate a damaged header declares (1 Hz would resample to 15 GB)

FILE_SECONDS = 10.0         # the longest one file may take to decode (a real 30 s clip takes ~0.1 s)
RUN_SECONDS = 150           # subprocess timeout of one batch
MAX_RSS = 1.5 * 2 ** 30     # peak resident memory of one batch, bytes
MAX_TRACED = 256 * 2 ** 20  # bytes a lying header may make load_audio allocate (10 h would be 12.7 GB)
WORKERS = 2
# the reasons load_audio gives (an unexpected exception caught by a caller's catch-all is a finding)
REASONS = ("empty file", "not decodable audio", "no audio decoded", "truncated", "too short",
           "NaN or inf", "sample rate", "too long")


# ------------------------------------------------------------------------------------------ corpus

OGG_SERIAL = 0x5A5A5546  # the stream serial number of the ogg source ("FUZZ")
OGG_CRC_POLY = 0x04C11DB7


def _ogg_crc(page: bytes) -> int:
    """Ogg's page checksum: CRC-32, polynomial OGG_CRC_POLY, MSB first, initial value 0, no final xor."""
    crc = 0
    for byte in page:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ OGG_CRC_POLY if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
    return crc


def fixed_ogg_serial(data: bytes) -> bytes:
    """libsndfile gives each Ogg stream a random serial number: set it to OGG_SERIAL on every page (and
    the page checksums), so that the ogg source, hence the whole corpus, is the same on every run."""
    out, pos = bytearray(data), 0
    while pos < len(out):
        assert out[pos:pos + 4] == b"OggS"
        segments = out[pos + 26]
        end = pos + 27 + segments + sum(out[pos + 27:pos + 27 + segments])
        out[pos + 14:pos + 18] = OGG_SERIAL.to_bytes(4, "little")
        out[pos + 22:pos + 26] = bytes(4)  # the checksum is computed with its own field zeroed
        out[pos + 22:pos + 26] = _ogg_crc(out[pos:end]).to_bytes(4, "little")
        pos = end
    return bytes(out)


def _wav_fmt(channels: int, sr: int, bits: int = 16) -> bytes:
    block = channels * bits // 8
    return b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sr, sr * block, block, bits)


def lying_headers(pcm: np.ndarray, mp3: bytes) -> dict:
    """Files whose header declares LYING_HOURS over LYING_DATA_SECONDS of real audio, and a WAV whose
    header says LYING_RATE Hz.

    `pcm`: int16 (samples, 2) at LYING_SR. A RIFF data size is 32-bit (at most 6.8 h of 44.1 kHz
    stereo 16-bit), so the 10-hour WAV is RF64 (the 64-bit sizes of its ds64 chunk); the RIFF one
    claims the largest 32-bit size. The MP3 is a real clip whose Xing/Info frame count says 10 h."""
    data = pcm[: LYING_DATA_SECONDS * LYING_SR].astype("<i2").tobytes()
    declared = LYING_HOURS * 3600 * LYING_SR * 4
    rf64 = (b"RF64" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE"
            + b"ds64" + struct.pack("<IQQQI", 28, declared + 72, declared, declared // 4, 0)
            + _wav_fmt(2, LYING_SR) + b"data" + struct.pack("<I", 0xFFFFFFFF) + data)
    riff = (b"RIFF" + struct.pack("<I", 0xFFFFFFFF) + b"WAVE" + _wav_fmt(2, LYING_SR)
            + b"data" + struct.pack("<I", 0xFFFFFFFE) + data)
    info = mp3.find(b"Info") + 8  # the Xing/Info tag: flags (4 bytes), then the frame count
    assert info > 8 and mp3[info - 1] & 1, "the source MP3 has no Info frame count"
    lying_mp3 = mp3[:info] + struct.pack(">I", LYING_HOURS * 3600 * LYING_SR // 1152) + mp3[info + 4:]
    rate = (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVE" + _wav_fmt(2, LYING_RATE)
            + b"data" + struct.pack("<I", len(data)) + data)
    return {"lying-rf64.wav": rf64, "lying-riff.wav": riff, "lying-info.mp3": lying_mp3, "lying-rate.wav": rate}


def mutants(name: str, data: bytes, rng: np.random.Generator) -> dict:
    """Damaged versions of one file: cut, flipped anywhere, flipped in the header, header only."""
    stem, ext = os.path.splitext(name)
    out = {}
    for i in range(CUTS):
        out[f"{stem}-cut{i}{ext}"] = data[: int(rng.integers(1, len(data)))]
    regions = [len(data)] * FLIPS + list(HEADER_FLIP_REGIONS)
    for i, region in enumerate(regions):
        buf = np.frombuffer(data, dtype=np.uint8).copy()
        at = rng.integers(0, min(region, len(data)), int(rng.integers(1, MAX_FLIPS + 1)))
        buf[at] ^= rng.integers(1, 256, len(at), dtype=np.uint8)
        kind = "flip" if region == len(data) else f"head{region}flip"
        out[f"{stem}-{kind}{i}{ext}"] = buf.tobytes()
    for i, top in enumerate((64, 4096)[:HEADER_ONLY]):
        out[f"{stem}-header{i}{ext}"] = data[: int(rng.integers(1, top))]
    return out


def make_corpus(d: Path) -> dict:
    """name -> bytes of every fuzz file (about 200), the same for every run (SEED)."""
    rng = np.random.default_rng(SEED)
    stereo = load_audio(STEREO_44K, LYING_SR)[: EXCERPT_SECONDS * LYING_SR]
    pcm = np.round(np.stack([stereo, stereo[::-1]], 1) * 32767).astype(np.int16)
    sources = {f"real{p.stem}.mp3": p.read_bytes() for p in SOURCE_MP3S}
    for ext, kw in ((".wav", {"subtype": "PCM_16"}), (".flac", {}), (".ogg", {"subtype": "VORBIS"})):
        path = d / f"excerpt{ext}"
        sf.write(path, pcm, LYING_SR, **kw)
        sources[path.name] = fixed_ogg_serial(path.read_bytes()) if ext == ".ogg" else path.read_bytes()
    corpus = dict(sources)  # the undamaged sources are the controls
    for name, data in sources.items():
        corpus.update(mutants(name, data, rng))
    for ext, magic in MAGIC.items():
        for i in range(RANDOM_SIZES):
            corpus[f"random{i}{ext}"] = rng.bytes(int(rng.integers(1, 100_000)))
        corpus[f"magic{ext}"] = magic + rng.bytes(int(rng.integers(1, 100_000)))
        corpus[f"zero{ext}"] = b""
    corpus.update(lying_headers(pcm, sources[f"real{STEREO_44K.stem}.mp3"]))
    return corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """files/NAME (the folder predicted) and the same files at the track paths of an FMA tree, tree/
    (subset small; tracks.csv: the real excerpt's rows, repeated, with new track ids 1..N)."""
    d = tmp_path_factory.mktemp("fuzz")
    files = d / "files"
    files.mkdir()
    names = sorted(make_corpus(d).items())
    for name, data in names:
        (files / name).write_bytes(data)
    tree = d / "tree"
    (tree / "fma_metadata").mkdir(parents=True)
    shutil.copyfile(DATA / "fma_metadata" / "genres.csv", tree / "fma_metadata" / "genres.csv")
    real = pd.read_csv(DATA / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])
    rows = real.iloc[np.arange(len(names)) % len(real)].copy()
    rows.index = pd.Index(np.arange(1, len(names) + 1), name="track_id")
    rows[("set", "subset")] = "small"
    rows.to_csv(tree / "fma_metadata" / "tracks.csv")
    by_track = {}
    for tid, (name, _) in zip(rows.index, names):
        dst = audio_path(tree / "fma_small", tid)
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.link(files / name, dst)
        by_track[int(tid)] = name
    return {"files": files, "tree": tree, "names": [n for n, _ in names], "by_track": by_track}


# ------------------------------------------------------------------------------------------ running

def run_bounded(cmd: list, timeout: float) -> tuple[int, str, str, int]:
    """(exit status, stdout, stderr, peak RSS in bytes) of one child process, killed after `timeout`;
    the peak is the child's own (measure.run_command)."""
    done, used = run_command(cmd, timeout, cwd=ROOT)
    return done.returncode, done.stdout, done.stderr, int(used["rss_mb"] * 2 ** 20)


# prepare_cache in a child process, timing each load_audio call (the decode is where a file could hang)
PREPARE = """
import json, sys, time
import cache
elapsed, load = {}, cache.load_audio
def timed(path, *args, **kw):
    t = time.perf_counter()
    try:
        return load(path, *args, **kw)
    finally:
        elapsed[str(path)] = time.perf_counter() - t
cache.load_audio = timed
built = cache.prepare_cache(sys.argv[1], "small", cache_dir=sys.argv[2], workers=int(sys.argv[3]), progress=False)
print(json.dumps({"index": built.path.joinpath("index.csv").as_posix(), "elapsed": elapsed}))
"""


@pytest.fixture(scope="module")
def cache_run(corpus, tmp_path_factory):
    """One prepare_cache over the tree in a child process (bounded by RUN_SECONDS): index.csv, the
    seconds each load_audio call took, stderr and peak RSS."""
    rc, out, err, rss = run_bounded([sys.executable, "-c", PREPARE, str(corpus["tree"]),
                                     str(tmp_path_factory.mktemp("cache")), str(WORKERS)], RUN_SECONDS)
    assert rc == 0, err[-3000:]
    result = json.loads(out.strip().splitlines()[-1])
    index = pd.read_csv(result["index"], keep_default_na=False)
    return {"index": index, "elapsed": result["elapsed"], "stderr": err, "rss": rss}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A CNN1D with random weights, saved with the keys predictor.Predictor reads."""
    audio = AudioConfig()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn1d", n_classes=8, n_mels=audio.n_mels)).eval()
    state = {"model": model.state_dict(), "model_config": asdict(model.config), "audio": asdict(audio),
             "classes": [f"genre{i}" for i in range(8)], "mean": torch.full((audio.n_mels,), -40.0),
             "std": torch.full((audio.n_mels,), 20.0), "crop_frames": audio.frames_for(3.0), "eval_crops": 2}
    path = tmp_path_factory.mktemp("ckpt") / "random_cnn1d.pt"
    save_checkpoint(path, state)
    return path


@pytest.fixture(scope="module")
def predict_run(corpus, checkpoint):
    """One pre_trained_models.py over the folder (bounded by RUN_SECONDS), its csv rows parsed."""
    rc, out, err, rss = run_bounded([sys.executable, str(ROOT / "pre_trained_models.py"), "--checkpoint",
                                     str(checkpoint), "--format", "csv", "--workers", str(WORKERS),
                                     "--device", "cpu", str(corpus["files"])], RUN_SECONDS)
    rows = pd.read_csv(io.StringIO(out), keep_default_na=False) if out.strip() else pd.DataFrame()
    return {"rc": rc, "rows": rows, "stderr": err, "rss": rss}


def reason_kind(reason: str) -> str:
    """Which of load_audio's reasons a failure gives ('' when none: an unexpected exception)."""
    return next((r for r in REASONS if r in reason), "")


# ------------------------------------------------------------------------------------------ tests

def test_corpus_is_large_and_deterministic(corpus, tmp_path):
    assert len(corpus["names"]) >= 200
    again = make_corpus(tmp_path)
    assert sorted(again) == corpus["names"]
    assert all((corpus["files"] / n).read_bytes() == b for n, b in again.items())


def test_prepare_cache_gives_every_fuzzed_file_a_status(corpus, cache_run):
    index, by_track = cache_run["index"], corpus["by_track"]
    assert "Traceback" not in cache_run["stderr"]
    assert len(index) == len(by_track) and set(index["status"]) <= {"ok", "failed"}
    failed = index[index["status"] == "failed"]
    unexplained = {by_track[t]: r for t, r in zip(failed["track_id"], failed["reason"]) if not reason_kind(r)}
    assert not unexplained, unexplained
    ok = index[index["status"] == "ok"]
    assert (ok["frames"] > 0).all() and (ok["reason"] == "").all()
    status = dict(zip(index["track_id"].map(by_track), index["status"]))
    controls = [n for n in status if n.startswith(("real", "excerpt")) and "-" not in n]
    assert controls and all(status[n] == "ok" for n in controls)
    assert all(status[n] == "failed" for n in status if n.startswith(("zero", "random")))


def test_prepare_cache_fuzz_is_bounded_in_time_and_memory(corpus, cache_run):
    slow = {Path(p).name: round(s, 2) for p, s in cache_run["elapsed"].items() if s > FILE_SECONDS}
    assert len(cache_run["elapsed"]) == len(corpus["names"]) and not slow, slow
    assert cache_run["rss"] < MAX_RSS, f"peak RSS {cache_run['rss'] / 2 ** 20:.0f} MiB"


def test_lying_headers_fail_with_their_reason(corpus, cache_run):
    """A 10-hour header over 4 s is a truncated file (libsndfile silently reads an RF64 WAV's 4 s as all
    there is); the largest RIFF size is what streaming writers put in a header whose length they do
    not know, so its 4 s are ok; a header rate of 100 Hz is refused before resampling."""
    index = cache_run["index"]
    reasons = dict(zip(index["track_id"].map(corpus["by_track"]), index["reason"]))
    for name in ("lying-rf64.wav", "lying-info.mp3"):
        assert f"of the {LYING_HOURS * 3600:.1f} s its header declares" in reasons[name], reasons[name]
        assert reason_kind(reasons[name]) == "truncated"
    assert reasons["lying-riff.wav"] == ""
    assert f"implausible sample rate {LYING_RATE} Hz" in reasons["lying-rate.wav"]


def test_lying_headers_allocate_only_what_the_file_holds(corpus):
    """The 10-hour headers must not make the decoder allocate 10 hours (12.7 GB of float32 stereo):
    libsndfile reads an MP3's Xing frame count as its length, and soundfile allocates that much.
    tracemalloc sees NumPy's allocations even where the pages are never touched (RSS would not)."""
    for name in ("lying-rf64.wav", "lying-riff.wav", "lying-info.mp3", "lying-rate.wav"):
        tracemalloc.start()
        try:
            load_audio(corpus["files"] / name, 22050, 3.0)
        except AudioError:
            pass
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert peak < MAX_TRACED, f"{name}: {peak / 2 ** 20:.0f} MiB allocated"


def test_predict_reports_every_fuzzed_file(corpus, predict_run):
    rows, err = predict_run["rows"], predict_run["stderr"]
    assert "Traceback" not in err
    assert predict_run["rc"] == 1, err[-3000:]
    assert sorted(Path(p).name for p in rows["path"]) == corpus["names"]
    failed = rows[rows["status"] != "ok"]
    error_lines = [ln for ln in err.splitlines() if ln.startswith("error: ")]
    assert sorted(error_lines) == sorted(f"error: {e}" for e in failed["error"])
    assert all(e.startswith(f"{p}: ") and reason_kind(e) for p, e in zip(failed["path"], failed["error"]))
    assert f"predicted {len(rows) - len(failed)} of {len(rows)} files; {len(failed)} failed" in err
    assert predict_run["rss"] < MAX_RSS, f"peak RSS {predict_run['rss'] / 2 ** 20:.0f} MiB"


def test_predict_and_cache_agree_on_failures(corpus, cache_run, predict_run):
    """Both go through load_audio: the same files fail, for the same reason, but for length: the cache refuses
    audio under --min-seconds (3 s), prediction only under predictor.MIN_SECONDS (0.5 s; it pads the rest)."""
    index, rows = cache_run["index"], predict_run["rows"]
    cache_kind = {corpus["by_track"][t]: reason_kind(r) for t, r in zip(index["track_id"], index["reason"])}
    predict_kind = {Path(p).name: reason_kind(e) for p, e in zip(rows["path"], rows["error"])}
    short = {n for n, kind in cache_kind.items() if kind == "too short"}
    assert {n: k for n, k in cache_kind.items() if n not in short} == \
           {n: k for n, k in predict_kind.items() if n not in short}
    assert {predict_kind[n] for n in short} <= {"too short", ""}


def _one_read(path: Path):
    """What soundfile's single whole-file read gives, mixed to mono (None when libsndfile refuses)."""
    try:
        with sf.SoundFile(path) as f:
            return f.read(dtype="float32", always_2d=True).mean(axis=1)
    except sf.LibsndfileError:
        return None


def _block_read(path: Path):
    try:
        source = _soundfile_source(path, MAX_DECODE_SECONDS)
        next(source)  # (sample rate, frames the header declares)
        return join_blocks(source)
    except AudioError:
        return None


def test_block_decoding_matches_one_read(corpus):
    """load_audio decodes in blocks, mixes each to mono and stops at the first short read: the real clips
    and every damaged wav/flac/ogg file give exactly what one whole-file read gives (the MP3s of the
    corpus are left out for time: their damage is in the same decoder as the real clips')."""
    paths = SOURCE_MP3S + [corpus["files"] / n for n in corpus["names"] if n.startswith("excerpt")]
    for path in paths:
        one, blocks = _one_read(path), _block_read(path)
        assert (one is None) == (blocks is None) and (one is None or np.array_equal(one, blocks)), path.name


def test_max_seconds_stops_decoding():
    with pytest.raises(AudioError, match=r"000002.mp3: too long \(more than 10 s of audio"):
        load_audio(STEREO_44K, 22050, max_seconds=10)
    assert len(load_audio(STEREO_44K, 22050, max_seconds=31)) > 29 * 22050
