"""The CPU speed-ups change no result: the allocators (allocator.py: tcmalloc, glibc's thresholds), evaluation in chunks
of windows (test.infer), musicnn's front-end in evaluation (models.conv_relu_bn_max), the mono mix-down
(audio._mono), the mel filters without librosa (audio.mel_filterbank), the block-by-block decoding and log-mel of long songs (audio.audio_blocks, log_mel_blocks,
predictor.song_features), and the predictor's model threads and small batches. Speeds themselves are
bench.py's (ratios within one run), never a test's.
"""
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
import torch.nn.functional as F

import predictor as ptm
from conftest import MONO_44K, REAL_CLIPS, ROOT, STEREO_44K, STEREO_48K
from config import AudioConfig
from models import MODELS, ModelConfig, build_model, conv_relu_bn_max
from models_utils import load_checkpoint
from allocator import MODES, environment, find_tcmalloc
from audio import _mono, audio_blocks, load_audio, log_mel, log_mel_blocks
from test import infer

MSD = ROOT / "pretrained" / "musicnn_msd.pt"

# A few CRNN training steps on a fixed batch of the size of a real one (32 clips of 3 s: activations of
# 34 MiB, above glibc's largest mmap threshold): losses and the page faults of the steps after the first.
TRAIN_STEPS = """
import json, resource, sys, torch
sys.path.insert(0, {root!r})
from allocator import tune_malloc
applied = tune_malloc()
from models import ModelConfig, build_model
from train import train_one_epoch
torch.manual_seed(0)
model = build_model(ModelConfig(name="crnn", n_classes=8))
batches = [(torch.randn(32, 128, 130), torch.randint(0, 8, (32,))) for _ in range(3)]
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
losses = []
log = dict(log_interval=1, on_log=lambda steps, m: losses.append(m["loss"]))
first = train_one_epoch(model, batches[:1], opt, torch.device("cpu"), **log)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
train_one_epoch(model, batches[1:], opt, torch.device("cpu"), **log)
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
print(json.dumps({{"applied": applied, "losses": losses, "faults": faults,
                  "weights": float(sum(p.double().sum() for p in model.parameters()))}}))
"""


def test_allocators_change_no_loss_and_save_the_page_faults():
    """The same training steps on glibc's defaults, on glibc with allocator.py's thresholds and on the entry
    scripts' allocator (tcmalloc where installed): the same losses and weights bit for bit, and (where glibc is
    the C library) a fraction of the page faults."""
    script = TRAIN_STEPS.format(root=str(ROOT))
    procs = {name: subprocess.Popen([sys.executable, "-c", script], env={**environment(name), "OMP_NUM_THREADS": "1"},
                                    cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in MODES}
    out = {}
    for name, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        assert p.returncode == 0, stderr
        out[name] = json.loads(stdout.strip().splitlines()[-1])
    assert out["glibc"]["applied"] == "default"
    assert out["auto"]["applied"] == ("tcmalloc" if find_tcmalloc() else out["mallopt"]["applied"])
    for name in ("mallopt", "auto"):
        assert out[name]["losses"] == out["glibc"]["losses"] and len(out[name]["losses"]) == 3
        assert out[name]["weights"] == out["glibc"]["weights"]
        if out[name]["applied"] != "default":  # glibc, or tcmalloc
            assert out[name]["faults"] < 0.25 * out["glibc"]["faults"], out


# An entry script's first lines (main.py's), then what the process is: its id, arguments and allocator.
ENTRY = """
import json, os, sys
sys.path.insert(0, {root!r})
if __name__ == "__main__":
    import allocator
    if os.environ.get("FAKE_TCMALLOC"):  # a library that cannot be preloaded (ld.so ignores it, and says so)
        allocator.find_tcmalloc = lambda: os.environ["FAKE_TCMALLOC"]
    allocator.restart_with_tcmalloc()
from allocator import tune_malloc
print(json.dumps({{"pid": os.getpid(), "argv": sys.argv[1:], "allocator": tune_malloc(),
                  "stdin": sys.stdin.read()}}))
sys.exit(3)
"""


def run_entry(tmp_path, env: dict, timeout: float = 60) -> tuple[subprocess.Popen, str, str]:
    script = tmp_path / "entry.py"
    script.write_text(ENTRY.format(root=str(ROOT)))
    p = subprocess.Popen([sys.executable, "-u", str(script), "a b", "--c"], env={**os.environ, **env},
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = p.communicate("given", timeout=timeout)
    finally:
        p.kill()  # a script that restarts for ever
    return p, stdout, stderr


@pytest.mark.skipif(find_tcmalloc() is None, reason="tcmalloc is not installed (apt-get install libtcmalloc-minimal4)")
def test_an_entry_script_restarts_itself_on_tcmalloc(tmp_path):
    """restart_with_tcmalloc at an entry script's first line: the same process (id), arguments, input and exit
    code, now on tcmalloc; with FMA_MALLOC=mallopt or glibc it stays on glibc."""
    for value, expected in (("auto", "tcmalloc"), ("mallopt", "mallopt"), ("glibc", "default")):
        env = {k: v for k, v in environment(value).items() if k != "LD_PRELOAD"}  # the entry script's own choice
        p, stdout, stderr = run_entry(tmp_path, {"LD_PRELOAD": "", **env})
        assert p.returncode == 3, stderr
        info = json.loads(stdout)
        assert info["pid"] == p.pid and info["argv"] == ["a b", "--c"] and info["stdin"] == "given"
        assert info["allocator"] == expected, (value, info)


def test_a_library_that_cannot_be_preloaded_restarts_once(tmp_path):
    """When the preload fails (ld.so ignores a library it cannot load), the script restarts once and runs on
    glibc with the thresholds, instead of restarting for ever."""
    fake = tmp_path / "libtcmalloc_minimal.so.4"
    fake.write_text("not a library")
    p, stdout, stderr = run_entry(tmp_path, {"FAKE_TCMALLOC": str(fake), "FMA_MALLOC": "auto", "LD_PRELOAD": ""},
                           timeout=30)
    assert p.returncode == 3, stderr
    assert json.loads(stdout)["allocator"] == "mallopt"
    assert stderr.count("cannot be preloaded") == 1, stderr


def test_a_wrong_allocator_name_is_one_error_line(tmp_path):
    p, stdout, stderr = run_entry(tmp_path, {"FMA_MALLOC": "jemalloc"})
    assert p.returncode == 2 and stdout == ""
    assert stderr.strip().splitlines() == ["error: FMA_MALLOC must be one of auto, mallopt, glibc, not 'jemalloc'"]


def test_every_entry_script_restarts_before_importing_anything_else():
    """The restart is the first statement of every entry script that calls tune_malloc, before torch is loaded
    (a restart after it would load torch twice)."""
    import ast
    for script in ("main.py", "tune.py", "pre_trained_models.py", "app.py", "bench.py", "baseline.py"):
        body = ast.parse((ROOT / script).read_text()).body
        first = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
                 and not (isinstance(n, ast.ImportFrom) and n.module == "__future__")][0]
        assert isinstance(first, ast.If) and "restart_with_tcmalloc" in ast.unparse(first), script


@pytest.mark.parametrize("model", sorted(MODELS))
def test_evaluation_in_chunks_of_windows_is_one_pass(model, monkeypatch):
    """infer runs a batch of more windows than CPU_WINDOWS_PER_FORWARD (here 5 clips x 3 windows in
    chunks of 4) in chunks on CPU: the probabilities of the whole batch in one call."""
    import test
    monkeypatch.setattr(test, "CPU_WINDOWS_PER_FORWARD", 4)
    torch.manual_seed(0)
    net = build_model(ModelConfig(name=model, n_classes=8, n_mels=96 if model == "musicnn" else 128)).eval()
    x = torch.randn(5, 3, net.n_mels, 130)
    with torch.no_grad():
        one = torch.softmax(net(x.flatten(0, 1)), -1).view(5, 3, -1).mean(1)
    assert torch.allclose(infer(net, x), one, rtol=0, atol=1e-6)


def test_musicnn_front_end_in_evaluation_is_the_formula():
    """conv_relu_bn_max in eval mode (max or min of the conv by the sign of BN's scale, then ReLU and BN on
    the pooled values) against bn(relu(conv(x))).amax(3), with the shipped weights (most BN weights of the
    timbral filters are negative) and on real patches: equal to float rounding."""
    state = load_checkpoint(MSD)
    net = build_model(ModelConfig(**state["model_config"]))
    net.load_state_dict(state["model"])
    net.eval()
    reference = np.load(ROOT / "tests" / "data" / "musicnn_reference.npz")
    x = net.input_bn(net.compress(torch.from_numpy(reference["patch_db"][:4].astype(np.float32))).transpose(1, 2)
                     .unsqueeze(1))
    with torch.no_grad():
        for blk in (*net.timbral, *net.temporal):
            pad = (0, 0, blk.pad, blk.pad) if hasattr(blk, "pad") else (0, 0) + blk.pads
            xp = F.pad(x, pad)
            assert (blk.bn.weight < 0).any() or blk is net.temporal[2]
            expected = blk.bn(F.relu(blk.conv(xp))).amax(dim=3)
            assert torch.allclose(conv_relu_bn_max(blk.conv, blk.bn, xp), expected, rtol=1e-6, atol=1e-6)
        blk = net.timbral[0].train()  # training: the formula as written, batch statistics
        assert torch.equal(conv_relu_bn_max(blk.conv, blk.bn, F.pad(x, (0, 0, 3, 3))),
                           blk.bn(F.relu(blk.conv(F.pad(x, (0, 0, 3, 3))))).amax(dim=3))


def test_mono_is_the_mean_of_the_channels_bit_for_bit():
    rng = np.random.default_rng(0)
    for channels in (1, 2, 3):
        block = rng.standard_normal((4001, channels)).astype(np.float32)
        block[::7] = -0.0
        block[::5, 0] = 0.0
        block[::11, 0] = np.inf
        block[::13, -1] = -np.inf
        block[::17, 0] = np.nan
        with np.errstate(invalid="ignore"):
            assert np.array_equal(_mono(block).view(np.uint32), block.mean(axis=1).view(np.uint32)), channels


@pytest.mark.parametrize("sr, n_fft, n_mels, f_min, f_max", [(22050, 2048, 128, 0.0, None), (16000, 512, 96, 0.0, None),
                                                           (44100, 1024, 64, 1500.0, 8000.0), (8000, 256, 40, 20.0, 3999.0)])
def test_mel_filterbank_is_librosas(sr, n_fft, n_mels, f_min, f_max):
    import librosa
    from audio import mel_filterbank
    ours = mel_filterbank(sr, n_fft, n_mels, f_min, f_max)
    theirs = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=f_min, fmax=f_max)
    assert ours.dtype == theirs.dtype == np.float32 and np.array_equal(ours.view(np.uint32), theirs.view(np.uint32))


def test_decoding_and_log_mel_in_blocks_are_the_one_shot_pipeline(monkeypatch):
    """load_audio (audio_blocks joined) is the original pipeline, mix-down then one soxr call on the whole
    signal; log_mel_blocks of any block sizes is log_mel of the whole signal; bit for bit."""
    import audio as audio_module
    for path, sr in ((STEREO_44K, 22050), (MONO_44K, 16000), (STEREO_48K, 22050)):
        with sf.SoundFile(str(path)) as f:
            mixed = f.read(dtype="float32", always_2d=True).mean(axis=1)
            source_sr = f.samplerate
        assert np.array_equal(load_audio(path, sr), soxr.resample(mixed, source_sr, sr))
    monkeypatch.setattr(audio_module, "DECODE_BLOCK_SAMPLES", 1 << 18)  # several reads of a 30 s clip: a long song's path
    wave = load_audio(STEREO_48K, 16000)  # (the MP3 decoder may differ at a read's boundary, so compare blocks
    blocks = list(audio_blocks(STEREO_48K, 16000))  # with their own join)
    assert len(blocks) > 3 and np.array_equal(np.concatenate(blocks), wave)
    audio = AudioConfig(**MODELS["musicnn"].audio)
    whole = log_mel(wave, audio)
    for size in (1, 255, 256, 257, 4096, len(wave)):
        parts = list(log_mel_blocks((wave[i:i + size] for i in range(0, len(wave), size)), audio))
        assert np.array_equal(np.concatenate(parts, axis=1), whole), size
    features = ptm.song_features(iter(blocks), audio)
    assert np.array_equal(features, whole.astype(np.float16)) and features.shape == whole.shape


def test_model_threads_and_batches_give_the_same_probabilities():
    """The shipped tagger on real clips: 2 model threads with batches of 2 windows against one thread with
    one batch of 64 (the old default), songs, windows and embeddings; equal to float rounding."""
    state = load_checkpoint(MSD)
    files = [REAL_CLIPS[0], STEREO_48K, MONO_44K]
    own = torch.get_num_threads()
    runs = []
    for threads, batch in ((1, 64), (2, 2)):
        p = ptm.Predictor(state, torch.device("cpu"), batch_windows=batch, model_threads=threads)
        runs.append(list(p.predict(ptm.decode_all(p, [ptm.Song(str(f)) for f in files], 2), embeddings=True)))
    for a, b in zip(*runs, strict=True):
        assert a.ok and b.ok and len(a.starts) == len(b.starts) == 10
        assert np.abs(a.window_probs - b.window_probs).max() < 1e-6
        assert np.abs(a.probs - b.probs).max() < 1e-6
        assert np.abs(a.embedding - b.embedding).max() < 1e-5
    assert torch.get_num_threads() == own  # the caller's thread count is as it was


def test_long_songs_are_decoded_one_at_a_time_in_order():
    """decode_all lets a song longer than a clip decode only once every song before it is yielded (the
    turns of its wait_turn), whatever order the threads reach them in; short songs decode ahead."""
    events, lock = [], threading.Lock()

    class Slow:
        def load(self, song, wait_turn=None):
            long = song.path.startswith("long")
            if long:
                wait_turn()
            with lock:
                events.append(("start", song.path))
            time.sleep(0.02 if long else 0.001)
            with lock:
                events.append(("end", song.path))
            return song

    names = ["long0", "short1", "long2", "long3", "short4", "long5"]
    yielded = []
    for song in ptm.decode_all(Slow(), [ptm.Song(n) for n in names], workers=3):
        with lock:
            yielded.append(song.path)
            events.append(("yield", song.path))
    assert yielded == names
    for i, name in enumerate(names):
        if name.startswith("long"):
            start = events.index(("start", name))
            assert all(events.index(("yield", before)) < start for before in names[:i]), (name, events)
