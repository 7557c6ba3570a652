"""The demo set in the two layouts of a collection of one's own (collection.py), besides FMA's: a folder of class
folders, and a CSV manifest with the artist as group, so that the default data exercises them too.

    python demo_data.py --out data/demo_folders --layout folders     # data/demo_folders/<genre>/<id>.mp3
    python demo_data.py --out data/demo_csv --layout manifest        # data/demo_csv/manifest.csv

Either is made from the FMA-layout set generated (once) in OUT/.fma (a hidden folder, which a scan of the class
folders skips): the folders hold hard links to its clips (copies where links cannot be made), the manifest
lists them with their genre, official split and artist (path,label,split,group). OUT/demo_manifest.json marks
the set as synthetic for the whole pipeline.
"""
from __future__ import annotations

import csv
import os
import shutil
from pathlib import Path

import pandas as pd

from .fma_metadata import audio_path

LAYOUTS = ("fma", "folders", "manifest")
HIDDEN = ".fma"  # where the FMA-layout set of the other layouts lives


def _tracks(fma_root: Path) -> pd.DataFrame:
    """The clips of the set: relative path, genre, split and artist id of each track of tracks.csv."""
    tracks = pd.read_csv(fma_root / "fma_metadata" / "tracks.csv", index_col=0, header=[0, 1])
    return pd.DataFrame({"file": [audio_path(Path(""), int(i)).as_posix() for i in tracks.index],
                         "label": tracks[("track", "genre_top")].fillna("").astype(str).to_numpy(),
                         "split": tracks[("set", "split")].astype(str).to_numpy(),
                         "group": [f"artist-{int(a)}" for a in tracks[("artist", "id")]]})


def _link(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if dst.exists():
        dst.unlink()
    try:
        os.link(src, dst)
    except OSError:  # another file system, or none that links
        shutil.copyfile(src, dst)


def export(out: Path, layout: str) -> None:
    """OUT in `layout` from the FMA-layout set in OUT/.fma: class folders, or manifest.csv (paths relative)."""
    fma_root, rows = out / HIDDEN, _tracks(out / HIDDEN)
    shutil.copyfile(fma_root / "demo_manifest.json", out / "demo_manifest.json")  # the synthetic marker
    if layout == "folders":
        for row in rows.itertuples():
            if row.label:
                _link(fma_root / row.file, out / row.label / Path(row.file).name)
        print(f"{out}: {int((rows['label'] != '').sum())} clips in {rows['label'].nunique()} class folders")
        return
    with open(out / "manifest.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "label", "split", "group"])
        writer.writerows([f"{HIDDEN}/{r.file}", r.label, r.split, r.group] for r in rows.itertuples() if r.label)
    print(f"{out}: manifest.csv of {len(rows)} clips (path,label,split,group: the artist)")
