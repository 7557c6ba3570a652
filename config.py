"""Every option of the project, its default, units and meaning, in one place (change a default here).

    python main.py --help        # the options by concern, with their defaults
    python config.py             # the same as Markdown: docs/cli.md (a test keeps the two equal)

Two dataclasses hold every setting, each field with its help text, its group in --help and its `role`:

- `AudioConfig`: how audio becomes a log-mel spectrogram (sample rate, FFT, hop, mels, clip length). It is part
  of the feature-cache key and is saved in every checkpoint, so prediction rebuilds the model's own features.
- `RunConfig`: everything else a run of main.py needs (data, model, training, augmentation, evaluation, ...).

A field's role says who may change it (ROLES): a `recipe` option changes what is trained (refused with --resume,
the same for every seed of --seeds, searchable by tune.py); `length` (epochs) may also grow on --resume; a
`machine` option changes where and how a run executes or reports, not what it learns (free on resume and across
seeds, never searched); a `command` option says what to do (set by main.py, --seeds and tune.py themselves).

`load_config` applies defaults <- preset file (--config configs/NAME.yaml) <- command line, and checks every value
(type, range, choices); any mistake is a ConfigError with one line, "did you mean" for a misspelt name.
"""
from __future__ import annotations

import argparse
import difflib
import json
import sys
from dataclasses import MISSING, dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Optional, get_args, get_origin, get_type_hints

ROOT = Path(__file__).resolve().parent  # the repository: configs/, pretrained/

ROLES = {  # role: (on --resume, across --seeds, in a tune.py search)
    "recipe": ("refused", "the same for every seed", "searched or fixed"),
    "length": ("may change (extends the run)", "the same for every seed", "searched or fixed"),
    "machine": ("may change", "may differ", "fixed for every trial, not in best.yaml"),
    "command": ("-", "set per seed", "set by tune.py"),
}
GROUPS = {"run": "what to run", "data": "data", "model": "model", "training": "training",
          "augmentation": "augmentation", "evaluation": "evaluation", "output": "output", "machine": "machine",
          "audio": "audio features (the cache key; a checkpoint keeps its own)"}
HELP_WIDTH, HELP_INDENT = 110, 34  # --help's layout: every option's help in at most two lines of this width


class ConfigError(ValueError):
    """A bad option, preset or value: main.py prints `error: MESSAGE` and exits with status 2."""


def opt(default: Any, help: str, group: str, role: str = "recipe", choices: tuple | Callable[[], tuple] = None,
        flag: bool = False, low: float = None, above: float = None, high: float = None, metavar: str = None):
    """A field with its help (short: --help shows at most two lines), --help group, role, choices (a tuple, or a
    function returning one), its range (`low` <= value, `above` < value, value <= `high`) and --help's name of
    its value (`metavar`)."""
    assert group in GROUPS and role in ROLES
    return field(default=default, metadata={"help": help, "group": group, "role": role, "choices": choices,
                                            "flag": flag, "low": low, "above": above, "high": high,
                                            "metavar": metavar})


def model_names() -> tuple:
    """The names in the model registry (models.MODELS), for --model's choices. Imported only when needed:
    models imports torch, which `import config` must not pay for."""
    from models import MODELS
    return tuple(MODELS)


FEATURE_PARAMS = ("sample_rate", "n_fft", "hop_length", "n_mels", "f_min", "f_max")  # see AudioConfig.features


@dataclass(frozen=True)
class AudioConfig:
    """Audio decoding and log-mel parameters (the cache key; saved in checkpoints)."""

    sample_rate: int = opt(22050, "sample rate the audio is resampled to, Hz", "audio", low=1000)
    n_fft: int = opt(2048, "FFT size of the STFT, samples", "audio", low=16)
    hop_length: int = opt(512, "hop between STFT frames, samples", "audio", low=1)
    n_mels: int = opt(128, "mel bands", "audio", low=1)
    f_min: float = opt(0.0, "lowest mel filter frequency, Hz", "audio", low=0)
    f_max: Optional[float] = opt(None, "highest mel filter frequency, Hz (default: sample_rate / 2)", "audio",
                                 above=0)
    clip_seconds: float = opt(30.0, "cached clip per track, s: shorter audio is padded with silence, longer keeps "
                                    "its middle", "audio", above=0)
    min_seconds: float = opt(3.0, "shortest usable training track, s: shorter ones are reported 'too short' and "
                                  "left out", "audio", low=0)

    @property
    def clip_frames(self) -> int:
        """Frames of log-mel in one cached clip (centred STFT: 1 + samples // hop)."""
        return self.frames_for(self.clip_seconds)

    def frames_for(self, seconds: float) -> int:
        return 1 + int(round(seconds * self.sample_rate)) // self.hop_length

    def features(self) -> dict:
        """The parameters that define one frame of log-mel, which a model's weights depend on (not the
        clip length, which only decides how much of each song is cached)."""
        return {k: getattr(self, k) for k in FEATURE_PARAMS}

    def key(self) -> str:
        """A readable identifier of every parameter, used to name the cache directory."""
        f_max = "nyq" if self.f_max is None else f"{self.f_max:g}"
        return (f"sr{self.sample_rate}-fft{self.n_fft}-hop{self.hop_length}-mel{self.n_mels}"
                f"-f{self.f_min:g}-{f_max}-clip{self.clip_seconds:g}s-min{self.min_seconds:g}s")


@dataclass
class RunConfig:
    """Everything a run of main.py needs besides the audio parameters. The defaults are configs/best.yaml's recipe."""

    # what to run
    config: Optional[str] = opt(None, "YAML or JSON preset (configs/NAME.yaml); options given here override it",
                                "run", "command", metavar="FILE")
    prepare_only: bool = opt(False, "build the feature cache, report failed tracks, and stop", "run", "command",
                             flag=True)
    resume: Optional[str] = opt(None, "continue a run from its folder or last.pt; --epochs N extends it", "run",
                                "command", metavar="RUN")
    evaluate_only: bool = opt(False, "evaluate --checkpoint on the test split of its data, and stop", "run",
                              "command", flag=True)
    checkpoint: Optional[list[str]] = opt(None, "with --evaluate-only: a .pt file or run folder; repeat the option "
                                                "for an ensemble (--checkpoint A --checkpoint B)", "run", "command",
                                          metavar="PATH")
    seeds: str = opt("", "comma-separated seeds (0,1,2): one run per seed in OUT/seed-K/, then OUT/aggregate.json",
                     "run", "command", metavar="LIST")
    shard: Optional[str] = opt(None, "with --prepare-only: decode slice K of N (K/N) of the cache, e.g. one job-array "
                                     "task per slice", "run", "command", metavar="K/N")
    # data
    data_dir: str = opt("data", "FMA root, a folder of class folders, or a CSV manifest; none there and not given: "
                                "the synthetic demo set data/demo", "data", metavar="DIR")
    subset: str = opt("small", "FMA subset (small is inside medium, inside large); FMA only", "data",
                      choices=("small", "medium", "large", "full"))
    split_fractions: str = opt("0.8,0.1,0.1", "a collection without a split column: its training,validation,test "
                                              "fractions", "data", metavar="T,V,T")
    split_seed: int = opt(0, "seed of that split (stratified by label, a group never in two splits)", "data", low=0)
    target: str = opt("top", "top: one genre per track (softmax); all: every genre of genres_all (multi-label, "
                             "sigmoids)", "data", choices=("top", "all"))
    balance: str = opt("none", "unbalanced genres: weights (in the training loss) or sampler (weighted draws)",
                       "data", choices=("none", "weights", "sampler"))
    # model
    model: str = opt("crnn", "model of models.MODELS; its own audio parameters (musicnn: 16 kHz, 96 mels) are the "
                             "run's defaults", "model", choices=model_names)
    width: Optional[int] = opt(None, "channels of the model's first stage (default: the model's own)", "model",
                               low=1)
    dropout: Optional[float] = opt(None, "dropout before the classifier, 0-1 (default: the model's own)", "model",
                                   low=0, high=1)
    hidden: Optional[int] = opt(None, "hidden units: cnn2d's first dense layer, crnn's LSTM, shortchunk_res's and "
                                      "musicnn's dense layer", "model", low=1)
    pool: Optional[str] = opt(None, "global pooling (cnn1d, cnn2d, shortchunk_res): avg, max, avgmax; cnn2d also "
                                    "grid", "model", choices=("avg", "max", "avgmax", "grid"))
    temporal_pool: Optional[str] = opt(None, "crnn: classify the LSTM's last step or the mean of its steps", "model",
                                       choices=("last", "mean"))
    init: Optional[str] = opt(None, "checkpoint whose weights start the model (same architecture, e.g. "
                                    "pretrained/musicnn_msd.pt); a new head for new classes", "model",
                                metavar="PATH")
    freeze_backbone: bool = opt(False, "with --init: train the head only, the backbone keeps its weights", "model",
                                flag=True)
    # training
    epochs: int = opt(40, "training epochs (passes over the training split)", "training", "length", low=1)
    batch_size: int = opt(32, "clips per training step and process (torchrun: N processes make N times this)",
                          "training", low=1)
    lr: float = opt(3e-3, "peak learning rate", "training", above=0)
    weight_decay: float = opt(0.0, "weight decay (L2 for adam and sgd, decoupled for adamw)", "training", low=0)
    optimizer: str = opt("adamw", "optimizer", "training", choices=("adam", "adamw", "sgd"))
    scheduler: str = opt("onecycle", "learning-rate schedule: onecycle (per step), cosine (per epoch), plateau "
                                     "(halve when validation loss stalls), none", "training",
                         choices=("plateau", "cosine", "onecycle", "none"))
    crop_seconds: float = opt(3.0, "training crop, s (0 = the whole cached clip)", "training", low=0)
    seed: int = opt(0, "random seed (weights, shuffling, crops, augmentation)", "training", low=0)
    # augmentation
    augment: bool = opt(True, "SpecAugment: frequency and time masks on every training clip", "augmentation",
                        flag=True)
    freq_masks: int = opt(2, "with --augment: frequency masks per clip", "augmentation", low=0)
    freq_width: int = opt(16, "widest frequency mask, mel bands", "augmentation", low=0)
    time_masks: int = opt(2, "with --augment: time masks per clip", "augmentation", low=0)
    time_width: int = opt(24, "widest time mask, frames", "augmentation", low=0)
    mixup: float = opt(0.0, "mixup's Beta(alpha, alpha) alpha (0 = off)", "augmentation", low=0)
    eq_db: float = opt(6.0, "random EQ per clip: a smooth curve over the mel bands within +-EQ_DB dB (0 = off)",
                       "augmentation", low=0)
    contrast: float = opt(0.5, "random dynamics per clip: band deviations scaled within 2**(+-CONTRAST) (0 = off)",
                          "augmentation", low=0)
    eq_points: int = opt(6, "control points of the EQ and dynamics curves over the mel bands", "augmentation",
                         low=2)
    # evaluation
    eval_crops: int = opt(8, "evaluation: mean probabilities of this many crops per clip (0 = the whole clip once)",
                          "evaluation", low=0)
    bootstrap: int = opt(1000, "bootstrap resamples of the test tracks for confidence intervals (0 = none)",
                         "evaluation", "machine", low=0)
    ci_level: float = opt(0.95, "confidence level of those intervals", "evaluation", "machine", above=0, high=0.999)
    # output
    out: Optional[str] = opt(None, "run folder for checkpoints, metrics and plots (default: runs/NAME)", "output",
                             "command", metavar="DIR")
    name: Optional[str] = opt(None, "run name (default: MODEL-SUBSET-sSEED-TIMESTAMP)", "output", "command")
    wandb: str = opt("offline", "Weights & Biases: offline (local files, no account), online, disabled", "output",
                     "machine", choices=("offline", "online", "disabled"))
    wandb_project: str = opt("fma-genre", "Weights & Biases project", "output", "machine")
    log_interval: int = opt(20, "steps between reads of the training loss (W&B, progress bar): one GPU sync each",
                            "output", "machine", low=1)
    quiet: bool = opt(False, "no progress bars (they only show on a terminal anyway)", "output", "machine", flag=True)
    # machine
    device: str = opt("auto", "where to train: auto picks cuda when available", "machine", "machine",
                      choices=("auto", "cpu", "cuda"))
    cache_dir: Optional[str] = opt(None, "where log-mel caches are kept (default: DATA_DIR/cache)", "machine",
                                   "machine", metavar="DIR")
    workers: Optional[int] = opt(None, "decoding threads of the cache build (default: all cores)", "machine",
                                 "machine", low=1)
    loader_workers: Optional[int] = opt(None, "DataLoader processes (default: 0 on CPU, 4 on CUDA)", "machine",
                                        "machine", low=0)
    threads: Optional[int] = opt(None, "torch's CPU threads (default: the cores); recorded, and kept by --resume",
                                 "machine", "machine", low=1)
    deterministic: bool = opt(True, "deterministic kernels (cuDNN without autotuning on CUDA)", "machine",
                              "machine", flag=True)
    amp: bool = opt(True, "mixed precision (float16 autocast) on CUDA; no effect on CPU", "machine", "machine",
                    flag=True)
    sync_bn: bool = opt(False, "under torchrun on CUDA: BatchNorm statistics over every process's batch", "machine",
                        "machine", flag=True)
    compile: bool = opt(False, "torch.compile the model (slow first steps; for long CUDA runs)", "machine", "machine",
                        flag=True)


CONFIGS = (RunConfig, AudioConfig)


def all_fields() -> dict:
    """name -> dataclass field, of RunConfig and AudioConfig."""
    return {f.name: f for cls in CONFIGS for f in fields(cls)}


def role(name: str) -> str:
    return all_fields()[name].metadata["role"]


def flag(name: str) -> str:
    """An option's name on the command line: split_seed -> --split-seed."""
    return "--" + name.replace("_", "-")


def names_with(*roles: str) -> tuple:
    """The options of the given roles, e.g. names_with("machine"): what --resume or --seeds may change."""
    return tuple(n for n, f in all_fields().items() if f.metadata["role"] in roles)


# ------------------------------------------------------------------------------------------ values

KINDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _base_type(name: str) -> tuple[type, bool, bool]:
    """(item type, optional, list) of a field's annotation: Optional[list[str]] -> (str, True, True)."""
    cls = next(c for c in CONFIGS if name in {f.name for f in fields(c)})
    hint = get_type_hints(cls)[name]
    optional = get_origin(hint) is not None and type(None) in get_args(hint)
    if optional:
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is list:
        return get_args(hint)[0], optional, True
    return hint, optional, False


def choices_of(name: str) -> Optional[tuple]:
    choices = all_fields()[name].metadata["choices"]
    return tuple(choices()) if callable(choices) else choices


def coerce(name: str, value, source: str = "") -> Any:
    """`value` as option `name` takes it, checked for type, choices and range; ConfigError otherwise.
    Text is converted (a preset's `1e-3`, which YAML 1.1 reads as a string; the command line's words)."""
    where = f"{source}: " if source else ""
    tp, optional, is_list = _base_type(name)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}{name} must be {KINDS.get(tp, tp.__name__)}, not null")
    if is_list:
        items = value if isinstance(value, list) else [value]
        return [coerce_item(name, tp, v, where) for v in items]
    return coerce_item(name, tp, value, where)


def coerce_item(name: str, tp: type, value, where: str) -> Any:
    """One value of type `tp` for option `name` (see coerce)."""
    if isinstance(value, str) and tp is not str:
        text = value.strip()
        try:
            value = ({"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False,
                      "0": False}[text.lower()] if tp is bool else int(text) if tp is int else float(text))
        except (KeyError, ValueError):
            pass
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, tp) or (tp is int and isinstance(value, bool)):
        raise ConfigError(f"{where}{name} must be {KINDS.get(tp, tp.__name__)}, not {value!r}")
    choices = choices_of(name)
    if choices and value not in choices:
        raise ConfigError(f"{where}unknown {name.replace('_', ' ')} {value!r}: choose from "
                          f"{', '.join(map(str, choices))}")
    meta = all_fields()[name].metadata
    for bound, ok, words in (("low", lambda b: value >= b, "at least"), ("above", lambda b: value > b, "above"),
                             ("high", lambda b: value <= b, "at most")):
        if meta[bound] is not None and not ok(meta[bound]):
            raise ConfigError(f"{where}{flag(name)} must be {words} {meta[bound]:g}, not {value!r}")
    return value


def parse_shard(text: str) -> tuple[int, int]:
    """--shard 'K/N' -> (K, N), 0 <= K < N; ConfigError otherwise."""
    k, slash, n = str(text).partition("/")
    try:
        shard = int(k), int(n)
    except ValueError:
        shard = None
    if not slash or shard is None or not 0 <= shard[0] < shard[1]:
        raise ConfigError(f"--shard takes K/N with 0 <= K < N, e.g. 0/4 for the first of 4 slices (got {text!r})")
    return shard


# ------------------------------------------------------------------------------------------ command line

class Parser(argparse.ArgumentParser):
    """argparse whose mistakes are ConfigErrors (one line, "did you mean", no usage block): main.py prints them."""

    refused: dict = {}  # option -> why this command does not take it (tune.py: main.py's --resume, ...)

    def parse_known_args(self, args=None, namespace=None):
        self.argv = list(args) if args is not None else sys.argv[1:]
        return super().parse_known_args(args, namespace)

    def error(self, message: str):
        unknown = message.partition("unrecognized arguments: ")[2].split()
        argv = getattr(self, "argv", None) or []
        if unknown and "--checkpoint" in argv and not unknown[0].startswith("-"):
            raise ConfigError(f"unexpected argument {unknown[0]}: --checkpoint takes one path; for an ensemble repeat "
                              f"the option (--checkpoint A --checkpoint B)")
        options = [o for a in self._actions for o in a.option_strings]
        for word in unknown:
            if word.split("=")[0] in self.refused:
                raise ConfigError(f"{word.split('=')[0]} is not for {self.prog}: {self.refused[word.split('=')[0]]}")
            if word.startswith("-"):
                close = difflib.get_close_matches(word.split("=")[0], options, n=1, cutoff=0.6)
                hint = f" (did you mean {close[0]}?)" if close else ""
                raise ConfigError(f"unknown option {word}{hint}; {self.prog} --help lists every option")
        if unknown:
            raise ConfigError(f"unexpected argument(s) {' '.join(unknown)}; {self.prog} --help lists every option")
        raise ConfigError(message)


def _help(f) -> str:
    """An option's help with its default once (none for options without one, or whose help names it)."""
    text = f.metadata["help"]
    if "(default" in text or f.default is None or f.default == "" or (f.default is False and f.metadata["flag"]):
        return text
    shown = ("on" if f.default else "off") if f.metadata["flag"] else f.default
    return f"{text} (default: {shown})"


def add_options(parser: argparse.ArgumentParser, skip: tuple = ()) -> argparse.ArgumentParser:
    """Every field of RunConfig and AudioConfig as --an-option, grouped by concern (GROUPS); `skip`: names left
    out (tune.py's, which sets them itself). Values are parsed by `coerce` in load_config, not here."""
    groups = {g: parser.add_argument_group(title) for g, title in GROUPS.items()}
    for name, f in all_fields().items():
        if name in skip:
            continue
        option, meta, group = flag(name), f.metadata, groups[f.metadata["group"]]
        if meta["flag"] and meta["role"] == "command":  # --prepare-only: nothing to turn off
            group.add_argument(option, action="store_const", const=True, default=None, help=_help(f))
        elif meta["flag"]:
            group.add_argument(option, action=argparse.BooleanOptionalAction, default=None, help=_help(f))
        elif _base_type(name)[2]:
            group.add_argument(option, default=None, action="append", metavar=meta["metavar"], help=_help(f))
        else:
            choices = choices_of(name)
            metavar = "{" + ",".join(choices) + "}" if choices else meta["metavar"] or name.upper()
            group.add_argument(option, default=None, metavar=metavar, help=_help(f))
    return parser


def help_formatter(prog: str) -> argparse.HelpFormatter:
    """--help's layout: a fixed width, so that each option's help takes at most two lines on any terminal."""
    return argparse.RawDescriptionHelpFormatter(prog, width=HELP_WIDTH, max_help_position=HELP_INDENT)


def build_parser(description: str = "", prog: str = "main.py", epilog: str = "") -> Parser:
    return add_options(Parser(prog=prog, usage=f"{prog} [OPTIONS]", description=description, epilog=epilog,
                              formatter_class=help_formatter, allow_abbrev=False))


# ------------------------------------------------------------------------------------------ presets

def read_preset(path: str) -> dict:
    """A preset file -> {option: value} (names as fields: n-mels -> n_mels), or a ConfigError naming the problem."""
    p = Path(path)
    if not p.is_file():
        shipped = ", ".join(sorted(x.name for x in (ROOT / "configs").glob("*.yaml")))
        raise ConfigError(f"preset {path} not found" + (f" (configs/ has {shipped})" if shipped else ""))
    try:
        text = p.read_text()
        if p.suffix in (".yaml", ".yml"):
            import yaml
            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except UnicodeDecodeError:
        raise ConfigError(f"preset {path} is not a text file") from None
    except Exception as e:  # yaml.YAMLError, json.JSONDecodeError
        detail = " ".join(str(e).split())
        raise ConfigError(f"preset {path} is not valid {'YAML' if p.suffix != '.json' else 'JSON'}: {detail}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"preset {path} must be a mapping of option: value, not {type(data).__name__}")
    if any(isinstance(v, dict) and "type" in v for v in data.values()):
        raise ConfigError(f"{path} is a search space for tune.py (python tune.py --space {path}), not a preset")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def check_names(values: dict, source: str) -> None:
    """ConfigError for a name that is no option, with the closest one."""
    known = all_fields()
    for name in values:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
            raise ConfigError(f"{source}: unknown option {name!r}" + (f" (did you mean {close[0]}?)" if close else "")
                              + "; python main.py --help lists every option")


def load_config(argv=None, description: str = "", epilog: str = "") -> tuple[RunConfig, AudioConfig, set]:
    """Defaults <- preset file (--config) <- command-line options, every value checked (`coerce`).

    Returns the two configs and the names of the options set explicitly (preset or command line)."""
    args = build_parser(description, epilog=epilog).parse_args(argv)
    return resolve({k: v for k, v in vars(args).items() if v is not None})


def repository_file(path: str) -> str:
    """A preset's relative path as given where it exists from the current folder, else the repository's file
    (the presets name shipped checkpoints, e.g. pretrained/musicnn_msd.pt, and run from any folder)."""
    here, ours = Path(path), ROOT / path
    return str(ours) if not here.is_absolute() and not here.exists() and ours.exists() else path


def resolve(given: dict) -> tuple[RunConfig, AudioConfig, set]:
    """The configs of options given as {name: value} (strings or values), over --config's preset, over the
    defaults; and the names set explicitly. ConfigError for an unknown name or a bad value."""
    values = read_preset(given["config"]) if given.get("config") else {}
    check_names(values, f"preset {given.get('config')}")
    values = {k: coerce(k, v, f"preset {given['config']}") for k, v in values.items()}
    if values.get("init"):
        values["init"] = repository_file(values["init"])
    values.update({k: coerce(k, v) for k, v in given.items()})
    run = RunConfig(**{k: v for k, v in values.items() if k in {f.name for f in fields(RunConfig)}})
    audio = AudioConfig(**{k: v for k, v in values.items() if k in {f.name for f in fields(AudioConfig)}})
    return run, audio, set(values)


def absolute(run: RunConfig) -> RunConfig:
    """The data and cache folders as absolute paths: what a run (or a search's best.yaml) records, valid from
    any directory."""
    return replace(run, data_dir=str(Path(run.data_dir).resolve()),
                   cache_dir=str(Path(run.cache_dir).resolve()) if run.cache_dir else None)


def parse_fractions(text: str) -> tuple[float, float, float]:
    """--split-fractions '0.8,0.1,0.1' -> (0.8, 0.1, 0.1): three positive fractions that sum to 1."""
    try:
        parts = tuple(float(x) for x in str(text).split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) <= 0 or abs(sum(parts) - 1) > 1e-6:
        raise ConfigError(f"--split-fractions takes three positive fractions that sum to 1, e.g. 0.8,0.1,0.1 "
                          f"(got {text!r})")
    return parts


def seed_list(value) -> list[int]:
    """--seeds '0,1,2' (or a preset's list [0, 1, 2]) -> [0, 1, 2]; empty -> [] (a single run)."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        seeds = [int(str(s).strip()) for s in items]
    except ValueError:
        raise ConfigError(f"--seeds takes comma-separated integers such as 0,1,2, not {value!r}") from None
    if len(set(seeds)) < len(seeds):
        raise ConfigError(f"--seeds {value}: a seed is given twice")
    return seeds


def check_run(run: RunConfig, given: set) -> None:
    """The options that do not go together, as ConfigErrors (before any work)."""
    seeds = seed_list(run.seeds)
    parse_fractions(run.split_fractions)
    if seeds and (run.resume or run.evaluate_only):
        raise ConfigError("--seeds trains new runs and does not combine with --resume or --evaluate-only (rerun the "
                          "--seeds command to continue it: finished seeds are skipped)")
    if run.shard is not None:
        parse_shard(run.shard)
        if not run.prepare_only:
            raise ConfigError("--shard builds one slice of the cache and goes with --prepare-only")
    if run.checkpoint and not run.evaluate_only:
        raise ConfigError("--checkpoint goes with --evaluate-only (to start training from a checkpoint's weights, "
                          "use --init PATH; to continue a run, --resume RUN)")
    if run.evaluate_only and not run.checkpoint:
        raise ConfigError("--evaluate-only needs --checkpoint PATH (a .pt file or a run folder)")
    if run.evaluate_only and (run.resume or run.prepare_only):
        raise ConfigError("--evaluate-only does not combine with --resume or --prepare-only")
    if run.freeze_backbone and not run.init:
        raise ConfigError("--freeze-backbone needs --init PATH: it trains the head on the backbone's pretrained "
                          "weights")
    if run.resume:
        changed = sorted(n for n in given if role(n) == "recipe" or n in ("config", "out", "name"))
        if changed:
            free = ", ".join(flag(n) for n in names_with("length", "machine"))
            raise ConfigError(f"--resume continues a run as it was trained: {', '.join(map(flag, changed))} "
                              f"would change it (start a new run instead); what may change: {free}")


# ------------------------------------------------------------------------------------------ reference

def markdown_reference() -> str:
    """docs/cli.md: every option by group, with its default, role and help (`python config.py` prints it)."""
    lines = ["# Options of main.py", "",
             "Written by `python config.py > docs/cli.md` from config.py (a test keeps them equal). Every option",
             "can be set on the command line (`--batch-size 16`) or in a preset (`batch_size: 16`). The role says",
             "who may change an option: " + "; ".join(f"**{r}**: on --resume {a}, across --seeds {b}, in tune.py "
                                                     f"{c}" for r, (a, b, c) in ROLES.items()) + "."]
    for group, title in GROUPS.items():
        lines += ["", f"## {title[0].upper() + title[1:]}", "", "| option | default | role | meaning |",
                  "|---|---|---|---|"]
        for name, f in all_fields().items():
            if f.metadata["group"] == group:
                default = "" if f.default is MISSING else f.default
                option = f"`{flag(name)}`" + (" / `--no-...`" if f.metadata["flag"] else "")
                lines.append(f"| {option} | {default!r} | {f.metadata['role']} | {f.metadata['help']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_reference(), end="")
