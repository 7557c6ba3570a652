"""Train and evaluate a genre classifier on FMA (or the synthetic demo set in FMA's layout).

    python main.py --data-dir data --subset small --prepare-only   # build the log-mel cache, report failures
    python main.py --help                                          # every option, with its default

The first run of a (subset, audio parameters) pair builds the feature cache once (see utils.py);
later runs reuse it. Defaults live in config.py.
"""
from __future__ import annotations

import sys

from config import load_config
from utils import DataError, prepare_cache


def prepare(run, audio):
    """Build or reopen the cache; list failed tracks, then the one-line summary (always the last line)."""
    cache = prepare_cache(run.data_dir, run.subset, audio, cache_dir=run.cache_dir, workers=run.workers)
    for r in cache.failed.itertuples():
        print(f"failed {r.track_id:06d}: {r.reason}")
    print(cache.summary())
    return cache


def main(argv=None) -> int:
    run, audio = load_config(argv, description=__doc__.splitlines()[0])
    try:
        prepare(run, audio)
    except DataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if run.prepare_only:
        return 0
    print("training is not implemented yet: use --prepare-only", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
