"""Hyperparameter search for main.py's training, on Optuna (TPE sampler, median or Hyperband pruning).

The study: each trial trains through train.train() into OUT/trial-N/ (the details below; docs/tuning.md).

    python tune.py --config configs/best.yaml --data-dir data/demo --n-trials 20     # one worker
    python tune.py --config configs/best.yaml --data-dir data/demo --n-trials 20 &   # start it twice (or on
    python tune.py --config configs/best.yaml --data-dir data/demo --n-trials 20     #  two GPUs): one study
    python tune.py ... --storage postgresql://USER:PASSWORD@HOST/DB --name crnn-search  # workers on many machines
    python tune.py ... --storage journal:/shared/crnn-search.log                     # a journal file (NFS)
    python main.py --config runs/tune/search_space/best.yaml                           # train the best preset
    python tune.py --help                                                            # every option

Each trial draws its parameters from the search space (--space, a YAML file; configs/search_space.yaml is the
default, with its format) over the base preset (--config) and the main.py options given here, and trains
through train.train() into OUT/trial-N/, reporting every epoch's validation metric (accuracy; macro ROC-AUC for
--target all) to the pruner, which stops hopeless trials (their checkpoints are deleted). A trial's value is
its best validation metric (results.json), the one best.pt is selected on. Each trial is a W&B run of its own,
grouped by study (WANDB_RUN_GROUP=NAME).

The study lives in its storage: by default OUT/study.db (SQLite), so a killed study continues when the command
is rerun. --n-trials is the study's total of finished (complete or pruned) trials: a rerun or an extra worker
runs only the missing ones, and every worker ends when the study has them all. A trial whose worker died (no
heartbeat for 2 x --heartbeat seconds) is marked FAIL, not counted, and run again by a live worker.

A worker that ends writes into OUT (runs/tune/NAME/): best.yaml (a preset for main.py --config: the base preset,
the fixed values and the best trial's parameters), trials.csv (every trial), history.png, importances.png and
parallel_coordinate.png (Optuna's matplotlib plots), and prints a table of the best trials.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import argparse
import difflib
import json
import math
import os
import shutil
import sys
import threading
import time
import warnings
from dataclasses import asdict, fields, replace
from pathlib import Path

import yaml

from allocator import tune_malloc
from config import (KINDS, AudioConfig, ConfigError, Parser, RunConfig, _base_type, absolute, add_options, all_fields,
                    coerce, flag, help_formatter, names_with, resolve, role)

SPACE_TYPES = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
               "categorical": {"choices"}}
FINISHED = ("COMPLETE", "PRUNED")  # the TrialStates --n-trials counts


def tune_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """tune.py's own options and their defaults (every other option is main.py's, fixed for all trials)."""
    g = parser.add_argument_group("tune.py's options (those after them are main.py's: each fixes a setting for "
                                  "every trial, over the space file)")
    g.add_argument("--config", default=None, metavar="FILE",
                   help="base preset (configs/best.yaml): every trial starts from it (default: config.py's defaults)")
    g.add_argument("--space", default="configs/search_space.yaml", metavar="FILE",
                   help="the search space: main.py options' ranges, choices and fixed values, in YAML (default: "
                        "configs/search_space.yaml)")
    g.add_argument("--n-trials", type=int, default=20, metavar="N",
                   help="the study's total of finished (complete or pruned) trials; a rerun runs only the missing ones "
                        "(default: 20)")
    g.add_argument("--storage", default=None, metavar="URL",
                   help="Optuna storage that workers share: an RDB URL, or a journal file PATH.log (default: "
                        "sqlite:///OUT/study.db)")
    g.add_argument("--name", default=None, help="study name, in the storage and in OUT (default: the space file's name)")
    g.add_argument("--out", default=None, metavar="DIR",
                   help="study folder: trial-N/ runs, best.yaml, trials.csv, plots (default: runs/tune/NAME)")
    g.add_argument("--pruner", default="median", choices=("median", "hyperband", "none"),
                   help="stops hopeless trials after an epoch: Optuna's MedianPruner, HyperbandPruner, or none "
                        "(default: median)")
    g.add_argument("--prune-after", type=int, default=2, metavar="EPOCHS",
                   help="epochs every trial trains before the pruner may stop it (default: 2)")
    g.add_argument("--startup-trials", type=int, default=5, metavar="N",
                   help="median pruner: finished trials before it prunes any (default: 5)")
    g.add_argument("--seed", type=int, default=0,
                   help="seed of the TPE sampler (trial N draws with (SEED, N)); main.py's --seed is a space entry "
                        "(default: 0)")
    g.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="this worker starts no new trial after this; rerun to continue (default: none)")
    g.add_argument("--heartbeat", type=int, default=60, metavar="SECONDS",
                   help="between a running trial's heartbeats; none for 2 x this: a dead worker's, marked FAIL "
                        "(default: 60)")
    g.add_argument("--max-failures", type=int, default=3, metavar="N",
                   help="stop this worker after this many failed trials in a row, 0 = never (default: 3)")
    return parser


class InputError(ConfigError):
    """Bad input (options, space file, storage): exit 2, nothing written."""


class TrialFailed(Exception):
    """A trial's training failed: the trial is marked FAIL and the study goes on."""


class Surplus(Exception):
    """Two workers started a trial at once and this one would exceed --n-trials: marked FAIL, not run."""


# ------------------------------------------------------------------------------------------ search space

def _param(name: str, spec: dict, source: str) -> dict:
    """One searched parameter, checked: {'type': ..., 'low'/'high'/'log'/'step' or 'choices'}."""
    where = f"{source}: {name}"
    kind = spec.get("type")
    if kind not in SPACE_TYPES:
        raise InputError(f"{where}: type {kind!r} is not one of {', '.join(SPACE_TYPES)} (a fixed value is written "
                         f"without a mapping: `{name}: VALUE`)")
    extra = sorted(set(spec) - SPACE_TYPES[kind] - {"type"})
    if extra:
        raise InputError(f"{where}: unknown key(s) {', '.join(extra)} for type {kind} (it takes "
                         f"{', '.join(sorted(SPACE_TYPES[kind]))})")
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or len(choices) < 2:
            raise InputError(f"{where}: choices must be a list of at least two values, not {choices!r} (a single "
                             f"value is written `{name}: VALUE`)")
        choices = [coerce(name, c, source) for c in choices]
        if len(set(map(repr, choices))) < len(choices):
            raise InputError(f"{where}: a choice is given twice in {choices}")
        return {"type": kind, "choices": choices}
    if "low" not in spec or "high" not in spec:
        raise InputError(f"{where}: type {kind} needs low and high")
    tp = _base_type(name)[0]
    if tp not in ((float,) if kind == "float" else (int, float)):
        hint = "type: int" if tp is int else "type: categorical"
        raise InputError(f"{where}: a {kind} range does not fit {name}, which must be {KINDS[tp]} (write `{hint}`)")
    if kind == "int" and not all(isinstance(spec[k], int) and not isinstance(spec[k], bool) for k in ("low", "high")):
        raise InputError(f"{where}: low and high of an int range must be integers, not {spec['low']!r}, "
                         f"{spec['high']!r}")
    low, high = (coerce(name, spec[k], source) if kind == "float" else spec[k] for k in ("low", "high"))
    if not low < high:
        raise InputError(f"{where}: empty range: low {low} must be below high {high}")
    log, step = spec.get("log", False), spec.get("step")
    if not isinstance(log, bool):
        raise InputError(f"{where}: log must be true or false, not {log!r}")
    if log and low <= 0:
        raise InputError(f"{where}: a log range needs low > 0, not {low}")
    if step is not None:
        if log or not isinstance(step, (int, float)) or isinstance(step, bool) or step <= 0 or (
                kind == "int" and not isinstance(step, int)):
            raise InputError(f"{where}: step must be a positive {'integer' if kind == 'int' else 'number'} "
                             f"and not combined with log, not {step!r}")
    return {"type": kind, "low": low, "high": high, "log": log, "step": step}


def load_space(path: str) -> tuple[dict, dict]:
    """The space file -> (searched parameters, fixed values), every key a checked RunConfig field."""
    try:
        data = yaml.safe_load(Path(path).read_text())
    except OSError as e:
        raise InputError(f"cannot read the space file {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise InputError(f"{path} is not valid YAML: {e}") from None
    if not isinstance(data, dict) or not data:
        raise InputError(f"{path} must be a mapping of RunConfig field: range or value")
    run_fields = {f.name for f in fields(RunConfig)}
    audio_fields = {f.name for f in fields(AudioConfig)}
    search, fixed = {}, {}
    for key, spec in data.items():
        name = str(key).replace("-", "_")
        if name in audio_fields:
            raise InputError(f"{path}: {name} is an audio parameter (each value builds another feature cache), not "
                             f"a RunConfig field: fix it on the command line ({flag(name)})")
        if name not in run_fields:
            close = difflib.get_close_matches(name, sorted(run_fields), n=1)
            raise InputError(f"{path}: unknown parameter {key!r}: not a RunConfig field of config.py"
                             + (f" (did you mean {close[0]}?)" if close else "") + "; python main.py --help lists them")
        if role(name) == "command":
            raise InputError(f"{path}: {name} is set by tune.py, not searched")
        if role(name) == "machine":
            raise InputError(f"{path}: {name} says where and how trials run, not what they learn: give it on the "
                             f"command line ({flag(name)})")
        if isinstance(spec, dict):
            search[name] = _param(name, spec, path)
        elif isinstance(spec, list):
            raise InputError(f"{path}: {name}: a list is not a value; a choice is written "
                             f"`{name}: {{type: categorical, choices: {spec}}}`")
        else:
            fixed[name] = coerce(name, spec, path)
    return search, fixed


def suggest(trial, name: str, p: dict):
    if p["type"] == "categorical":
        return trial.suggest_categorical(name, p["choices"])
    if p["type"] == "int":
        return trial.suggest_int(name, p["low"], p["high"], log=p["log"], step=p["step"] or 1)
    return trial.suggest_float(name, p["low"], p["high"], log=p["log"], step=p["step"])


# ------------------------------------------------------------------------------------------ storage

class Heartbeat:
    """A running trial's heartbeat through Optuna's public API: a thread records time.time() in the trial's user
    attribute "heartbeat" every `seconds` (RDB storages and journal files alike); `fail_stale` reads it."""

    def __init__(self, trial, seconds: float):
        self.trial, self.seconds, self.stop = trial, seconds, threading.Event()
        trial.set_user_attr("heartbeat", time.time())  # the first beat before training starts
        self.thread = threading.Thread(target=self.run, name="heartbeat", daemon=True)
        self.thread.start()

    def run(self) -> None:
        while not self.stop.wait(self.seconds):
            try:
                self.trial.set_user_attr("heartbeat", time.time())
            except Exception:  # failed by another worker meanwhile: its tell() will say so
                return

    def __enter__(self) -> "Heartbeat":
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join()


def fail_stale(study, heartbeat: float) -> None:
    """Mark FAIL (study.tell) every RUNNING trial without a heartbeat for 2 x `heartbeat` seconds since its last
    one, or since its start when it has none (a worker killed between creating the trial and its first beat):
    its worker died. The machines' clocks are compared, so they must agree to well within a heartbeat."""
    import optuna
    now = time.time()
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        last = t.user_attrs.get("heartbeat", t.datetime_start.timestamp())
        if now - last > 2 * heartbeat:
            try:
                study.tell(t.number, state=optuna.trial.TrialState.FAIL, skip_if_finished=True)
            except optuna.exceptions.UpdateFinishedTrialError:  # another worker marked it meanwhile
                continue
            print(f"trial {t.number}: no heartbeat from its worker (killed?): marked FAIL, not counted", flush=True)


def open_storage(spec: str):
    """--storage -> an Optuna storage, opened (InputError when it cannot be: nothing is written then)."""
    import optuna
    if spec.startswith("journal:") or (spec.endswith(".log") and "://" not in spec):
        path = spec.removeprefix("journal:")
        if not Path(path).parent.is_dir():
            raise InputError(f"journal file {path}: folder {Path(path).parent} does not exist")
        from optuna.storages.journal import JournalFileBackend
        return optuna.storages.JournalStorage(JournalFileBackend(path))
    if "://" not in spec:
        raise InputError(f"--storage {spec}: not an Optuna storage: give an RDB URL (sqlite:///PATH.db, "
                         "postgresql://USER:PASSWORD@HOST/DB, mysql://...) or a journal file (PATH.log, journal:PATH)")
    try:
        from sqlalchemy.engine import make_url
        shown = make_url(spec).render_as_string(hide_password=True)
    except Exception:
        shown = spec.split("@")[-1]
    if spec.startswith("sqlite:///") and not Path(spec.removeprefix("sqlite:///")).parent.is_dir():
        raise InputError(f"--storage {shown}: folder {Path(spec.removeprefix('sqlite:///')).parent} does not exist")
    engine = {"connect_args": {"timeout": 60}} if spec.startswith("sqlite") else None  # several workers: wait
    for attempt in range(5):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            try:
                return optuna.storages.RDBStorage(spec, engine_kwargs=engine)
            except Exception as e:  # no driver, unreachable server, bad URL, no permission
                reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                if attempt < 4 and ("already exists" in reason or "locked" in reason or "UNIQUE" in reason):
                    time.sleep(1 + attempt)  # workers started at once on a new storage: one creates the tables
                    continue
                cause = f" ({e.__cause__})" if isinstance(e, ImportError) and e.__cause__ else ""
                raise InputError(f"cannot open storage {shown}: {reason}{cause}") from None


def make_sampler(seed: int):
    """TPE whose random draws in trial N are seeded by (SEED, N): reproducible for one worker, different for
    workers started at once with the same --seed (a TPESampler per trial: it keeps no state of its own)."""
    import numpy as np
    import optuna

    class TrialSeededTPE(optuna.samplers.BaseSampler):
        def __init__(self):
            self.tpe = optuna.samplers.TPESampler(seed=seed)

        def before_trial(self, study, trial):
            self.tpe = optuna.samplers.TPESampler(seed=int(np.random.SeedSequence([seed, trial.number])
                                                           .generate_state(1)[0]))
            self.tpe.before_trial(study, trial)

        def infer_relative_search_space(self, study, trial):
            return self.tpe.infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):
            return self.tpe.sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):
            return self.tpe.sample_independent(study, trial, param_name, param_distribution)

        def after_trial(self, study, trial, state, values):
            self.tpe.after_trial(study, trial, state, values)

    return TrialSeededTPE()


def make_pruner(args):
    import optuna
    if args.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=args.startup_trials,
                                           n_warmup_steps=max(args.prune_after - 1, 0))
    if args.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=max(args.prune_after, 1))
    return optuna.pruners.NopPruner()


# ------------------------------------------------------------------------------------------ options

# tune.py's own options (main.py's --seed is a space entry); main.py's other `command` options are refused
TUNE_OPTIONS = tuple(a.dest for a in tune_options(argparse.ArgumentParser(add_help=False))._actions)
REFUSED = {flag(n): "each trial is a new run in OUT/trial-N/ (rerun the tune.py command to "
           "continue a study)" for n in names_with("command") if n not in TUNE_OPTIONS}


def tune_parser() -> Parser:
    """tune.py's options first, then main.py's (but those tune.py sets itself: the `command` ones, and --seed)."""
    about, _, rest = __doc__.partition("\n\n")
    parser = Parser(prog="tune.py", usage="tune.py [OPTIONS]", description=about, epilog=rest.partition("\n\n")[2],
                    formatter_class=help_formatter, allow_abbrev=False)
    parser.refused = REFUSED
    return add_options(tune_options(parser), skip=names_with("command") + ("seed",))


def parse(argv) -> tuple[argparse.Namespace, RunConfig, AudioConfig, set, set]:
    """-> tune.py's options, the base run and audio (defaults <- --config <- main.py options), the names set
    by the preset or the command line, and those set on the command line."""
    args = tune_parser().parse_args(argv)
    cli = {k: v for k, v in vars(args).items() if v is not None and k in all_fields() and k not in TUNE_OPTIONS}
    run, audio, given = resolve({**cli, **({"config": args.config} if args.config else {})})
    run = absolute(run)  # what best.yaml records: valid anywhere
    for option, value, low in (("--n-trials", args.n_trials, 1), ("--heartbeat", args.heartbeat, 1),
                               ("--prune-after", args.prune_after, 1), ("--startup-trials", args.startup_trials, 0),
                               ("--max-failures", args.max_failures, 0)):
        if value < low:
            raise InputError(f"{option} must be at least {low}, not {value}")
    return args, run, audio, (given - {"config"}) | {"data_dir"}, set(cli)


def training_values(run: RunConfig, audio: AudioConfig, keys) -> dict:
    """The named settings of a run, without the machine-specific ones: a preset's content."""
    both = {**asdict(audio), **asdict(run)}
    return {k: both[k] for k in sorted(keys) if role(k) not in ("machine", "command")}


# ------------------------------------------------------------------------------------------ the study

def study_setup(study, setup: dict) -> None:
    """Record what the study searches (first worker), or check that this worker searches the same."""
    setup = json.loads(json.dumps(setup))
    saved = study.user_attrs.get("setup")
    if saved is None:
        study.set_user_attr("setup", setup)
    elif saved != setup:
        differ = sorted(k for part in setup for k in set(setup[part]) | set(saved.get(part, {}))
                        if setup[part].get(k) != saved.get(part, {}).get(k))
        raise InputError(f"study {study.study_name} in this storage searches another space or base preset "
                         f"(differs in: {', '.join(differ)}); give another --name, or the study's own options")


def make_objective(args, base: RunConfig, audio: AudioConfig, given: set, search: dict, fixed: dict,
                   metric: str, out: Path, state: dict):
    import optuna

    from models_utils import CheckpointError, model_audio
    from train import train
    from collection import DataError

    def objective(trial):
        live = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.RUNNING,
                optuna.trial.TrialState.WAITING)
        if sum(t.number < trial.number for t in trial.study.get_trials(deepcopy=False, states=live)) >= args.n_trials:
            raise Surplus(f"the study has its {args.n_trials} trials (finished or running) without this one")
        params = {name: suggest(trial, name, p) for name, p in search.items()}
        run_dir = out / f"trial-{trial.number}"
        run = replace(base, **fixed, **params, out=str(run_dir), name=None)
        run_audio = model_audio(run, audio, given)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("preset", training_values(run, run_audio, given | set(search) | set(fixed)))
        print(f"trial {trial.number}: {', '.join(f'{k}={_short(v)}' for k, v in params.items())} -> {run_dir}/",
              flush=True)

        def on_epoch(epoch: int, row: dict) -> None:
            value = row[metric]
            if math.isfinite(value):
                trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"{metric} {value:.4f} after epoch {epoch}")

        try:
            with Heartbeat(trial, args.heartbeat):
                train(run, run_audio, given | set(search) | set(fixed) | {"out"}, on_epoch=on_epoch)
        except optuna.TrialPruned:
            for checkpoint in run_dir.glob("*.pt"):
                checkpoint.unlink()
            state["failures"] = 0
            raise
        except (DataError, CheckpointError):  # the data, not the parameters: every trial would fail
            raise
        except Exception as e:
            state["failures"] += 1
            raise TrialFailed(f"{type(e).__name__}: {e}") from e
        state["failures"] = 0
        value = json.loads((run_dir / "results.json").read_text()).get(metric)
        if value is None:
            raise TrialFailed(f"no {metric} in {run_dir}/results.json: tune.py needs a validation split")
        return value

    return objective


def counts(study) -> tuple[int, int]:
    """(finished, running) trials of the study."""
    states = [t.state.name for t in study.get_trials(deepcopy=False)]
    return sum(s in FINISHED for s in states), states.count("RUNNING")


def work(study, objective, args, state: dict) -> str:
    """Run trials until the study has --n-trials finished and none running; -> why this worker stopped."""
    started = time.monotonic()
    while True:
        fail_stale(study, args.heartbeat)  # a dead worker's RUNNING trial -> FAIL
        finished, running = counts(study)
        if finished >= args.n_trials and not running:
            return f"the study has its {finished} finished trials"
        if args.timeout is not None and time.monotonic() - started >= args.timeout:
            return f"--timeout {args.timeout:g} s: {finished} of {args.n_trials} trials finished; rerun to continue"
        if args.max_failures and state["failures"] >= args.max_failures:
            return f"{state['failures']} trials failed in a row (see above)"
        if finished + running >= args.n_trials:  # the last ones run elsewhere (or are a dead worker's, until stale)
            time.sleep(min(5, args.heartbeat))
            continue
        study.optimize(objective, n_trials=1, catch=(TrialFailed, Surplus), gc_after_trial=True)


# ------------------------------------------------------------------------------------------ outputs

def _short(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _replace(path: Path, write) -> None:
    """write(tmp) then rename: workers that end together never leave a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _shown_value(t) -> float:
    """A trial's value; for a pruned one, the best metric it reported."""
    return t.value if t.value is not None else max(t.intermediate_values.values(), default=float("nan"))


def trials_table(study, metric: str, names: list[str], most: int = 15) -> str:
    """Markdown table of the best finished trials: the completed ones first, best first."""
    done = sorted((t for t in study.trials if t.state.name in FINISHED),
                  key=lambda t: (t.state.name != "COMPLETE", -_shown_value(t)))
    rows = ["| trial | state | " + metric + " | epochs | " + " | ".join(names) + " |",
            "|---:|---|---:|---:|" + "---|" * len(names)]
    for t in done[:most]:
        rows.append(f"| {t.number} | {t.state.name.lower()} | {_shown_value(t):.4f} | {len(t.intermediate_values)} | "
                    + " | ".join(_short(t.params.get(n, "")) for n in names) + " |")
    return "\n".join(rows) + (f"\n({len(done) - most} more in trials.csv)" if len(done) > most else "")


def plots(study, metric: str, names: list[str], out: Path) -> list[str]:
    """Optuna's matplotlib plots as PNG; -> notes on the ones skipped."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    notes, todo = [], [("history.png", lambda: ovm.plot_optimization_history(study, target_name=metric))]
    if len(complete) >= 2 and len(names) >= 2:
        todo.append(("importances.png", lambda: ovm.plot_param_importances(study, target_name=metric)))
    else:
        notes.append("importances.png skipped: it needs 2 completed trials and 2 searched parameters")
    todo.append(("parallel_coordinate.png", lambda: ovm.plot_parallel_coordinate(study, target_name=metric)))
    for name, plot in todo:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                figure = plot().figure
            figure.set_size_inches(max(8, 1.2 * len(names)) if name == "parallel_coordinate.png" else 8, 5)
            figure.tight_layout()
            _replace(out / name, lambda tmp: figure.savefig(tmp, format="png", dpi=100))
            plt.close(figure)
        except Exception as e:  # a plot is no reason to lose the study's summary
            notes.append(f"{name} skipped: {type(e).__name__}: {e}")
    return notes


def write_outputs(study, metric: str, names: list[str], out: Path) -> None:
    columns = study.trials_dataframe()
    columns = columns.drop(columns=[c for c in columns if c == "user_attrs_preset" or c.startswith("system_attrs")])
    _replace(out / "trials.csv", lambda tmp: columns.to_csv(tmp, index=False))
    print(trials_table(study, metric, names))
    notes = plots(study, metric, names, out)
    complete = [t for t in study.trials if t.state.name == "COMPLETE"]
    if not complete:
        notes.append("best.yaml not written: no trial completed yet")
    else:
        best = study.best_trial
        header = (f"# tune.py study {study.study_name}: trial {best.number} of {len(study.trials)}, "
                  f"best {metric} {best.value:.4f} (validation split)\n"
                  f"# python main.py --config {out / 'best.yaml'}   (the study's data: data_dir below)\n")
        text = header + yaml.safe_dump(best.user_attrs["preset"], sort_keys=False)
        _replace(out / "best.yaml", lambda tmp: tmp.write_text(text))
        print(f"best: trial {best.number}, {metric} {best.value:.4f}: "
              + ", ".join(f"{k}={_short(v)}" for k, v in best.params.items()))
    for note in notes:
        print(note)
    print(f"wrote {out}/: {', '.join(sorted(p.name for p in out.iterdir() if p.is_file() and p.suffix != '.tmp'))}")


def main(argv=None) -> int:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    import optuna

    from cache import open_cache
    from models import MODELS
    from models_utils import CheckpointError, model_audio
    from collection import DataError
    made = None
    try:
        args, base, audio, given, cli = parse(argv)
        search, fixed = load_space(args.space)
        for name in sorted((set(search) | set(fixed)) & cli):
            print(f"{name}: fixed to {getattr(base, name)!r} by the command line (the space file's entry is not used)")
            search.pop(name, None)
            fixed.pop(name, None)
        if not search:
            raise InputError(f"{args.space}: nothing to search (no range or choice left)")
        models = search["model"]["choices"] if "model" in search else [fixed.get("model", base.model)]
        for model in models:
            if model not in MODELS:
                raise InputError(f"unknown model {model!r}: choose from {', '.join(MODELS)}")
        name = args.name or Path(args.space).stem
        if not name or not all(c.isalnum() or c in "._-" for c in name):
            raise InputError(f"--name {name!r}: use letters, digits, '.', '_' and '-'")
        out = Path(args.out or Path("runs") / "tune" / name)
        storage = open_storage(args.storage) if args.storage else None  # fail fast
        for audio_params in {model_audio(replace(base, model=m), audio, given) for m in models}:
            open_cache(base, audio_params)  # every trial's cache, before anything of the study is written
        if storage is None:
            made = not out.exists()
            out.mkdir(parents=True, exist_ok=True)
            storage = open_storage(f"sqlite:///{out.resolve() / 'study.db'}")
        from train import selected
        metric = f"val_{selected(base.target == 'all')}"
        study = optuna.create_study(study_name=name, storage=storage, sampler=make_sampler(args.seed),
                                    pruner=make_pruner(args), direction="maximize", load_if_exists=True)
        study_setup(study, {"metric": {"name": metric}, "search": search, "fixed": fixed,
                            "base": training_values(base, audio, given)})
        made = False
        out.mkdir(parents=True, exist_ok=True)
    except (ConfigError, DataError, CheckpointError, ValueError) as e:
        if made:  # the default storage's folder, created for nothing
            shutil.rmtree(out, ignore_errors=True)
        print(f"error: {e}", file=sys.stderr)
        return 2
    os.environ.setdefault("WANDB_RUN_GROUP", name)  # read by wandb.init in train.Logger: one group per study
    finished, running = counts(study)
    print(f"study {name} ({storage.__class__.__name__}): {finished} of {args.n_trials} trials finished, {running} "
          f"running; searching {', '.join(search)} for the best {metric}; trials in {out}/")
    state = {"failures": 0}
    try:
        why = work(study, make_objective(args, base, audio, given, search, fixed, metric, out, state), args, state)
    except (DataError, CheckpointError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: the running trial is marked FAIL; rerun the command to continue study {name}",
              file=sys.stderr)
        return 130
    print(f"worker done: {why}")
    write_outputs(study, metric, list(search), out)
    return 1 if args.max_failures and state["failures"] >= args.max_failures else 0


if __name__ == "__main__":
    sys.exit(main())
