"""Command line of the demo set generator (run as `python demo_data.py --out data/demo ...`).

build_parser(): the options and their defaults (DEFAULTS); main(argv): parse, check, dataset.generate.
"""
from __future__ import annotations

import argparse

from .dataset import generate

DESCRIPTION = "Synthetic FMA-format demo dataset: procedurally composed music in the exact FMA layout."

# Defaults of the command line (one place).
DEFAULTS = dict(out="data/demo", tracks_per_genre=60, seconds=30.0, seed=0, workers=None)


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
    p.add_argument("--no-broken", action="store_true",
                   help="do not add the broken clips (empty, truncated, under 3 s)")
    return p


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    if args.tracks_per_genre < 1 or args.seconds <= 0:
        raise SystemExit("--tracks-per-genre must be >= 1 and --seconds > 0")
    generate(args)

