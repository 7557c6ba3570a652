"""Training and cache builds under torchrun on CPU (gloo): a 2-process run writes one run directory (one
metrics.csv, one W&B run, loadable checkpoints), prints each epoch line once, reports the test numbers of
a single-process evaluation, and resumes; a 2-process cache build equals a 1-process one byte for byte.
Without torchrun's environment nothing is distributed."""
import json
import os
import subprocess
import sys

import pytest
import torch

import distributed
from conftest import ROOT, demo_args, metrics, run_main
from distributed import Dist, ShardedBatches, WeightedSampler
from config import parse_shard
from models_utils import load_checkpoint

pytestmark = pytest.mark.slow  # minutes of work: pytest -m "not slow" leaves it out

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
CACHE_FILES = ("features.npy", "index.csv", "meta.json", "started.json")


def torchrun(*args, timeout=300):
    """`torchrun --standalone --nproc_per_node 2 main.py ARGS` (one CPU thread per process)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([*TORCHRUN, str(ROOT / "main.py"), *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def epoch_lines(stdout: str) -> list[str]:
    return [ln.split()[1] for ln in stdout.splitlines() if ln.startswith("epoch ")]


def wandb_runs(out) -> set[str]:
    """The W&B run ids under a run directory (an offline run resumed keeps its id)."""
    return {p.name.rsplit("-", 1)[1] for p in (out / "wandb").glob("offline-run-*")}


def test_two_processes_train_one_run_and_resume_it(demo, run_a, tmp_path):
    runs = tmp_path / "runs"
    out = runs / "ddp"
    r = torchrun(*demo_args(demo, out, "--epochs", 2, "--wandb", "offline"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert epoch_lines(r.stdout) == ["1/2", "2/2"]  # each epoch line once: rank 1 prints nothing
    assert r.stdout.count("test: accuracy") == 1
    assert "2 processes (gloo): 8 clips per process and step, a global batch of 16" in r.stdout
    assert [p.name for p in runs.iterdir()] == ["ddp"]
    assert len(metrics(out)) == 2
    assert len(wandb_runs(out)) == 1
    for name in ("best.pt", "last.pt"):
        assert load_checkpoint(out / name)["model_config"]["name"] == "cnn1d"
    assert json.loads((out / "config.json").read_text())["distributed"] == {"world_size": 2, "backend": "gloo"}
    ours = json.loads((out / "results.json").read_text())
    single = json.loads((run_a / "results.json").read_text())
    assert ours.keys() == single.keys() and ours["test"].keys() == single["test"].keys()

    # the test numbers are those of one process evaluating best.pt: every clip's probabilities, to the digit
    ev = run_main("--evaluate-only", "--checkpoint", out / "best.pt", "--data-dir", demo / "data",
                  "--cache-dir", demo / "cache", "--out", tmp_path / "evaluate")
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "evaluate" / "results.json").read_text())["test"] == ours["test"]
    assert (tmp_path / "evaluate" / "test_predictions.csv").read_text() == (out / "test_predictions.csv").read_text()

    before = metrics(out)
    r = torchrun("--resume", out, "--epochs", 3)
    assert r.returncode == 0, r.stdout + r.stderr
    assert epoch_lines(r.stdout) == ["3/3"]
    rows = metrics(out)
    assert len(rows) == 3 and rows[:2] == before
    assert load_checkpoint(out / "last.pt")["epoch"] == 3
    assert len(wandb_runs(out)) == 1  # the same W&B run, continued


def test_two_process_cache_build_equals_one_process_build(demo, tmp_path):
    r = torchrun("--data-dir", demo / "data", "--cache-dir", tmp_path / "cache", "--prepare-only", timeout=200)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("prepared ") == 1
    ours = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())
    single = demo / "cache" / ours.name  # built by one process (the demo fixture)
    assert sorted(p.name for p in ours.iterdir()) == sorted(p.name for p in single.iterdir())
    for name in CACHE_FILES:
        assert (ours / name).read_bytes() == (single / name).read_bytes(), name


def test_no_torchrun_environment_is_one_process():
    assert distributed.from_env({}) == Dist()
    assert distributed.setup("cpu", environ={}) == Dist()
    assert Dist().seed(1234) == 1234  # a single process keeps its seeds
    with pytest.raises(ValueError, match="inconsistent"):
        distributed.from_env({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"})


def test_ranks_seed_apart_and_share_out_the_batches():
    ranks = [Dist(rank=r, world_size=3) for r in range(3)]
    assert len({d.seed(b) for d in ranks for b in range(100)}) == 300
    sharded = [ShardedBatches(10, 3, d) for d in ranks]  # batches [0-2] [3-5] [6-8] [9] of one process
    assert [list(s) for s in sharded] == [[[0, 1, 2], [9]], [[3, 4, 5]], [[6, 7, 8]]]
    weights = torch.tensor([1.0, 2.0, 3.0, 4.0, 5.0])
    draws = []
    for d in ranks:
        sampler = WeightedSampler(weights, 7, d, seed=5)
        sampler.set_epoch(2)
        draws.append(list(sampler))
    assert [len(x) for x in draws] == [3, 3, 3]
    one = torch.multinomial(weights.double(), 9, replacement=True, generator=torch.Generator().manual_seed(7))
    assert [i for k in range(3) for i in (draws[0][k], draws[1][k], draws[2][k])] == one.tolist()


def test_shard_option_is_checked(demo, tmp_path):
    assert parse_shard("1/4") == (1, 4)
    for bad in ("4/4", "-1/2", "1", "a/b", "1/0"):
        with pytest.raises(ValueError, match="K/N"):
            parse_shard(bad)
    r = run_main("--data-dir", demo / "data", "--shard", "0/2")
    assert r.returncode == 2 and "goes with --prepare-only" in r.stderr
