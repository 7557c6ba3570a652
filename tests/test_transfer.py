"""Transfer learning through main.py: --init (models_utils.load_backbone), --freeze-backbone, a model's
own audio parameters and normalisation (musicnn: 16 kHz, n_fft 512, hop 256, 96 mels, unstandardised),
and the checks that refuse a checkpoint of another architecture or other features.

The pretrained checkpoint is made here, with random weights, by convert_musicnn.checkpoint (the function
that writes pretrained/musicnn_msd.pt): the tests need neither TensorFlow nor the converted files.
"""
import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from config import AudioConfig, load_config
from conftest import run_main
from convert_musicnn import MSD_TAGS, PATCH_FRAMES, checkpoint
from models_utils import model_audio
from train import normalisation
from models import ModelConfig, Musicnn, build_model
from models_utils import load_backbone, load_checkpoint, save_checkpoint

FAST = ["--epochs", 1, "--batch-size", 32, "--crop-seconds", 0.5, "--eval-crops", 2, "--lr", 1e-2,
        "--scheduler", "plateau", "--wandb", "disabled"]  # plateau: --resume may add epochs
N_MELS = Musicnn.audio["n_mels"]
HEAD = ["head.weight", "head.bias"]
DB_FLOOR = -80.0  # random log-mel dB in [DB_FLOOR, 0] calibrate the random model's BatchNorms


def random_musicnn(n_mels=N_MELS, **sizes):
    """A musicnn of 50 tags with random weights, none of them at its fresh initialisation (so a model that
    did not load them cannot match them by chance), and BatchNorm statistics of one batch of dB-like
    input (plausible activations in eval mode, as in a trained model)."""
    torch.manual_seed(1)
    model = build_model(ModelConfig(name="musicnn", n_classes=len(MSD_TAGS), n_mels=n_mels, **sizes))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.rand_like(p))
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.momentum = None  # running statistics = the cumulative average: here, this one batch's
        model.train()(DB_FLOOR * torch.rand(16, n_mels, PATCH_FRAMES))
    return model.eval()


def write_pretrained(path, model, **audio):
    state = checkpoint(model, MSD_TAGS, "MSD", "test", 0.5, 0.5, "random weights (tests)")
    state["audio"].update(audio)
    n_mels = state["audio"]["n_mels"]
    state["mean"], state["std"] = torch.zeros(n_mels), torch.ones(n_mels)
    save_checkpoint(path, state)
    return path


def backbone(state: dict) -> dict:
    """Every tensor of a checkpoint's model but the head's: parameters and buffers."""
    return {k: v for k, v in state["model"].items() if not k.startswith("head.")}


def musicnn_args(demo, init, out, *extra):
    return ["--data-dir", demo / "data", "--cache-dir", demo / "cache", "--out", out, "--model", "musicnn",
            "--init", init, *FAST, *extra]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    return write_pretrained(tmp_path_factory.mktemp("pretrained") / "musicnn_msd.pt", random_musicnn())


@pytest.fixture(scope="module")
def frozen_run(demo, pretrained, tmp_path_factory):
    """One epoch of the head alone on the pretrained (random) musicnn backbone."""
    out = tmp_path_factory.mktemp("runs") / "frozen"
    r = run_main(*musicnn_args(demo, pretrained, out, "--freeze-backbone"))
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


@pytest.fixture(scope="module")
def finetune_run(demo, pretrained, tmp_path_factory):
    """One epoch of every weight, from the pretrained (random) musicnn."""
    out = tmp_path_factory.mktemp("runs") / "finetune"
    r = run_main(*musicnn_args(demo, pretrained, out))
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def test_load_backbone_puts_the_pretrained_values_in_a_new_model(pretrained):
    state = load_checkpoint(pretrained)
    model = build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=N_MELS))
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("head.")}
    loaded, fresh = load_backbone(model, state)
    assert fresh == HEAD and loaded == list(backbone(state))  # of another shape: left fresh
    after = model.state_dict()
    for k, v in backbone(state).items():
        assert torch.equal(after[k], v), k
    for k, v in fresh_head.items():
        assert torch.equal(after[k], v), k
    same = build_model(ModelConfig(name="musicnn", n_classes=len(MSD_TAGS), n_mels=N_MELS))
    assert load_backbone(same, state)[1] == []  # same classes: the head is loaded too ...
    assert torch.equal(same.state_dict()["head.weight"], state["model"]["head.weight"])
    assert load_backbone(same, state, fresh_head=True)[1] == HEAD  # ... unless new classes are asked for


def test_load_backbone_refuses_another_architecture(pretrained):
    state = load_checkpoint(pretrained)
    with pytest.raises(ValueError, match=r"other shape: timbral\.0\.conv\.weight"):
        load_backbone(build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=128)), state)
    with pytest.raises(ValueError, match=r"other shape: midend\.0\.conv\.weight"):
        load_backbone(build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=N_MELS, width=32)), state)
    with pytest.raises(ValueError, match="missing from the checkpoint: features"):
        load_backbone(build_model(ModelConfig(name="crnn", n_classes=8)), state)
    partial = {**state, "model": {k: v for k, v in state["model"].items() if k != "input_bn.running_var"}}
    with pytest.raises(ValueError, match=r"missing from the checkpoint: input_bn\.running_var$"):
        load_backbone(build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=N_MELS)), partial)


def test_frozen_backbone_keeps_every_pretrained_tensor(frozen_run, pretrained):
    out, _ = frozen_run
    init = load_checkpoint(pretrained)
    for name in ("best.pt", "last.pt"):
        state = load_checkpoint(out / name)
        assert backbone(state).keys() == backbone(init).keys()
        for k, v in backbone(init).items():  # parameters, BatchNorm statistics and counters
            assert torch.equal(state["model"][k], v), f"{name}: {k} changed"
        assert state["model"]["head.weight"].shape == (8, init["model"]["head.weight"].shape[1])
        assert state["model"]["head.bias"].abs().sum() > 0  # trained from its fresh (zero) bias
        assert state["run_config"]["init"] == str(pretrained) and state["run_config"]["freeze_backbone"]


def test_finetuning_trains_the_backbone_from_the_pretrained_values(finetune_run, pretrained):
    out, _ = finetune_run
    init, state = load_checkpoint(pretrained), load_checkpoint(out / "last.pt")
    changed = [k for k, v in backbone(init).items() if not torch.equal(state["model"][k], v)]
    assert {"timbral.0.conv.weight", "midend.2.conv.weight", "backend.2.weight", "input_bn.running_mean"} \
        <= set(changed)
    assert not state["run_config"]["freeze_backbone"]


def test_report_lists_loaded_and_fresh_tensors(frozen_run, finetune_run, pretrained):
    n_backbone = len(backbone(load_checkpoint(pretrained)))
    for out, stdout in (frozen_run, finetune_run):
        assert (f"init from {pretrained}: loaded {n_backbone} tensors; initialised afresh: head.weight, head.bias"
                in stdout)
        config = json.loads((out / "config.json").read_text())
        assert config["init"]["path"] == str(pretrained)
        assert config["init"]["loaded"] == n_backbone and config["init"]["fresh"] == HEAD
        assert config["init"]["pretrained"]["model"] == "random weights (tests)"
        assert load_checkpoint(out / "best.pt")["init"] == config["init"]
    frozen = json.loads((frozen_run[0] / "config.json").read_text())
    assert frozen["init"]["freeze_backbone"] and frozen["trained_parameters"] == 8 * 200 + 8
    assert "(1,608 trained)" in frozen_run[1]


def test_resume_keeps_the_backbone_frozen(frozen_run, pretrained, demo, tmp_path):
    out = tmp_path / "frozen"
    shutil.copytree(frozen_run[0], out)
    first = load_checkpoint(out / "last.pt")
    r = run_main("--resume", out, "--epochs", 2)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "init from" not in r.stdout  # the weights come from last.pt, not from --init again
    state, init = load_checkpoint(out / "last.pt"), load_checkpoint(pretrained)
    assert state["epoch"] == 2
    for k, v in backbone(init).items():
        assert torch.equal(state["model"][k], v), f"{k} changed after resuming"
    assert not torch.equal(state["model"]["head.weight"], first["model"]["head.weight"])
    assert json.loads((out / "config.json").read_text())["init"] == first["init"]


def test_musicnn_run_uses_its_own_audio_and_no_standardisation(frozen_run, demo):
    state = load_checkpoint(frozen_run[0] / "best.pt")
    assert {k: state["audio"][k] for k in Musicnn.audio} == Musicnn.audio
    assert torch.equal(state["mean"], torch.zeros(N_MELS)) and torch.equal(state["std"], torch.ones(N_MELS))
    caches = [p.name for p in (demo / "cache").iterdir()]
    assert any(n.startswith("small-sr16000-fft512-hop256-mel96-") for n in caches), caches
    # without --init too: the model's audio parameters are defaults, mean 0 / std 1 instead of band_stats
    run, audio, given = load_config(["--model", "musicnn", "--n-mels", "64"])
    audio = model_audio(run, audio, given)
    assert (audio.sample_rate, audio.n_fft, audio.hop_length, audio.n_mels) == (16000, 512, 256, 64)
    mean, std = normalisation(run, SimpleNamespace(audio=audio), [], None)
    assert np.array_equal(mean, np.zeros(64)) and np.array_equal(std, np.ones(64))
    run, audio, given = load_config(["--model", "crnn"])
    assert model_audio(run, audio, given) == AudioConfig()


@pytest.mark.parametrize("preset, frozen, lr", [("musicnn_finetune", False, 1e-4), ("musicnn_frozen", True, 1e-3)])
def test_presets(preset, frozen, lr):
    run, audio, given = load_config(["--config", f"configs/{preset}.yaml"])
    audio = model_audio(run, audio, given)
    assert run.model == "musicnn" and run.init == "pretrained/musicnn_msd.pt"
    assert run.freeze_backbone == frozen and run.lr == lr and run.eval_crops == 10
    assert audio.frames_for(run.crop_seconds) == PATCH_FRAMES


def test_a_preset_names_the_shipped_checkpoint_from_any_folder(tmp_path, monkeypatch):
    """A shipped preset run from another folder finds the shipped checkpoint it names (it was 'checkpoint not
    found'); a relative path that exists from the current folder (the user's own file) is taken as given."""
    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    run, _, _ = load_config(["--config", str(root / "configs" / "musicnn_frozen.yaml")])
    assert Path(run.init) == root / "pretrained" / "musicnn_msd.pt" and Path(run.init).is_file()
    own = tmp_path / "pretrained" / "musicnn_msd.pt"
    own.parent.mkdir()
    own.write_bytes(b"")
    run, _, _ = load_config(["--config", str(root / "configs" / "musicnn_frozen.yaml")])
    assert run.init == "pretrained/musicnn_msd.pt"
    run, _, _ = load_config(["--config", str(root / "configs" / "musicnn_frozen.yaml"), "--init", "mine.pt"])
    assert run.init == "mine.pt"  # the command line's path is the user's, as given


def test_init_of_another_model_or_other_features_is_refused(pretrained, demo, tmp_path):
    """Exit 2 with the reason, before the cache is built or the run directory made."""
    other_mels = write_pretrained(tmp_path / "mel64.pt", random_musicnn(n_mels=64), n_mels=64)
    cases = [
        (["--model", "crnn", "--init", pretrained], "holds a musicnn model, not crnn"),
        (["--model", "musicnn", "--init", other_mels], "n_mels 64 (this run: 96)"),
        (["--model", "musicnn", "--init", pretrained, "--n-mels", 128, "--sample-rate", 22050],
         "sample_rate 16000 (this run: 22050), n_mels 96 (this run: 128)"),
        (["--model", "musicnn", "--freeze-backbone"], "--freeze-backbone needs --init"),
        (["--model", "musicnn", "--init", tmp_path / "absent.pt"], "checkpoint not found"),
    ]
    for args, message in cases:
        out = tmp_path / "run"
        r = run_main("--data-dir", demo / "data", "--cache-dir", tmp_path / "cache", "--out", out, *args, *FAST)
        assert r.returncode == 2, (args, r.stdout + r.stderr)
        assert message in r.stderr and r.stderr.startswith("error: "), r.stderr
        assert not out.exists() and not (tmp_path / "cache").exists()


def test_backbone_of_another_shape_is_refused(pretrained, demo, tmp_path):
    """--width 32 against a width-64 checkpoint: the mid-end convs differ; exit 2, no run directory."""
    out = tmp_path / "run"
    r = run_main(*musicnn_args(demo, pretrained, out, "--width", 32))
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.startswith("error: the checkpoint's musicnn weights do not fit this Musicnn: "
                               "other shape: midend.0.conv.weight (64, 561, 7) (model (32, 561, 7))"), r.stderr
    assert not out.exists()
