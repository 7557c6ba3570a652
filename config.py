"""All defaults of the project, in one place.

Two small dataclasses hold every setting:

- `AudioConfig`: how audio becomes a log-mel spectrogram (sample rate, FFT, hop, mels, clip length).
  It is part of the feature-cache key and is saved inside every checkpoint, so prediction rebuilds
  exactly the features the model was trained on.
- `RunConfig`: everything else a run of `main.py` needs (data, model, optimisation, logging).

Every field carries its help text (with units) in `metadata["help"]`; `build_parser()` turns both
dataclasses into command-line options (`n_mels` -> `--n-mels`), so every default can be overridden
from the command line, and `load_config()` applies a preset file (`--config configs/NAME.yaml`) first.
Unknown options and unknown preset keys fail loudly.

    python main.py --help        # lists every option with its default
"""
from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, get_args, get_origin, get_type_hints


def opt(default: Any, help: str, choices: Optional[tuple] = None, flag: bool = False):
    """A dataclass field with its help text (and choices) attached."""
    return field(default=default, metadata={"help": help, "choices": choices, "flag": flag})


@dataclass(frozen=True)
class AudioConfig:
    """Audio decoding and log-mel parameters (the cache key; saved in checkpoints)."""

    sample_rate: int = opt(22050, "sample rate the audio is resampled to, in Hz")
    n_fft: int = opt(2048, "FFT size of the STFT, in samples")
    hop_length: int = opt(512, "hop between STFT frames, in samples")
    n_mels: int = opt(128, "number of mel bands")
    f_min: float = opt(0.0, "lowest mel filter frequency, in Hz")
    f_max: Optional[float] = opt(None, "highest mel filter frequency, in Hz (default: sample_rate / 2)")
    clip_seconds: float = opt(30.0, "length of the cached clip, in seconds: shorter audio is padded with "
                                    "silence, longer audio keeps its middle part")
    min_seconds: float = opt(3.0, "shortest usable audio, in seconds: anything shorter is reported as "
                                  "'too short' and excluded")

    @property
    def clip_frames(self) -> int:
        """Frames of log-mel in one cached clip (centred STFT: 1 + samples // hop)."""
        return self.frames_for(self.clip_seconds)

    def frames_for(self, seconds: float) -> int:
        return 1 + int(round(seconds * self.sample_rate)) // self.hop_length

    def key(self) -> str:
        """A readable identifier of every parameter, used to name the cache directory."""
        f_max = "nyq" if self.f_max is None else f"{self.f_max:g}"
        return (f"sr{self.sample_rate}-fft{self.n_fft}-hop{self.hop_length}-mel{self.n_mels}"
                f"-f{self.f_min:g}-{f_max}-clip{self.clip_seconds:g}s-min{self.min_seconds:g}s")


@dataclass
class RunConfig:
    """Everything a run of main.py needs besides the audio parameters."""

    config: Optional[str] = opt(None, "YAML or JSON preset (configs/NAME.yaml); command-line options override it")
    # data
    data_dir: str = opt("data", "FMA root holding fma_metadata/ and fma_<subset>/ "
                                "(bash download_data.sh, or python demo_data.py for a synthetic one)")
    subset: str = opt("small", "FMA subset (small is inside medium, inside large)",
                      choices=("small", "medium", "large", "full"))
    cache_dir: Optional[str] = opt(None, "where log-mel caches are kept (default: DATA_DIR/cache)")
    workers: Optional[int] = opt(None, "parallel decoding workers (threads; default: all cores)")
    prepare_only: bool = opt(False, "build the feature cache, report failed tracks, and stop", flag=True)
    target: str = opt("top", "what to predict: top = the single top genre (track.genre_top; 8 on small, 16 on "
                             "medium/large; tracks without one are left out and counted), softmax + cross-entropy; "
                             "all = every genre of track.genres_all (multi-label over each genre with at least one "
                             "training positive, up to 163), sigmoid + binary cross-entropy, selected on "
                             "validation macro ROC-AUC",
                      choices=("top", "all"))
    balance: str = opt("none", "unbalanced genres: none; weights = loss weights (top: n / (classes * n_genre) per "
                               "class; all: BCE pos_weight n_negative / n_positive per genre, capped at 100); "
                               "sampler = draw training clips with replacement, weighted by the inverse frequency "
                               "of their (rarest) genre",
                       choices=("none", "weights", "sampler"))
    # model
    model: str = opt("shortchunk_res", "model name (see models.MODELS): cnn1d, cnn2d, crnn, shortchunk_res, ...")
    width: Optional[int] = opt(None, "channels of the model's first stage (default: the model's own)")
    dropout: Optional[float] = opt(None, "dropout before the classifier, 0-1 (default: the model's own)")
    # optimisation
    epochs: int = opt(30, "training epochs (one pass over the training split each)")
    batch_size: int = opt(32, "clips per training batch")
    lr: float = opt(1e-3, "peak learning rate")
    weight_decay: float = opt(0.0, "weight decay (L2 for adam/sgd, decoupled for adamw)")
    optimizer: str = opt("adamw", "optimizer", choices=("adam", "adamw", "sgd"))
    scheduler: str = opt("onecycle", "learning-rate schedule: plateau (halve when validation loss stalls), "
                                     "cosine (per epoch), onecycle (per step, warm-up then anneal), none",
                         choices=("plateau", "cosine", "onecycle", "none"))
    crop_seconds: float = opt(3.0, "training crop length, in seconds (0 = the whole cached clip)")
    eval_crops: int = opt(8, "evaluation: mean of the class probabilities over this many evenly spaced "
                             "crops of crop_seconds (0 = one pass over the whole clip)")
    augment: bool = opt(False, "SpecAugment: 2 frequency and 2 time masks per training clip", flag=True)
    mixup: float = opt(0.0, "mixup Beta(alpha, alpha) parameter for training batches (0 = off)")
    eq_db: float = opt(0.0, "random EQ for training clips: a smooth curve over the mel bands within "
                            "+-EQ_DB dB per clip (0 = off)")
    contrast: float = opt(0.0, "random dynamics for training clips: each band's dB deviation from its "
                               "mean scaled by up to 2**(+-CONTRAST) (0 = off)")
    seed: int = opt(0, "random seed (model init, shuffling, crops, augmentation)")
    # execution
    device: str = opt("auto", "where to train: auto picks cuda when available", choices=("auto", "cpu", "cuda"))
    loader_workers: Optional[int] = opt(None, "DataLoader processes (default: 0 on CPU, 4 on CUDA)")
    amp: bool = opt(True, "mixed precision on CUDA (no effect on CPU)", flag=True)
    compile: bool = opt(False, "torch.compile the model (slow first steps; pays off over long CUDA runs)",
                        flag=True)
    # outputs
    out: Optional[str] = opt(None, "run directory for checkpoints, metrics and plots (default: runs/NAME)")
    name: Optional[str] = opt(None, "run name (default: MODEL-SUBSET-sSEED-TIMESTAMP)")
    wandb: str = opt("offline", "Weights & Biases: offline (local files, no account), online, disabled "
                                "(writes nothing)", choices=("offline", "online", "disabled"))
    wandb_project: str = opt("fma-genre", "Weights & Biases project name")
    resume: Optional[str] = opt(None, "continue a run from its directory or last.pt (--epochs may extend it)")
    evaluate_only: bool = opt(False, "evaluate --checkpoint on the test split and stop", flag=True)
    checkpoint: Optional[str] = opt(None, "checkpoint for --evaluate-only (a .pt file or a run directory)")


def _parse_type(tp):
    """argparse conversion for a field annotation such as `int` or `Optional[float]`."""
    if get_origin(tp) is not None:  # Optional[X] -> X
        tp = next(a for a in get_args(tp) if a is not type(None))
    if tp is bool:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    return tp


def build_parser(description: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     allow_abbrev=False)
    for cls, title in ((RunConfig, "run"), (AudioConfig, "audio / features")):
        group = parser.add_argument_group(title)
        hints = get_type_hints(cls)
        for f in fields(cls):
            name = "--" + f.name.replace("_", "-")
            meta = f.metadata
            text = meta["help"] if "(default:" in meta["help"] else f"{meta['help']} (default: {f.default})"
            if meta.get("flag"):
                group.add_argument(name, action=argparse.BooleanOptionalAction, default=None, help=text)
            else:
                group.add_argument(name, type=_parse_type(hints[f.name]), default=None,
                                   choices=meta.get("choices"), metavar=f.name.upper(), help=text)
    return parser


def _read_preset(path: str) -> dict:
    text = Path(path).read_text()
    if path.endswith((".yaml", ".yml")):
        import yaml
        data = yaml.safe_load(text) or {}
    else:
        import json
        data = json.loads(text)
    if not isinstance(data, dict):
        raise SystemExit(f"error: preset {path} must be a mapping of option: value")
    return {k.replace("-", "_"): v for k, v in data.items()}


def load_config(argv=None, description: str = "") -> tuple[RunConfig, AudioConfig, set]:
    """Defaults <- preset file (--config) <- command-line options. Unknown keys fail.

    Returns the two configs and the names of the options set explicitly (preset or command line).
    """
    args = build_parser(description).parse_args(argv)
    values = _read_preset(args.config) if args.config else {}
    known = {f.name for f in fields(RunConfig)} | {f.name for f in fields(AudioConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"error: unknown option(s) in {args.config}: {', '.join(unknown)}")
    values.update({k: v for k, v in vars(args).items() if v is not None})
    run = RunConfig(**{f.name: values[f.name] for f in fields(RunConfig) if f.name in values})
    audio = AudioConfig(**{f.name: values[f.name] for f in fields(AudioConfig) if f.name in values})
    return run, audio, set(values)


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
