"""One demo set on disk, in the FMA layout: metadata files, clips, broken clips, broken.csv, manifest.

generate(args) writes OUT/fma_metadata/ (genres.csv, tracks.csv), the MP3 clips under OUT/fma_small/
(make_clip, in parallel workers), the clips broken on purpose and OUT/broken.csv, and
OUT/demo_manifest.json (arguments + GENERATOR_VERSION): a rerun with the same arguments does nothing,
an interrupted run resumes, other arguments regenerate OUT cleanly.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm import tqdm

from .composers import render
from .fma_metadata import GENRES_CSV, SPLIT_FRACTIONS, audio_path, make_metadata, write_tracks_csv
from .synth import OUT_SR

GENERATOR_VERSION = 2  # bump when the output changes, so old demo sets are regenerated
MP3_QUALITY = 0.9   # libsndfile compression_level for VBR MP3 (0 best .. 1 smallest); 0.9 ~ 80 kbit/s
SHORT_SECONDS = 2.0       # length of the 'short' clip
TRUNCATE_FRACTION = 0.3   # the 'truncated' clip keeps this fraction of its bytes

# --------------------------------------------------------------------------------------------
# Files: clips, broken clips, metadata, manifest
# --------------------------------------------------------------------------------------------

def _encode_mp3(y: np.ndarray, sr: int) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, y, sr, format="MP3", subtype="MPEG_LAYER_III", compression_level=MP3_QUALITY,
             bitrate_mode="VARIABLE")
    return buf.getvalue()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".part")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def make_clip(job: dict) -> tuple:
    """Worker: synthesise, encode and write one clip (or its broken version). Returns (id, note)."""
    path = Path(job["path"])
    if path.exists():                         # resumed run: this clip was finished before
        return job["id"], "exists"
    kind = job["broken"]
    if kind == "empty":
        _atomic_write(path, b"")
        return job["id"], "empty file (0 bytes)"
    seconds = SHORT_SECONDS if kind == "short" else job["seconds"]
    y = render(job["genre"], job["subs"], job["artist"], job["id"], job["seed"], seconds)
    data = _encode_mp3(y, OUT_SR)
    if kind == "truncated":
        cut = int(len(data) * TRUNCATE_FRACTION) + 137      # mid-frame
        _atomic_write(path, data[:cut])
        return job["id"], f"truncated MP3: {cut} of {len(data)} bytes, header declares {seconds:g} s"
    _atomic_write(path, data)
    return job["id"], "ok" if kind is None else f"short clip: {seconds:g} s"


def _manifest_args(args) -> dict:
    split = {} if tuple(args.split) == SPLIT_FRACTIONS else {"split": list(args.split)}  # default: as before
    return dict(version=GENERATOR_VERSION, tracks_per_genre=args.tracks_per_genre, seconds=args.seconds,
                seed=args.seed, broken=not args.no_broken, **split)


def _clean(out: Path) -> None:
    """Remove what a previous generation wrote (and a feature cache built from it)."""
    for name in ("fma_small", "fma_metadata", "cache"):
        if (out / name).exists():
            shutil.rmtree(out / name)
    for name in ("broken.csv", "demo_manifest.json"):
        if (out / name).exists():
            (out / name).unlink()


def generate(args) -> Path:
    out = Path(args.out)
    manifest_path = out / "demo_manifest.json"
    wanted = _manifest_args(args)
    if manifest_path.exists():
        old = json.loads(manifest_path.read_text())
        if old.get("args") == wanted and old.get("complete"):
            missing = [p for p in old["files"] if not (out / p).exists()]
            if not missing:
                print(f"{out}: demo set already generated with these arguments ({len(old['files'])} clips); "
                      f"nothing to do")
                return out
            print(f"{out}: {len(missing)} clips missing, regenerating them")
        elif old.get("args") != wanted:
            print(f"{out}: previous demo set had other arguments {old.get('args')}; regenerating cleanly")
            _clean(out)
    elif (out / "fma_small").exists() or (out / "fma_metadata").exists():
        print(f"{out}: existing files without a manifest; regenerating cleanly")
        _clean(out)
    t0 = time.time()
    tracks = make_metadata(args.tracks_per_genre, args.seed, broken=not args.no_broken, split=tuple(args.split))
    files = [str(audio_path(Path("."), t["_id"])) for t in tracks]
    broken = [(t["_id"], t["_broken"]) for t in tracks if t["_broken"]]
    out.mkdir(parents=True, exist_ok=True)
    manifest = dict(args=wanted, complete=False, n_tracks=len(tracks), files=files,
                    broken={str(i): k for i, k in broken})
    manifest_path.write_text(json.dumps(manifest, indent=1))
    meta = out / "fma_metadata"
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "genres.csv").write_text(GENRES_CSV, encoding="utf-8", newline="")
    write_tracks_csv(tracks, meta / "tracks.csv.part")
    os.replace(meta / "tracks.csv.part", meta / "tracks.csv")
    jobs = [dict(path=str(out / f), id=t["_id"], genre=t["_genre"], subs=t["_subs"], artist=t["_artist"],
                 seed=args.seed, seconds=args.seconds, broken=t["_broken"]) for f, t in zip(files, tracks)]
    workers = args.workers or os.cpu_count() or 1
    notes = {}
    bar = tqdm(total=len(jobs), desc="demo clips", unit="clip")
    if workers <= 1:
        for j in jobs:
            i, note = make_clip(j)
            notes[i] = note
            bar.update()
    else:
        with ProcessPoolExecutor(workers) as ex:
            for i, note in ex.map(make_clip, jobs, chunksize=2):
                notes[i] = note
                bar.update()
    bar.close()
    with open(out / "broken.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["track_id", "file", "kind", "detail"])
        for i, kind in broken:
            w.writerow([i, str(audio_path(Path("."), i)), kind, notes.get(i, "")])
    manifest["complete"] = True
    manifest_path.write_text(json.dumps(manifest, indent=1))
    n_ok = len(tracks) - len(broken)
    print(f"{out}: {n_ok} clips + {len(broken)} broken on purpose, {len(set(t['_artist'] for t in tracks))} artists, "
          f"in {time.time() - t0:.0f} s")
    for i, kind in broken:
        print(f"  broken {i:06d}: {kind}: {notes.get(i)}")
    return out
