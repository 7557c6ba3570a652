"""Synthetic FMA-format demo dataset: procedurally composed music in the exact FMA layout.

FMA is 7.2 GB. This script writes a small stand-in with the same files, columns and quirks, so that
every code path of the project (metadata loading, decoding, the feature cache, failure reporting,
training, evaluation, prediction) runs on a laptop in minutes:

    python demo_data.py                                    # data/demo: 8 genres x 60 tracks x 30 s
    python demo_data.py --out /tmp/tiny --tracks-per-genre 3 --seconds 5
    python main.py --data-dir data/demo                    # the real-FMA code path, unchanged
    python baseline.py --data-dir data/demo                # how hard the demo is (spectrum baseline)

This file is the entry point; the generator is the package demo/ (what it writes and how: its docstring
in demo/__init__.py): demo.cli (command line), demo.dataset (files, broken clips, manifest),
demo.fma_metadata (tracks.csv, genres.csv, split), demo.synth (synthesizer), demo.composers (genres).
The names that other code imports from demo_data are re-exported here.
"""
from demo import BROKEN_KINDS, GENERATOR_VERSION, TOP_GENRES, generate, make_metadata, render, split_sizes
from demo.cli import main

__all__ = ["BROKEN_KINDS", "GENERATOR_VERSION", "TOP_GENRES", "generate", "main", "make_metadata", "render",
           "split_sizes"]

if __name__ == "__main__":
    main()
