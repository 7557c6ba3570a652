"""Print a Markdown results table from finished run directories, or a paired test between two runs.

    python results_table.py runs/best-demo runs/demo_crnn-demo ...     # one table row per directory
    python results_table.py --compare runs/A runs/B                     # paired test on the same test tracks

One row per run: model, parameters, epochs, training wall time, machine, two test metrics and the
command that reproduces it (from the run's preset and data directory). The metrics are accuracy and
macro-F1 for `--target top` runs, macro ROC-AUC and macro PR-AUC for `--target all` runs; a mix of
both gets one table per target. A single run's metric comes with its bootstrap confidence interval
over test tracks (results.json's test.ci, e.g. "87.5% [77.1, 95.8]"). A `main.py --seeds` directory
(one holding aggregate.json) is one row: the mean ± the sample standard deviation over its seeds and
their number ("84.4% ± 4.4 (2 seeds)"), the mean training time per seed, and the command with --seeds.

--compare A B (`--target top` runs, from their test_predictions.csv): on the test tracks both
predicted, each run's accuracy, McNemar's exact test on the tracks only one of them got right, and the
paired bootstrap interval of the accuracy difference A - B. Two --seeds directories with the same seeds
are compared seed by seed, then the mean and std of the difference over seeds.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import os
import sys
from pathlib import Path

import numpy as np

from config import RunConfig, flag, names_with, read_preset

# (column title, results.json key, shown as a percentage)
METRICS = {"top": (("test accuracy", "accuracy", True), ("test macro-F1", "macro_f1", False)),
           "all": (("test macro ROC-AUC", "macro_roc_auc", False), ("test macro PR-AUC", "macro_ap", False))}


def _load(path: Path) -> dict:
    return json.loads(path.read_text())


def is_seeds(run_dir: Path) -> bool:
    """A `main.py --seeds` directory: aggregate.json and one seed-K/ run per seed."""
    return (run_dir / "aggregate.json").is_file()


def target(run_dir: Path) -> str:
    return _load(run_dir / ("aggregate.json" if is_seeds(run_dir) else "results.json")).get("target", "top")


def incomplete(run_dir: Path) -> str | None:
    """Why `run_dir` has no row (not a folder, no results.json: a run that failed or is still training), or None."""
    if not run_dir.is_dir():
        return "not a folder"
    if is_seeds(run_dir):
        return None
    if not (run_dir / "results.json").is_file():
        return "no results.json (a run that failed, was interrupted or is still training)"
    if not (run_dir / "config.json").is_file() and "members" not in _load(run_dir / "results.json"):
        return "results.json without config.json (not a run folder of main.py)"
    return None


def header(target: str) -> str:
    names = " | ".join(name for name, _, _ in METRICS[target])
    return (f"| model | parameters | epochs | training time | machine | {names} | command |\n"
            "|---|---:|---:|---:|---|---:|---:|---|")


def _number(value: float, percent: bool) -> str:
    return f"{value:.1%}" if percent else f"{value:.3f}"


def _spread(value: float, percent: bool) -> str:
    """An interval bound or a standard deviation: percentage points for percentages."""
    return f"{value * 100:.1f}" if percent else f"{value:.3f}"


def single_value(test: dict, key: str, percent: bool) -> str:
    """'87.5% [77.1, 95.8]': the value and its bootstrap interval (when results.json has one)."""
    if test.get(key) is None:
        return "n/a"
    low, high = (test.get("ci") or {}).get(key, (None, None))
    interval = f" [{_spread(low, percent)}, {_spread(high, percent)}]" if low is not None else ""
    return _number(test[key], percent) + interval


def seeds_value(agg: dict, key: str, percent: bool) -> str:
    """'84.4% ± 4.4 (2 seeds)': mean ± sample std over the seeds."""
    mean, std = agg["mean"].get(key), agg["std"].get(key)
    if mean is None:
        return "n/a"
    n = sum(p.get(key) is not None for p in agg["per_seed"])
    return (_number(mean, percent) + (f" ± {_spread(std, percent)}" if std is not None else "")
            + f" ({n} seed{'s' if n != 1 else ''})")


def row(run_dir: Path) -> str:
    if is_seeds(run_dir):
        agg = _load(run_dir / "aggregate.json")
        first = run_dir / agg["per_seed"][0]["dir"]
        res, cfg = _load(first / "results.json"), _load(first / "config.json")
        seconds = np.mean([p.get("train_seconds") or 0 for p in agg["per_seed"]])
        options = _options(cfg["run"], ignore={"seed"}) + [f"--seeds {','.join(map(str, agg['seeds']))}"]
        values = [seeds_value(agg, key, pct) for _, key, pct in METRICS[agg["target"]]]
        time_text = f"{seconds / 60:.1f} min per seed"
    elif "members" in (res := _load(run_dir / "results.json")):  # an ensemble of main.py --evaluate-only
        options = ["--evaluate-only"] + [f"--checkpoint {_shown(m['checkpoint'])}" for m in res["members"]]
        values = [single_value(res["test"] or {}, key, pct) for _, key, pct in METRICS[res.get("target", "top")]]
        res = {**res, "model": f"ensemble of {len(res['members'])}", "epochs": "-"}
        time_text = "-"
    else:
        cfg = _load(run_dir / "config.json")
        options = _options(cfg["run"])
        values = [single_value(res["test"] or {}, key, pct) for _, key, pct in METRICS[res.get("target", "top")]]
        time_text = f"{res.get('train_seconds', 0) / 60:.1f} min"
    command = "`python main.py " + " ".join(options) + "`"
    return (f"| {res['model']} | {res['parameters']:,} | {res['epochs']} | {time_text} | {res['machine']} | "
            f"{' | '.join(values)} | {command} |")


def _shown(path: str) -> str:
    """A path as the command shows it: relative to the current folder when inside it."""
    rel = os.path.relpath(path)
    return path if rel.startswith("..") else rel


IGNORED = set(names_with("machine", "command"))  # where and how it ran; a --seeds row adds its --seeds


def _options(run: dict, ignore=()) -> list[str]:
    """The preset (if any) and every option that differs from the defaults (and from the preset), but
    those of IGNORED and `ignore`."""
    base = dataclasses.asdict(RunConfig())
    if run.get("config"):
        base.update(read_preset(run["config"]))
    opts = [f"--config {run['config']}"] if run.get("config") else []
    for key, value in run.items():
        if key in IGNORED or key in ignore or key == "config" or value == base.get(key):
            continue
        option = flag(key)
        value = _shown(value) if key in ("data_dir", "init") and value else value
        opts.append(option if value is True else f"--no-{option[2:]}" if value is False else f"{option} {value:g}"
                    if isinstance(value, float) else f"{option} {value}")
    return opts


def _fail(message: str):
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def predictions(run_dir: Path) -> dict[int, tuple[str, str]]:
    """{track_id: (true label, predicted label)} from a run's test_predictions.csv."""
    path = run_dir / "test_predictions.csv"
    if not path.is_file():
        _fail(f"{path} not found (a run older than test_predictions.csv: `python main.py --evaluate-only "
              f"--checkpoint {run_dir}` writes one into {run_dir / 'evaluate'}/, which --compare takes)")
    with open(path, newline="") as f:
        return {int(r["track_id"]): (r["true"], r["predicted"]) for r in csv.DictReader(f)}


def paired(a: Path, b: Path, n: int, level: float) -> tuple[str, float]:
    """One line of --compare for two single runs, and the accuracy difference A - B."""
    from metrics import mcnemar_exact, paired_bootstrap_diff
    if "all" in (target(a), target(b)):
        _fail("--compare needs --target top runs (per-track right or wrong)")
    pa, pb = predictions(a), predictions(b)
    common = sorted(set(pa) & set(pb))
    if not common:
        _fail(f"{a} and {b} share no test track")
    differ = [t for t in common if pa[t][0] != pb[t][0]]
    if differ:
        _fail(f"{a} and {b} disagree on the true genre of track {differ[0]} "
              f"({pa[differ[0]][0]} vs {pb[differ[0]][0]}): not the same classes or metadata")
    ca = np.array([pa[t][0] == pa[t][1] for t in common])
    cb = np.array([pb[t][0] == pb[t][1] for t in common])
    diff = float(ca.mean() - cb.mean())
    test = mcnemar_exact(ca, cb)
    text = (f"{a} vs {b}: {len(common)} shared test tracks"
            + (f" (of {len(pa)} / {len(pb)})" if len(common) < max(len(pa), len(pb)) else "")
            + f"; accuracy {ca.mean():.1%} vs {cb.mean():.1%}, A - B {diff * 100:+.1f} points")
    if n > 0:
        ci = paired_bootstrap_diff(ca, cb, n=n, level=level)
        text += f", {level:.0%} paired bootstrap [{ci['low'] * 100:+.1f}, {ci['high'] * 100:+.1f}]"
    text += (f"; McNemar exact p = {test['p_value']:.3g} (only A right: {test['a_only']}, "
             f"only B right: {test['b_only']})")
    return text, diff


def compare(a: Path, b: Path, n: int, level: float) -> list[str]:
    """--compare: the paired test of two single runs, or of two --seeds runs seed by seed."""
    if not is_seeds(a) and not is_seeds(b):
        return [paired(a, b, n, level)[0]]
    if not (is_seeds(a) and is_seeds(b)):
        _fail("--compare takes two single runs, or two --seeds directories with the same seeds")
    sa, sb = _load(a / "aggregate.json")["seeds"], _load(b / "aggregate.json")["seeds"]
    if sa != sb:
        _fail(f"{a} has seeds {sa}, {b} has {sb}: seed-by-seed comparison needs the same seeds")
    lines, diffs = [], []
    for s in sa:
        text, diff = paired(a / f"seed-{s}", b / f"seed-{s}", n, level)
        lines.append(f"seed {s}: {text}")
        diffs.append(diff)
    spread = f" ± {np.std(diffs, ddof=1) * 100:.1f}" if len(diffs) > 1 else ""
    lines.append(f"over {len(sa)} seeds: A - B {np.mean(diffs) * 100:+.1f}{spread} points (mean ± std); "
                 f"A ahead on {sum(d > 0 for d in diffs)}, behind on {sum(d < 0 for d in diffs)}")
    return lines


def build_parser() -> argparse.ArgumentParser:
    defaults = RunConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", type=Path, help="run directories written by main.py (or main.py --seeds)")
    parser.add_argument("--compare", nargs=2, type=Path, metavar=("A", "B"),
                        help="paired test of two runs (or two --seeds runs with the same seeds) on their test tracks")
    parser.add_argument("--bootstrap", type=int, default=defaults.bootstrap,
                        help=f"--compare: resamples of the paired bootstrap, 0 = none (default: {defaults.bootstrap})")
    parser.add_argument("--ci-level", type=float, default=defaults.ci_level,
                        help=f"--compare: level of its interval (default: {defaults.ci_level})")
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.runs and not args.compare:
        parser.error("give run directories, or --compare A B")
    runs = []
    for run_dir in args.runs:
        why = incomplete(run_dir)
        if why:
            print(f"note: skipped {run_dir}: {why}", file=sys.stderr)
        else:
            runs.append(run_dir)
    kinds = {run_dir: target(run_dir) for run_dir in runs}
    for i, kind in enumerate(sorted(set(kinds.values()), key=list(METRICS).index)):
        print(("\n" if i else "") + header(kind))
        for run_dir in runs:
            if kinds[run_dir] == kind:
                print(row(run_dir))
    if args.compare:
        print(("\n" if args.runs else "") + "\n".join(compare(*args.compare, args.bootstrap, args.ci_level)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
