"""Benchmarks: feature extraction, training throughput, inference latency and memory, in one run.

    python bench.py --quick                  # a few minutes on 2 cores; prints the tables, updates BENCHMARKS.md
    python bench.py                          # more tracks and longer timing windows
    python bench.py --device cpu --output '' # CPU rows only, print without writing BENCHMARKS.md
    python bench.py --help                   # every option and its default

Everything is measured in this one run, on synthetic demo MP3s that the script generates itself
(demo_data.py, kept in --work-dir for the next run), with every baseline beside what it is compared to:

- Feature extraction on the same N MP3s, in tracks per second: our cache build (utils.prepare_cache),
  an original-style pipeline (sequential librosa.load at default settings + melspectrogram +
  power_to_db + one pickled array per track, as the seed project did), and the decode floor (decode,
  mono mix and resample only, with the same number of worker threads). Each pipeline runs in a fresh
  process, warmed up on one file first (imports, filter banks), so the peak RSS is its own.
- Training throughput of every model through the real data path (FeatureCache -> ClipDataset ->
  DataLoader -> train.train_one_epoch), on the repository's default input (random 3 s crops of the
  cached 30 s clips) and on whole 30 s clips: clips/s over a timed window after warm-up steps, and
  the time of an fma_small-sized epoch (6,400 clips) extrapolated from it. The DataLoader alone is
  timed over the same number of batches, to show whether data loading is the bottleneck. CPU rows
  always; GPU rows when --device resolves to cuda (mixed precision, channels_last, pinned memory and
  persistent loader workers there, each switchable; each row with torch.compile off and on).
- Inference: milliseconds per 30 s song, one song at a time after the model is loaded (decode +
  features + model, predictor.Predictor), and songs/s over the demo folder with
  parallel decoding; for every model (random weights) and for the shipped checkpoints
  (`--checkpoints`, pretrained/musicnn_msd.pt by default).
- Cache check: reopening a finished cache stats every audio file of the subset against index.csv's
  size and mtime (utils.FileCheck); timed on an fma_large-sized tree (106,574 empty files in FMA's
  NNN/NNNNNN.mp3 layout, in --tmp-dir, deleted afterwards) against a matching index, beside the
  reading of that index.csv and the decoding time per track of the extraction row.
- End to end (on CUDA, or with --end-to-end on): `python main.py --config configs/best.yaml` on the
  demo set of `make run` (demo_data.py's defaults), timed from the MP3s on disk to results.json
  (cache build, training, test report), with its test accuracy and bootstrap interval.
- Distributed training on CPU: `python main.py` under torchrun with 1 and 2 processes (gloo), the
  cores shared out between them; training clips/s of all ranks together, as a ratio to 1 process.
- Memory: peak RSS of the cache build, and of training steps over a cache of fma_large's size
  (106,574 clips x 128 x 1,292 float16 = 35 GB): a sparse features.npy in --tmp-dir (untouched pages
  use no disk; deleted afterwards) read through the same FeatureCache/ClipDataset/DataLoader path.

Timings depend on what else the machine runs; BENCHMARKS.md records the machine and the command.
bench.py owns only the part of BENCHMARKS.md between its markers (REPORT_BEGIN, REPORT_END) and rewrites
just that; the text around it (the title, the hand-written notes) is kept as it is (update_report).
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
FMA_SMALL_EPOCH = 6400           # clips in fma_small's training split
FMA_LARGE_SPLITS = {"training": 84353, "validation": 10958, "test": 11263}  # official, 106,574 clips
FMA_LARGE_MAX_ID = 155320        # highest track id of fma_large: its clips fill folders 000/ to 155/
GOALS = {"extract_vs_original": 4.0, "extract_vs_floor": 1.3, "infer_ms": 100.0, "rss_gb": 3.0,
         "gpu_crnn_clips_s": 2000.0}
NOT_MEASURED = "not yet measured (no GPU available)"
E2E_PRESET = "configs/best.yaml"  # the end-to-end row's preset (the make run default)


# ------------------------------------------------------------------------------------------ helpers

def peak_rss_mb() -> float:
    """Peak resident memory of this process (VmHWM), MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: same number, KiB


def children_peak_rss_mb() -> float:
    """Largest peak RSS of any finished child process of this one (e.g. DataLoader workers), MiB."""
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def in_fresh_process(fn, *args, **kwargs) -> dict:
    """Run fn(*args, **kwargs) -> dict in a new (spawned) process, so that its peak RSS is its own."""
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(1, mp_context=ctx) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def machine(device) -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else "no GPU"
    return (f"{cpu}, {os.cpu_count()} cores, {mem:.0f} GiB RAM, {gpu}; {platform.system()}, "
            f"Python {platform.python_version()}, torch {torch.__version__}")


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


def failed(done: subprocess.CompletedProcess) -> str:
    """The note of a row whose command failed: the last line of its stderr."""
    return f"failed: {(done.stderr.strip().splitlines() or ['?'])[-1]}"


def demo_files(data_dir: Path) -> list[Path]:
    return sorted((data_dir / "fma_small").glob("*/*.mp3"))


# ------------------------------------------------------------------------------- feature extraction

def extract_ours(data_dir: Path, cache_dir: Path, workers: int) -> dict:
    """utils.prepare_cache from scratch (metadata, decode, log-mel, float16 rows, index)."""
    from config import AudioConfig
    from audio import clip_from_wave, load_audio
    from cache import prepare_cache
    audio = AudioConfig()
    clip_from_wave(load_audio(demo_files(data_dir)[0], audio.sample_rate), audio)  # warm-up
    start = time.perf_counter()
    cache = prepare_cache(data_dir, "small", audio, cache_dir=cache_dir, workers=workers, progress=False,
                          log=lambda _: None)
    seconds = time.perf_counter() - start
    return {"tracks": len(cache.ok), "seconds": seconds, "rss_mb": peak_rss_mb()}


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
    return {"tracks": len(files), "seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


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
    return {"tracks": len(files), "seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}


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
    mtime_ns (the code prepare_cache runs: utils.audio_path, file_stats, FileCheck). Timed on `n_files` empty
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


# -------------------------------------------------------------------------------------------- table

def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def goal(ok) -> str:
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def report(args, results: dict) -> str:
    """The Markdown report: machine, command, tables with ratios, goals."""
    r, lines = results, []
    ex = r["extract"]
    tps = {k: v["tracks"] / v["seconds"] for k, v in ex.items()}
    vs_orig, vs_floor = tps["ours"] / tps["original"], tps["floor"] / tps["ours"]
    lines += [f"Machine: {r['machine']}.", "", f"Command: `{r['command']}` ({r['wall_s']:.0f} s in all).", "",
              f"### Feature extraction ({ex['ours']['tracks']} demo MP3s of {args.seconds:g} s, "
              f"{args.workers} workers)", "",
              "| pipeline | tracks/s | s per track | vs original-style | time vs decode floor | peak RSS |",
              "|---|---:|---:|---:|---:|---:|"]
    names = {"original": "original-style: sequential `librosa.load` + `melspectrogram` + pickle per track",
             "floor": f"decode floor: decode + mono + resample only, {args.workers} threads",
             "ours": f"ours: `prepare_cache` (decode, log-mel, float16 cache), {args.workers} threads"}
    for k in ("original", "floor", "ours"):
        lines.append(f"| {names[k]} | {fmt(tps[k])} | {ex[k]['seconds'] / ex[k]['tracks']:.3f} | "
                     f"{ratio(tps[k] / tps['original'])} | {ratio(tps['floor'] / tps[k])} | "
                     f"{fmt(ex[k]['rss_mb'], 0)} MiB |")
    lines += ["", f"### Training throughput (batch {args.batch_size}, AdamW; timed window after "
                  f"{args.warmup_steps + 1} warm-up steps; epoch = {FMA_SMALL_EPOCH:,} clips)", "",
              "| model | device | input | clips/s | fma_small epoch | data path alone, clips/s | data loading share |",
              "|---|---|---|---:|---:|---:|---:|"]
    for t in r["train"]:
        inp = "whole 30 s clips" if not t["crop_seconds"] else f"{t['crop_seconds']:g} s crops of 30 s clips"
        if "clips_per_s" not in t:
            lines.append(f"| {t['model']} | {t.get('setup', t['device'])} | {inp} | {t['note']} | | | |")
            continue
        lines.append(f"| {t['model']} | {t.get('setup', t['device'])} | {inp} | {fmt(t['clips_per_s'])} | "
                     f"{fmt(FMA_SMALL_EPOCH / t['clips_per_s'], 0)} s | {fmt(t['load_clips_per_s'], 0)} | "
                     f"{100 * t['clips_per_s'] / t['load_clips_per_s']:.0f}% |")
    lines += ["", f"### Inference (model names: the default checkpoint shape, 8 crops of 3 s per 30 s clip at "
                  f"22,050 Hz; .pt rows: the shipped checkpoint, e.g. musicnn's 10 patches of 3 s at 16 kHz; "
                  f"{len(r['files'])} demo songs)", "",
              "| model | device | ms per 30 s song (decode + features + model, one at a time) | "
              f"songs/s over the folder ({args.workers} decoding threads) |", "|---|---|---:|---:|"]
    for i in r["infer"]:
        if "ms_per_song" not in i:
            lines.append(f"| {i['model']} | {i['device']} | {i['note']} | |")
            continue
        lines.append(f"| {i['model']} | {i['device']} | {fmt(i['ms_per_song'])} | {fmt(i['songs_per_s'])} |")
    m = r["memory"]
    lines += ["", "### Memory (peak RSS)", "", "| what | main process | largest worker process |", "|---|---:|---:|",
              f"| cache build, {ex['ours']['tracks']} tracks, {args.workers} threads | "
              f"{fmt(ex['ours']['rss_mb'], 0)} MiB | (threads) |"]
    if "rss_mb" in m:
        lines.append(f"| training {m['steps']} batches of {args.batch_size} (crnn, 3 s crops, "
                     f"{m['loader_workers']} loader workers) over a {m['tracks']:,}-clip cache "
                     f"({m['gb']:.1f} GB float16, sparse) | {fmt(m['rss_mb'], 0)} MiB | "
                     f"{fmt(m['children_rss_mb'], 0) + ' MiB' if m['loader_workers'] else '-'} |")
    else:
        lines.append(f"| training over an fma_large-sized cache | {m['note']} | |")
    if r.get("e2e"):
        lines += ["", f"### End to end (`python main.py --config {E2E_PRESET}` on the demo set of `make run`: "
                      "cache build, training, test report)", "",
                  "| device | wall time | epochs | test accuracy (synthetic demo set) | bootstrap interval | test tracks |",
                  "|---|---:|---:|---:|---|---:|"]
        for e in r["e2e"]:
            if "seconds" not in e:
                lines.append(f"| {e['device']} | {e['note']} | | | | |")
                continue
            ci = f"{e['ci'][0]:.3f} to {e['ci'][1]:.3f}" if e.get("ci") else "-"
            lines.append(f"| {e['device']} | {fmt(e['seconds'], 0)} s | {e['epochs']} | {e['accuracy']:.3f} | {ci} | "
                         f"{e['test_tracks']} |")
    ddp = [d for d in r.get("ddp", []) if "clips_per_s" in d]
    if ddp:
        lines += ["", f"### Distributed training on CPU (torchrun, gloo; `python main.py --model {args.ddp_model} "
                      f"--batch-size {args.ddp_batch_size}` per process; median of epochs 2-{args.ddp_epochs})", "",
                  "| processes | threads each | global batch | training clips/s (all ranks) | vs 1 process |",
                  "|---:|---:|---:|---:|---:|"]
        for d in ddp:
            lines.append(f"| {d['processes']} | {d['threads']} | {args.ddp_batch_size * d['processes']} | "
                         f"{fmt(d['clips_per_s'])} | {ratio(d['clips_per_s'] / ddp[0]['clips_per_s'])} |")
    lines += [f"\nDistributed training, {d['processes']} process(es): {d['note']}" for d in r.get("ddp", [])
              if "note" in d]
    c = r["check"]
    lines += ["", "### Cache check (reopening a finished cache: every audio file stat'ed against index.csv)", "",
              "| files (FMA layout) | check: paths + stat + compare | per file | of which stat + compare | "
              "reading index.csv | check / index read | check = decoding of |", "|---:|---:|---:|---:|---:|---:|---:|"]
    if "files" in c:
        check_s, decode_s = c["paths_s"] + c["stat_s"], ex["ours"]["seconds"] / ex["ours"]["tracks"]
        lines.append(f"| {c['files']:,} | {fmt(check_s, 2)} s | {fmt(1e6 * check_s / c['files'], 1)} us | "
                     f"{fmt(c['stat_s'], 2)} s | {fmt(c['index_s'], 2)} s | {ratio(check_s / c['index_s'])} | "
                     f"{fmt(check_s / decode_s, 1)} tracks ({args.workers} threads) |")
    else:
        lines.append(f"| {args.check_files:,} | {c['note']} | | | | | |")
    crnn_gpu = max((t["clips_per_s"] for t in r["train"] if t["model"] == "crnn" and t["device"] == "cuda"
                    and not t["crop_seconds"] and "clips_per_s" in t), default=None)  # the faster of compile off/on
    gpu_ok = None if crnn_gpu is None else crnn_gpu >= GOALS["gpu_crnn_clips_s"]
    cpu_inf = {i["model"]: i["ms_per_song"] for i in r["infer"] if i["device"] == "cpu" and "ms_per_song" in i}
    fast = [k for k, v in cpu_inf.items() if v < GOALS["infer_ms"]]
    slow = [k for k, v in cpu_inf.items() if v >= GOALS["infer_ms"]]
    infer_status = (goal(None) if not cpu_inf else goal(not slow) if not (fast and slow)
                    else f"met for {', '.join(fast)}; **not met** for {', '.join(slow)}")
    worst_share = max((t["clips_per_s"] / t["load_clips_per_s"] for t in r["train"]
                       if t["device"] == "cpu" and "clips_per_s" in t), default=float("nan"))
    rss = max(m.get("rss_mb", float("nan")), m.get("rss_mb", 0) + m.get("children_rss_mb", 0) * m.get("loader_workers", 0))
    lines += ["", "### Goals", "", "| goal | measured | |", "|---|---|---|",
              f"| extraction >= {GOALS['extract_vs_original']:g}x the original-style pipeline | "
              f"{ratio(vs_orig)} | {goal(vs_orig >= GOALS['extract_vs_original'])} |",
              f"| extraction within {GOALS['extract_vs_floor']:g}x of the decode floor | {ratio(vs_floor)} | "
              f"{goal(vs_floor <= GOALS['extract_vs_floor'])} |",
              f"| CPU training: data loading never the bottleneck | data path alone takes at most "
              f"{100 * worst_share:.0f}% of a training step's time | {goal(worst_share < 0.25)} |",
              f"| inference < {GOALS['infer_ms']:g} ms per 30 s song on CPU | "
              f"{', '.join(f'{k} {fmt(v)} ms' for k, v in cpu_inf.items()) or '-'} | {infer_status} |",
              f"| peak RSS < {GOALS['rss_gb']:g} GB training over an fma_large-sized cache | "
              f"{fmt(rss / 1024, 2) + ' GiB (main + workers)' if 'rss_mb' in m else '-'} | "
              f"{goal(rss / 1024 < GOALS['rss_gb'] if 'rss_mb' in m else None)} |",
              f"| GPU: CRNN >= {GOALS['gpu_crnn_clips_s']:,.0f} clips/s of whole 30 s clips | "
              f"{fmt(crnn_gpu) + ' clips/s' if gpu_ok is not None else NOT_MEASURED} | "
              f"{goal(gpu_ok)} |"]
    return "\n".join(lines) + "\n"


DOC_HEAD = """# Benchmarks

The part between the `bench.py` markers is written by `python bench.py` (see its docstring for what
each number means); every number in it comes from the run named under "Command". Re-run it to
measure your machine; `--device cuda` on a GPU machine adds the GPU rows. Text outside the markers
is yours: reruns keep it.

"""
BEGIN, END = "<!-- bench.py: begin report", "<!-- bench.py: end report"  # how the marker lines start
REPORT_BEGIN = f"{BEGIN} (rewritten by python bench.py up to the end marker; edit outside) -->"
REPORT_END = f"{END} -->"


def update_report(path: Path, text: str) -> str:
    """Put the report `text` into the Markdown file `path` between its marker lines (REPORT_BEGIN and
    REPORT_END; recognised by how they start, BEGIN and END), leaving every byte outside them as it was.
    A missing file is created (DOC_HEAD, then the report between markers); a file without markers gets
    them, with the report, appended at its end. Returns 'created', 'appended' or 'updated'. Malformed
    markers (one missing, repeated, or the end first) raise ValueError and leave the file untouched."""
    path = Path(path)
    old = ""
    if path.exists():
        with open(path, newline="") as f:  # newline="": a CRLF file stays CRLF, byte for byte
            old = f.read()
    nl = "\r\n" if "\r\n" in old else "\n"
    block = f"\n{text.strip()}\n\n".replace("\n", nl)  # blank lines keep the markers apart from the tables
    begins, ends = _marker_lines(old, BEGIN), _marker_lines(old, END)
    if not path.exists():
        new, done = f"{DOC_HEAD}{REPORT_BEGIN}\n{block}{REPORT_END}\n", "created"
    elif not begins and not ends:
        sep = "" if not old or old.endswith(nl * 2) else nl if old.endswith(nl) else nl * 2
        new, done = f"{old}{sep}{REPORT_BEGIN}{nl}{block}{REPORT_END}{nl}", "appended"
    elif len(begins) == len(ends) == 1 and begins[0][1] <= ends[0][0]:
        new, done = old[:begins[0][1]] + block + old[ends[0][0]:], "updated"
    else:
        order = " (the end marker first)" if len(begins) == len(ends) == 1 else ""
        raise ValueError(f"{path}: expected one line starting {BEGIN!r} and, after it, one line starting {END!r}; "
                         f"found {len(begins)} and {len(ends)}{order}. Fix the markers by hand; nothing was written")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(new)
    os.replace(tmp, path)
    return done


def _marker_lines(text: str, start: str) -> list[tuple[int, int]]:
    """(offset of the line, offset after its newline) of each line of `text` that starts with `start`."""
    return [(m.start(), m.end()) for m in re.finditer(rf"^{re.escape(start)}\b.*(?:\n|$)", text, flags=re.M)]


# --------------------------------------------------------------------------------------------- main

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], allow_abbrev=False,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="small sizes (sets the defaults marked 'quick' below): a few minutes on 2 cores")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="auto: GPU rows too when CUDA is available; cpu: CPU rows only; cuda: require a GPU")
    p.add_argument("--tracks-per-genre", type=int, default=None,
                   help="demo MP3s per genre (8 genres) for extraction and inference (default: 6 quick, 25 full)")
    p.add_argument("--seconds", type=float, default=30.0, help="length of each demo MP3, in seconds")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="decoding threads for the cache build, the decode floor and inference")
    p.add_argument("--models", default="cnn1d,cnn2d,crnn,shortchunk_res", help="comma-separated models to train and run")
    p.add_argument("--checkpoints", default="pretrained/musicnn_msd.pt",
                   help="comma-separated shipped checkpoints whose inference is timed too (their own audio "
                        "parameters and windows)")
    p.add_argument("--batch-size", type=int, default=32, help="training batch, in clips (main.py's default)")
    p.add_argument("--warmup-steps", type=int, default=1, help="untimed training steps before the window (+1 sizing step)")
    p.add_argument("--window-seconds", type=float, default=None,
                   help="timed training window per row, in seconds (default: 3 quick, 20 full)")
    p.add_argument("--min-steps", type=int, default=None,
                   help="fewest timed training steps per row (default: 1 quick, 5 full)")
    p.add_argument("--whole-clips", action=argparse.BooleanOptionalAction, default=None,
                   help="also time training on whole 30 s clips (the seed's input), besides 3 s crops "
                        "(default: on for GPU rows, and for CPU rows without --quick)")
    p.add_argument("--loader-workers", type=int, default=None,
                   help="DataLoader processes for training (default: 0 on CPU, 4 on CUDA, as main.py)")
    p.add_argument("--ddp-model", default="crnn", help="model of the torchrun rows (1 and 2 processes on CPU)")
    p.add_argument("--ddp-epochs", type=int, default=4, help="epochs of each torchrun row (0 or 1: no torchrun rows)")
    p.add_argument("--ddp-batch-size", type=int, default=8, help="clips per process and step in the torchrun rows")
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="mixed precision on CUDA")
    p.add_argument("--channels-last", choices=("auto", "on", "off"), default="auto",
                   help="NHWC memory layout for the models (auto: on CUDA only)")
    p.add_argument("--compile", choices=("auto", "on", "off"), default="auto",
                   help="torch.compile the models in the training rows (auto: CPU rows off, GPU rows both off "
                        "and on; its compile time is in the warm-up)")
    p.add_argument("--end-to-end", choices=("auto", "on", "off"), default="auto",
                   help=f"time python main.py --config {E2E_PRESET} on the demo set of make run (auto: on CUDA "
                        "only; on 2 CPU cores it takes about 9 minutes, as the README's results table says)")
    p.add_argument("--latency-songs", type=int, default=None,
                   help="songs timed one at a time for inference latency (default: 8 quick, 32 full)")
    p.add_argument("--large-tracks", type=int, default=sum(FMA_LARGE_SPLITS.values()),
                   help="clips in the synthetic cache of the memory benchmark (fma_large: 106,574)")
    p.add_argument("--check-files", type=int, default=sum(FMA_LARGE_SPLITS.values()),
                   help="empty audio files of the cache-check benchmark (fma_large: 106,574)")
    p.add_argument("--memory-steps", type=int, default=None,
                   help="training batches timed over the large cache (default: 10 quick, 100 full)")
    p.add_argument("--work-dir", default=os.path.join(tempfile.gettempdir(), "fma-bench"),
                   help="where the demo MP3s are kept between runs (caches built from them are deleted)")
    p.add_argument("--tmp-dir", default=tempfile.gettempdir(),
                   help="where the sparse fma_large-sized cache is written (deleted afterwards)")
    p.add_argument("--output", default="BENCHMARKS.md",
                   help="Markdown file whose part between the bench.py markers is rewritten (created when "
                        "missing; text outside the markers is kept; '' = print only)")
    return p


def resolve(args) -> argparse.Namespace:
    q = args.quick
    for name, quick, full in (("tracks_per_genre", 6, 25), ("window_seconds", 3.0, 20.0), ("min_steps", 1, 5),
                              ("latency_songs", 8, 32), ("memory_steps", 10, 100)):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    if args.workers < 1 or args.tracks_per_genre < 1 or args.batch_size < 1:
        raise SystemExit("error: --workers, --tracks-per-genre and --batch-size must be >= 1")
    return args


def train_specs(args, device_type: str, model: str) -> list[TrainSpec]:
    cuda = device_type == "cuda"
    compiles = [False, True] if cuda and args.compile == "auto" else [switch(args.compile, False)]
    whole = args.whole_clips if args.whole_clips is not None else (cuda or not args.quick)
    crops = [3.0] + ([0.0] if whole else [])
    workers = args.loader_workers if args.loader_workers is not None else (4 if cuda else 0)
    return [TrainSpec(model, device_type, c, args.batch_size, args.warmup_steps, args.window_seconds, args.min_steps,
                      workers, args.amp and cuda, switch(args.channels_last, cuda), comp) for c in crops for comp in compiles]


def setup(spec: TrainSpec) -> str:
    """The device column of a training row: the device and what is switched on there."""
    on = [name for name, flag in (("AMP", spec.amp), ("channels_last", spec.channels_last),
                                  ("torch.compile", spec.compile)) if flag]
    return ", ".join([spec.device, *on])


def run(args, command: str) -> dict:
    from models_utils import pick_device
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
                for spec in train_specs(args, dev, model):
                    say(f"training: {model} on {dev}, {'3 s crops' if spec.crop_seconds else 'whole clips'}")
                    row = {"model": model, "device": dev, "setup": setup(spec), "crop_seconds": spec.crop_seconds}
                    row.update(in_fresh_process(train_window, str(cache), spec))
                    results["train"].append(row)
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
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode:
        return {"processes": processes, "note": failed(done)}
    with open(out / "metrics.csv") as f:
        rates = [float(row["clips_per_s"]) for row in csv.DictReader(f)][1:]
    return {"processes": processes, "threads": threads, "clips_per_s": float(np.median(rates)),
            "epochs": len(rates)}


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
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        return {"device": device, "note": failed(done)}
    results = json.loads((out / "results.json").read_text())
    test = results["test"]
    return {"device": device, "seconds": seconds, "accuracy": test["accuracy"],
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
    out = in_fresh_process(train_window, str(path), spec, rows_needed=None)
    return {**out, "tracks": args.large_tracks, "gb": gb, "loader_workers": spec.loader_workers}


def main(argv=None) -> int:
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
