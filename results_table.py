"""Print a Markdown results table from finished run directories (their results.json and config.json).

    python results_table.py runs/best-demo runs/demo_crnn-demo ...

One row per run: model, parameters, epochs, training wall time, machine, two test metrics and the
command that reproduces it (from the run's preset and data directory). The metrics are accuracy and
macro-F1 for `--target top` runs, macro ROC-AUC and macro PR-AUC for `--target all` runs; a mix of
both gets one table per target.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path


METRICS = {"top": (("test accuracy", "accuracy", "{:.1%}"), ("test macro-F1", "macro_f1", "{:.3f}")),
           "all": (("test macro ROC-AUC", "macro_roc_auc", "{:.3f}"), ("test macro PR-AUC", "macro_ap", "{:.3f}"))}


def target(run_dir: Path) -> str:
    return json.loads((run_dir / "results.json").read_text()).get("target", "top")


def header(target: str) -> str:
    names = " | ".join(name for name, _, _ in METRICS[target])
    return (f"| model | parameters | epochs | training time | machine | {names} | command |\n"
            "|---|---:|---:|---:|---|---:|---:|---|")


def row(run_dir: Path) -> str:
    res = json.loads((run_dir / "results.json").read_text())
    cfg = json.loads((run_dir / "config.json").read_text())
    run = cfg["run"]
    command = "`python main.py " + " ".join(_options(run)) + "`"
    test = res["test"] or {}
    minutes = res.get("train_seconds", 0) / 60
    values = " | ".join(fmt.format(test[key]) if test.get(key) is not None else "n/a"
                        for _, key, fmt in METRICS[res.get("target", "top")])
    return (f"| {res['model']} | {res['parameters']:,} | {res['epochs']} | {minutes:.1f} min | {res['machine']} | "
            f"{values} | {command} |")


IGNORED = {"out", "name", "cache_dir", "workers", "loader_workers", "wandb", "wandb_project", "resume", "device"}


def _options(run: dict) -> list[str]:
    """The preset (if any) and every option that differs from the defaults (and from the preset)."""
    from config import RunConfig, _read_preset
    base = dataclasses.asdict(RunConfig())
    if run.get("config"):
        base.update(_read_preset(run["config"]))
    opts = [f"--config {run['config']}"] if run.get("config") else []
    for key, value in run.items():
        if key in IGNORED or key == "config" or value == base.get(key):
            continue
        flag = "--" + key.replace("_", "-")
        opts.append(flag if value is True else f"--no-{flag[2:]}" if value is False else f"{flag} {value:g}"
                    if isinstance(value, float) else f"{flag} {value}")
    return opts


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run directories written by main.py")
    args = parser.parse_args(argv)
    for i, kind in enumerate(sorted({target(r) for r in args.runs}, key=list(METRICS).index)):
        print(("\n" if i else "") + header(kind))
        for run_dir in args.runs:
            if target(run_dir) == kind:
                print(row(run_dir))


if __name__ == "__main__":
    main()
