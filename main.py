"""Train and evaluate a genre classifier on FMA (or the synthetic demo set in FMA's layout): the command
line only; it parses the options and hands them to cache.py (prepare), train.py (train), seeds.py (--seeds)
or test.py (--evaluate-only). Nothing imports it.

    python main.py --data-dir data --subset small --prepare-only      # build the log-mel cache only
    python main.py --data-dir data --model crnn --epochs 30            # train, select on validation, test
    python main.py --config configs/best.yaml                          # a named preset
    python main.py --resume runs/NAME                                  # continue an interrupted run
    python main.py --evaluate-only --checkpoint runs/NAME/best.pt      # re-evaluate on the test split
    python main.py --help                                              # every option and its default

    python main.py --data-dir data --subset medium --target all        # multi-label over all FMA genres
    python main.py --config configs/musicnn_finetune.yaml              # fine-tune pretrained musicnn (--init)
    python main.py --config configs/musicnn_frozen.yaml                # its head only (--freeze-backbone)

A run writes runs/NAME/: config.json, metrics.csv (per epoch), results.json (test metrics of the best
checkpoint), confusion_matrix.png (--target top) or per_genre_auc.csv and auc_vs_train_count.png
(--target all), curves.png, best.pt, last.pt and test_files.txt (the test split's audio, for
pre_trained_models.py @runs/NAME/test_files.txt), and logs to Weights & Biases (offline by default).
"""
from __future__ import annotations

import sys

from cache import open_cache
from config import AudioConfig, RunConfig, load_config
from distributed import Dist, cleanup, quiet_unless_main, setup
from models import MODELS
from models_utils import CheckpointError, model_audio
from seeds import seed_list, train_seeds
from test import evaluate_only
from train import train
from utils import DataError, demo_if_no_fma


def main(argv=None) -> int:
    run, audio, given = load_config(argv, description=__doc__.splitlines()[0])
    if run.model not in MODELS:
        print(f"error: unknown model {run.model!r}: choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    dist = Dist()
    try:
        seeds = seed_list(run.seeds)
        if seeds and (run.resume or run.evaluate_only):
            print("error: --seeds trains new runs and does not combine with --resume or --evaluate-only (rerun "
                  "the --seeds command to continue it: finished seeds are skipped)", file=sys.stderr)
            return 2
        if run.shard is not None and not run.prepare_only:
            raise ValueError("--shard builds one slice of the cache and goes with --prepare-only (training needs "
                             "the whole cache; under torchrun every process builds its slice by itself)")
        dist = setup(run.device)  # torchrun's process group, when there is one
        if dist.enabled and (run.evaluate_only or run.shard is not None):
            raise ValueError(f"--{'evaluate-only' if run.evaluate_only else 'shard'} runs in one process, not under "
                             "torchrun (python main.py ...)")
        with quiet_unless_main(dist):  # each console line once
            return run_main(run, audio, given, seeds, dist)
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup(dist)


def run_main(run: RunConfig, audio: AudioConfig, given: set, seeds: list[int], dist: Dist) -> int:
    """What main.py was asked to do: evaluate, build the cache, or train (one run, or one per seed)."""
    if run.evaluate_only:
        return evaluate_only(demo_if_no_fma(run, given), given)
    if not run.resume:
        run = dist.main_first(lambda: demo_if_no_fma(run, given))  # rank 0 generates it, the others find it
        audio = model_audio(run, audio, given)
    if run.prepare_only:
        open_cache(run, audio, dist)
        return 0
    return train_seeds(run, audio, given, seeds, dist) if seeds else train(run, audio, given, dist=dist)


if __name__ == "__main__":
    sys.exit(main())
