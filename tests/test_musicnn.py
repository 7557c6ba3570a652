"""The musicnn port (models.Musicnn, pretrained/musicnn_*.pt) against the original TensorFlow model.

tests/data/musicnn_reference.npz was made by the original graph of the musicnn 0.1.0 wheel with its
trained weights (tests/make_musicnn_reference.py says how); TensorFlow is not needed here.
"""
from pathlib import Path

import numpy as np
import pytest
import torch

from config import AudioConfig
from models import ModelConfig, Musicnn, build_model
from models_utils import load_checkpoint
from audio import load_audio, log_mel

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
REFERENCE = DATA / "musicnn_reference.npz"
CHECKPOINTS = {"msd": ROOT / "pretrained" / "musicnn_msd.pt", "mtt": ROOT / "pretrained" / "musicnn_mtt.pt"}
PATCH_TOL = 1e-4   # same patches: the port against the original graph
SONG_TOL = 0.02    # from the audio file: our decoding and features against librosa's


@pytest.fixture(scope="module")
def reference():
    return dict(np.load(REFERENCE))


def load_port(which: str):
    state = load_checkpoint(CHECKPOINTS[which])  # weights_only=True
    model = build_model(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), state


@pytest.mark.parametrize("which", ["msd", "mtt"])
def test_port_equals_original_on_the_same_patches(reference, which):
    model, _ = load_port(which)
    x = torch.from_numpy(reference["patch_db"].astype(np.float32))  # (n, 96, 187) dB
    with torch.no_grad():
        probs = model(x).sigmoid().numpy()
        emb = model.embed(x).numpy()
    assert probs.shape == reference[f"{which}_patch_probs"].shape == (len(x), 50)
    assert np.abs(probs - reference[f"{which}_patch_probs"]).max() < PATCH_TOL
    if which == "msd":  # the embedding is the original's penultimate layer
        pen = reference["msd_patch_penultimate"]
        assert np.abs(emb - pen).max() < PATCH_TOL * max(1.0, np.abs(pen).max())


@pytest.mark.parametrize("which", ["msd", "mtt"])
def test_song_probabilities_from_the_audio_file_match_the_original(reference, which):
    """Our decoding (soundfile + soxr) and log_mel, float16 as cached, musicnn's patches, the port:
    the song-level tags of the original (librosa.load + melspectrogram + TensorFlow), within 0.02."""
    from predictor import Predictor, Song
    model, state = load_port(which)
    predictor = Predictor(state, torch.device("cpu"))
    songs = list(predictor.predict(predictor.load(Song(str(DATA / f))) for f in reference["files"]))
    for song, n, expected in zip(songs, reference["n_patches"], reference[f"{which}_song_probs"]):
        assert song.ok, song.error
        assert len(song.starts) == n, song.path  # musicnn's patches, one window each
        assert np.abs(song.probs - expected).max() < SONG_TOL, song.path


def test_the_original_model_hears_real_music(reference):
    """What the fixture says about the real clips: Hip-Hop clips are tagged Hip-Hop, the Experimental one
    experimental (a sanity check on the reference itself, not a score)."""
    tags = load_checkpoint(CHECKPOINTS["msd"])["classes"]
    top = {f: tags[int(np.argmax(p))] for f, p in zip(reference["files"], reference["msd_song_probs"])}
    assert top["fma_small/000/000002.mp3"] == "Hip-Hop" and top["fma_small/000/000005.mp3"] == "Hip-Hop"
    assert top["fma_small/000/000148.mp3"] == "experimental"


@pytest.mark.parametrize("which", ["msd", "mtt"])
def test_shipped_checkpoint_is_self_contained(which):
    state = torch.load(CHECKPOINTS[which], map_location="cpu", weights_only=True)
    audio = AudioConfig(**state["audio"])
    assert (audio.sample_rate, audio.n_fft, audio.hop_length, audio.n_mels) == (16000, 512, 256, 96)
    assert len(state["classes"]) == 50 and state["target"] == "all"
    assert torch.equal(state["mean"], torch.zeros(96)) and torch.equal(state["std"], torch.ones(96))
    assert state["crop_frames"] == state["window_hop"] == 187
    assert "ISC" in state["pretrained"]["licence"] and "Pons" in state["pretrained"]["credit"]
    tags = set(state["classes"])
    assert all(t in tags for ts in state["tag_genres"].values() for t in ts)
    assert (ROOT / "pretrained" / "LICENSE-musicnn").read_text().startswith("Copyright (c) Music Technology Group")


def test_compression_inside_the_model_is_musicnns():
    """dB in, log10(10000 * power + 1) inside, for the whole dB range (silence to loud) and in float16."""
    db = torch.linspace(-100, 60, 321)
    expected = torch.log10(10000 * 10 ** (db.double() / 10) + 1)
    assert torch.allclose(Musicnn.compress(db).double(), expected, atol=1e-5)
    assert torch.isfinite(Musicnn.compress(db.half())).all()


def test_converter_maps_every_tensor_once():
    from convert_musicnn import torch_names
    model = build_model(ModelConfig(name="musicnn", n_classes=50, n_mels=96))
    pairs = torch_names(model)
    targets = [t for _, t in pairs]
    assert len(set(targets)) == len(targets) and len({s for s, _ in pairs}) == len(pairs)
    assert set(targets) == {k for k in model.state_dict() if not k.endswith("num_batches_tracked")}


def test_head_changes_with_n_classes_backbone_keeps_its_shape():
    a = build_model(ModelConfig(name="musicnn", n_classes=50, n_mels=96)).state_dict()
    b = build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=96)).state_dict()
    assert a.keys() == b.keys()
    changed = {k for k in a if a[k].shape != b[k].shape}
    assert changed == {"head.weight", "head.bias"}


def test_musicnn_runs_on_project_features_of_any_length():
    """Any number of frames: the song-level embedding and logits come out for 1, 187 and 1000 frames."""
    model = build_model(ModelConfig(name="musicnn", n_classes=8, n_mels=96)).eval()
    wave = load_audio(DATA / "fma_small" / "000" / "000002.mp3", 16000)
    x = torch.from_numpy(log_mel(wave, AudioConfig(**Musicnn.audio)).astype(np.float32))
    for t in (1, 187, 1000):
        with torch.no_grad():
            assert model(x[None, :, :t]).shape == (1, 8)
            assert model.embed(x[None, :, :t]).shape == (1, 200)
