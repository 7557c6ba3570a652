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

    # data
    data_dir: str = opt("data", "FMA root holding fma_metadata/ and fma_<subset>/ "
                                "(bash download_data.sh, or python demo_data.py for a synthetic one)")
    subset: str = opt("small", "FMA subset (small is inside medium, inside large)",
                      choices=("small", "medium", "large", "full"))
    cache_dir: Optional[str] = opt(None, "where log-mel caches are kept (default: DATA_DIR/cache)")
    workers: Optional[int] = opt(None, "parallel worker processes for decoding (default: all cores)")
    prepare_only: bool = opt(False, "build the feature cache, report failed tracks, and stop", flag=True)


def _parse_type(tp):
    """argparse conversion for a field annotation such as `int` or `Optional[float]`."""
    if get_origin(tp) is not None:  # Optional[X] -> X
        tp = next(a for a in get_args(tp) if a is not type(None))
    if tp is bool:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    return tp


def build_parser(description: str = "") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                                     allow_abbrev=False)
    parser.add_argument("--config", default=None,
                        help="YAML or JSON preset (configs/NAME.yaml); command-line options override it")
    for cls, title in ((RunConfig, "run"), (AudioConfig, "audio / features")):
        group = parser.add_argument_group(title)
        hints = get_type_hints(cls)
        for f in fields(cls):
            name = "--" + f.name.replace("_", "-")
            meta = f.metadata
            if meta.get("flag"):
                group.add_argument(name, action=argparse.BooleanOptionalAction, default=None,
                                   help=f"{meta['help']} (default: {f.default})")
            else:
                group.add_argument(name, type=_parse_type(hints[f.name]), default=None,
                                   choices=meta.get("choices"), metavar=f.name.upper(),
                                   help=f"{meta['help']} (default: {f.default})")
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


def load_config(argv=None, description: str = "") -> tuple[RunConfig, AudioConfig]:
    """Defaults <- preset file (--config) <- command-line options. Unknown keys fail."""
    args = build_parser(description).parse_args(argv)
    values = _read_preset(args.config) if args.config else {}
    known = {f.name for f in fields(RunConfig)} | {f.name for f in fields(AudioConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"error: unknown option(s) in {args.config}: {', '.join(unknown)}")
    values.update({k: v for k, v in vars(args).items() if v is not None and k != "config"})
    run = RunConfig(**{f.name: values[f.name] for f in fields(RunConfig) if f.name in values})
    audio = AudioConfig(**{f.name: values[f.name] for f in fields(AudioConfig) if f.name in values})
    return run, audio


def as_dict(cfg) -> dict:
    return dataclasses.asdict(cfg)
