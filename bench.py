"""Benchmarks: feature extraction, training throughput, inference latency and memory, in one run.

    python bench.py --quick                  # a few minutes on 2 cores; prints the tables, updates BENCHMARKS.md
    python bench.py                          # more tracks and longer timing windows
    python bench.py --device cpu --output '' # CPU rows only, print without writing BENCHMARKS.md
    python bench.py --help                   # every option and its default

Everything is measured in this one run, on synthetic demo MP3s it generates itself (kept in --work-dir) and on
the real clips of tests/data, each beside its baseline: feature extraction (ours, an original-style pipeline,
the decode floor), training throughput of every model through the real data path, inference latency,
prediction over a folder of 20 real clips, memory over an fma_large-sized cache, the cache check, end to end,
and torchrun. Each row runs in a process of its own and reports its wall, user and sys seconds and peak RSS.
What each row measures: docs/speed.md. bench_report.py writes the tables into BENCHMARKS.md between its
markers and keeps the text around them.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import argparse
import concurrent.futures as cf
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from allocator import tune_malloc
from bench_report import E2E_PRESET, FMA_SMALL_EPOCH, NOT_MEASURED, report, update_report
from measure import children_peak_rss_mb, failed, in_fresh_process, peak_rss_mb, run_command

ROOT = Path(__file__).resolve().parent
FMA_LARGE_SPLITS = {"training": 84353, "validation": 10958, "test": 11263}  # official, 106,574 clips
FMA_LARGE_MAX_ID = 155320        # highest track id of fma_large: its clips fill folders 000/ to 155/
MALLOC_BASELINES = ("crnn", "musicnn")  # models whose CPU training is also measured on the other allocators
ALLOCATOR_NAMES = {"tcmalloc": "tcmalloc", "mallopt": "glibc malloc, allocator.py's thresholds",
                   "default": "glibc malloc defaults"}  # allocator.tune_malloc's answer -> a training row's setup


# ------------------------------------------------------------------------------------------ helpers

def demo_set(work_dir: Path, tracks_per_genre: int | None = None, seconds: float | None = None) -> Path:
    """The demo MP3s (8 genres), generated once per (size, length) and reused: that size without broken
    clips, or with no size demo_data.py's defaults (the set of make run, broken clips included)."""
    sized = tracks_per_genre is not None
    out = work_dir / (f"demo-{tracks_per_genre}x{seconds:g}s" if sized else "demo-default")
    options = ["--tracks-per-genre", str(tracks_per_genre), "--seconds", str(seconds), "--no-broken"] if sized else []
    subprocess.run([sys.executable, str(ROOT / "demo_data.py"), "--out", str(out), *options],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out


def switch(value: str, auto: bool) -> bool:
    """An on/off/auto option's value, `auto` standing for what auto means here."""
    return {"on": True, "off": False, "auto": auto}[value]


def demo_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "fma_small").glob("*/*.mp3"))


# ------------------------------------------------------------------------------- feature extraction

def extract_ours(data_dir: Path, cache_dir: Path, workers: int) -> dict:
    """cache.prepare_cache from scratch (metadata, decode, log-mel, float16 rows, index)."""
    from config import AudioConfig
    from audio import clip_from_wave, load_audio
    from cache import prepare_cache
    audio = AudioConfig()
    clip_from_wave(load_audio(demo_files(data_dir)[0], audio.sample_rate), audio)  # warm-up
    start = time.perf_counter()
    cache = prepare_cache(data_dir, "small", audio, cache_dir=cache_dir, workers=workers, progress=False,
                          log=lambda _: None)
    seconds = time.perf_counter() - start
    return {"tracks": len(cache.ok), "seconds": seconds}


def extract_original(files: list[Path], out_dir: Path) -> dict:
    """The seed project's way: sequential librosa.load (default 22,050 Hz, mono, soxr_hq) +
    melspectrogram (n_fft 2048, hop 512, 128 mels) + power_to_db, one pickle per track."""
    import pickle
    import librosa
    out_dir.mkdir(parents=True, exist_ok=True)

    def one(path: Path):
        y, sr = librosa.load(path)
        spec = librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=sr))
        with open(out_dir / f"{path.stem}.pkl", "wb") as f:
            pickle.dump(spec, f)

    one(files[0])  # warm-up
    start = time.perf_counter()
    for path in files:
        one(path)
    return {"tracks": len(files), "seconds": time.perf_counter() - start}


def decode_only(path: Path, sample_rate: int = 22050) -> int:
    """The floor: decode (libsndfile), mix to mono, resample (soxr); nothing else."""
    import soundfile as sf
    import soxr
    data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return len(soxr.resample(data.mean(axis=1), sr, sample_rate))


def extract_floor(files: list[Path], workers: int) -> dict:
    decode_only(files[0])  # warm-up
    start = time.perf_counter()
    with cf.ThreadPoolExecutor(workers) as pool:
        list(pool.map(decode_only, files))
    return {"tracks": len(files), "seconds": time.perf_counter() - start}


# ----------------------------------------------------------------------------------------- training

@dataclass
class TrainSpec:
    model: str
    device: str                  # "cpu" or "cuda"
    crop_seconds: float          # 0 = whole 30 s clips
    batch_size: int
    warmup_steps: int
    window_seconds: float        # timed window, at least min_steps
    min_steps: int
    loader_workers: int
    amp: bool
    channels_last: bool
    compile: bool
    malloc: str = "auto"         # allocator.MODES: auto (the entry scripts'); mallopt or glibc (the baselines)


def train_window(cache_dir: str, spec: TrainSpec, rows_needed: int | None = FMA_SMALL_EPOCH) -> dict:
    """Clips/s of `spec.model` training over the cache in `cache_dir` (a timed window after warm-up)."""
    import pandas as pd
    import torch
    from cache import FeatureCache
    from config import AudioConfig, RunConfig
    from loss import Loss
    from models import ModelConfig, build_model
    from models_utils import accelerate, seed_everything
    from train import train_one_epoch
    from utils import band_stats, make_loader, split_rows
    seed_everything(0)
    path = Path(cache_dir)
    cache = FeatureCache(path, AudioConfig(), pd.read_csv(path / "index.csv", keep_default_na=False))
    classes, splits = split_rows(cache)
    rows, targets = splits["training"]
    if rows_needed:  # a small cache is repeated up to an fma_small-sized epoch
        reps = -(-rows_needed // len(rows))
        rows, targets = np.tile(rows, reps)[:rows_needed], np.tile(targets, reps)[:rows_needed]
    mean, std = band_stats(cache, rows)
    device = torch.device(spec.device)
    crop_frames = cache.audio.frames_for(spec.crop_seconds) if spec.crop_seconds else None
    run = RunConfig(batch_size=spec.batch_size, loader_workers=spec.loader_workers)
    loader = make_loader(cache, rows, targets, mean, std, run, device, crop_frames, train=True, persistent=True)
    model = build_model(ModelConfig(name=spec.model, n_classes=len(classes))).to(device)
    accelerate(model, device, channels_last=spec.channels_last, compile=spec.compile)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    scaler = torch.amp.GradScaler("cuda") if spec.amp and spec.device == "cuda" else None
    kw = dict(loss=Loss(), amp=spec.amp, scaler=scaler)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    train_one_epoch(model, loader, optimizer, device, max_steps=spec.warmup_steps, **kw)
    sync()
    step = time.perf_counter()  # one more step, to size the timed window
    train_one_epoch(model, loader, optimizer, device, max_steps=1, **kw)
    sync()
    step = time.perf_counter() - step
    steps = int(min(max(spec.min_steps, spec.window_seconds / max(step, 1e-6)), len(loader) - 1))
    start = time.perf_counter()
    timed = train_one_epoch(model, loader, optimizer, device, max_steps=steps, **kw)
    sync()
    seconds = time.perf_counter() - start
    start = time.perf_counter()  # the data path alone, same number of batches
    for i, (x, y) in enumerate(loader):
        if i >= steps:
            break
        x.to(device, non_blocking=True), y.to(device, non_blocking=True)
    sync()
    load_seconds = time.perf_counter() - start
    return {"clips": timed["clips"], "seconds": seconds, "clips_per_s": timed["clips"] / seconds,
            "load_clips_per_s": timed["clips"] / load_seconds, "steps": steps,
            "rss_mb": peak_rss_mb(), "children_rss_mb": children_peak_rss_mb()}


def train_row(cache_dir, spec: TrainSpec, **kwargs) -> dict:
    """train_window in a fresh process on the spec's allocator (spec.malloc), measured (measure.in_fresh_process)."""
    return in_fresh_process(train_window, str(cache_dir), spec, malloc=spec.malloc, **kwargs)


# ---------------------------------------------------------------------------------------- inference

def inference(model: str, files: list[Path], device: str, workers: int, latency_songs: int) -> dict:
    """ms per song (one at a time, model already loaded) and songs/s over all files (parallel decoding).

    `model` is a model name (random weights in the repository's default checkpoint shape: 22,050 Hz,
    128 mels, 8 crops of 3 s per clip) or the path of a checkpoint (e.g. the shipped
    pretrained/musicnn_msd.pt, with its own audio parameters and windows)."""
    import torch
    from config import AudioConfig
    from models import ModelConfig, build_model
    from models_utils import load_checkpoint
    from predictor import Predictor, Song, decode_all
    from dataclasses import asdict
    if model.endswith(".pt"):
        state = load_checkpoint(ROOT / model)
    else:
        audio = AudioConfig()
        net = build_model(ModelConfig(name=model, n_classes=8))
        state = {"model": net.state_dict(), "model_config": asdict(net.config), "audio": asdict(audio),
                 "classes": [f"genre{i}" for i in range(8)], "mean": torch.full((audio.n_mels,), -40.0),
                 "std": torch.full((audio.n_mels,), 20.0), "crop_frames": audio.frames_for(3.0), "eval_crops": 8}
    predictor = Predictor(state, torch.device(device))

    def one(path) -> float:
        start = time.perf_counter()
        song = next(predictor.predict([predictor.load(Song(str(path)))]))
        assert song.ok, song.error
        return time.perf_counter() - start

    one(files[0])  # warm-up
    latencies = [one(p) for p in files[:latency_songs]]
    start = time.perf_counter()
    done = sum(s.ok for s in predictor.predict(decode_all(predictor, [Song(str(p)) for p in files], workers)))
    return {"ms_per_song": 1000 * float(np.median(latencies)), "songs_per_s": done / (time.perf_counter() - start)}


PREDICT_SONGS = 20  # real clips (tests/data's, repeated) of the prediction row
PREDICT_CHECKPOINT = "pretrained/musicnn_msd.pt"


def predict_folder(scratch: Path, songs: int = PREDICT_SONGS, repeats: int = 1) -> dict:
    """`pre_trained_models.py --checkpoint PREDICT_CHECKPOINT FOLDER` on 1 and on `songs` real clips (tests/data's,
    repeated), `repeats` times in turn: each command's usage, and for each repeat the seconds per song after
    start-up (the walls' difference / (songs - 1)); `s_per_song` is their median."""
    clips = sorted((ROOT / "tests" / "data").glob("**/*.mp3"))
    rows = []
    for n in (1, songs):
        folder = scratch / f"predict-{n}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            shutil.copyfile(clips[i % len(clips)], folder / f"{i:02d}-{clips[i % len(clips)].name}")
    for _ in range(repeats):
        for n in (1, songs):
            done, used = run_command([sys.executable, str(ROOT / "pre_trained_models.py"), "--checkpoint",
                                      str(ROOT / PREDICT_CHECKPOINT), str(scratch / f"predict-{n}")])
            if done.returncode:
                return {"checkpoint": PREDICT_CHECKPOINT, "rows": rows, "note": failed(done), "usage": used}
            rows.append({"songs": n, "usage": used})
        rows[-1]["s_per_song"] = (rows[-1]["usage"]["wall_s"] - rows[-2]["usage"]["wall_s"]) / (songs - 1)
    per_song = float(np.median([row["s_per_song"] for row in rows if "s_per_song" in row]))
    return {"checkpoint": PREDICT_CHECKPOINT, "rows": rows, "s_per_song": per_song}


# ------------------------------------------------------------------------------------------- memory

def write_large_cache(path: Path, n_tracks: int, audio) -> Path:
    """An fma_large-sized cache: sparse float16 features.npy (no audio, all zeros) + index.csv."""
    path.mkdir(parents=True, exist_ok=True)
    shape = (n_tracks, audio.n_mels, audio.clip_frames)
    np.lib.format.open_memmap(path / "features.npy", mode="w+", dtype=np.float16, shape=shape)._mmap.close()
    used = os.stat(path / "features.npy").st_blocks * 512
    if used > 64 * 2**20:
        raise RuntimeError(f"{path}: the file system did not create a sparse file ({used / 2**20:.0f} MiB used)")
    large_index(np.arange(n_tracks) + 2, audio).to_csv(path / "index.csv", index=False)
    return path


def large_index(track_ids: np.ndarray, audio):
    """index.csv rows of an fma_large-like cache: official split proportions, the 16 top genres, all ok."""
    import pandas as pd
    n_tracks = len(track_ids)
    total = sum(FMA_LARGE_SPLITS.values())
    splits = np.repeat(list(FMA_LARGE_SPLITS), [round(n * n_tracks / total) for n in FMA_LARGE_SPLITS.values()])
    splits = np.resize(splits, n_tracks)
    genres = np.array(["Electronic", "Experimental", "Rock", "Hip-Hop", "Folk", "Instrumental", "Pop",
                       "International", "Classical", "Old-Time / Historic", "Jazz", "Country",
                       "Soul-RnB", "Spoken", "Blues", "Easy Listening"])
    return pd.DataFrame({"row": np.arange(n_tracks), "track_id": track_ids, "split": splits,
                         "label": genres[np.arange(n_tracks) % len(genres)], "status": "ok", "reason": "",
                         "frames": audio.clip_frames})


# -------------------------------------------------------------------------------------- cache check

def stat_check(tree: Path, n_files: int, repeats: int = 3) -> dict:
    """What reopening a finished cache adds: build each audio path, stat it, compare with index.csv's size and
    mtime_ns (the code prepare_cache runs: collection.audio_path, cache.file_stats and FileCheck). Timed on `n_files` empty
    files in FMA's layout (NNN/NNNNNN.mp3, ids spread like fma_large's) written under `tree`, against a
    matching index.csv, with the reading of that index.csv timed beside it. Median of `repeats`; the files'
    metadata is in the OS cache (just written), as on a machine that reads its data set often."""
    from config import AudioConfig
    from cache import FileCheck, file_stats
    from collection import audio_path
    import pandas as pd
    ids = np.unique(np.linspace(2, FMA_LARGE_MAX_ID, n_files).round().astype(np.int64))
    audio_dir, folders, stats = tree / "fma_large", set(), []
    for tid in ids:
        path = audio_path(audio_dir, tid)
        if path.parent not in folders:
            path.parent.mkdir(parents=True)
            folders.add(path.parent)
        path.touch()
        st = os.stat(path)
        stats.append((st.st_size, st.st_mtime_ns))
    size, mtime_ns = zip(*stats)
    large_index(ids, AudioConfig()).assign(size=size, mtime_ns=mtime_ns).to_csv(tree / "index.csv", index=False)
    times = {"index_s": [], "paths_s": [], "stat_s": []}
    for _ in range(repeats):
        t0 = time.perf_counter()
        index = pd.read_csv(tree / "index.csv", keep_default_na=False)
        t1 = time.perf_counter()
        paths = [audio_path(audio_dir, tid) for tid in index["track_id"]]
        t2 = time.perf_counter()
        changed = FileCheck(file_stats(paths), index).changed
        t3 = time.perf_counter()
        if changed.any():
            raise RuntimeError(f"{tree}: the check found {changed.sum()} changed files against a matching index")
        for key, seconds in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[key].append(seconds)
    return {"files": len(ids), **{key: float(np.median(v)) for key, v in times.items()}}


def cache_check(args, scratch: Path, say) -> dict:
    inodes = os.statvfs(scratch).f_favail
    if inodes < 2 * args.check_files:
        return {"note": f"skipped: {inodes:,} free inodes in {args.tmp_dir}, under 2 x {args.check_files:,}"}
    say(f"cache check: stat of {args.check_files:,} files in FMA's layout against index.csv")
    try:
        return stat_check(scratch / "check", args.check_files)
    finally:
        shutil.rmtree(scratch / "check", ignore_errors=True)


def free_disk_gb(path: Path) -> float:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize / 2**30


# --------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add = p.add_argument
    add("--quick", action="store_true", help="small sizes (the 'quick' defaults below): a few minutes on 2 cores")
    add("--device", choices=("auto", "cpu", "cuda"), default="auto", help="auto: GPU rows too when CUDA is there")
    add("--tracks-per-genre", type=int, default=None, help="demo MP3s per genre, 8 genres (default: 6 quick, 25)")
    add("--seconds", type=float, default=30.0, help="length of each demo MP3, in seconds")
    add("--workers", type=int, default=os.cpu_count() or 1, help="decoding threads (cache build, floor, inference)")
    add("--models", default="cnn1d,cnn2d,crnn,shortchunk_res,musicnn", help="comma-separated models to train and run")
    add("--checkpoints", default="pretrained/musicnn_msd.pt", help="shipped checkpoints whose inference is timed too")
    add("--batch-size", type=int, default=32, help="training batch, in clips (main.py's default)")
    add("--warmup-steps", type=int, default=1, help="untimed training steps before the window (+1 sizing step)")
    add("--window-seconds", type=float, default=None, help="timed training window per row (default: 3 quick, 20)")
    add("--min-steps", type=int, default=None, help="fewest timed training steps per row (default: 1 quick, 5)")
    add("--whole-clips", action=argparse.BooleanOptionalAction, default=None,
        help="also train on whole 30 s clips, besides 3 s crops (default: GPU rows, and CPU rows without --quick)")
    add("--loader-workers", type=int, default=None, help="DataLoader processes (default: 0 on CPU, 4 on CUDA)")
    add("--ddp-model", default="crnn", help="model of the torchrun rows (1 and 2 processes on CPU)")
    add("--ddp-epochs", type=int, default=4, help="epochs of each torchrun row (0 or 1: no torchrun rows)")
    add("--ddp-batch-size", type=int, default=8, help="clips per process and step in the torchrun rows")
    add("--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA")
    add("--channels-last", choices=("auto", "on", "off"), default="auto", help="NHWC layout (auto: on CUDA only)")
    add("--compile", choices=("auto", "on", "off"), default="auto",
        help="torch.compile the trained models (auto: CPU rows off, GPU rows off and on)")
    add("--end-to-end", choices=("auto", "on", "off"), default="auto",
        help=f"time python main.py --config {E2E_PRESET} on make run's demo set (auto: on CUDA only)")
    add("--latency-songs", type=int, default=None, help="songs timed one at a time (default: 8 quick, 32)")
    add("--large-tracks", type=int, default=sum(FMA_LARGE_SPLITS.values()), help="clips of the memory benchmark")
    add("--check-files", type=int, default=sum(FMA_LARGE_SPLITS.values()), help="files of the cache-check benchmark")
    add("--repeats", type=int, default=3,
        help="runs of the two goals nearest this machine's run-to-run spread, in turn: crnn on tcmalloc and on "
             "glibc's defaults, and the prediction row; their goals take the median")
    add("--memory-steps", type=int, default=None, help="training batches over the large cache (default: 10 quick, 100)")
    add("--work-dir", default=os.path.join(tempfile.gettempdir(), "fma-bench"), help="where the demo MP3s are kept")
    add("--tmp-dir", default=tempfile.gettempdir(), help="where the sparse fma_large-sized cache is written")
    add("--output", default="BENCHMARKS.md", help="Markdown file to rewrite between its markers ('' = print only)")
    return p


def resolve(args) -> argparse.Namespace:
    q = args.quick
    for name, quick, full in (("tracks_per_genre", 6, 25), ("window_seconds", 3.0, 20.0), ("min_steps", 1, 5),
                              ("latency_songs", 8, 32), ("memory_steps", 10, 100)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    if min(args.workers, args.tracks_per_genre, args.batch_size, args.repeats) < 1:
        print("error: --workers, --tracks-per-genre, --batch-size and --repeats must be >= 1", file=sys.stderr)
        raise SystemExit(2)
    return args


def train_specs(args, device_type: str, model: str) -> list[TrainSpec]:
    cuda = device_type == "cuda"
    compiles = [False, True] if cuda and args.compile == "auto" else [switch(args.compile, False)]
    whole = args.whole_clips if args.whole_clips is not None else (cuda or not args.quick)
    crops = [3.0] + ([0.0] if whole else [])
    workers = args.loader_workers if args.loader_workers is not None else (4 if cuda else 0)
    return [TrainSpec(model, device_type, c, args.batch_size, args.warmup_steps, args.window_seconds, args.min_steps,
                      workers, args.amp and cuda, switch(args.channels_last, cuda), comp) for c in crops for comp in compiles]


def allocator_pairs(cache: Path, args, say) -> list[dict]:
    """`--repeats` - 1 more pairs of crnn's CPU training row, on the entry scripts' allocator (auto) and on
    glibc's defaults, back to back: clips/s of each. A process's speed on a shared virtual machine drifts by
    10-20% from one to the next, so the allocator goal takes the median ratio over the training table's pair
    and these."""
    spec, pairs = train_specs(args, "cpu", "crnn")[0], []
    for i in range(args.repeats - 1):
        say(f"training: crnn on tcmalloc and on glibc's defaults again, pair {i + 2} of {args.repeats}")
        pairs.append({m: train_row(cache, replace(spec, malloc=m))["clips_per_s"] for m in ("auto", "glibc")})
    return pairs


def setup(spec: TrainSpec, allocator: str | None = None) -> str:
    """The device column of a training row: the device, what is switched on there and (once the row has run)
    the allocator that served it (tune_malloc's answer)."""
    on = [name for name, flag in (("AMP", spec.amp), ("channels_last", spec.channels_last),
                                  ("torch.compile", spec.compile)) if flag]
    return ", ".join([spec.device, *on] + ([ALLOCATOR_NAMES.get(allocator, allocator)] if allocator else []))


def run(args, command: str) -> dict:
    from models_utils import machine, pick_device
    device = pick_device(args.device)
    devices = ["cpu"] + (["cuda"] if device.type == "cuda" else [])
    models = [m for m in args.models.split(",") if m]
    started = time.perf_counter()
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results = {"machine": machine(device), "command": command}

    def say(msg):
        print(f"[{time.perf_counter() - started:6.1f} s] {msg}", flush=True)

    say(f"demo MP3s: 8 genres x {args.tracks_per_genre} x {args.seconds:g} s in {work}")
    data = demo_set(work, args.tracks_per_genre, args.seconds)
    files = demo_files(data)
    results["files"] = files
    scratch = Path(tempfile.mkdtemp(prefix="fma-bench-", dir=args.tmp_dir))
    try:
        say(f"feature extraction: {len(files)} tracks (original-style, decode floor, ours)")
        cache_dir = scratch / "cache"
        results["extract"] = {
            "original": in_fresh_process(extract_original, files, scratch / "pickles"),
            "floor": in_fresh_process(extract_floor, files, args.workers),
            "ours": in_fresh_process(extract_ours, data, cache_dir, args.workers)}
        cache = next(p for p in cache_dir.iterdir() if p.is_dir())  # not its .lock file
        results["check"] = cache_check(args, scratch, say)
        results["train"] = []
        for dev in devices:
            for model in models:
                specs = train_specs(args, dev, model)
                specs += [replace(s, malloc=m) for m in ("mallopt", "glibc") for s in specs  # the baselines
                          if dev == "cpu" and model in MALLOC_BASELINES and s.crop_seconds]
                for spec in specs:
                    say(f"training: {model} on {setup(spec)} (FMA_MALLOC={spec.malloc}), "
                        f"{'3 s crops' if spec.crop_seconds else 'whole clips'}")
                    row = train_row(cache, spec)
                    results["train"].append({"model": model, "device": dev, "setup": setup(spec, row["allocator"]),
                                             "crop_seconds": spec.crop_seconds, "malloc": spec.malloc, **row})
        if "crnn" in models:
            results["allocator_pairs"] = allocator_pairs(cache, args, say)
        if device.type != "cuda":
            results["train"] += [{"model": m, "device": "cuda", "setup": setup(s), "crop_seconds": s.crop_seconds,
                                  "note": NOT_MEASURED} for m in models for s in train_specs(args, "cuda", m)]
        results["infer"] = []
        for dev in devices:
            for model in models + [c for c in args.checkpoints.split(",") if c]:
                say(f"inference: {model} on {dev}")
                results["infer"].append({"model": model, "device": dev, **in_fresh_process(
                    inference, model, files, dev, args.workers, args.latency_songs)})
        if device.type != "cuda":
            results["infer"] += [{"model": m, "device": "cuda", "note": NOT_MEASURED} for m in models]
        say(f"prediction: {PREDICT_CHECKPOINT} on 1 and {PREDICT_SONGS} real clips, one process each, "
            f"{args.repeats} time(s)")
        results["predict"] = predict_folder(scratch, repeats=args.repeats)
        results["memory"] = memory(args, scratch, device, say)
        if switch(args.end_to_end, device.type == "cuda"):
            say(f"end to end: python main.py --config {E2E_PRESET} on the demo set of make run, {device.type}")
            results["e2e"] = [end_to_end(work, scratch, device.type)]
        else:
            results["e2e"] = [{"device": "cuda", "note": NOT_MEASURED}] if device.type != "cuda" else []
        results["ddp"] = []
        for n in (1, 2) if args.ddp_epochs > 1 else ():
            say(f"distributed training: {args.ddp_model} under torchrun, {n} process(es) on CPU")
            results["ddp"].append(ddp_throughput(data, cache_dir, scratch / f"ddp-{n}", n, args))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["wall_s"] = time.perf_counter() - started
    return results


def ddp_throughput(data: Path, cache_dir: Path, out: Path, processes: int, args) -> dict:
    """Training clips/s of `python main.py` under `torchrun --nproc_per_node PROCESSES` on CPU (gloo), the
    cores shared out between the processes (--threads); the median over the epochs after the first (whose
    clips/s of every rank together main.py records in metrics.csv)."""
    import csv
    cores = os.cpu_count() or 1
    threads = max(1, cores // processes)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(processes),
           str(Path(__file__).with_name("main.py")), "--data-dir", str(data), "--cache-dir", str(cache_dir),
           "--out", str(out), "--model", args.ddp_model, "--epochs", str(args.ddp_epochs), "--device", "cpu",
           "--batch-size", str(args.ddp_batch_size), "--threads", str(threads), "--wandb", "disabled",
           "--bootstrap", "0", "--eval-crops", "1", "--quiet"]
    done, used = run_command(cmd)
    if done.returncode:
        return {"processes": processes, "note": failed(done), "usage": used}
    with open(out / "metrics.csv") as f:
        rates = [float(row["clips_per_s"]) for row in csv.DictReader(f)][1:]
    return {"processes": processes, "threads": threads, "clips_per_s": float(np.median(rates)),
            "epochs": len(rates), "usage": used}


def end_to_end(work: Path, scratch: Path, device: str) -> dict:
    """Wall time of `python main.py --config E2E_PRESET` on the demo set of `make run` (demo_data.py's
    defaults, generated once into `work`), from its MP3s to results.json: cache build, training, test
    report. Its test accuracy and bootstrap interval come from results.json."""
    import json
    data = demo_set(work)
    out = scratch / "e2e"
    cmd = [sys.executable, str(ROOT / "main.py"), "--config", str(ROOT / E2E_PRESET), "--data-dir", str(data),
           "--subset", "small", "--cache-dir", str(scratch / "e2e-cache"), "--out", str(out), "--device", device,
           "--wandb", "disabled", "--quiet"]
    done, used = run_command(cmd)
    if done.returncode:
        return {"device": device, "note": failed(done), "usage": used}
    results = json.loads((out / "results.json").read_text())
    test = results["test"]
    return {"device": device, "usage": used, "accuracy": test["accuracy"],
            "ci": test.get("ci", {}).get("accuracy"), "test_tracks": results["test_tracks"],
            "epochs": len((out / "metrics.csv").read_text().splitlines()) - 1}


def memory(args, scratch: Path, device, say) -> dict:
    from config import AudioConfig
    audio = AudioConfig()
    gb = args.large_tracks * audio.n_mels * audio.clip_frames * 2 / 1e9
    if free_disk_gb(scratch) < 2:
        return {"note": f"skipped: under 2 GB free in {args.tmp_dir}"}
    say(f"memory: training over a sparse {args.large_tracks:,}-clip cache ({gb:.1f} GB float16)")
    path = write_large_cache(scratch / "large", args.large_tracks, audio)
    spec = train_specs(args, device.type, "crnn")[0]
    spec.window_seconds, spec.min_steps, spec.warmup_steps = 0.0, args.memory_steps, 1
    out = train_row(path, spec, rows_needed=None)
    return {**out, "tracks": args.large_tracks, "gb": gb, "loader_workers": spec.loader_workers}


def main(argv=None) -> int:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = resolve(build_parser().parse_args(argv))
    results = run(args, " ".join(["python bench.py", *argv]))
    text = report(args, results)
    print("\n" + text)
    if args.output:
        try:
            done = update_report(Path(args.output), text)
        except ValueError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(f"{done} the bench.py part of {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
