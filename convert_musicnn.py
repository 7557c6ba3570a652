"""Convert the trained TensorFlow checkpoints of the `musicnn` package into project checkpoints.

    pip download --no-deps musicnn==0.1.0 -d /tmp/musicnn          # the 29 MB wheel (ISC licence)
    python -m venv /tmp/tf-scratch                                 # TensorFlow never enters the project
    /tmp/tf-scratch/bin/pip install tensorflow-cpu tf-keras torch==2.13.0 numpy PyYAML
    /tmp/tf-scratch/bin/python convert_musicnn.py /tmp/musicnn/musicnn-0.1.0-py3-none-any.whl --out pretrained

writes pretrained/musicnn_msd.pt (Million Song Dataset, 50 Last.fm tags) and pretrained/musicnn_mtt.pt
(MagnaTagATune, 50 tags): ordinary checkpoints of this project (models.Musicnn weights, model config,
the 50 tags as classes, multi-label target, musicnn's audio parameters, an identity normalisation,
187-frame windows placed like musicnn's patches, the tag -> FMA top-genre map, and where the weights
come from). They load with `weights_only=True` like every checkpoint. The same wheel gives the same
bytes: rerun the command and compare checksums (`sha256sum pretrained/*.pt`).

TensorFlow is needed only here, to read the checkpoints (`tf.compat.v1.train.NewCheckpointReader`;
the prefix is the model folder itself, since the folder's `checkpoint` file points to the author's
machine). Every variable of the TensorFlow model is mapped to exactly one tensor of the port and
every tensor of the port receives one: anything left over, missing or of another shape is an error
(the package's own extractor swallows a failed restore and runs random weights).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from config import AudioConfig
from models import ModelConfig, Musicnn, build_model
from models_utils import save_checkpoint

# The 50 output tags of each model, in output order (musicnn/configuration.py).
MSD_TAGS = ['rock', 'pop', 'alternative', 'indie', 'electronic', 'female vocalists', 'dance', '00s',
            'alternative rock', 'jazz', 'beautiful', 'metal', 'chillout', 'male vocalists', 'classic rock',
            'soul', 'indie rock', 'Mellow', 'electronica', '80s', 'folk', '90s', 'chill', 'instrumental',
            'punk', 'oldies', 'blues', 'hard rock', 'ambient', 'acoustic', 'experimental', 'female vocalist',
            'guitar', 'Hip-Hop', '70s', 'party', 'country', 'easy listening', 'sexy', 'catchy', 'funk',
            'electro', 'heavy metal', 'Progressive rock', '60s', 'rnb', 'indie pop', 'sad', 'House', 'happy']
MTT_TAGS = ['guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast', 'piano',
            'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male', 'singing',
            'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman', 'male vocal', 'no vocal',
            'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice', 'new age', 'dance',
            'male voice', 'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird', 'country', 'metal',
            'female voice', 'choral']

# Which tags stand for which of FMA's 16 top genres (a genre's score is the highest probability of its
# tags). Genres absent from a map have no tag: MSD has none for Classical, International,
# Old-Time / Historic and Spoken. Ambiguous tags (alternative, indie, acoustic, oldies, decades, moods)
# are left out. FMA files Punk and Metal under Rock, Ambient and New Age under Instrumental, Chill-out,
# House and Dance under Electronic, Funk under Soul-RnB.
TAG_GENRES = {
    "MSD": {"Blues": ["blues"], "Country": ["country"], "Easy Listening": ["easy listening"],
            "Electronic": ["electronic", "electronica", "electro", "dance", "House", "chillout"],
            "Experimental": ["experimental"], "Folk": ["folk"], "Hip-Hop": ["Hip-Hop"],
            "Instrumental": ["instrumental", "ambient"], "Jazz": ["jazz"], "Pop": ["pop", "indie pop"],
            "Rock": ["rock", "alternative rock", "classic rock", "indie rock", "hard rock", "Progressive rock",
                     "punk", "metal", "heavy metal"],
            "Soul-RnB": ["soul", "rnb", "funk"]},
    "MTT": {"Classical": ["classical", "classic", "opera", "choral", "choir"], "Country": ["country"],
            "Electronic": ["techno", "electronic", "dance"], "Experimental": ["weird"],
            "Instrumental": ["ambient", "new age"], "International": ["indian", "sitar"], "Pop": ["pop"],
            "Rock": ["rock", "metal"]},
}

MODELS = {  # output file -> (folder in the wheel, tags, dataset, test ROC-AUC / PR-AUC from experiment.result)
    "musicnn_msd.pt": ("MSD_musicnn", MSD_TAGS, "MSD", "Million Song Dataset (50 Last.fm tags)", 0.8801927178090048,
                       0.28906431196994925),
    "musicnn_mtt.pt": ("MTT_musicnn", MTT_TAGS, "MTT", "MagnaTagATune (50 tags)", 0.9066769123674747,
                       0.38310571748763617),
}
PATCH_FRAMES = 187  # musicnn's input patches: 3 s at 16 kHz / hop 256, non-overlapping, from the song's start
CREDIT = ("musicnn by Jordi Pons and Xavier Serra, Music Technology Group, Universitat Pompeu Fabra "
          "(https://github.com/jordipons/musicnn), ISC licence; converted to PyTorch by convert_musicnn.py")


def torch_names(model: Musicnn) -> list[tuple[str, str]]:
    """(TensorFlow variable, port tensor) pairs in the order the TensorFlow graph creates its layers:
    conv2d .. conv2d_7 are the 2 timbral, 3 temporal and 3 mid-end convs, then dense (backend) and
    dense_1 (output); batch_normalization .. _10 the input BN, the 5 front-end, 3 mid-end and 2
    backend BNs."""
    convs = [f"timbral.{i}.conv" for i in range(2)] + [f"temporal.{i}.conv" for i in range(3)] + \
            [f"midend.{i}.conv" for i in range(3)]
    bns = ["input_bn"] + [f"timbral.{i}.bn" for i in range(2)] + [f"temporal.{i}.bn" for i in range(3)] + \
          [f"midend.{i}.bn" for i in range(3)] + ["backend.0", "backend.4"]
    pairs = []
    for i, name in enumerate(convs):
        tf = "conv2d" + (f"_{i}" if i else "")
        pairs += [(f"{tf}/kernel", f"{name}.weight"), (f"{tf}/bias", f"{name}.bias")]
    for tf, name in (("dense", "backend.2"), ("dense_1", "head")):
        pairs += [(f"{tf}/kernel", f"{name}.weight"), (f"{tf}/bias", f"{name}.bias")]
    for i, name in enumerate(bns):
        tf = "batch_normalization" + (f"_{i}" if i else "")
        pairs += [(f"{tf}/gamma", f"{name}.weight"), (f"{tf}/beta", f"{name}.bias"),
                  (f"{tf}/moving_mean", f"{name}.running_mean"), (f"{tf}/moving_variance", f"{name}.running_var")]
    return pairs


def to_torch(value: np.ndarray, target: torch.Tensor) -> torch.Tensor:
    """A TensorFlow variable in the layout of the port's tensor.

    conv kernels (time, freq, in, out) -> Conv2d (out, in, time, freq); a mid-end kernel (7, C_in, 1,
    out), which TensorFlow runs as a 2-D conv spanning all features, -> Conv1d (out, C_in, 7); dense
    kernels (in, out) -> Linear (out, in). Biases and BN vectors are unchanged."""
    v = np.asarray(value, dtype=np.float32)
    if v.ndim == 4 and target.ndim == 4:
        v = v.transpose(3, 2, 0, 1)
    elif v.ndim == 4 and target.ndim == 3:
        v = v[:, :, 0, :].transpose(2, 1, 0)
    elif v.ndim == 2:
        v = v.T
    if tuple(v.shape) != tuple(target.shape):
        raise ValueError(f"shape mismatch: TensorFlow {tuple(value.shape)} -> {tuple(v.shape)}, "
                         f"port {tuple(target.shape)}")
    return torch.from_numpy(np.ascontiguousarray(v))


def read_tf_checkpoint(folder: Path) -> dict[str, np.ndarray]:
    """Every model variable of a TensorFlow 1 checkpoint (the optimizer's Adam slots left out); the
    checkpoint prefix is the folder itself, with its trailing slash (`MSD_musicnn/` + `.index`)."""
    import tensorflow as tf  # only in the scratch environment that converts
    reader = tf.compat.v1.train.NewCheckpointReader(str(folder) + "/")
    names = reader.get_variable_to_shape_map()
    return {n: reader.get_tensor(n) for n in sorted(names) if "Adam" not in n and not n.endswith("_power")}


def convert(folder: Path, tags: list[str]) -> Musicnn:
    """A Musicnn with the weights of the musicnn checkpoint in `folder`; any mismatch is an error."""
    variables = read_tf_checkpoint(folder)
    model = build_model(ModelConfig(name="musicnn", n_classes=len(tags), n_mels=Musicnn.audio["n_mels"]))
    state = model.state_dict()
    pairs = torch_names(model)
    unused = sorted(set(variables) - {tf for tf, _ in pairs})
    missing_tf = [tf for tf, _ in pairs if tf not in variables]
    unfilled = sorted(k for k in state if not k.endswith("num_batches_tracked") and k not in {t for _, t in pairs})
    if unused or missing_tf or unfilled:
        raise ValueError(f"{folder}: the checkpoint and the port do not match: unused TensorFlow variables "
                         f"{unused}, missing {missing_tf}, port tensors without a value {unfilled}")
    for tf, name in pairs:
        try:
            state[name] = to_torch(variables[tf], state[name])
        except ValueError as e:
            raise ValueError(f"{folder}: {tf} -> {name}: {e}") from None
    model.load_state_dict(state, strict=True)
    return model.eval()


def checkpoint(model: Musicnn, tags: list[str], key: str, dataset: str, roc_auc, pr_auc, source: str) -> dict:
    """What pre_trained_models.py and main.py --init need: a self-contained project checkpoint."""
    audio = AudioConfig(**Musicnn.audio)
    n_mels = audio.n_mels
    return {"model": model.state_dict(), "model_config": asdict(model.config), "classes": list(tags),
            "audio": asdict(audio), "mean": torch.zeros(n_mels), "std": torch.ones(n_mels),
            "crop_frames": PATCH_FRAMES, "eval_crops": 10, "window_hop": PATCH_FRAMES, "target": "all",
            "threshold": 0.5, "epoch": 0, "tag_genres": TAG_GENRES[key],
            "pretrained": {"model": source, "dataset": dataset, "test_roc_auc": roc_auc, "test_pr_auc": pr_auc,
                           "credit": CREDIT, "licence": "ISC (pretrained/LICENSE-musicnn)"}}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], allow_abbrev=False)
    p.add_argument("source", help="the musicnn wheel (musicnn-0.1.0-py3-none-any.whl) or its unpacked folder")
    p.add_argument("--out", default="pretrained", help="output folder (default: pretrained)")
    args = p.parse_args(argv)
    src, out = Path(args.source), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        if src.is_file():
            with zipfile.ZipFile(src) as z:
                z.extractall(tmp)
            src = Path(tmp)
        root = src / "musicnn" if (src / "musicnn").is_dir() else src
        for filename, (folder, tags, key, dataset, roc, pr) in MODELS.items():
            if not (root / folder / ".index").is_file():
                print(f"error: {root / folder}/.index not found: is {args.source} the musicnn 0.1.0 wheel?",
                      file=sys.stderr)
                return 2
            model = convert(root / folder, tags)
            save_checkpoint(out / filename, checkpoint(model, tags, key, dataset, roc, pr, f"musicnn 0.1.0 {folder}"))
            print(f"wrote {out / filename}: {folder}, {sum(p.numel() for p in model.parameters()):,} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
