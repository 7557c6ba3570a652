"""Make tests/data/musicnn_reference.npz: outputs of the ORIGINAL TensorFlow musicnn on the real clips of
tests/data, which tests/test_musicnn.py compares the PyTorch port (models.Musicnn) against.

Not part of the test suite (it needs TensorFlow, which never enters the project). Run it once, in a
scratch virtualenv, from the repository root:

    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn
    (cd /tmp/musicnn && python -m zipfile -e musicnn-0.1.0-py3-none-any.whl .)
    python -m venv /tmp/tf-scratch
    /tmp/tf-scratch/bin/pip install tensorflow-cpu tf-keras librosa==0.11.0 soundfile soxr numpy
    TF_USE_LEGACY_KERAS=1 /tmp/tf-scratch/bin/python tests/make_musicnn_reference.py /tmp/musicnn

What it computes, for the MSD and MTT musicnn models of the wheel (graph from the wheel's own
`musicnn/models.py`, weights restored with `tf.compat.v1.train.Saver`; a failed restore is an error,
unlike the package's extractor, which swallows it):

- end to end, per clip, as the package's `extractor.batch_data` does but in float32 (its float16 cast
  overflows to inf under NumPy 2): `librosa.load(sr=16000)`, `librosa.feature.melspectrogram(n_fft=512,
  hop_length=256, n_mels=96)`, log10(10000 * mel + 1), non-overlapping 187-frame patches from frame 0;
  the song's tag probabilities are the mean over its patches (`*_song_probs`, `n_patches`);
- on fixed patches (the first and the middle patch of each clip): the patch as log-mel dB,
  10 log10(max(mel, 1e-10)), rounded to float16 (`patch_db`, (n, 96, 187), the port's input layout),
  and the original graph's sigmoid outputs (`*_patch_probs`) and penultimate layer (`msd_patch_penultimate`)
  for exactly those dB values, compressed as log10(10000 * 10^(dB / 10) + 1) in float32.
"""
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import librosa  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
OUT = DATA / "musicnn_reference.npz"
SR, N_FFT, HOP, N_MELS, N_FRAMES = 16000, 512, 256, 96, 187
AMIN = 1e-10


def clips() -> list[Path]:
    return sorted(DATA.glob("fma_small/*/*.mp3")) + sorted(DATA.glob("extra_audio/*.mp3"))


def mel_power(path: Path) -> np.ndarray:
    """(T, 96) float32 mel power, as musicnn's extractor computes it (without its float16 cast)."""
    audio, sr = librosa.load(str(path), sr=SR)
    return librosa.feature.melspectrogram(y=audio, sr=sr, hop_length=HOP, n_fft=N_FFT, n_mels=N_MELS).T.astype(np.float32)


def compress(mel: np.ndarray) -> np.ndarray:
    return np.log10(10000 * mel.astype(np.float32) + 1).astype(np.float32)


def patches(rep: np.ndarray) -> np.ndarray:
    """(T, F) -> (n, 187, F): extractor.batch_data's non-overlapping patches from frame 0."""
    return np.stack([rep[t:t + N_FRAMES] for t in range(0, rep.shape[0] - N_FRAMES + 1, N_FRAMES)])


class Original:
    """The wheel's TensorFlow graph of one model, with its trained weights."""

    def __init__(self, wheel_dir: Path, name: str):
        sys.path.insert(0, str(wheel_dir))
        from musicnn import models  # the package's own model code
        tf.compat.v1.disable_eager_execution()
        self.graph = tf.Graph()
        with self.graph.as_default():
            self.x = tf.compat.v1.placeholder(tf.float32, [None, N_FRAMES, N_MELS])
            self.is_training = tf.compat.v1.placeholder(tf.bool)
            out = models.define_model(self.x, self.is_training, name, 50)
            self.probs, self.penultimate = tf.nn.sigmoid(out[0]), out[-1]
            self.sess = tf.compat.v1.Session(graph=self.graph)
            prefix = str(wheel_dir / "musicnn" / name) + "/"
            tf.compat.v1.train.Saver().restore(self.sess, prefix)  # raises when it fails
            # check that the restore really happened: one kernel against the file
            reader = tf.compat.v1.train.NewCheckpointReader(prefix)
            var = [v for v in tf.compat.v1.global_variables() if v.name.startswith("dense_1/kernel")][0]
            assert np.array_equal(self.sess.run(var), reader.get_tensor("dense_1/kernel")), "restore failed"

    def __call__(self, batch: np.ndarray):
        return self.sess.run([self.probs, self.penultimate], {self.x: batch, self.is_training: False})


def main() -> int:
    wheel_dir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("/tmp/musicnn")
    msd, mtt = Original(wheel_dir, "MSD_musicnn"), Original(wheel_dir, "MTT_musicnn")
    out = {k: [] for k in ("msd_song_probs", "mtt_song_probs", "n_patches", "patch_db", "patch_clip",
                           "patch_index", "msd_patch_probs", "mtt_patch_probs", "msd_patch_penultimate")}
    files = clips()
    for i, path in enumerate(files):
        mel = mel_power(path)
        batch = patches(compress(mel))
        out["msd_song_probs"].append(msd(batch)[0].mean(0))
        out["mtt_song_probs"].append(mtt(batch)[0].mean(0))
        out["n_patches"].append(len(batch))
        for j in sorted({0, len(batch) // 2}):
            db = (10 * np.log10(np.maximum(mel[j * N_FRAMES:(j + 1) * N_FRAMES], AMIN))).astype(np.float16)
            x = compress(10 ** (db.astype(np.float32) / 10))[None]  # (1, 187, 96), from the stored dB
            p_msd, pen = msd(x)
            out["patch_db"].append(db.T)  # (187, 96) -> (96, 187), the port's (n_mels, frames)
            out["patch_clip"].append(i)
            out["patch_index"].append(j)
            out["msd_patch_probs"].append(p_msd[0])
            out["msd_patch_penultimate"].append(pen[0])
            out["mtt_patch_probs"].append(mtt(x)[0][0])
        print(f"{path.relative_to(DATA)}: {len(batch)} patches")
    arrays = {k: np.asarray(v) for k, v in out.items()}
    for k in ("msd_song_probs", "mtt_song_probs", "msd_patch_probs", "mtt_patch_probs", "msd_patch_penultimate"):
        arrays[k] = arrays[k].astype(np.float32)
    np.savez_compressed(OUT, files=np.array([str(p.relative_to(DATA)) for p in files]),
                        made_with=np.array(f"tensorflow {tf.__version__}, librosa {librosa.__version__}, "
                                           f"numpy {np.__version__}, musicnn 0.1.0"), **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
