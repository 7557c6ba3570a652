"""models.py: shapes on any clip length, input checks, the seed's bugs fixed, config round-trip, init."""
import io
from dataclasses import asdict

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from models import (CRNN, MODELS, ModelConfig, ResBlock2d, build_model, count_parameters, init_weights,
                    parameter_table)

N_CLASSES, N_MELS = 8, 128
# Clip lengths in frames (22,050 Hz, hop 512): about 3 s, 10 s and 30 s; plus each model's minimum.
LENGTHS = (130, 431, 1292)
# Small widths keep the suite fast; default sizes are exercised by the other tests.
FAST = {"shortchunk_res": {"width": 8}, "crnn": {"width": 8}}


def make(name, **kw):
    return build_model(ModelConfig(name=name, n_classes=N_CLASSES, n_mels=N_MELS, **kw))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# ---------------------------------------------------------------------------------- shapes, grads

@pytest.mark.parametrize("name", list(MODELS))
def test_forward_backward_any_length(name):
    model = make(name, **FAST.get(name, {}))
    first = next(p for p in model.parameters())  # the first layer's weight
    for frames in (model.min_frames, *LENGTHS):
        model.zero_grad()
        x = torch.randn(2, N_MELS, frames)
        logits = model(x)
        assert logits.shape == (2, N_CLASSES), (name, frames)
        assert torch.isfinite(logits).all()
        logits.logsumexp(1).sum().backward()
        assert first.grad is not None and torch.isfinite(first.grad).all() and first.grad.abs().sum() > 0, \
            (name, frames)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("name", list(MODELS))
def test_default_size_runs_at_min_frames(name):
    model = make(name).eval()
    with torch.no_grad():
        assert model(torch.randn(2, N_MELS, model.min_frames)).shape == (2, N_CLASSES)


@pytest.mark.parametrize("name", list(MODELS))
def test_too_short_or_wrong_shape_is_value_error(name):
    model = make(name, **FAST.get(name, {}))
    with pytest.raises(ValueError, match=rf"{name}.*min_frames={model.min_frames}"):
        model(torch.randn(2, N_MELS, model.min_frames - 1))
    with pytest.raises(ValueError, match=name):
        model(torch.randn(2, N_MELS + 1, 200))   # wrong number of mel bands
    with pytest.raises(ValueError, match=name):
        model(torch.randn(N_MELS, 200))          # no batch dimension


@pytest.mark.parametrize("name", list(MODELS))
def test_min_frames_is_tight(name, monkeypatch):
    """One frame fewer than min_frames really breaks a layer: the documented minimum is the true one."""
    model = make(name, **FAST.get(name, {})).eval()
    monkeypatch.setattr(model, "check_input", lambda x: x)
    with torch.no_grad():
        model(torch.randn(1, N_MELS, model.min_frames))
        with pytest.raises(RuntimeError):
            model(torch.randn(1, N_MELS, model.min_frames - 1))


@pytest.mark.parametrize("name", [n for n, c in MODELS.items() if c.min_mels > 1])
def test_min_mels(name):
    cls = MODELS[name]
    with pytest.raises(ValueError, match=rf"{name}.*n_mels >= {cls.min_mels}"):
        build_model(ModelConfig(name=name, n_mels=cls.min_mels - 1))
    model = build_model(ModelConfig(name=name, n_mels=cls.min_mels, **FAST.get(name, {})))
    assert model(torch.randn(2, cls.min_mels, 200)).shape == (2, 8)


def test_other_n_mels():
    for name, n_mels in (("cnn1d", 64), ("cnn2d", 64), ("crnn", 256), ("shortchunk_res", 256)):
        model = build_model(ModelConfig(name=name, n_classes=3, n_mels=n_mels, **FAST.get(name, {})))
        assert model(torch.randn(2, n_mels, 300)).shape == (2, 3), name


@pytest.mark.parametrize("name,kw", [("cnn1d", {"pool": "avg"}), ("cnn1d", {"pool": "max"}),
                                     ("cnn2d", {"pool": "avgmax"}), ("cnn2d", {"pool": "max"}),
                                     ("crnn", {"temporal_pool": "mean", "width": 8}),
                                     ("shortchunk_res", {"pool": "avgmax", "width": 8, "hidden": 32})])
def test_ablation_flags(name, kw):
    model = make(name, **kw)
    assert model(torch.randn(2, N_MELS, 300)).shape == (2, N_CLASSES)


def test_bad_config_is_value_error():
    with pytest.raises(ValueError, match="unknown model 'nope'"):
        make("nope")
    with pytest.raises(ValueError, match="cnn1d does not take --temporal-pool"):
        make("cnn1d", temporal_pool="mean")
    with pytest.raises(ValueError, match="crnn: temporal_pool must be one of"):
        make("crnn", temporal_pool="first")
    with pytest.raises(ValueError, match="cnn2d: pool must be one of"):
        make("cnn2d", pool="median")


# ------------------------------------------------------------------------------ the seed's bugs

def test_crnn_lstm_input_is_permuted_conv_output():
    """The LSTM gets (B, T, C) with step t = every channel at time t: a permute, not a reshape."""
    model = make("crnn").eval()
    seen = {}
    model.features.register_forward_hook(lambda m, i, o: seen.__setitem__("conv", o))
    model.lstm.register_forward_pre_hook(lambda m, i: seen.__setitem__("lstm", i[0]))
    with torch.no_grad():
        model(torch.randn(2, N_MELS, 400))
    conv = seen["conv"]
    B, C, one, T = conv.shape
    assert one == 1 and T == 400 // 8 and C == 128
    assert torch.equal(seen["lstm"], conv.squeeze(2).permute(0, 2, 1))
    assert not torch.equal(seen["lstm"], conv.reshape(B, T, C))  # what the seed fed the LSTM


def _lstm_outputs(model, x, bug=False):
    """LSTM outputs (B, T', H) and logits; bug=True feeds the LSTM the seed's reshape instead."""
    seen, hooks = {}, [model.lstm.register_forward_hook(lambda m, i, o: seen.__setitem__("out", o[0]))]
    if bug:
        def reshape_bug(m, i, out):  # (B, C, 1, T) -> the seed's (B, T, C) reshape, laid out so that
            B, C, _, T = out.shape   # the model's own amax + permute hands it to the LSTM unchanged
            return out.reshape(B, T, C).permute(0, 2, 1).unsqueeze(2)
        hooks.append(model.features.register_forward_hook(reshape_bug))
    with torch.no_grad():
        logits = model(x)
    for h in hooks:
        h.remove()
    return seen["out"], logits


def test_crnn_time_order_reaches_lstm():
    """Changing only the last 32 frames of a clip changes the last LSTM step (and the 'last' logits)
    but none of the first half of the steps: the LSTM reads time in order. The same check fails when
    the seed's reshape bug is put back, because then every step mixes in late frames."""
    model = make("crnn", temporal_pool="last").eval()
    x = torch.randn(1, N_MELS, 512)
    x2 = x.clone()
    x2[..., -32:] += 3 * torch.randn(N_MELS, 32)

    def early_and_last_change(bug):
        (a, la), (b, lb) = _lstm_outputs(model, x, bug), _lstm_outputs(model, x2, bug)
        half = a.shape[1] // 2
        return ((a[:, :half] - b[:, :half]).abs().max().item(), (a[:, -1] - b[:, -1]).abs().max().item(),
                (la - lb).abs().max().item())

    early, last, logits = early_and_last_change(bug=False)
    assert early < 1e-6, "early LSTM steps saw the end of the clip"
    assert last > 1e-3 and logits > 1e-4
    early_bug, _, _ = early_and_last_change(bug=True)
    assert early_bug > 1e-3, "the check would not catch the reshape bug"


def test_cnn1d_logits_can_be_negative():
    """The seed applied ReLU + dropout to the logits; now the output is a plain linear layer."""
    model = make("cnn1d")
    assert isinstance(model.head, nn.Linear)
    for mode in (model.train, model.eval):
        mode()
        with torch.no_grad():
            logits = model(torch.randn(8, N_MELS, 200))
        assert (logits < 0).any() and (logits > 0).any()
    model.eval()
    with torch.no_grad():  # eval is deterministic: no dropout anywhere near the logits
        x = torch.randn(2, N_MELS, 200)
        assert torch.equal(model(x), model(x))


# ------------------------------------------------------------------------- config, checkpoints

@pytest.mark.parametrize("name,kw", [("cnn1d", {}), ("cnn2d", {"pool": "avgmax", "dropout": 0.3}),
                                     ("crnn", {"temporal_pool": "mean"}), ("shortchunk_res", {"width": 8})])
def test_config_round_trip(name, kw):
    model = make(name, **kw)
    model.train()
    model(torch.randn(4, N_MELS, 200))  # move the BatchNorm running stats away from their init
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "model_config": asdict(model.config)}, buf)
    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)  # plain types only
    cfg = ModelConfig(**ckpt["model_config"])
    assert cfg == model.config and cfg.name == name
    assert all(getattr(cfg, k) == v for k, v in kw.items())
    torch.manual_seed(123)  # different init: the weights must come from the state_dict
    rebuilt = build_model(cfg)
    rebuilt.load_state_dict(ckpt["model"])
    model.eval(), rebuilt.eval()
    x = torch.randn(2, N_MELS, 300)
    with torch.no_grad():
        assert torch.allclose(model(x), rebuilt(x), atol=1e-6)


def test_resolved_config_records_defaults():
    cfg = make("crnn").config
    assert (cfg.width, cfg.dropout, cfg.hidden, cfg.temporal_pool, cfg.pool) == (16, 0.5, 128, "last", None)
    assert make("cnn1d").config.dropout == 0.25


# ------------------------------------------------------------------------- parameters, init

def print_parameter_counts():
    table = parameter_table(N_CLASSES, N_MELS)
    print("\n" + table)
    return {line.split()[0]: int(line.split()[1].replace(",", "")) for line in table.splitlines()[1:]}


def test_parameter_counts():
    counts = print_parameter_counts()
    assert set(counts) == set(MODELS) and all(n > 0 for n in counts.values())
    # The seed's layers are reproduced: CRNN exactly; CNN1D / CNN2D apart from the length-fixing layer.
    assert counts["crnn"] == 438_808
    cnn1d = make("cnn1d")
    assert count_parameters(cnn1d.features) == 197_760
    assert count_parameters(cnn1d.features) + 4864 * 8 + 8 == 236_680  # the seed flattened 128 x 38 frames
    cnn2d = make("cnn2d")
    fc1 = cnn2d.head[0]
    assert count_parameters(cnn2d) - fc1.weight.numel() - fc1.bias.numel() + 148016 * 256 + 256 == 37_912_576


def test_init_weights_deterministic_and_as_documented():
    for name in MODELS:
        torch.manual_seed(7)
        a = make(name, **FAST.get(name, {})).state_dict()
        torch.manual_seed(7)
        b = make(name, **FAST.get(name, {})).state_dict()
        torch.manual_seed(8)
        c = make(name, **FAST.get(name, {})).state_dict()
        assert a.keys() == b.keys()
        assert all(torch.equal(a[k], b[k]) for k in a), name
        assert any(not torch.equal(a[k], c[k]) for k in a), name
    model = make("crnn")
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.equal(m.weight, torch.ones_like(m.weight)) and not m.bias.any()
        if isinstance(m, (nn.Linear, nn.Conv2d)):
            assert not m.bias.any()
    w_hh = model.lstm.weight_hh_l0.detach()
    for gate in w_hh.chunk(4):  # orthogonal recurrent weights, per gate
        assert torch.allclose(gate @ gate.T, torch.eye(gate.shape[0]), atol=1e-5)
    assert not model.lstm.bias_ih_l0.any()
    # init_weights is a plain function usable on any module
    block = ResBlock2d(3, 4)
    block.apply(init_weights)
    assert not block.conv1.bias.any()


def test_classes_construct_without_build_model():
    model = CRNN(n_classes=5, temporal_pool="mean")
    assert model(torch.randn(2, 128, 64)).shape == (2, 5)


# ---------------------------------------------------------------------------------- learning

def test_cnn1d_overfits_a_small_batch():
    """16 random clips, 2 classes, default dropout: the training loss halves within 30 Adam steps."""
    model = build_model(ModelConfig(name="cnn1d", n_classes=2, n_mels=N_MELS))
    x = torch.randn(16, N_MELS, 64)
    y = torch.arange(16) % 2
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(30):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
