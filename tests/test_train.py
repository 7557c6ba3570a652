"""Training, evaluation, checkpoints and logging through main.py (train.py, test.py, models_utils.py)."""
import json

import numpy as np
import pytest
import torch

from conftest import NO_AUG, assert_same_run, demo_args, make_large_tree, metrics, results, run_main, tiny_tree
from models import MODELS
from test_data import damage

FAST = ["--epochs", 1, "--batch-size", 4, "--crop-seconds", 3, "--eval-crops", 2, "--wandb", "disabled", *NO_AUG]


@pytest.fixture(scope="module")
def broken_large_tree(tmp_path_factory):
    """The real-format 30-track tree with five damaged clips (see test_data.damage)."""
    root = make_large_tree(tmp_path_factory.mktemp("large") / "fma")
    damage(root)
    return root


@pytest.mark.parametrize("model", sorted(MODELS))
def test_every_model_one_epoch_on_real_tree_with_broken_clips(model, broken_large_tree, tmp_path):
    out = tmp_path / "run"
    r = run_main("--data-dir", broken_large_tree, "--subset", "large", "--cache-dir", broken_large_tree / "cache",
                 "--model", model, *FAST, "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "prepared 30 tracks: 25 ok, 5 failed" in r.stdout
    for name in ("config.json", "metrics.csv", "results.json", "curves.png", "best.pt", "last.pt"):
        assert (out / name).is_file(), name
    assert not (out / "wandb").exists()  # --wandb disabled writes nothing
    state = torch.load(out / "best.pt", weights_only=True)
    assert state["model_config"]["name"] == model and state["epoch"] == 1
    n_mels = getattr(MODELS[model], "audio", {}).get("n_mels", 128)  # a model's own audio parameters (musicnn: 96)
    assert state["audio"]["n_mels"] == n_mels and state["mean"].shape == (n_mels,)


def test_whole_clip_training(broken_large_tree, tmp_path):
    r = run_main("--data-dir", broken_large_tree, "--subset", "large", "--cache-dir", broken_large_tree / "cache",
                 "--model", "crnn", "--epochs", 1, "--batch-size", 4, "--crop-seconds", 0, "--wandb", "disabled",
                 "--out", tmp_path / "run")
    assert r.returncode == 0, r.stderr
    assert torch.load(tmp_path / "run" / "best.pt", weights_only=True)["crop_frames"] is None


def test_learns_the_demo_set(demo, tmp_path):
    """A narrow CRNN learns the small demo set well above chance (1/8) on the held-out test split."""
    out = tmp_path / "crnn"
    r = run_main("--data-dir", demo / "data", "--cache-dir", demo / "cache", "--out", out, "--model", "crnn",
                 "--width", 8, "--batch-size", 16, "--crop-seconds", 2, "--eval-crops", 3, "--lr", 5e-3,
                 "--epochs", 10, "--wandb", "disabled", *NO_AUG)
    assert r.returncode == 0, r.stderr
    res = json.loads((out / "results.json").read_text())
    hist = metrics(out)
    assert float(hist[-1]["train_loss"]) < 0.5 * float(hist[0]["train_loss"])
    assert res["test"]["accuracy"] >= 0.3, res["test"]  # 16 test tracks; chance is 0.125
    cm = np.array(res["test"]["confusion_matrix"])
    assert cm.shape == (8, 8) and cm.sum() == res["test_tracks"] == 16
    assert set(res["test"]["per_class"]) == set(res["classes"])


def test_run_directory_and_wandb_offline(run_a):
    for name in ("config.json", "metrics.csv", "results.json", "confusion_matrix.png", "curves.png", "best.pt", "last.pt"):
        assert (run_a / name).is_file(), name
    assert len(metrics(run_a)) == 3
    assert list((run_a / "wandb").glob("offline-run-*/run-*.wandb"))  # W&B offline run recorded locally
    state = torch.load(run_a / "last.pt", weights_only=True)
    for key in ("model", "optimizer", "scheduler", "epoch", "best_metric", "model_config", "rng", "classes",
                "audio", "mean", "std"):
        assert key in state
    assert state["epoch"] == 3


def test_same_seed_same_metrics(run_a, demo, tmp_path):
    out = tmp_path / "b"
    assert run_main(*demo_args(demo, out, "--epochs", 3, "--wandb", "disabled")).returncode == 0
    assert metrics(out) == metrics(run_a)
    assert results(out)["test"] == results(run_a)["test"]


def test_resume_continues_where_it_stopped(run_a, demo, tmp_path):
    out = tmp_path / "c"
    assert run_main(*demo_args(demo, out, "--epochs", 2, "--wandb", "disabled")).returncode == 0
    assert torch.load(out / "last.pt", weights_only=True)["epoch"] == 2
    r = run_main("--resume", out, "--epochs", 3, "--cache-dir", demo / "cache")
    assert r.returncode == 0, r.stderr
    assert "resuming" in r.stdout and "epoch   3/3" in r.stdout and "epoch   1/3" not in r.stdout
    assert_same_run(out, run_a)


def test_evaluate_only_reproduces_results(run_a, demo, tmp_path):
    r = run_main("--evaluate-only", "--checkpoint", run_a / "best.pt", "--data-dir", demo / "data",
                 "--cache-dir", demo / "cache", "--out", tmp_path / "e", "--wandb", "disabled")
    assert r.returncode == 0, r.stderr
    assert results(tmp_path / "e")["test"] == results(run_a)["test"]


def test_bad_options_fail_loudly(tmp_path):
    r = run_main("--no-such-option")
    assert r.returncode == 2 and "unknown option --no-such-option" in r.stderr
    preset = tmp_path / "p.yaml"
    preset.write_text("model: cnn1d\nlearning_rat: 0.1\n")
    r = run_main("--config", preset)
    assert r.returncode != 0 and "learning_rat" in r.stderr
    r = run_main("--model", "resnet9000", "--prepare-only")
    assert r.returncode == 2 and "unknown model" in r.stderr
    r = run_main("--evaluate-only", "--checkpoint", tmp_path / "missing.pt")
    assert r.returncode == 2 and "not found" in r.stderr


def test_augment_masks_only_in_training():
    from augment import Augment
    torch.manual_seed(0)
    x = torch.ones(64, 128, 100)
    y = Augment(freq_masks=2, freq_width=16, time_masks=2, time_width=20).masks(x)
    zero_bands = (y == 0).all(dim=2).float().sum(1).mean()  # masked mel bands per clip
    zero_frames = (y == 0).all(dim=1).float().sum(1).mean()
    assert 5 < zero_bands < 32 and 5 < zero_frames < 40
    assert torch.equal(Augment().masks(x), x)  # no masks configured: untouched


def test_production_augmentation_changes_levels_not_timing():
    from augment import Augment
    torch.manual_seed(0)
    x = torch.randn(3, 128, 50)
    assert Augment().production(x) is x  # off by default
    std = torch.full((128,), 5.0)
    eq = Augment(eq_db=6.0, band_std=std).production(x) - x
    assert torch.allclose(eq, eq[:, :, :1].expand_as(eq), atol=1e-6)  # one offset per band, same at every frame
    assert eq.abs().max() <= 6.0 / 5.0 + 1e-6 and eq.abs().max() > 0.3  # within +-6 dB, in standardised units
    assert (eq[0, :, 0] - eq[1, :, 0]).abs().max() > 0.1  # a different curve per clip
    assert (eq[0, 1:, 0] - eq[0, :-1, 0]).abs().max() < 0.1  # smooth over the mel axis
    y = Augment(contrast=0.5).production(x)
    assert torch.allclose(y.mean(2), x.mean(2), atol=1e-5)  # band means kept
    ratio = (y - y.mean(2, keepdim=True)).std(2) / (x - x.mean(2, keepdim=True)).std(2)
    assert ratio.min() >= 2 ** -0.5 - 1e-4 and ratio.max() <= 2 ** 0.5 + 1e-4 and ratio.std() > 0.01


def test_no_fma_and_no_data_dir_falls_back_to_the_demo_set(tmp_path, monkeypatch):
    import demo_data
    import main
    from config import RunConfig
    calls = []
    monkeypatch.setattr(demo_data, "main", lambda argv: calls.append(argv))
    base = tmp_path / "data"
    run = main.demo_if_no_fma(RunConfig(data_dir=str(base)), given=set())
    assert run.data_dir == str(base / "demo") and calls == [["--out", str(base / "demo")]]
    explicit = RunConfig(data_dir=str(base))  # --data-dir given: an error later, never a silent switch
    assert main.demo_if_no_fma(explicit, given={"data_dir"}) is explicit
    (base / "fma_metadata").mkdir(parents=True)
    (base / "fma_metadata" / "tracks.csv").write_text("")
    assert main.demo_if_no_fma(RunConfig(data_dir=str(base)), given=set()).data_dir == str(base)
    assert len(calls) == 1


def test_the_one_loss_is_the_training_and_the_validation_loss(tmp_path, monkeypatch):
    """loss.Loss is the loss of both: changed in its one place (here: + 1 to every loss it computes, which leaves
    the gradients alone), the training and the validation losses change alike and nothing else does."""
    import main
    from loss import Loss
    data = tiny_tree(tmp_path / "fma")
    args = ["--data-dir", data, "--cache-dir", tmp_path / "cache", "--model", "cnn1d", "--epochs", 2,
            "--batch-size", 2, "--crop-seconds", 2, "--eval-crops", 2, "--wandb", "disabled", "--bootstrap", 0,
            "--quiet", "--threads", 1]
    assert main.main([*map(str, args), "--out", str(tmp_path / "a")]) == 0
    real = Loss.__call__
    monkeypatch.setattr(Loss, "__call__", lambda self, logits, target: real(self, logits, target) + 1.0)
    assert main.main([*map(str, args), "--out", str(tmp_path / "b")]) == 0
    for a, b in zip(metrics(tmp_path / "a"), metrics(tmp_path / "b"), strict=True):
        for key in a:
            shift = 1.0 if key in ("train_loss", "val_loss") else 0.0
            assert float(b[key]) == pytest.approx(float(a[key]) + shift, rel=1e-6), key
    assert results(tmp_path / "b")["test"]["loss"] == pytest.approx(results(tmp_path / "a")["test"]["loss"] + 1)
