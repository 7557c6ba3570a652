"""Train and evaluate a genre classifier on FMA (or the synthetic demo set in FMA's layout).

The command line only: it parses the options (config.py) and hands them to cache.py (prepare), train.py
(train), seeds.py (--seeds) or test.py (--evaluate-only). Nothing imports it.

    python main.py                                                     # configs/best.yaml's recipe on data/
    python main.py --data-dir data --subset small --prepare-only      # build the log-mel cache only
    python main.py --data-dir data --model cnn1d --epochs 30           # train, select on validation, test
    python main.py --config configs/best.yaml                          # a named preset
    python main.py --resume runs/NAME --epochs 50                      # continue (or extend) a run
    python main.py --evaluate-only --checkpoint runs/NAME/best.pt      # re-evaluate on its data's test split
    python main.py --help                                              # every option and its default

A run writes runs/NAME/: config.json, metrics.csv (per epoch), results.json (test metrics of the best
checkpoint, with intervals), test_predictions.csv, confusion_matrix.png (--target top) or per_genre_auc.csv and
auc_vs_train_count.png (--target all), curves.png, best.pt, last.pt and test_files.csv (the test tracks' audio and
genres, for `pre_trained_models.py runs/NAME/test_files.csv`), and logs to Weights & Biases (offline by default).
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import os
import sys
from dataclasses import replace
from pathlib import Path

from allocator import tune_malloc
from cache import open_cache
from collection import DataError, collection_kind
from config import AudioConfig, ConfigError, RunConfig, absolute, check_run, load_config, seed_list
from distributed import Dist, cleanup, quiet_unless_main, setup
from models_utils import CheckpointError, model_audio
from seeds import train_seeds
from test import evaluate_only
from train import Interrupted, train


def demo_if_no_fma(run: RunConfig, given: set) -> RunConfig:
    """`python main.py` with no --data-dir and no FMA in data/: the synthetic demo set in data/demo,
    generated (about 3 minutes, once) if absent. An explicit --data-dir (or a preset's) is never replaced."""
    if "data_dir" in given or (Path(run.data_dir) / "fma_metadata" / "tracks.csv").is_file():
        return run
    demo = Path(run.data_dir) / "demo"
    print(f"no FMA in {run.data_dir}/ (get it with `bash download_data.sh {run.subset}`): "
          f"using the synthetic demo set {demo}/ (demo numbers are not FMA numbers)")
    import demo_data
    demo_data.main(["--out", str(demo)])  # does nothing when the set is already there
    return replace(run, data_dir=str(demo))


def check_output(path) -> None:
    """ConfigError unless `path` can be a run folder: not a file, and its nearest existing folder writable."""
    if path is None:
        return
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise ConfigError(f"--out {path} is a file, not a folder")
    parent = next(q for q in [p, *p.parents] if q.exists())
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {path}: cannot write in {parent} (permission denied)")


def dispatch(run: RunConfig, audio: AudioConfig, given: set, dist: Dist) -> int:
    """What main.py was asked to do: evaluate, build the cache, or train (one run, or one per seed)."""
    if run.evaluate_only:
        return evaluate_only(run, given)
    if not run.resume:
        run = absolute(dist.main_first(lambda: demo_if_no_fma(run, given)))  # rank 0 generates it, the others wait
        audio = model_audio(run, audio, given)
        if "subset" in given and collection_kind(run.data_dir) != "fma":
            raise ConfigError(f"--subset is FMA's: {run.data_dir} is a collection of your own, used whole")
    if run.prepare_only:
        open_cache(run, audio, dist)
        return 0
    seeds = seed_list(run.seeds)
    return train_seeds(run, audio, given, seeds, dist) if seeds else train(run, audio, given, dist=dist)


def interrupted(e: KeyboardInterrupt, argv: list[str]) -> str:
    """The one line printed on Ctrl-C: how to continue."""
    if isinstance(e, Interrupted) and e.resumable:
        return f"interrupted: continue exactly where it stopped with: python main.py --resume {e.out}"
    if isinstance(e, Interrupted):
        return f"interrupted before the first epoch ended: {e.out} has nothing to resume; run the command again"
    return f"interrupted: run the command again to continue (python main.py {' '.join(argv)})"


def main(argv=None) -> int:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    dist = Dist()
    try:
        about, _, rest = __doc__.partition("\n\n")
        run, audio, given = load_config(argv, description=about, epilog=rest.partition("\n\n")[2])
        check_run(run, given)
        check_output(run.out)
        dist = setup(run.device)  # torchrun's process group, when there is one
        if dist.enabled and (run.evaluate_only or run.shard is not None):
            raise ConfigError(f"--{'evaluate-only' if run.evaluate_only else 'shard'} runs in one process, not under "
                              "torchrun (python main.py ...)")
        with quiet_unless_main(dist):  # each console line once
            return dispatch(run, audio, given, dist)
    except (ConfigError, DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(interrupted(e, argv), file=sys.stderr)
        return 130
    finally:
        cleanup(dist)


if __name__ == "__main__":
    sys.exit(main())
