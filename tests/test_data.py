"""FMA metadata, audio decoding, log-mel features and the feature cache (utils.py, main.py --prepare-only)."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from config import AudioConfig
from conftest import DATA, MONO_44K, REAL_CLIPS, ROOT, STEREO_44K, STEREO_48K, run_main, write_mp3
from audio import AudioError, load_audio, log_mel
from cache import cache_path, prepare_cache
from collection import DataError, audio_path, find_audio_dir, load_genres, load_metadata, load_tracks, select_subset

AUDIO = AudioConfig()


# ---------------------------------------------------------------------------------------- metadata

@pytest.fixture(scope="module")
def tracks():
    return load_tracks(DATA / "fma_metadata" / "tracks.csv")


def test_tracks_csv_two_row_header_and_types(tracks):
    assert tracks.shape == (30, 52)
    assert tracks.index.name == "track_id" and tracks.index[0] == 2
    assert ("track", "genre_top") in tracks.columns and ("set", "split") in tracks.columns
    # list columns are real lists
    assert tracks.loc[20, ("track", "genres_all")] == [17, 10, 76, 103]
    assert tracks.loc[2, ("track", "genres")] == [21]
    assert all(isinstance(v, list) for v in tracks[("track", "tags")])
    # tracks with several root genres have no genre_top
    assert tracks[("track", "genre_top")].isna().sum() == 5
    assert tracks.loc[2, ("track", "genre_top")] == "Hip-Hop"


def test_subsets_are_nested_and_splits_official(tracks):
    small, medium, large = (select_subset(tracks, s) for s in ("small", "medium", "large"))
    assert list(small.index) == [2, 5, 10, 140, 141, 148]
    assert len(small) == 6 and len(medium) == 10 and len(large) == 30
    assert set(small.index) < set(medium.index) < set(large.index)
    assert len(select_subset(tracks, "full")) == 30
    assert small[("set", "split")].tolist().count("validation") == 1
    with pytest.raises(ValueError, match="unknown subset"):
        select_subset(tracks, "tiny")


def test_genres_csv():
    genres = load_genres(DATA / "fma_metadata" / "genres.csv")
    assert len(genres) == 163
    assert list(genres.columns) == ["#tracks", "parent", "title", "top_level"]
    assert (genres["parent"] == 0).sum() == 16
    assert genres.loc[21, "title"] == "Hip-Hop"


def test_audio_path_layout(tmp_path):
    assert audio_path("fma_small", 98565).as_posix() == "fma_small/098/098565.mp3"
    assert audio_path("fma_small", 2).as_posix() == "fma_small/000/000002.mp3"
    (tmp_path / "fma_large").mkdir()
    assert find_audio_dir(tmp_path, "small") == tmp_path / "fma_large"  # large holds small's clips


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"tracks.csv not found.*download_data.sh"):
        load_metadata(tmp_path)
    r = run_main("--data-dir", tmp_path, "--prepare-only")
    assert r.returncode != 0
    assert "tracks.csv not found" in r.stderr and "download_data.sh" in r.stderr


# ---------------------------------------------------------------------------------------- decoding

@pytest.mark.parametrize("path,channels,rate", [(STEREO_44K, 2, 44100), (MONO_44K, 1, 44100), (STEREO_48K, 2, 48000)])
def test_decode_real_clips(path, channels, rate):
    info = sf.info(str(path))
    assert (info.channels, info.samplerate) == (channels, rate)  # the fixture is what we think it is
    wave = load_audio(path, 22050)
    assert wave.dtype == np.float32 and wave.ndim == 1
    assert abs(len(wave) / 22050 - info.duration) < 0.05
    assert np.isfinite(wave).all() and 0.01 < np.abs(wave).max() <= 1.5


@pytest.mark.parametrize("fmt,ext", [("WAV", ".wav"), ("FLAC", ".flac"), ("OGG", ".ogg")])
def test_decode_formats_and_resample(tmp_path, fmt, ext):
    sr = 48000
    t = np.arange(2 * sr) / sr
    x = 0.5 * np.sin(2 * np.pi * 1000 * t)
    path = tmp_path / f"tone{ext}"
    sf.write(path, np.stack([x, x], 1), sr, format=fmt)
    wave = load_audio(path, 22050)
    assert abs(len(wave) - 2 * 22050) <= 2
    peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 22050 / len(wave)
    assert abs(peak_hz - 1000) < 2  # resampling kept the pitch


def test_decode_errors_name_file_and_reason(tmp_path):
    empty = tmp_path / "empty.mp3"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp3"
    text.write_text("this is not audio\n" * 100)
    truncated = tmp_path / "truncated.mp3"
    data = STEREO_44K.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    short = tmp_path / "short.mp3"
    write_mp3(short, 1.0)
    odd = tmp_path / "song.xyz"
    odd.write_bytes(b"\0" * 1000)
    cases = {tmp_path / "missing.mp3": "file not found", empty: "empty file", text: "not decodable",
             truncated: "truncated", odd: "no decoder"}
    for path, reason in cases.items():
        with pytest.raises(AudioError, match=reason) as e:
            load_audio(path, 22050)
        assert str(path) in str(e.value)
    with pytest.raises(AudioError, match="too short"):
        load_audio(short, 22050, min_seconds=3)
    assert len(load_audio(short, 22050)) > 0.9 * 22050  # usable without a minimum


# ---------------------------------------------------------------------------------------- log-mel

def test_log_mel_matches_librosa():
    import librosa
    wave = load_audio(STEREO_44K, 22050)[: 22050 * 5]
    noise = np.random.default_rng(0).standard_normal(12345).astype(np.float32) * 0.1
    for y in (wave, noise):
        ours = log_mel(y, AUDIO)
        ref = librosa.power_to_db(librosa.feature.melspectrogram(
            y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128), ref=1.0, top_db=None)
        assert ours.shape == ref.shape == (128, 1 + len(y) // 512)
        np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_log_mel_parameters_change_shape_and_cache_key():
    a = AudioConfig(n_mels=64, hop_length=256)
    assert log_mel(np.zeros(22050, np.float32), a).shape == (64, 1 + 22050 // 256)
    assert AUDIO.clip_frames == 1292
    assert cache_path("c", "small", a) != cache_path("c", "small", AUDIO)
    assert cache_path("c", "small", AUDIO) != cache_path("c", "medium", AUDIO)


# ---------------------------------------------------------------------------------------- cache

def test_prepare_only_real_tree_all_ok(small_tree, tmp_path):
    r = run_main("--data-dir", small_tree, "--subset", "small", "--prepare-only", "--cache-dir", tmp_path / "c")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "prepared 6 tracks: 6 ok, 0 failed"
    cache = prepare_cache(small_tree, "small", cache_dir=tmp_path / "c", progress=False)
    assert list(cache.index.columns) == ["row", "track_id", "split", "label", "status", "reason", "frames",
                                    "size", "mtime_ns"]
    assert cache.index["label"].tolist() == ["Hip-Hop", "Hip-Hop", "Pop", "Folk", "Folk", "Experimental"]
    feats = cache.features
    assert feats.shape == (6, 128, 1292) and feats.dtype == np.float16
    # cached row == the feature function applied to the clip (one feature path)
    wave = load_audio(REAL_CLIPS[0], 22050)
    expected = log_mel(np.pad(wave, (0, 30 * 22050 - len(wave))), AUDIO)
    np.testing.assert_allclose(feats[0].astype(np.float32), expected, atol=0.1)


def damage(tree):
    """Damage five tracks of a large_tree; return {track_id: expected reason}."""
    from collection import audio_path
    d = tree / "fma_large"
    audio_path(d, 20).write_bytes(b"")                                     # empty
    data = audio_path(d, 26).read_bytes()
    audio_path(d, 26).write_bytes(data[: len(data) // 4])                  # truncated MP3
    audio_path(d, 30).write_text("<html>404 not found</html>\n" * 50)      # text named .mp3
    audio_path(d, 46).unlink()                                             # missing file
    write_mp3(audio_path(d, 48), 1.5)                                      # too short
    return {20: "empty file", 26: "truncated", 30: "not decodable", 46: "file not found", 48: "too short"}


def test_prepare_only_reports_exactly_the_damaged_files(large_tree, tmp_path):
    expected = damage(large_tree)
    r = run_main("--data-dir", large_tree, "--subset", "large", "--prepare-only", "--cache-dir", tmp_path / "c",
                 "--workers", 2)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[-1] == "prepared 30 tracks: 25 ok, 5 failed"
    failed_lines = [ln for ln in lines if ln.startswith("failed ")]
    assert len(failed_lines) == 5
    for tid, reason in expected.items():
        assert any(ln.startswith(f"failed {tid:06d}") and reason in ln for ln in failed_lines), (tid, reason)
    index = pd.read_csv(cache_path(tmp_path / "c", "large", AUDIO) / "index.csv", keep_default_na=False)
    assert set(index.loc[index.status == "failed", "track_id"]) == set(expected)
    assert (index.loc[index.status == "ok", "frames"] > 1200).all()


def test_short_usable_clip_is_padded(small_tree, tmp_path):
    from collection import audio_path
    write_mp3(audio_path(small_tree / "fma_small", 10), 5.0)
    cache = prepare_cache(small_tree, "small", cache_dir=tmp_path / "c", workers=1, progress=False)
    row = cache.index.set_index("track_id").loc[10]
    assert row.status == "ok" and 200 < row.frames < 230  # 5 s = 216 frames, padded to 1292
    feats = cache.features[int(row.row)].astype(np.float32)
    assert feats[:, :200].mean() > -60 and feats[:, 300:].max() == pytest.approx(-100, abs=0.1)  # silence


def test_interrupted_build_resumes_and_equals_uninterrupted(large_tree, tmp_path):
    damage(large_tree)
    args = ["--data-dir", large_tree, "--subset", "large", "--prepare-only", "--workers", 1]
    # reference: an uninterrupted build
    assert run_main(*args, "--cache-dir", tmp_path / "ref").returncode == 0
    # a build killed with SIGKILL part way through
    cdir = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), *map(str, args), "--cache-dir", str(cdir)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    journal = cache_path(cdir, "large", AUDIO) / "journal.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not journal.exists() or journal.read_text().count("\n") < 8):
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    n_done = journal.read_text().count("\n")
    assert 8 <= n_done < 30, "the build was not interrupted part way"
    assert not (journal.parent / "meta.json").exists()  # not marked complete
    r = run_main(*args, "--cache-dir", cdir)
    assert r.returncode == 0
    assert f"for {30 - n_done} of 30 tracks" in r.stdout  # only the missing ones were decoded
    assert r.stdout.strip().splitlines()[-1] == "prepared 30 tracks: 25 ok, 5 failed"
    ref = cache_path(tmp_path / "ref", "large", AUDIO)
    assert (ref / "index.csv").read_text() == (journal.parent / "index.csv").read_text()
    assert (ref / "features.npy").read_bytes() == (journal.parent / "features.npy").read_bytes()
    # and a third run does nothing
    r = run_main(*args, "--cache-dir", cdir)
    assert "building" not in r.stdout and r.stdout.strip().splitlines()[-1].startswith("prepared 30 tracks")


def test_changed_track_list_rebuilds(small_tree, tmp_path):
    c1 = prepare_cache(small_tree, "small", cache_dir=tmp_path / "c", workers=1, progress=False)
    tracks_csv = small_tree / "fma_metadata" / "tracks.csv"
    # drop one small track (with pandas: a row's quoted cells may span several lines)
    pd.read_csv(tracks_csv, index_col=0, header=[0, 1]).drop(index=148).to_csv(tracks_csv)
    c2 = prepare_cache(small_tree, "small", cache_dir=tmp_path / "c", workers=1, progress=False)
    assert len(c1.index) == 6 and len(c2.index) == 5 and c2.features.shape[0] == 5
    assert json.loads((c2.path / "meta.json").read_text())["shape"][0] == 5
