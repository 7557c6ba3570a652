"""Command line of the demo set generator (run as `python demo_data.py --out data/demo ...`).

build_parser(): the options and their defaults (DEFAULTS); main(argv): parse, check, dataset.generate.
"""
from __future__ import annotations

import argparse

from pathlib import Path

from .dataset import generate
from .fma_metadata import SPLIT_FRACTIONS
from .layouts import HIDDEN, LAYOUTS, export

DESCRIPTION = "Synthetic FMA-format demo dataset: procedurally composed music in the exact FMA layout."

# Defaults of the command line (one place).
DEFAULTS = dict(out="data/demo", tracks_per_genre=60, seconds=30.0, seed=0, workers=None)


def _fractions(text: str) -> tuple:
    """'0.4,0.3,0.3' -> (0.4, 0.3, 0.3): three positive fractions that sum to 1."""
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: three comma-separated fractions, e.g. 0.8,0.1,0.1") from None
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise argparse.ArgumentTypeError(f"{text!r}: three positive fractions that sum to 1, e.g. 0.8,0.1,0.1")
    return parts


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=DESCRIPTION,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--out", default=DEFAULTS["out"], help="output folder (FMA root: fma_metadata/, fma_small/)")
    p.add_argument("--tracks-per-genre", type=int, default=DEFAULTS["tracks_per_genre"],
                   help="usable clips per genre (8 genres; split 80/10/10 by artist)")
    p.add_argument("--seconds", type=float, default=DEFAULTS["seconds"], help="clip length, in seconds")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="random seed (same seed -> same files)")
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                   help="parallel processes (default: all cores); does not change the output")
    p.add_argument("--split", type=_fractions, default=SPLIT_FRACTIONS, metavar="TRAIN,VAL,TEST",
                   help="fractions of each genre's tracks in the training, validation and test splits "
                        "(e.g. 0.4,0.3,0.3 with --tracks-per-genre 100 --seconds 10: an evaluation set of "
                        "240 validation and 240 test tracks)")
    p.add_argument("--no-broken", action="store_true",
                   help="do not add the broken clips (empty, truncated, under 3 s)")
    p.add_argument("--layout", choices=LAYOUTS, default="fma",
                   help="fma: FMA's layout; folders: OUT/<genre>/<id>.mp3; manifest: OUT/manifest.csv "
                        "(path,label,split,group), the audio in OUT/.fma")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.tracks_per_genre < 1 or args.seconds <= 0:
        raise SystemExit("--tracks-per-genre must be >= 1 and --seconds > 0")
    if args.layout == "fma":
        generate(args)
        return
    out, args.out = Path(args.out), str(Path(args.out) / HIDDEN)
    generate(args)
    export(out, args.layout)

