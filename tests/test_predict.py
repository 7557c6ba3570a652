"""pre_trained_models.py: genres of unseen songs from a checkpoint (any format, length, sample rate).

One small CNN1D checkpoint is trained once (module fixture) through main.py on a tiny synthetic demo
set in FMA's layout; the songs predicted are the real FMA clips of tests/data, re-encoded to other
formats and sample rates, a 5-minute file, and broken files.
"""
import csv
import io
import json
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

import pre_trained_models as ptm
import predictor
from config import AudioConfig
from conftest import DATA, MONO_44K, NO_AUG, REAL_CLIPS, ROOT, STEREO_44K, STEREO_48K, run_main
import audio
from audio import clip_from_wave, load_audio, log_mel
from collection import audio_path
from utils import crop_starts, eval_windows

CROP_SECONDS, K = 3, 4  # the checkpoint's training crop and evaluation crops
EIGHT_REAL = REAL_CLIPS + [MONO_44K, STEREO_48K]
JSON_KEYS = {"path", "status", "error", "warnings", "duration_s", "windows", "top_k", "probabilities"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """demo/ (2 tracks per genre, 5 s clips, with a test split), cache/, run/best.pt (CNN1D, 2 epochs)."""
    root = tmp_path_factory.mktemp("predict")
    subprocess.run([sys.executable, str(ROOT / "demo_data.py"), "--out", str(root / "demo"), "--tracks-per-genre",
                    "2", "--seconds", "5", "--workers", "2"], check=True, capture_output=True, cwd=ROOT)
    r = run_main("--data-dir", root / "demo", "--cache-dir", root / "cache", "--out", root / "run", "--model", "cnn1d",
                 "--epochs", 2, "--batch-size", 4, "--lr", 3e-3, "--crop-seconds", CROP_SECONDS, "--eval-crops", K,
                 "--scheduler", "none", "--wandb", "disabled", "--workers", 2, *NO_AUG)
    assert r.returncode == 0, r.stdout + r.stderr
    return root


@pytest.fixture(scope="module")
def ckpt(trained):
    return trained / "run" / "best.pt"


@pytest.fixture(scope="module")
def whole_clip_ckpt(ckpt, tmp_path_factory):
    """The same weights as a whole-clip model (no crops): CNN1D takes any length."""
    state = torch.load(ckpt, weights_only=True)
    state.update(crop_frames=None, eval_crops=0)
    path = tmp_path_factory.mktemp("whole") / "whole.pt"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def songs(tmp_path_factory):
    """Real FMA music in other formats, lengths and sample rates, and broken files."""
    d = tmp_path_factory.mktemp("songs")
    stereo = load_audio(STEREO_44K, 44100)
    sf.write(d / "stereo44k.ogg", np.stack([stereo, stereo], 1), 44100, format="OGG", subtype="VORBIS")
    mono22 = load_audio(REAL_CLIPS[1], 22050)
    sf.write(d / "mono22k.wav", mono22, 22050, subtype="PCM_16")
    sf.write(d / "mono22k.flac", mono22, 22050)
    sf.write(d / "ten_seconds.wav", mono22[: 10 * 22050], 22050, subtype="PCM_16")
    shutil.copyfile(STEREO_48K, d / "stereo48k.mp3")
    five = np.resize(np.concatenate([load_audio(p, 22050) for p in REAL_CLIPS[:5]]), 300 * 22050)  # repeats
    sf.write(d / "five_minutes.wav", five, 22050, subtype="PCM_16")
    bad = d / "bad"
    bad.mkdir()
    (bad / "empty.mp3").write_bytes(b"")
    (bad / "webpage.mp3").write_text("<html>404 not found</html>\n" * 50)
    data = REAL_CLIPS[2].read_bytes()
    (bad / "truncated.mp3").write_bytes(data[: len(data) // 4])
    sf.write(bad / "short.wav", mono22[: int(0.3 * 22050)], 22050)  # below predictor.MIN_SECONDS
    (bad / "noise.flac").write_bytes(np.random.default_rng(0).bytes(5000))
    (bad / "song.m4a").write_bytes(b"\0" * 2000)  # no decoder here (no ffmpeg): a clear message
    return d


def predict(capsys, *args):
    """Run pre_trained_models.main in-process; (exit status, stdout, stderr)."""
    code = ptm.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def error_lines(err: str) -> list[str]:
    return [ln for ln in err.splitlines() if ln.startswith("error: ")]


# ------------------------------------------------------------------------------------- predictions

def test_eight_real_clips_get_top_k_genres(ckpt, capsys):
    code, out, err = predict(capsys, "--checkpoint", ckpt, "--format", "json", "--top-k", 3, *EIGHT_REAL)
    assert code == 0, err
    recs = json.loads(out)
    assert [r["path"] for r in recs] == [str(p) for p in EIGHT_REAL]
    classes = torch.load(ckpt, weights_only=True)["classes"]
    for r in recs:
        assert r["status"] == "ok" and r["error"] == "" and abs(r["duration_s"] - 30) < 0.1
        assert r["windows"] == K  # a ~30 s clip gets exactly the evaluation's crops
        probs = [t["probability"] for t in r["top_k"]]
        assert len(probs) == 3 and probs == sorted(probs, reverse=True)
        assert list(r["probabilities"]) == classes and abs(sum(r["probabilities"].values()) - 1) < 1e-5
        assert r["top_k"][0]["genre"] == max(r["probabilities"], key=r["probabilities"].get)
    code, out, _ = predict(capsys, "--checkpoint", ckpt.parent, *EIGHT_REAL)  # a run directory works too
    assert code == 0 and all(p.name in out for p in EIGHT_REAL) and out.startswith("file")


def test_acceptance_other_formats_lengths_rates_mixed_with_broken_files(ckpt, songs):
    """As a new user: a folder of songs and broken files, one missing path; a real process, real stderr."""
    r = subprocess.run([sys.executable, str(ROOT / "pre_trained_models.py"), "--checkpoint", str(ckpt),
                        "--format", "csv", str(songs), str(songs / "nowhere.mp3"), "--workers", "2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 1, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    good = {"five_minutes.wav", "mono22k.flac", "mono22k.wav", "stereo44k.ogg", "stereo48k.mp3", "ten_seconds.wav"}
    bad = {"empty.mp3", "noise.flac", "short.wav", "song.m4a", "truncated.mp3", "webpage.mp3", "nowhere.mp3"}
    by_name = {os.path.basename(row["path"]): row for row in rows}
    assert set(by_name) == good | bad
    for name in good:
        row = by_name[name]
        assert row["status"] == "ok" and row["genre_1"] and row["genre_3"] and float(row["prob_1"]) > 0
    assert abs(float(by_name["five_minutes.wav"]["duration_s"]) - 300) < 0.01
    lines = r.stderr.strip().splitlines()
    assert lines.pop(0) == f"warning: {ckpt} was trained on the synthetic demo set: its genres mean nothing for real music"
    errors = error_lines(r.stderr)
    assert len(errors) == len(bad) and lines == errors + [f"predicted 6 of 13 files; 7 failed"], r.stderr
    reasons = {"empty.mp3": "empty file", "webpage.mp3": "not decodable", "truncated.mp3": "truncated",
               "short.wav": "too short", "noise.flac": "not decodable", "song.m4a": "no decoder for .m4a",
               "nowhere.mp3": "file not found"}
    for name, reason in reasons.items():
        line = next(ln for ln in errors if os.path.basename(ln.split(": ")[1]) == name)
        assert reason in line, line
        assert by_name[name]["status"] == "error" and reason in by_name[name]["error"] and not by_name[name]["genre_1"]


def test_five_minute_song_is_covered_by_evenly_spaced_windows(ckpt, whole_clip_ckpt, songs, capsys):
    song = songs / "five_minutes.wav"
    code, out, _ = predict(capsys, "--checkpoint", ckpt, "--format", "json", "--segments", song)
    assert code == 0
    rec = json.loads(out)[0]
    assert rec["windows"] == math.ceil(300 / 30) * K == len(rec["segments"])
    starts = [s["start_s"] for s in rec["segments"]]
    assert starts[0] == 0 and starts == sorted(starts)
    assert abs(rec["segments"][-1]["end_s"] - 300) < 0.05  # the last window ends at the song's end
    assert all(abs(s["end_s"] - s["start_s"] - CROP_SECONDS) < 0.05 for s in rec["segments"])
    seg = np.array([list(s["probabilities"].values()) for s in rec["segments"]])
    assert np.allclose(seg.mean(0), list(rec["probabilities"].values()), atol=1e-6)  # the song = mean of windows
    # a whole-clip model: one 30 s window per 30 s of song
    code, out, _ = predict(capsys, "--checkpoint", whole_clip_ckpt, "--format", "json", "--segments", song)
    rec = json.loads(out)[0]
    assert code == 0 and rec["windows"] == 10
    assert [round(s["start_s"]) for s in rec["segments"]] == list(range(0, 300, 30))


def test_directory_is_searched_recursively_and_list_files_work(ckpt, tmp_path, capsys, monkeypatch):
    d = tmp_path / "music"
    (d / "album" / "cd2").mkdir(parents=True)
    shutil.copyfile(REAL_CLIPS[0], d / "a.mp3")
    shutil.copyfile(REAL_CLIPS[1], d / "album" / "b.MP3")
    shutil.copyfile(REAL_CLIPS[2], d / "album" / "cd2" / "c.mp3")
    shutil.copyfile(REAL_CLIPS[3], d / "album" / ".hidden.mp3")
    (d / "album" / "cover.jpg").write_bytes(b"\xff\xd8 not audio")
    (d / "notes.txt").write_text("not audio")
    code, out, _ = predict(capsys, "--checkpoint", ckpt, "--format", "json", d)
    assert code == 0
    assert [os.path.relpath(r["path"], d) for r in json.loads(out)] == [
        "a.mp3", os.path.join("album", "b.MP3"), os.path.join("album", "cd2", "c.mp3")]
    # @list: comments, blank lines, paths relative to the list's folder, duplicates predicted once
    (d / "list.txt").write_text("# my songs\na.mp3\n\nalbum/cd2/c.mp3\na.mp3\nalbum\n")
    monkeypatch.chdir(tmp_path)
    code, out, _ = predict(capsys, "--checkpoint", ckpt, "--format", "json", f"@{d / 'list.txt'}")
    assert code == 0
    assert [os.path.basename(r["path"]) for r in json.loads(out)] == ["a.mp3", "c.mp3", "b.MP3"]


def test_json_and_csv_schemas(ckpt, songs, tmp_path, capsys):
    files = [songs / "ten_seconds.wav", songs / "bad" / "empty.mp3"]
    code, out, err = predict(capsys, "--checkpoint", ckpt, "--format", "json", "--top-k", 2, *files)
    assert code == 1 and len(error_lines(err)) == 1
    ok, bad = json.loads(out)
    assert set(ok) == JSON_KEYS and set(bad) == JSON_KEYS
    assert ok["status"] == "ok" and ok["error"] == "" and isinstance(ok["duration_s"], float) and ok["windows"] == K
    assert [set(t) for t in ok["top_k"]] == [{"genre", "probability"}] * 2
    assert bad == {"path": str(files[1]), "status": "error", "error": f"{files[1]}: empty file (0 bytes)",
                   "warnings": [], "duration_s": None, "windows": 0, "top_k": [], "probabilities": {}}
    out_file = tmp_path / "sub" / "preds.csv"
    code, out, err = predict(capsys, "--checkpoint", ckpt, "--format", "csv", "--output", out_file, *files)
    assert code == 1 and out == "" and f"wrote {out_file}" in err
    with open(out_file, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["path", "status", "error", "warnings", "duration_s", "windows",
                       "genre_1", "prob_1", "genre_2", "prob_2", "genre_3", "prob_3"]
    assert rows[1][:6] == [str(files[0]), "ok", "", "", "10.000", str(K)]
    assert rows[1][6] == ok["top_k"][0]["genre"] and abs(float(rows[1][7]) - ok["top_k"][0]["probability"]) < 1e-6
    assert rows[2] == [str(files[1]), "error", f"{files[1]}: empty file (0 bytes)", "", "", "0"] + [""] * 6


def test_segments_table_and_plot(ckpt, whole_clip_ckpt, songs, tmp_path, capsys):
    png = tmp_path / "plots" / "song.png"
    code, out, _ = predict(capsys, "--checkpoint", ckpt, "--segments", "--plot", png, songs / "ten_seconds.wav")
    assert code == 0
    lines = out.splitlines()
    assert lines[1].startswith(str(songs / "ten_seconds.wav")) and len(lines) == 2 + K
    assert lines[2].strip().startswith("0:00.00-0:03.") and "-0:10.0" in lines[-1]
    assert "padding" not in out  # crops lie inside the 10 s of real audio
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    code, out, _ = predict(capsys, "--checkpoint", whole_clip_ckpt, "--segments", songs / "ten_seconds.wav")
    assert code == 0 and out.splitlines()[2].strip().startswith("0:00.00-0:30.") and "(partly padding)" in out
    code, _, err = predict(capsys, "--checkpoint", ckpt, "--plot", tmp_path / "p.png", *REAL_CLIPS[:2])
    assert code == 0 and all((tmp_path / f"p-{p.stem}.png").is_file() for p in REAL_CLIPS[:2])


def test_progress_bar_on_long_lists(ckpt, capsys):
    code, _, err = predict(capsys, "--checkpoint", ckpt, "--progress", *EIGHT_REAL[:5])
    assert code == 0 and "5/5" in err and "song" in err


def test_batching_does_not_change_predictions(ckpt, songs, capsys):
    files = [songs / "five_minutes.wav", songs / "bad" / "empty.mp3", *REAL_CLIPS[:3]]
    runs = []
    for extra in (["--batch-windows", 3, "--workers", 1], ["--batch-windows", 256, "--workers", 2]):
        code, out, _ = predict(capsys, "--checkpoint", ckpt, "--format", "json", *extra, *files)
        assert code == 1
        runs.append(json.loads(out))
    assert [r["path"] for r in runs[0]] == [str(f) for f in files] == [r["path"] for r in runs[1]]
    for a, b in zip(*runs):
        assert a["windows"] == b["windows"]
        assert np.allclose(list(a["probabilities"].values()), list(b["probabilities"].values()), atol=1e-5)


# ------------------------------------------------------------------------- same features and windows as evaluation

def test_features_are_the_caches_and_long_songs_are_computed_in_blocks(ckpt, songs, monkeypatch):
    p = predictor.load_predictor(str(ckpt), "cpu")
    for path in (STEREO_48K, songs / "ten_seconds.wav"):  # up to the clip length: the cache's exact features
        song = p.load(predictor.Song(str(path)))
        assert np.array_equal(song.features, clip_from_wave(load_audio(path, p.audio.sample_rate), p.audio)[0])
        valid = min(1 + len(load_audio(path, p.audio.sample_rate)) // p.audio.hop_length, p.audio.clip_frames)
        windows = np.stack([song.features[:, s:s + p.window_frames] for s in song.starts])
        assert np.array_equal(windows, eval_windows(song.features, valid, p.window_frames, K))  # evaluation's
    wave = load_audio(songs / "five_minutes.wav", p.audio.sample_rate)
    whole = log_mel(wave, p.audio)  # 12920 frames: 4 blocks of the default size
    monkeypatch.setattr(audio, "LOG_MEL_BLOCK_FRAMES", 100_000)  # one pass
    assert np.array_equal(whole, log_mel(wave, p.audio))


def test_windowing_rule(ckpt, whole_clip_ckpt, tmp_path):
    p, w = predictor.load_predictor(str(ckpt), "cpu"), predictor.load_predictor(str(whole_clip_ckpt), "cpu")
    sr, clip = 22050, p.audio.clip_frames
    tone = 0.1 * np.sin(np.arange(95 * sr) * 2 * np.pi * 440 / sr).astype(np.float32)
    for seconds, windows, whole in ((4, K, 1), (30, K, 1), (30.8, K, 1), (45, 2 * K, 2), (95, 4 * K, 4)):
        f = tmp_path / f"{seconds}.wav"
        sf.write(f, tone[: int(seconds * sr)], sr)
        a, b = p.load(predictor.Song(str(f))), w.load(predictor.Song(str(f)))
        assert len(a.starts) == windows and len(b.starts) == whole, seconds
        frames, audio_frames = a.features.shape[1], 1 + int(seconds * sr) // 512
        assert frames == (clip if seconds <= 31 else audio_frames)
        valid = min(audio_frames, frames)  # the real audio, not the padding
        assert a.starts[0] == 0 and a.starts[-1] == valid - p.window_frames  # start to end, evenly spaced
        assert np.ptp(np.diff(a.starts)) <= 1
        assert list(b.starts) == list(crop_starts(frames, clip, whole))


def test_max_seconds_stops_decoding_there(ckpt, tmp_path):
    """A Predictor's max_seconds (the web page's length limit) fails a longer song 'too long' where decoding
    reaches it, for a song of a clip's length and for a longer one (decoded in blocks); shorter songs pass."""
    sr = 22050
    tone = 0.1 * np.sin(np.arange(45 * sr) * 2 * np.pi * 440 / sr).astype(np.float32)
    for seconds, limit in ((20, 10.0), (45, 40.0)):
        f = tmp_path / f"{seconds}.wav"
        sf.write(f, tone[: seconds * sr], sr)
        def load(most):
            return predictor.load_predictors([str(ckpt)], "cpu", max_seconds=most)[0].load(predictor.Song(str(f)))
        refused = load(limit)
        assert refused.error and "too long" in refused.error, seconds
        assert load(seconds + 1).ok


def test_same_accuracy_as_test_py_evaluation(trained, ckpt, tmp_path, capsys):
    """The demo's test tracks, predicted from their audio files, score exactly what main.py/test.py
    reported for the checkpoint from the feature cache; per-track probabilities agree too."""
    import test as evaluation  # the repository's test.py
    from cache import prepare_cache
    from utils import ClipDataset
    results = json.loads((trained / "run" / "results.json").read_text())["test"]
    code, out, err = predict(capsys, "--checkpoint", ckpt, "--fma-dir", trained / "demo", "--subset", "small",
                             "--split", "test", "--format", "json", "--output", tmp_path / "tracks.json")
    assert code == 0, err
    report = json.loads(out)
    assert report["predicted"] == 8 and report["failed"] == 0
    assert report["accuracy"] == results["accuracy"] and report["macro_f1"] == pytest.approx(results["macro_f1"])
    assert report["confusion_matrix"] == results["confusion_matrix"]
    tracks = json.loads((tmp_path / "tracks.json").read_text())
    # the same files given as INPUTs (an @list) give the same accuracy
    (tmp_path / "test.txt").write_text("\n".join(t["path"] for t in tracks))
    code, out, _ = predict(capsys, "--checkpoint", ckpt, "--format", "json", f"@{tmp_path / 'test.txt'}")
    assert code == 0
    top = [r["top_k"][0]["genre"] for r in json.loads(out)]
    assert np.mean([g == t["label"] for g, t in zip(top, tracks)]) == results["accuracy"]
    # and test.evaluate on the cached clips gives the same probabilities, track by track
    state = torch.load(ckpt, weights_only=True)
    p = predictor.load_predictor(str(ckpt), "cpu")
    cache = prepare_cache(trained / "demo", "small", AudioConfig(**state["audio"]), cache_dir=trained / "cache",
                          progress=False, log=lambda s: None)
    rows = cache.ok.set_index("track_id").loc[[t["track_id"] for t in tracks]]
    targets = [state["classes"].index(lab) for lab in rows["label"]]
    ds = ClipDataset(cache, rows["row"].to_numpy(), targets, p.mean, p.std, crop_frames=state["crop_frames"],
                     eval_crops=state["eval_crops"])
    metrics = evaluation.evaluate(p.model, torch.utils.data.DataLoader(ds, batch_size=4), torch.device("cpu"),
                                  state["classes"])
    mine = np.array([list(t["probabilities"].values()) for t in tracks])
    assert np.allclose(metrics["probs"], mine, atol=1e-5)
    assert metrics["accuracy"] == results["accuracy"]
    # main.py's test report (what --evaluate-only writes) has those probabilities too
    with open(trained / "run" / "test_predictions.csv") as f:
        reported = {int(r["track_id"]): [float(r[f"p_{c}"]) for c in state["classes"]] for r in csv.DictReader(f)}
    assert np.allclose([reported[t["track_id"]] for t in tracks], mine, atol=1e-5)


def test_prediction_and_evaluation_share_one_inference_function(trained, ckpt, monkeypatch, capsys):
    """One function turns windows into probabilities for both: test.infer, called by test.evaluate and by the
    Predictor that pre_trained_models.py runs (so AMP and everything else are the same by construction)."""
    import test as evaluation
    assert predictor.infer is evaluation.infer
    callers = []

    def infer(*args, **kwargs):
        import inspect
        callers.append(inspect.stack()[1].function)
        return real(*args, **kwargs)

    real = evaluation.infer
    monkeypatch.setattr(evaluation, "infer", infer)
    monkeypatch.setattr(predictor, "infer", infer)
    assert predict(capsys, "--checkpoint", ckpt, next((trained / "demo" / "fma_small").rglob("*.mp3")))[0] == 0
    import main
    assert main.main(["--evaluate-only", "--checkpoint", str(ckpt), "--data-dir", str(trained / "demo"), "--cache-dir",
                      str(trained / "cache"), "--out", str(trained / "evaluate-once"), "--bootstrap", "0"]) == 0
    assert set(callers) == {"_forward", "evaluate"}  # Predictor._forward (prediction), test.evaluate (evaluate-only)


def test_fma_medium_tracks_outside_the_training_subset(ckpt, tmp_path, capsys):
    """Real metadata excerpt: medium has 4 tracks outside small (2 Hip-Hop, Rock, Folk); one file is missing."""
    root = tmp_path / "fma"
    shutil.copytree(DATA / "fma_metadata", root / "fma_metadata")
    for i, tid in enumerate([2, 5, 10, 140, 141, 148, 3, 134, 136]):  # no file for 139
        dst = audio_path(root / "fma_medium", tid)
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(REAL_CLIPS[i % len(REAL_CLIPS)], dst)
    code, out, err = predict(capsys, "--checkpoint", ckpt, "--fma-dir", root, "--subset", "medium",
                             "--output", tmp_path / "tracks.csv", "--format", "csv")
    assert code == 1  # one track failed; the others are scored
    assert error_lines(err) == [f"error: {audio_path(root / 'fma_medium', 139)}: file not found"]
    with open(tmp_path / "tracks.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["track_id"]) for r in rows] == [3, 134, 136, 139]
    assert [r["label"] for r in rows] == ["Hip-Hop", "Hip-Hop", "Rock", "Folk"]
    assert "fma_medium outside fma_small (the training subset), all splits: 4 tracks" in out
    assert "predicted 3, failed 1" in out and "accuracy " in out and "macro-F1 " in out
    hits = sum(r["genre_1"] == r["label"] for r in rows if r["status"] == "ok")
    assert f"accuracy {hits / 3:.4f}" in out
    code, _, err = predict(capsys, "--checkpoint", ckpt, "--fma-dir", root, "--subset", "medium", "--split", "test")
    assert code == 2 and "no input files found" in err  # the excerpt has no medium test track


# ------------------------------------------------------------------------------------- refusals and usage errors

def test_malicious_checkpoint_is_refused(tmp_path, capsys):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.mkdir, (str(marker),))

    bad = tmp_path / "evil.pt"
    torch.save({"model": Evil(), "classes": ["Rock"]}, bad)
    code, out, err = predict(capsys, "--checkpoint", bad, STEREO_44K)
    assert code == 2 and out == ""
    assert "refused" in err and "run code" in err
    assert not marker.exists()


def test_usage_errors_exit_2(ckpt, tmp_path, capsys):
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint" * 10)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)
    for path, message in ((tmp_path / "nope.pt", "checkpoint not found"), (garbage, str(garbage)),
                          (other, "not a checkpoint of this project")):
        code, _, err = predict(capsys, "--checkpoint", path, STEREO_44K)
        assert code == 2 and err.startswith("error: ") and message in err
    (tmp_path / "empty_dir").mkdir()
    code, _, err = predict(capsys, "--checkpoint", ckpt, tmp_path / "empty_dir")
    assert code == 2 and "no input files found" in err
    for args in ([], [STEREO_44K, "--top-k", 0], [STEREO_44K, "--fma-dir", tmp_path], [STEREO_44K, "--format", "xml"]):
        code, _, err = predict(capsys, "--checkpoint", ckpt, *args)
        assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    if not torch.cuda.is_available():
        code, _, err = predict(capsys, "--checkpoint", ckpt, "--device", "cuda", STEREO_44K)
        assert code == 2 and "no CUDA GPU" in err
