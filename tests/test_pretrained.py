"""pre_trained_models.py with the converted musicnn taggers (pretrained/musicnn_{msd,mtt}.pt): tags of
real clips in any format and length, musicnn's patch placement (window_hop), --embeddings, and zero-shot
scoring of FMA top genres (tag_genres).

The converted files are git-ignored (convert_musicnn.py writes them); tests that need their weights
skip without them, the others use checkpoints made the same way (convert_musicnn.checkpoint) with
random weights. CPU only, no TensorFlow.
"""
import csv
import json
import subprocess
import sys
from dataclasses import asdict

import numpy as np
import pytest
import soundfile as sf
import torch

import pre_trained_models as ptm
import predictor
from conftest import REAL_CLIPS, ROOT, STEREO_44K
from convert_musicnn import MSD_TAGS, MTT_TAGS, PATCH_FRAMES, TAG_GENRES, checkpoint
from models import ModelConfig, build_model
from audio import load_audio, log_mel
from utils import patch_starts

MSD = ROOT / "pretrained" / "musicnn_msd.pt"
SR, HOP = 16000, 256  # musicnn's audio parameters
TOP_GENRES = 16       # FMA's top-level genres
EXCERPT_SECONDS, LONG_SECONDS = 12, 70  # the format copies (4 patches each) and the long input (23 patches)
needs_msd = pytest.mark.skipif(not MSD.is_file(), reason="pretrained/musicnn_msd.pt not converted "
                                                         "(python convert_musicnn.py, see its docstring)")


def random_tagger(path, tags=MSD_TAGS, key="MSD", **changes):
    """A musicnn checkpoint exactly as convert_musicnn.py writes it, with random weights."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="musicnn", n_classes=len(tags), n_mels=96)).eval()
    state = checkpoint(model, tags, key, "test", 0.5, 0.1, "random weights")
    state.update(changes)
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def random_msd(tmp_path_factory):
    return random_tagger(tmp_path_factory.mktemp("ckpt") / "random_msd.pt")


@pytest.fixture(scope="module")
def tagger(random_msd):
    """The converted MSD tagger when present, else the same checkpoint with random weights."""
    return MSD if MSD.is_file() else random_msd


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """12 s of a real clip as wav, flac and ogg; 6 s of it; 70 s of real music; broken files."""
    d = tmp_path_factory.mktemp("songs")
    stereo = load_audio(STEREO_44K, 44100)
    pcm = np.round(stereo[: EXCERPT_SECONDS * 44100] * 32767).astype(np.int16)  # the same samples in wav and flac
    sf.write(d / "clip.wav", pcm, 44100, subtype="PCM_16")
    sf.write(d / "clip.flac", pcm, 44100, subtype="PCM_16")
    sf.write(d / "clip.ogg", np.stack([pcm, pcm], 1), 44100, format="OGG", subtype="VORBIS")
    sf.write(d / "six.wav", pcm[: 6 * 44100], 44100, subtype="PCM_16")
    long = np.concatenate([load_audio(p, 22050) for p in REAL_CLIPS[:3]])[: LONG_SECONDS * 22050]
    sf.write(d / "seventy.wav", long, 22050, subtype="PCM_16")
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.mp3").write_bytes(b"")
    rng = np.random.default_rng(0)
    (bad / "noise.mp3").write_bytes(rng.bytes(20000))
    (bad / "noise.wav").write_bytes(rng.bytes(20000))
    return d


def predict(capsys, *args):
    """pre_trained_models.main in-process: (exit status, stdout, stderr)."""
    code = ptm.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(*args):
    """pre_trained_models.py in a real process."""
    return subprocess.run([sys.executable, str(ROOT / "pre_trained_models.py"), *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def musicnn_starts(n_frames: int, n: int = PATCH_FRAMES) -> list[int]:
    """musicnn's own rule (extractor.batch_data): range(0, T - n + 1, n), one padded patch if none."""
    return list(range(0, n_frames - n + 1, n)) or [0]


# ------------------------------------------------------------------------------------- windows

def test_window_starts_follow_musicnns_patches(random_msd, tmp_path):
    for frames in (1, 186, 187, 188, 373, 374, 375, 1874, 4376, 10_000):
        assert list(patch_starts(frames, PATCH_FRAMES, PATCH_FRAMES)) == musicnn_starts(frames), frames
    p = predictor.load_predictor(str(random_msd), "cpu")
    assert p.window_hop == p.window_frames == PATCH_FRAMES
    song = p.load(predictor.Song(str(REAL_CLIPS[0])))  # 29.98 s, 1874 frames
    assert list(song.starts) == list(range(0, 1684, 187)) and len(song.starts) == 10
    wave = load_audio(REAL_CLIPS[0], SR)
    assert np.array_equal(song.features, log_mel(wave, p.audio).astype(np.float16))  # the whole song
    tone = (0.1 * np.sin(np.arange(31 * SR) * 2 * np.pi * 440 / SR)).astype(np.float32)
    for seconds, starts in ((4, [0]), (6, [0, 187]), (31, musicnn_starts(1 + 31 * SR // HOP))):
        f = tmp_path / f"{seconds}.wav"
        sf.write(f, tone[: seconds * SR], SR)
        song = p.load(predictor.Song(str(f)))
        assert list(song.starts) == starts and song.features.shape[1] == 1 + seconds * SR // HOP, seconds
    # audio shorter than a patch (allowed by a lower min_seconds): one window, padded with silence
    short_ckpt = random_tagger(tmp_path / "short.pt", audio={**asdict(p.audio), "min_seconds": 1})
    short = predictor.load_predictor(str(short_ckpt), "cpu")
    sf.write(tmp_path / "two.wav", tone[: 2 * SR], SR)
    song = short.load(predictor.Song(str(tmp_path / "two.wav")))
    assert list(song.starts) == [0] and song.features.shape[1] == PATCH_FRAMES
    assert (song.features[:, 1 + 2 * SR // HOP:] == -100).all()


def test_segments_and_plot_show_the_patches(random_msd, songs, tmp_path, capsys):
    png = tmp_path / "six.png"
    code, out, _ = predict(capsys, "--checkpoint", random_msd, "--format", "json", "--segments", "--plot", png,
                           songs / "six.wav")
    assert code == 0 and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rec = json.loads(out)[0]
    assert rec["windows"] == len(rec["segments"]) == 2
    assert [s["start_s"] for s in rec["segments"]] == [0, round(187 * HOP / SR, 3)]
    assert all(abs(s["end_s"] - s["start_s"] - 187 * HOP / SR) < 1e-3 for s in rec["segments"])
    seg = np.array([list(s["probabilities"].values()) for s in rec["segments"]])  # (2, 50)
    assert np.allclose(seg.mean(0), list(rec["probabilities"].values()), atol=1e-6)  # the song = mean of windows
    code, out, _ = predict(capsys, "--checkpoint", random_msd, "--segments", songs / "six.wav")
    assert code == 0 and len(out.splitlines()) == 2 + 2 and "padding" not in out


# ------------------------------------------------------------------------------------- tags

@needs_msd
def test_msd_tagger_prints_top_tags_for_real_clips(capsys):
    clips = [c for c in REAL_CLIPS if c.stem in ("000002", "000005", "000148")]
    code, out, err = predict(capsys, "--checkpoint", MSD, "--top-k", 3, *clips)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split()[-3:] == ["top", "3", "tags"] and len(lines) == 1 + len(clips)
    assert [line.split()[2] for line in lines[1:]] == ["10"] * 3  # 30 s clips: 10 patches
    # the port's weights at work: AWOL's two hip-hop tracks and Contradiction's experimental one, as FMA genres
    # (scored by their tags) first, then as tags
    assert [line.split("|")[0].split()[3] for line in lines[1:]] == ["Hip-Hop", "Hip-Hop", "Experimental"]
    assert [line.split("|")[1].split()[0] for line in lines[1:]] == ["Hip-Hop", "Hip-Hop", "experimental"]


def test_wav_flac_ogg_and_a_long_input(tagger, songs, capsys):
    files = [songs / "clip.wav", songs / "clip.flac", songs / "clip.ogg", songs / "seventy.wav"]
    code, out, err = predict(capsys, "--checkpoint", tagger, "--format", "json", *files)
    assert code == 0, err
    recs = json.loads(out)
    assert [r["path"] for r in recs] == [str(f) for f in files] and all(r["status"] == "ok" for r in recs)
    assert [(r["duration_s"], r["windows"]) for r in recs] == [(EXCERPT_SECONDS, 4)] * 3 + [(LONG_SECONDS, 23)]
    assert len(musicnn_starts(1 + LONG_SECONDS * SR // HOP)) == 23
    probs = np.array([list(r["probabilities"].values()) for r in recs])  # (4, 50)
    assert ((probs > 0) & (probs < 1)).all()
    assert np.array_equal(probs[0], probs[1])        # the same PCM samples in wav and flac
    assert np.abs(probs[2] - probs[0]).max() < 0.05  # a Vorbis re-encoding agrees


def test_json_and_csv_list_the_tags(tagger, songs, capsys, tmp_path):
    song = songs / "six.wav"
    code, out, _ = predict(capsys, "--checkpoint", tagger, "--format", "json", "--top-k", 100, song)
    rec = json.loads(out)[0]
    assert code == 0 and list(rec["probabilities"]) == MSD_TAGS  # all 50, in output order
    assert [t["genre"] for t in rec["top_k"]] == sorted(MSD_TAGS, key=lambda t: -rec["probabilities"][t])
    code, _, _ = predict(capsys, "--checkpoint", tagger, "--format", "csv", "--output", tmp_path / "t.csv", song)
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert code == 0 and rows[0]["genre_1"] == rec["top_k"][0]["genre"] and rows[0]["windows"] == "2"


def test_bad_files_one_error_line_each_good_files_predicted(tagger, songs, tmp_path):
    npz = tmp_path / "emb.npz"
    bad = sorted((songs / "bad").iterdir())
    good = [songs / "clip.wav", songs / "six.wav"]
    r = run_cli("--checkpoint", tagger, "--embeddings", npz, good[0], *bad, good[1])
    assert r.returncode == 1
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error: ")]
    assert len(errors) == 3 and all(any(ln.startswith(f"error: {b}: ") for ln in errors) for b in bad), r.stderr
    assert "empty file" in next(ln for ln in errors if "empty.mp3" in ln)
    assert [ln.split()[0] for ln in r.stdout.splitlines()[1:]] == [str(g) for g in good]
    assert r.stderr.splitlines()[-1] == f"predicted 2 of 5 files; 3 failed; wrote {npz}"
    data = np.load(npz)
    assert list(data["files"]) == [str(g) for g in good]  # failed files are left out
    assert data["embeddings"].shape == (2, 200)


# ------------------------------------------------------------------------------------- embeddings

def test_embeddings_are_the_mean_of_embed_over_windows(random_msd, songs, tmp_path, capsys):
    npz = tmp_path / "out" / "songs.emb"  # written under exactly this name
    files = [songs / "clip.flac", songs / "six.wav"]
    code, out, _ = predict(capsys, "--checkpoint", random_msd, "--format", "json", "--embeddings", npz,
                           "--batch-windows", 4, *files)
    assert code == 0
    data = np.load(npz)
    assert sorted(data.files) == ["embeddings", "files", "model"]
    assert data["embeddings"].dtype == np.float32 and data["embeddings"].shape == (2, 200)
    assert list(data["files"]) == [str(f) for f in files] and str(data["model"]) == str(random_msd)
    p = predictor.load_predictor(str(random_msd), "cpu")
    for f, emb, rec in zip(files, data["embeddings"], json.loads(out)):
        song = p.load(predictor.Song(str(f)))
        x = np.stack([song.features[:, s:s + p.window_frames] for s in song.starts])  # (n_windows, 96, 187)
        x = torch.from_numpy(x.astype(np.float32))
        with torch.inference_mode():
            windows = p.model.embed(x)  # (n_windows, 200)
            probs = torch.sigmoid(p.model(x)).mean(0)
        assert np.allclose(emb, windows.mean(0).numpy(), atol=1e-5)
        assert np.allclose(list(rec["probabilities"].values()), probs.numpy(), atol=1e-6)  # unchanged by embed+head


def test_embeddings_work_with_any_checkpoint(tmp_path, capsys):
    """A single-label CNN1D checkpoint (no window_hop): the embedding is its pooled backbone output."""
    from config import AudioConfig
    audio = AudioConfig()
    torch.manual_seed(0)
    model = build_model(ModelConfig(name="cnn1d", n_classes=8)).eval()
    state = {"model": model.state_dict(), "model_config": asdict(model.config), "audio": asdict(audio),
             "classes": [f"genre{i}" for i in range(8)], "mean": torch.full((audio.n_mels,), -40.0),
             "std": torch.full((audio.n_mels,), 20.0), "crop_frames": audio.frames_for(3.0), "eval_crops": 4}
    torch.save(state, tmp_path / "cnn1d.pt")
    code, _, err = predict(capsys, "--checkpoint", tmp_path / "cnn1d.pt", "--embeddings", tmp_path / "e.npz",
                           REAL_CLIPS[0], tmp_path / "missing.mp3")
    assert code == 1 and "missing.mp3: file not found" in err
    data = np.load(tmp_path / "e.npz")
    p = predictor.load_predictor(str(tmp_path / "cnn1d.pt"), "cpu")
    assert data["embeddings"].shape == (1, p.embedding_dim) == (1, model.head.in_features)
    assert list(data["files"]) == [str(REAL_CLIPS[0])]


# ------------------------------------------------------------------------------------- zero-shot FMA

def test_zero_shot_fma_scoring(tagger, small_tree, tmp_path, capsys):
    code, out, err = predict(capsys, "--checkpoint", tagger, "--fma-dir", small_tree, "--subset", "small",
                             "--output", tmp_path / "tracks.json", "--format", "json",
                             "--embeddings", tmp_path / "e.npz")
    assert code == 0, err
    assert "warning" not in err  # it never heard FMA: nothing about a training subset
    rep = json.loads(out)
    assert rep["zero_shot"] and rep["excluded_subset"] is None
    assert rep["selected"] == rep["known_genre"] == rep["predicted"] == 6 and rep["other_genre"] == 0
    assert rep["classes"] == list(TAG_GENRES["MSD"]) and rep["tag_genres"] == TAG_GENRES["MSD"]
    assert rep["unmapped_genres"] == ["Classical", "International", "Old-Time / Historic", "Spoken"]
    assert len(rep["classes"]) + len(rep["unmapped_genres"]) == TOP_GENRES
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    assert [t["track_id"] for t in tracks] == [2, 5, 10, 140, 141, 148]
    for t in tracks:  # the predicted genre is the best-scoring mapped genre; a score is its best tag's
        scores = t["genres"]["scores"]
        assert t["predicted"] == max(scores, key=scores.get) == t["genres"]["top_k"][0]["genre"]
        assert scores["Hip-Hop"] == t["probabilities"]["Hip-Hop"]
        assert scores["Pop"] == max(t["probabilities"]["pop"], t["probabilities"]["indie pop"])
    emb = np.load(tmp_path / "e.npz")
    assert list(emb["track_ids"]) == [t["track_id"] for t in tracks]
    assert list(emb["labels"]) == [t["label"] for t in tracks]
    assert emb["embeddings"].shape == (6, 200)
    hits = [t["predicted"] == t["label"] for t in tracks]
    assert rep["accuracy"] == pytest.approx(np.mean(hits))
    assert sum(m["support"] for m in rep["per_class"].values()) == 6
    out = "\n".join(ptm.report_lines(rep))  # what the table format prints
    assert "zero-shot" in out and f"accuracy {np.mean(hits):.4f} [" in out and "macro-F1 " in out
    assert "genres with no tag (not scored): Classical, International, Old-Time / Historic, Spoken" in out
    assert rep["ci"]["accuracy"][0] <= rep["accuracy"] <= rep["ci"]["accuracy"][1]
    assert "Hip-Hop" in out.split("genre ")[-1]  # the per-genre table
    if tagger == MSD:
        assert [t["predicted"] for t in tracks if t["label"] in ("Hip-Hop", "Experimental")] == \
               ["Hip-Hop", "Hip-Hop", "Experimental"]


def test_zero_shot_leaves_out_unmapped_genres_and_needs_a_map(small_tree, tmp_path, capsys):
    mtt = random_tagger(tmp_path / "mtt.pt", MTT_TAGS, "MTT")  # no tag for Hip-Hop or Folk
    code, out, _ = predict(capsys, "--checkpoint", mtt, "--fma-dir", small_tree, "--subset", "small",
                           "--format", "csv", "--output", tmp_path / "t.csv")
    assert code == 0
    assert "6 tracks; 2 with a genre its tags map to, 4 with another or no label (left out)" in out
    assert "Folk" in out.split("no tag (not scored): ")[1].splitlines()[0]
    with open(tmp_path / "t.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["track_id"], r["label"]) for r in rows] == [("10", "Pop"), ("148", "Experimental")]
    assert all(r["predicted"] in TAG_GENRES["MTT"] for r in rows)
    plain = random_tagger(tmp_path / "plain.pt", tag_genres=None)  # tags without a genre map
    code, _, err = predict(capsys, "--checkpoint", plain, "--fma-dir", small_tree, "--subset", "small")
    assert code == 2 and "cannot score a labelled collection" in err
