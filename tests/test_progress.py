"""Per-batch progress bars (models_utils.BatchProgress, in train_one_epoch and test.evaluate): shown on a terminal,
silent through a pipe and with --quiet, and never in the way of the one line per epoch. Also what --help
and the data errors tell the user: --model's choices come from models.MODELS, and a download hint names
the subset that was asked for."""
import fcntl
import io
import os
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time

import pytest

from conftest import DATA, ROOT, demo_args, metrics, run_main

EPOCH_LINE = re.compile(r"^epoch +1/1  train loss \d+\.\d{4} acc \d\.\d{3}  \|  val loss ")
BAR_NOISE = ("\r", "%|", "clips/s,")  # carriage returns, a bar's '45%|', its postfix


def tiny(demo, out, *extra):
    return demo_args(demo, out, "--epochs", 1, "--wandb", "disabled", "--eval-crops", 2, *extra)


def run_on_terminal(args, timeout=300, columns=120) -> str:
    """`python main.py ARGS` (`python -c CODE` for ARGS ["-c", CODE]) with stdout and stderr on a
    pseudo-terminal of `columns` columns (0: one that reports no size, as under `script`) and no output
    post-processing, so '\\n' stays '\\n'; returns everything it wrote. TQDM_MININTERVAL=0 makes tqdm
    draw on every batch, so a tiny run shows its bar for sure."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40 if columns else 0, columns, 0, 0))
    attrs = termios.tcgetattr(slave)
    attrs[1] &= ~termios.OPOST  # oflag: no '\n' -> '\r\n', so any '\r' is the program's own
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    env = {**os.environ, "TQDM_MININTERVAL": "0"}
    args = args if args[0] == "-c" else [ROOT / "main.py", *args]
    proc = subprocess.Popen([sys.executable, *map(str, args)], cwd=ROOT, env=env,
                            stdin=subprocess.DEVNULL, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks, deadline = [], time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if select.select([master], [], [], 1.0)[0]:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end of the terminal
                    break
                if not data:
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            pytest.fail(f"main.py did not finish within {timeout} s on the pseudo-terminal")
        assert proc.wait(timeout=30) == 0, b"".join(chunks).decode(errors="replace")[-4000:]
    finally:
        os.close(master)
    return b"".join(chunks).decode(errors="replace")


def rendered(line: str) -> str:
    """What a terminal shows for one line: each '\\r' returns to column 0 and overwrites from there."""
    screen: list[str] = []
    for part in line.split("\r"):
        screen[:len(part)] = part
    return "".join(screen).rstrip()


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_bars_on_a_terminal_silent_through_a_pipe(demo, tmp_path):
    piped = run_main(*tiny(demo, tmp_path / "piped"))
    assert piped.returncode == 0, piped.stdout + piped.stderr
    for noise in BAR_NOISE:
        assert noise not in piped.stdout + piped.stderr, noise
    epoch_lines = [line for line in piped.stdout.splitlines() if line.startswith("epoch ")]
    assert len(epoch_lines) == 1 and EPOCH_LINE.match(epoch_lines[0]), piped.stdout

    shown = run_on_terminal(tiny(demo, tmp_path / "tty"))
    assert "\r" in shown and "clips/s" in shown and "%|" in shown
    assert re.search(r"train: +\d+%\|.*loss \d+\.\d{4}, [\d,]+ clips/s", shown), shown[-2000:]
    assert re.search(r"evaluate: +\d+%\|.*loss \d+\.\d{4}, [\d,]+ clips/s", shown), shown[-2000:]
    # the bars are erased before the epoch line: on screen it reads exactly as through the pipe
    screen = [rendered(line) for line in shown.split("\n")]
    tty_epoch = [line for line in screen if "epoch " in line and "/1 " in line]
    assert len(tty_epoch) == 1 and EPOCH_LINE.match(tty_epoch[0]), tty_epoch
    assert not any("%|" in line for line in screen), [line for line in screen if "%|" in line]
    assert metrics(tmp_path / "tty") == metrics(tmp_path / "piped")  # the bars do not touch the numbers

    quiet = run_on_terminal(tiny(demo, tmp_path / "quiet", "--quiet"))
    for noise in BAR_NOISE:
        assert noise not in quiet, noise
    assert any(EPOCH_LINE.match(line) for line in quiet.splitlines())


@pytest.mark.skipif(not hasattr(os, "openpty"), reason="needs a pseudo-terminal")
def test_bar_on_a_terminal_of_unknown_size():
    """tqdm draws nothing on a terminal that reports 0 columns (script -qc ... with output to a file,
    some CI runners); BatchProgress falls back to a fixed-width bar there."""
    code = ("from models_utils import BatchProgress\n"
            "with BatchProgress([None] * 3, True, 'train') as bar:\n"
            "    for _ in range(3): bar.update(4, 1.0)\n")
    shown = run_on_terminal(["-c", code], columns=0)
    assert re.search(r"train: +100%\|.*\| 3/3 .*loss 1\.0000, [\d,]+ clips/s", shown), shown


def test_batch_progress_is_off_unless_asked_and_on_a_terminal(monkeypatch):
    from models_utils import BatchProgress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    batches = [None] * 5
    monkeypatch.setattr(sys, "stderr", io.StringIO())  # not a terminal
    with BatchProgress(batches, True, "train") as bar:
        assert not bar.shown
        bar.update(4, 1.0)
    assert sys.stderr.getvalue() == ""
    monkeypatch.setattr(sys, "stderr", Terminal())
    with BatchProgress(batches, False, "train") as bar:  # a terminal, but not asked (e.g. --quiet)
        assert not bar.shown
    assert sys.stderr.getvalue() == ""
    with BatchProgress(batches, True, "train", max_steps=3) as bar:
        assert bar.shown and bar.bar.total == 3
        bar.update(2, 1.0)
        bar.update(2, 3.0)  # running mean over clips: (2 * 1 + 2 * 3) / 4
        assert re.fullmatch(r"loss 2\.0000, [\d,]+ clips/s", bar.bar.postfix)
        bar.update(1)  # no loss: the mean so far stays
        assert bar.bar.n == 3 and bar.bar.postfix.startswith("loss 2.0000, ")
    assert "\r" in sys.stderr.getvalue() and "train:" in sys.stderr.getvalue()


def test_train_and_evaluate_are_silent_by_default(monkeypatch):
    """bench.py, tune.py and the tests call train_one_epoch and evaluate without `progress`: no bar, even
    on a terminal."""
    import torch
    from models import ModelConfig, build_model
    from test import evaluate
    from train import train_one_epoch

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn1d", n_classes=3, n_mels=16))
    batches = [(torch.randn(4, 16, 64), torch.tensor([0, 1, 2, 0])) for _ in range(3)]
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    tr = train_one_epoch(model, batches, optimizer, torch.device("cpu"))
    va = evaluate(model, batches, torch.device("cpu"), ["a", "b", "c"])
    assert sys.stderr.getvalue() == ""
    assert tr["clips"] == 12 and va["loss"] > 0
    shown = train_one_epoch(model, batches, optimizer, torch.device("cpu"), progress=True)
    assert shown["clips"] == 12 and "train:" in sys.stderr.getvalue()


# ------------------------------------------------------------------------------ --help and download hints

def test_help_lists_every_registered_model():
    from models import MODELS
    r = run_main("--help")
    assert r.returncode == 0, r.stderr
    assert "--model {" + ",".join(MODELS) + "}" in r.stdout
    assert "--quiet" in r.stdout and "no progress bars (they only show on a terminal anyway)" in " ".join(r.stdout.split())
    r = run_main("--model", "resnet9000")
    assert r.returncode == 2 and f"unknown model 'resnet9000': choose from {', '.join(MODELS)}" in r.stderr


def test_config_does_not_import_torch():
    """The model registry is read when the parser is built, not when config is imported."""
    code = "import sys, config; assert 'torch' not in sys.modules and 'models' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


@pytest.mark.parametrize("subset", ["medium", "large"])
def test_download_hint_names_the_subset_asked_for(tmp_path, subset):
    from config import AudioConfig
    from cache import prepare_cache
    from collection import DataError
    shutil.copytree(DATA / "fma_metadata", tmp_path / "fma_metadata")  # metadata, but no fma_<subset>/
    with pytest.raises(DataError, match=rf"no audio folder fma_{subset}/.*`bash download_data.sh {subset} "):
        prepare_cache(tmp_path, subset, AudioConfig(), cache_dir=tmp_path / "cache")
    with pytest.raises(DataError, match=rf"tracks.csv not found.*`bash download_data.sh {subset} "):
        prepare_cache(tmp_path / "empty", subset, AudioConfig(), cache_dir=tmp_path / "cache")


def test_main_hint_for_a_missing_medium_folder(tmp_path):
    shutil.copytree(DATA / "fma_metadata", tmp_path / "fma_metadata")
    r = run_main("--data-dir", tmp_path, "--subset", "medium", "--prepare-only")
    assert r.returncode != 0
    assert f"bash download_data.sh medium --data-dir {tmp_path}" in r.stderr, r.stderr
    assert "download_data.sh small" not in r.stdout + r.stderr
