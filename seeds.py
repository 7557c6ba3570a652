"""Several seeds of one recipe: `--seeds 0,1,2` trains one run per seed into OUT/seed-K/, then writes
OUT/aggregate.json (each seed's test numbers, their mean, standard deviation and range).

    python main.py --config configs/best.yaml --seeds 0,1,2 --out runs/best-seeds
"""
from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from config import AudioConfig, RunConfig, names_with
from distributed import Dist
from train import train

SEED_METRICS = {"top": ("accuracy", "macro_f1"), "all": ("macro_roc_auc", "macro_ap", "micro_f1", "macro_f1")}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "macro_roc_auc": "macro ROC-AUC",
                "macro_ap": "macro PR-AUC", "micro_f1": "micro-F1"}


def train_seeds(run: RunConfig, audio: AudioConfig, given: set, seeds: list[int], dist: Dist = Dist()) -> int:
    """--seeds: one run per seed into OUT/seed-K/, each exactly `--seed K --out OUT/seed-K` through
    train(), then OUT/aggregate.json (seed_aggregate) and a one-line summary. A seed whose results.json
    exists is skipped, one with only a last.pt (killed while training) is resumed from it, so rerunning
    a killed --seeds command continues it; a seed directory trained with other options is an error."""
    out = Path(run.out or Path("runs") / (run.name or f"{run.model}-{run.subset}-seeds{'-'.join(map(str, seeds))}"))
    for seed in seeds:
        one = out / f"seed-{seed}"
        single = replace(run, seed=seed, out=str(one), name=None, seeds="")
        if (one / "config.json").is_file():
            _check_same_options(one, single, audio)
        if (one / "results.json").is_file():
            print(f"seed {seed}: {one / 'results.json'} exists: skipped")
            continue
        if (one / "last.pt").is_file():
            print(f"seed {seed}: continuing from {one / 'last.pt'}")
            single = replace(single, resume=str(one))
        else:
            print(f"seed {seed}: training into {one}/")
        code = train(single, audio, given | {"seed", "out"}, dist=dist)
        if code:
            return code
    aggregate = seed_aggregate(out, seeds)
    if dist.main:
        (out / "aggregate.json").write_text(json.dumps(aggregate, indent=2))
    spread = ", ".join(f"{METRIC_NAMES[k]} {_mean_std(aggregate, k)}" for k in aggregate["metrics"])
    print(f"{len(seeds)} seeds ({','.join(map(str, seeds))}): test {spread} (mean ± std over seeds); "
          f"wrote {out / 'aggregate.json'}")
    return 0


SEED_FREE = names_with("machine", "command")  # options a rerun of --seeds may change (config.py's roles)


def _check_same_options(one: Path, single: RunConfig, audio: AudioConfig) -> None:
    """ValueError when the seed directory `one` was trained with other options than this --seeds run's."""
    saved = json.loads((one / "config.json").read_text())
    ours = {"run": asdict(single), "audio": asdict(audio)}
    differ = [f"{k} {saved[part].get(k)!r} (now {v!r})" for part in ours for k, v in ours[part].items()
              if k not in SEED_FREE and saved[part].get(k, v) != v]
    if differ:
        raise ValueError(f"{one} was trained with other options: {', '.join(differ)}; give another --out "
                         f"(or delete {one})")


def _mean_std(aggregate: dict, key: str) -> str:
    mean, std = aggregate["mean"][key], aggregate["std"][key]
    return "n/a" if mean is None else f"{mean:.4f} ± " + ("n/a" if std is None else f"{std:.4f}")


def seed_aggregate(out: Path, seeds: list[int]) -> dict:
    """aggregate.json of a --seeds run: each seed's test numbers (and intervals), and per metric the
    mean, the sample standard deviation (ddof 1; null for one seed) and the [min, max] over seeds."""
    runs = [json.loads((out / f"seed-{s}" / "results.json").read_text()) for s in seeds]
    target = runs[0].get("target", "top")
    keys = SEED_METRICS[target]
    per_seed = [{"seed": s, "dir": f"seed-{s}", **{k: (r["test"] or {}).get(k) for k in keys},
                 "ci": (r["test"] or {}).get("ci"), "best_epoch": r["best_epoch"], "epochs": r.get("epochs"),
                 "train_seconds": r.get("train_seconds")} for s, r in zip(seeds, runs)]
    values = {k: [p[k] for p in per_seed if p[k] is not None] for k in keys}
    return {"seeds": seeds, "target": target, "model": runs[0]["model"], "test_tracks": runs[0]["test_tracks"],
            "metrics": list(keys), "per_seed": per_seed,
            "mean": {k: float(np.mean(v)) if v else None for k, v in values.items()},
            "std": {k: float(np.std(v, ddof=1)) if len(v) > 1 else None for k, v in values.items()},
            "range": {k: [min(v), max(v)] if v else None for k, v in values.items()}}
