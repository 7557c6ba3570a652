"""Fault injection on training: kill -9 in mid-epoch and in the middle of a checkpoint write, and a full disk
while a checkpoint is written. After each fault best.pt and last.pt load, and `--resume` reaches the metrics of
the uninterrupted run (conftest.run_a: the same 3-epoch CNN1D run on the demo set).

    pytest tests/test_train_faults.py
"""
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import ROOT, assert_same_run, demo_args, metrics, run_main
from models_utils import load_checkpoint

pytestmark = pytest.mark.slow  # minutes of work: pytest -m "not slow" leaves it out

EPOCHS = 3


def check_checkpoints(out):
    """last.pt and best.pt load; best.pt holds the best epoch of the history that last.pt claims, or an epoch
    after it (killed between the two writes: --resume recomputes that epoch and rewrites best.pt).
    Returns last.pt's epoch."""
    last, best = load_checkpoint(out / "last.pt"), load_checkpoint(out / "best.pt")
    history = last["history"]
    assert len(history) == last["epoch"] >= 1
    accuracies = [row["val_accuracy"] for row in history]
    if best["epoch"] <= last["epoch"]:
        assert best["epoch"] == accuracies.index(max(accuracies)) + 1, (best["epoch"], accuracies)
    return last["epoch"]


def resume_to_the_end(out, demo):
    r = run_main("--resume", out, "--cache-dir", demo / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"epoch   {EPOCHS}/{EPOCHS}" in r.stdout


DRIVER = textwrap.dedent('''
    """main.py that kills itself (SIGKILL) at optimizer step STEP, or halfway through writing NAME.pt of epoch EPOCH
    (half the checkpoint's bytes reach the disk; for best.pt, epoch EPOCH is made to improve on validation, so that
    it writes best.pt for sure):  driver.py ROOT step STEP ARGS  |  driver.py ROOT write NAME EPOCH ARGS"""
    import io, os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import main, models_utils, train
    from torch.optim.optimizer import register_optimizer_step_post_hook
    mode = sys.argv[2]
    if mode == "step":
        at, args, steps = int(sys.argv[3]), sys.argv[4:], [0]
        if "--resume" in args:  # count from the steps the resumed run has done: STEP is a global step
            run = args[args.index("--resume") + 1]
            steps[0] = models_utils.load_checkpoint(os.path.join(run, "last.pt"))["global_step"]

        def step(optimizer, args, kwargs):
            steps[0] += 1
            if steps[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)

        register_optimizer_step_post_hook(step)
    else:
        name, epoch, args, real_save = sys.argv[3], int(sys.argv[4]), sys.argv[5:], models_utils.torch.save

        def save(state, f):
            if os.path.basename(f.name) == name + ".pt.tmp" and state["epoch"] == epoch:
                data = io.BytesIO()
                real_save(state, data)
                f.write(data.getvalue()[: len(data.getvalue()) // 2])
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)
            real_save(state, f)

        models_utils.torch.save = save
        if name == "best":
            real_metric, epochs = train.selection_metric, [0]

            def selection_metric(*a):
                epochs[0] += 1
                return real_metric(*a) + (1e3 if epochs[0] >= epoch else 0.0)

            train.selection_metric = selection_metric
    sys.exit(main.main(args))
''')


def run_killed(tmp_path, *args):
    """Run DRIVER with `args`; assert that it died of SIGKILL."""
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    r = subprocess.run([sys.executable, driver, ROOT, *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stdout + r.stderr


def test_kill_in_mid_epoch_then_resume(run_a, demo, tmp_path):
    """SIGKILL at a random step inside epoch 2, then (resumed) inside epoch 3; resumed again to the end."""
    out, rng = tmp_path / "k", random.Random(0)
    steps = load_checkpoint(run_a / "last.pt")["global_step"] // EPOCHS  # optimizer steps per epoch
    run_killed(tmp_path, "step", rng.randint(steps + 2, 2 * steps - 1),
               *demo_args(demo, out, "--epochs", EPOCHS, "--wandb", "disabled"))
    assert check_checkpoints(out) == 1
    run_killed(tmp_path, "step", rng.randint(2 * steps + 2, 3 * steps - 1), "--resume", out,
               "--cache-dir", demo / "cache")
    assert check_checkpoints(out) == 2
    resume_to_the_end(out, demo)
    check_checkpoints(out)
    assert_same_run(out, run_a)


@pytest.mark.parametrize("name", ["best", "last"])
def test_kill_while_writing_a_checkpoint_then_resume(name, run_a, demo, tmp_path):
    """Killed halfway through writing best.pt (epoch 2 made to improve, so that it writes one) or last.pt of epoch 2:
    both checkpoints of epoch 1 load, and --resume reaches the uninterrupted run. Which epoch truly improves
    depends on the machine's floats, so best.pt's epoch is read from the reference run."""
    epoch, out = 2, tmp_path / "w"
    run_killed(tmp_path, "write", name, epoch, *demo_args(demo, out, "--epochs", EPOCHS, "--wandb", "disabled"))
    assert (out / f"{name}.pt.tmp").stat().st_size > 0  # the torn write is there, beside the intact checkpoints
    assert check_checkpoints(out) == epoch - 1  # last.pt still claims the epoch before: rerun on --resume
    acc = [float(row["val_accuracy"]) for row in metrics(run_a)]
    best = 1 if name == "best" or acc[1] <= acc[0] else 2  # best.pt of epoch 2 is written before last.pt
    assert load_checkpoint(out / "best.pt")["epoch"] == best
    resume_to_the_end(out, demo)
    assert not (out / f"{name}.pt.tmp").exists()
    check_checkpoints(out)
    assert_same_run(out, run_a)


def test_disk_full_while_writing_a_checkpoint(run_a, demo, tmp_path):
    """The checkpoints of epoch 2 go to /dev/full (ENOSPC from the kernel): a clear error, exit 2, the epoch-1
    checkpoints intact; with space again, --resume finishes the run."""
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full on this system")
    out = tmp_path / "f"
    r = run_main(*demo_args(demo, out, "--epochs", 1, "--wandb", "disabled"))
    assert r.returncode == 0, r.stderr
    before = {n: (out / n).read_bytes() for n in ("best.pt", "last.pt")}
    for name in ("best", "last"):
        (out / f"{name}.pt.tmp").symlink_to("/dev/full")
    r = run_main("--resume", out, "--epochs", 2, "--cache-dir", demo / "cache")
    assert r.returncode == 2, r.stdout + r.stderr
    error = r.stderr.strip().splitlines()[-1]
    assert error.startswith("error: could not write the checkpoint") and "No space left on device" in error, error
    assert "intact" in error and "Traceback" not in r.stderr
    assert {n: (out / n).read_bytes() for n in before} == before  # the previous checkpoints, byte for byte
    assert check_checkpoints(out) == 1
    failed = error.split()[5]  # the checkpoint whose write failed: its temporary file is gone
    assert not Path(failed + ".tmp").is_symlink()
    for link in out.glob("*.pt.tmp"):  # space again
        link.unlink()
    r = run_main("--resume", out, "--epochs", 2, "--cache-dir", demo / "cache")
    assert r.returncode == 0, r.stdout + r.stderr
    assert check_checkpoints(out) == 2
    assert [row["epoch"] for row in metrics(out)] == ["1", "2"]
