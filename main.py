"""Train and evaluate a genre classifier on FMA (or the synthetic demo set in FMA's layout).

    python main.py --data-dir data --subset small --prepare-only      # build the log-mel cache only
    python main.py --data-dir data --model crnn --epochs 30            # train, select on validation, test
    python main.py --config configs/best.yaml                          # a named preset
    python main.py --resume runs/NAME                                  # continue an interrupted run
    python main.py --evaluate-only --checkpoint runs/NAME/best.pt      # re-evaluate on the test split
    python main.py --help                                              # every option and its default

    python main.py --data-dir data --subset medium --target all        # multi-label over all FMA genres
    python main.py --config configs/musicnn_finetune.yaml              # fine-tune pretrained musicnn (--init)
    python main.py --config configs/musicnn_frozen.yaml                # its head only (--freeze-backbone)

A run writes runs/NAME/: config.json, metrics.csv (per epoch), results.json (test metrics of the best
checkpoint), confusion_matrix.png (--target top) or per_genre_auc.csv and auc_vs_train_count.png
(--target all), curves.png, best.pt, last.pt and test_files.txt (the test split's audio, for
pre_trained_models.py @runs/NAME/test_files.txt), and logs to Weights & Biases (offline by default). Defaults live in config.py; the pieces in utils.py, models.py, train.py, test.py.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from config import AudioConfig, RunConfig, load_config
from distributed import Dist, ShardedBatches, cleanup, quiet_unless_main, setup, train_sampler
from models import MODELS, ModelConfig, build_model, count_parameters
from metrics import bootstrap_metrics
from models_utils import (CheckpointError, accelerate, load_backbone, load_checkpoint, make_reproducible, pick_device,
                          rng_state, save_checkpoint, seed_everything, set_rng_state)
from test import (average_probs, ensemble_mismatch, evaluate, plot_auc_vs_count, plot_confusion, plot_curves,
                  score)
from train import Augment, train_one_epoch
from utils import (ClipDataset, DataError, audio_path, band_stats, find_audio_dir, genre_vocabulary, load_metadata,
                   multi_hot, prepare_cache)

RESUME_OVERRIDES = ("epochs", "device", "loader_workers", "workers", "threads", "wandb", "amp", "compile", "quiet")  # allowed to change on resume


def prepare(run: RunConfig, audio: AudioConfig, dist: Dist = Dist()):
    """Build or reopen the cache; list failed tracks, then the one-line summary (the last line).

    `--shard K/N` builds slice K only (a job-array task) and returns None while other slices are missing.
    Under torchrun every process builds its slice (rank of world size), waits for the others, and then
    all reopen the finished cache. Decoding threads default to the cores shared by this machine's ranks."""
    build = functools.partial(prepare_cache, run.data_dir, run.subset, audio, cache_dir=run.cache_dir,
                              workers=run.workers or max(1, (os.cpu_count() or 1) // dist.local_world_size),
                              progress=dist.main)
    if run.shard:
        cache = build(shard=parse_shard(run.shard))
        if cache is None:
            return None
    elif dist.enabled:
        build(shard=(dist.rank, dist.world_size))
        dist.barrier()
        cache = build()  # every slice done: a check of the audio files, nothing to decode
    else:
        cache = build()
    for r in cache.failed.itertuples():
        print(f"failed {r.track_id:06d}: {r.reason}")
    print(cache.summary())
    return cache


def parse_shard(text: str) -> tuple[int, int]:
    """--shard 'K/N' -> (K, N), 0 <= K < N; ValueError otherwise."""
    k, slash, n = str(text).partition("/")
    try:
        shard = int(k), int(n)
    except ValueError:
        shard = None
    if not slash or shard is None or not 0 <= shard[0] < shard[1]:
        raise ValueError(f"--shard takes K/N with 0 <= K < N, e.g. 0/4 for the first of 4 slices (got {text!r})")
    return shard


def split_rows(cache, classes: list[str] | None = None) -> tuple[list[str], dict]:
    """Classes (sorted top genres of the usable training tracks) and {split: (rows, targets)}.

    Failed tracks and tracks whose genre is not a training class (no genre_top) are left out and counted.
    """
    ok = cache.ok
    if classes is None:
        classes = sorted(ok.loc[(ok.split == "training") & (ok.label != ""), "label"].unique())
    lookup = {c: i for i, c in enumerate(classes)}
    usable = ok[ok.label.isin(lookup)]
    skipped = len(ok) - len(usable)
    if skipped:
        print(f"left out {skipped} decoded tracks without a known top genre")
    splits = {s: (g["row"].to_numpy(), g["label"].map(lookup).to_numpy(dtype=np.int64))
              for s, g in ((s, usable[usable.split == s]) for s in ("training", "validation", "test"))}
    return classes, splits


def split_rows_all(cache, genres_all, genres, vocab: dict | None = None) -> tuple[dict, dict]:
    """Multi-label targets (--target all): the genre vocabulary and {split: (rows, multi-hot uint8)}.

    `genres_all` maps track_id -> the track's genres (tracks.csv's genres_all, closed under parents);
    `genres` is genres.csv. The vocabulary is every genre with at least one positive among the usable
    training tracks (or `vocab`, from a checkpoint), with ids, titles, parents and hierarchy paths from
    genres.csv and each genre's number of training positives. Failed tracks and tracks without any
    genre are left out and counted; tracks without a genre_top stay in (most of fma_large's).
    """
    ok = cache.ok
    lists = [[int(g) for g in gs if int(g) in genres.index] for gs in genres_all.reindex(ok["track_id"]).to_numpy()]
    has = np.array([len(gs) > 0 for gs in lists], dtype=bool)
    if (~has).sum():
        print(f"left out {int((~has).sum())} decoded tracks without any genre")
    split = ok["split"].to_numpy()
    training = has & (split == "training")
    if vocab is None:
        vocab = genre_vocabulary({g for gs, t in zip(lists, training) if t for g in gs}, genres)
    targets = multi_hot(lists, vocab["ids"])
    rows = ok["row"].to_numpy()
    splits = {s: (rows[has & (split == s)], targets[has & (split == s)]) for s in ("training", "validation", "test")}
    vocab.setdefault("train_positives", splits["training"][1].sum(0).astype(int).tolist())
    return vocab, splits


def make_targets(target: str, run: RunConfig, cache, state: dict | None = None) -> tuple[list[str], dict, dict | None]:
    """(classes, {split: (rows, targets)}, genre vocabulary or None) for `--target top` or `all`;
    a checkpoint's `state` fixes the classes (and vocabulary) it was trained with."""
    if target == "top":
        classes, splits = split_rows(cache, state["classes"] if state else None)
        return classes, splits, None
    tracks, genres = load_metadata(run.data_dir)
    vocab, splits = split_rows_all(cache, tracks[("track", "genres_all")], genres, state.get("genres") if state else None)
    return list(vocab["titles"]), splits, vocab


def make_loss(target: str, balance: str, targets: np.ndarray, n_classes: int, device) -> functools.partial:
    """Cross-entropy (top) or binary cross-entropy on logits (all), weighted for `--balance weights`."""
    if target == "all":
        pos_weight = None
        if balance == "weights":
            pos = targets.sum(0).astype(np.float64)
            pos_weight = torch.tensor(np.minimum((len(targets) - pos) / np.maximum(pos, 1), 100.0),
                                      dtype=torch.float32, device=device)
        return functools.partial(F.binary_cross_entropy_with_logits, pos_weight=pos_weight)
    weight = None
    if balance == "weights":
        counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
        weight = torch.tensor(len(targets) / (n_classes * np.maximum(counts, 1)), dtype=torch.float32, device=device)
    return functools.partial(F.cross_entropy, weight=weight)


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """`--balance sampler`: a training clip's draw weight, 1 / (training clips of its class); for
    multi-hot targets 1 / (positives of its rarest genre)."""
    if targets.ndim == 1:
        return 1.0 / np.bincount(targets)[targets]
    inv = 1.0 / np.maximum(targets.sum(0), 1)
    w = (targets * inv).max(1)
    return np.where(w > 0, w, inv.min())


def make_loader(cache, rows, targets, mean, std, run: RunConfig, device, crop_frames=None, train=False,
                eval_crops=0, generator=None, dist: Dist = Dist()):
    """The DataLoader of training (shuffled, random crops; `--balance sampler` draws with replacement)
    or evaluation (in order). Under torchrun (`dist`) each rank loads its share: of an epoch's clips
    (distributed.train_sampler; call its set_epoch) or of the evaluation batches (ShardedBatches)."""
    ds = ClipDataset(cache, rows, targets, mean, std, crop_frames=crop_frames, random_crop=train,
                     eval_crops=eval_crops)
    workers = run.loader_workers if run.loader_workers is not None else (4 if device.type == "cuda" else 0)
    common = dict(num_workers=workers, pin_memory=device.type == "cuda", generator=generator)
    if dist.enabled and not train:
        return torch.utils.data.DataLoader(ds, batch_sampler=ShardedBatches(len(ds), run.batch_size, dist), **common)
    weights = sample_weights(np.asarray(targets)) if train and run.balance == "sampler" else None
    sampler = None
    if train and dist.enabled:
        sampler = train_sampler(len(ds), weights, dist, run.seed)
    elif weights is not None:  # with replacement, as many draws as clips per epoch
        sampler = torch.utils.data.WeightedRandomSampler(torch.from_numpy(weights), len(ds), replacement=True,
                                                         generator=generator)
    clips = len(sampler) if sampler is not None else len(ds)  # this rank's
    return torch.utils.data.DataLoader(ds, batch_size=run.batch_size, shuffle=train and sampler is None,
                                       sampler=sampler, drop_last=train and clips > run.batch_size, **common)


def make_optimizer(model, run: RunConfig, steps_per_epoch: int):
    params = [p for p in model.parameters() if p.requires_grad]  # the head only under --freeze-backbone
    if run.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=run.lr, momentum=0.9, weight_decay=run.weight_decay, nesterov=True)
    else:
        cls = torch.optim.AdamW if run.optimizer == "adamw" else torch.optim.Adam
        opt = cls(params, lr=run.lr, weight_decay=run.weight_decay)
    if run.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
    elif run.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=run.epochs)
    elif run.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=run.lr, epochs=run.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    else:
        sched = None
    return opt, sched


class Logger:
    """metrics.csv + console + Weights & Biases (offline unless asked; nothing at all when disabled)."""

    def __init__(self, run: RunConfig, out: Path, config: dict, wandb_id: str | None, active: bool = True):
        self.out, self.wb, self.active = out, None, active  # inactive (ranks but 0 under torchrun): writes nothing
        if run.wandb != "disabled" and active:
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb
            self.wb = wandb.init(project=run.wandb_project, name=out.name, dir=str(out), mode=run.wandb,
                                 config=config, id=wandb_id, resume="allow" if wandb_id else None)

    @property
    def wandb_id(self):
        return self.wb.id if self.wb else None

    def step(self, step: int, metrics: dict):
        if self.wb:
            self.wb.log({f"train/{k}": v for k, v in metrics.items()}, step=step)

    def epoch(self, step: int, row: dict, history: list[dict]):
        if not self.active:
            return
        with open(self.out / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        if self.wb:
            self.wb.log({f"epoch/{k}": v for k, v in row.items()}, step=step)

    def final(self, step: int, results: dict, classes: list[str], out: Path):
        if not self.wb or not results.get("test"):
            return
        import wandb
        test = results["test"]
        if results.get("target") == "all":
            scalars = {k: test[k] for k in MULTILABEL_SCALARS}
            rows = results["_per_genre"]
            table = wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows]) if rows else None
            self.wb.log({**{f"test/{k}": v for k, v in scalars.items()},
                         **({"test/per_genre_auc": table} if table is not None else {}),
                         "test/auc_vs_train_count": wandb.Image(str(out / "auc_vs_train_count.png"))}, step=step)
            self.wb.summary.update({f"test_{k}": v for k, v in scalars.items()})
            self.wb.summary.update({"test_dropped_genres": test["dropped"]})
            return
        y_true, y_pred = results["_y"]
        self.wb.log({"test/accuracy": test["accuracy"], "test/macro_f1": test["macro_f1"],
                     "test/loss": test["loss"],
                     "test/confusion_matrix": wandb.plot.confusion_matrix(
                         y_true=list(map(int, y_true)), preds=list(map(int, y_pred)), class_names=classes)},
                    step=step)
        self.wb.summary.update({"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]})

    def close(self):
        if self.wb:
            self.wb.finish()


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{platform.system()} {cpu}, {os.cpu_count()} cores{gpu}, torch {torch.__version__}"


MULTILABEL_SCALARS = ("macro_roc_auc", "micro_roc_auc", "macro_ap", "micro_ap", "micro_f1", "macro_f1", "threshold",
                      "loss")


def per_genre_rows(vocab: dict, per_genre: dict) -> list[dict]:
    """One row per genre of the vocabulary: per_genre_auc.csv, the W&B table, the AUC plot."""
    return [{"genre_id": g, "title": t, "parent_id": p, "parent": path.rpartition(" > ")[0].rpartition(" > ")[2],
             "path": path, "train_positives": int(n), "test_positives": per_genre[t]["positives"],
             "roc_auc": per_genre[t]["roc_auc"], "ap": per_genre[t]["ap"]}
            for g, t, p, path, n in zip(vocab["ids"], vocab["titles"], vocab["parents"], vocab["paths"],
                                        vocab["train_positives"])]


MULTILABEL_EPOCH = ("macro_roc_auc", "micro_roc_auc", "macro_ap", "micro_f1", "threshold")  # per-epoch validation


def selection_metric(tr: dict, va: dict | None, multilabel: bool) -> float:
    """What picks best.pt (higher is better): validation accuracy (top) or macro ROC-AUC (all); the
    validation loss when no genre can be scored there, the training loss without a validation split."""
    if va is None:
        return -tr["loss"]
    if not multilabel:
        return va["accuracy"]
    return va["macro_roc_auc"] if np.isfinite(va["macro_roc_auc"]) else -va["loss"]


def public(metrics: dict) -> dict:
    """Evaluation metrics without the per-clip arrays."""
    return {k: v for k, v in metrics.items() if k not in ("probs", "y_true")}


def test_report(model, state: dict, cache, classes, splits, run: RunConfig, device, out: Path,
                dist: Dist = Dist()) -> dict | None:
    """Evaluate on the test split; write test_files.txt, test_predictions.csv and confusion_matrix.png
    (top) or per_genre_auc.csv and auc_vs_train_count.png (all, at the threshold tuned on validation)
    into `out`; return what results.json gets, with `--bootstrap` confidence intervals under test.ci.
    Under torchrun every rank evaluates its share of the batches, and rank 0 alone writes and returns."""
    rows, targets = splits["test"]
    metrics = member_metrics(model, state, cache, rows, targets, classes, run, device, dist) if len(rows) else None
    if not dist.main:
        return None
    track_ids = cache.index["track_id"].to_numpy()[rows]
    write_test_files(track_ids, run, out)
    results = {"model": state["model_config"]["name"], "parameters": count_parameters(model, trainable_only=False),
               "best_epoch": state["epoch"], "classes": classes, "test_tracks": int(len(rows)),
               "machine": machine(), **vocabulary_fields(state)}
    if metrics is None:
        print("no test tracks in this data: test report skipped")
        results["test"] = None
        return results
    return report_test(results, metrics, state, track_ids, run, out, f"best epoch {state['epoch']}")


def write_test_files(track_ids, run: RunConfig, out: Path) -> None:
    """test_files.txt: the audio path of each test track (for pre_trained_models.py @FILE)."""
    audio_dir = find_audio_dir(run.data_dir, run.subset)
    (out / "test_files.txt").write_text("".join(f"{audio_path(audio_dir, tid)}\n" for tid in track_ids))


def vocabulary_fields(state: dict) -> dict:
    """results.json's target and genre vocabulary of a multi-label checkpoint; {} for --target top."""
    if state.get("target", "top") != "all":
        return {}
    return {"target": "all", "genres": {k: state["genres"][k] for k in ("ids", "titles", "parents", "paths")}}


def member_metrics(model, state: dict, cache, rows, targets, classes, run: RunConfig, device,
                   dist: Dist = Dist()) -> dict:
    """test.evaluate of a checkpoint's model on `rows` of its cache, with the checkpoint's windows
    (crop_frames, eval_crops), normalisation and (multi-label) validation threshold."""
    loader = make_loader(cache, rows, targets, state["mean"].numpy(), state["std"].numpy(), run, device,
                         state["crop_frames"], eval_crops=state["eval_crops"], dist=dist)
    return evaluate(model, loader, device, classes, run.amp, state.get("target", "top") == "all",
                    threshold=state.get("threshold", 0.5), progress=not run.quiet and dist.main, dist=dist)


def with_intervals(metrics: dict, multilabel: bool, run: RunConfig) -> dict:
    """results.json's test entry: the metrics without per-clip arrays, with `--bootstrap` intervals (ci)."""
    test = public(metrics)
    if run.bootstrap > 0:
        test["ci"] = bootstrap_metrics(metrics["y_true"], metrics["probs"], multilabel, metrics.get("threshold", 0.5),
                                       n=run.bootstrap, level=run.ci_level)
    return test


def report_test(results: dict, metrics: dict, state: dict, track_ids, run: RunConfig, out: Path, about: str) -> dict:
    """results["test"] from `metrics` (with intervals), test_predictions.csv, the plots and the console
    line of a test report (one checkpoint's, or an ensemble's); `state` gives the genre vocabulary."""
    multilabel, classes = results.get("target") == "all", results["classes"]
    results["test"] = test = with_intervals(metrics, multilabel, run)
    write_predictions(out / "test_predictions.csv", track_ids, metrics, classes, multilabel)
    if multilabel:
        results["_per_genre"] = _multilabel_outputs(metrics, state, results["model"], out)
    else:
        plot_confusion(metrics["confusion_matrix"], classes, out / "confusion_matrix.png",
                       f"{results['model']} test: acc {metrics['accuracy']:.3f}, macro-F1 {metrics['macro_f1']:.3f}")
        results["_y"] = (metrics["y_true"], metrics["probs"].argmax(1))
    print(test_line("test", metrics, test, multilabel, about))
    if multilabel and metrics["dropped"]:
        print(f"not scored (no positive or no negative test track): {', '.join(metrics['dropped'])}")
    return results


def test_line(label: str, metrics: dict, test: dict, multilabel: bool, about: str) -> str:
    """'LABEL: accuracy ... macro-F1 ... (N tracks, ABOUT, intervals)' (multi-label: ROC-AUC, AP, F1)."""
    ci = functools.partial(_ci_text, test)
    n, n_classes = metrics["probs"].shape
    if multilabel:
        return (f"{label}: macro ROC-AUC {metrics['macro_roc_auc']:.4f}{ci('macro_roc_auc')}  micro ROC-AUC "
                f"{metrics['micro_roc_auc']:.4f}  macro PR-AUC (AP) {metrics['macro_ap']:.4f}{ci('macro_ap')}  "
                f"micro-F1 {metrics['micro_f1']:.4f}{ci('micro_f1')} at threshold {metrics['threshold']:.2f}  "
                f"({n} tracks, {metrics['scored_genres']} of {n_classes} genres scored, {about}{ci('level')})")
    return (f"{label}: accuracy {metrics['accuracy']:.4f}{ci('accuracy')}  macro-F1 {metrics['macro_f1']:.4f}"
            f"{ci('macro_f1')}  ({n} tracks, {about}{ci('level')})")


def _ci_text(test: dict, key: str) -> str:
    """' [low, high]' of a test metric's interval (or, for key 'level', ', 95% bootstrap intervals');
    '' without intervals."""
    ci = test.get("ci")
    if not ci:
        return ""
    if key == "level":
        return f", {ci['level']:.0%} bootstrap intervals of {ci['resamples']} resamples"
    low, high = ci[key]
    return "" if low is None else f" [{low:.3f}, {high:.3f}]"


def write_predictions(path: Path, track_ids, metrics: dict, classes: list[str], multilabel: bool) -> None:
    """test_predictions.csv: one row per test track: track_id, true and predicted label (multi-label: the
    genres, '|'-separated, true / at the decision threshold) and each class's probability (p_CLASS)."""
    probs = metrics["probs"]
    if multilabel:
        names = np.array(classes, dtype=object)
        true = ["|".join(names[y > 0]) for y in metrics["y_true"]]
        pred = ["|".join(names[p >= metrics["threshold"]]) for p in probs]
    else:
        true, pred = [classes[i] for i in metrics["y_true"]], [classes[i] for i in probs.argmax(1)]
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["track_id", "true", "predicted", *(f"p_{c}" for c in classes)])
        for tid, t, p, row in zip(track_ids, true, pred, probs):
            writer.writerow([int(tid), t, p, *(f"{x:.6f}" for x in row)])


def _multilabel_outputs(metrics: dict, state: dict, model_name: str, out: Path) -> list[dict]:
    """per_genre_auc.csv and auc_vs_train_count.png of a multi-label test report; returns the table."""
    table = per_genre_rows(state["genres"], metrics["per_genre"])
    with open(out / "per_genre_auc.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(table[0]))
        writer.writeheader()
        writer.writerows(table)
    plot_auc_vs_count(table, out / "auc_vs_train_count.png",
                      f"{model_name} test: macro ROC-AUC {metrics['macro_roc_auc']:.3f} over "
                      f"{metrics['scored_genres']} genres")
    return table


def write_results(results: dict, out: Path) -> None:
    """results.json; metrics that are undefined (NaN, e.g. the ROC-AUC of an unscored genre) become null."""
    def clean(v):
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return None if isinstance(v, float) and not np.isfinite(v) else v
    with open(out / "results.json", "w") as f:
        json.dump(clean({k: v for k, v in results.items() if not k.startswith("_")}), f, indent=2)


def evaluate_only(run: RunConfig, given: set) -> int:
    """--evaluate-only: the test report of one --checkpoint (into RUN_DIR/evaluate/), or of the
    ensemble of several (evaluate_ensemble); --out replaces the folder."""
    if not run.checkpoint:
        print("error: --evaluate-only needs --checkpoint PATH", file=sys.stderr)
        return 2
    try:
        states = [load_checkpoint(path) for path in run.checkpoint]
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = pick_device(run.device)
    run = demo_if_no_fma(run, given)
    out = evaluate_out(run)
    if len(states) > 1:
        results = evaluate_ensemble(run.checkpoint, states, run, given, device, out)
    else:
        model, cache, classes, splits = load_member(states[0], run, given, device)
        out.mkdir(parents=True, exist_ok=True)
        results = test_report(model, states[0], cache, classes, splits, run, device, out)
    write_results(results, out)
    print(f"wrote {out / 'results.json'}")
    return 0


def evaluate_out(run: RunConfig) -> Path:
    """--out, else RUN_DIR/evaluate for one checkpoint, and for an ensemble ensemble-A+B beside the
    first member's run directory (runs/X/seed-0 and runs/X/seed-1 -> runs/X/ensemble-seed-0+seed-1)."""
    dirs = [p if p.is_dir() else p.parent for p in map(Path, run.checkpoint)]
    if run.out:
        return Path(run.out)
    if len(dirs) == 1:
        return dirs[0] / "evaluate"
    return dirs[0].parent / ("ensemble-" + "+".join(d.name for d in dirs))


def load_member(state: dict, run: RunConfig, given: set, device):
    """(model on `device`, cache, classes, splits) of a checkpoint: the log-mel cache of its own audio
    parameters (built when missing) and its classes' targets; --eval-crops, when given, replaces its
    number of evaluation crops (the one evaluation setting that may change)."""
    cache = prepare(run, AudioConfig(**state["audio"]))
    classes, splits, _ = make_targets(state.get("target", "top"), run, cache, state)
    model = build_model(ModelConfig(**state["model_config"])).to(device)
    model.load_state_dict(state["model"])
    if "eval_crops" in given and state["crop_frames"]:
        state["eval_crops"] = run.eval_crops
    return model, cache, classes, splits


def evaluate_ensemble(paths: list[str], states: list[dict], run: RunConfig, given: set, device, out: Path) -> dict:
    """The test report of the mean of several checkpoints' probabilities (test.average_probs); each
    member is evaluated with its own audio parameters (its own cache), windows and normalisation.

    Members must agree on what their probabilities mean (test.ensemble_mismatch: a ValueError names
    the difference). They are scored on the test tracks every one of them has: a track that failed in
    one member's cache is left out of all, and counted. A multi-label ensemble's decision threshold is
    the mean of its members' validation thresholds. results.json: the ensemble's metrics and intervals
    under test (as for one checkpoint), and each member's, on the same tracks and bootstrap resamples,
    under members."""
    problem = ensemble_mismatch(list(zip(paths, states)))
    if problem:
        raise ValueError(problem)
    multilabel = states[0].get("target", "top") == "all"
    members, track_ids, evaluated = [], [], []
    for path, state in zip(paths, states):
        model, cache, classes, splits = load_member(state, run, given, device)
        rows, targets = splits["test"]
        track_ids.append(cache.index["track_id"].to_numpy()[rows])
        evaluated.append(member_metrics(model, state, cache, rows, targets, classes, run, device))
        members.append({"checkpoint": str(path), "model": state["model_config"]["name"],
                        "parameters": count_parameters(model, trainable_only=False), "best_epoch": state["epoch"],
                        "audio": state["audio"], "crop_frames": state["crop_frames"],
                        "eval_crops": state["eval_crops"], "test_tracks": int(len(rows))})
    common = shared_tracks(paths, track_ids, members)
    out.mkdir(parents=True, exist_ok=True)
    write_test_files(common, run, out)
    results = {"model": "ensemble", "parameters": sum(m["parameters"] for m in members), "classes": classes,
               "test_tracks": int(len(common)), "machine": machine(), **vocabulary_fields(states[0]),
               "members": members}
    if len(common) == 0:
        print("no test tracks shared by every member: test report skipped")
        results["test"] = None
        return results
    aligned = [aligned_rows(ids, common, metrics) for ids, metrics in zip(track_ids, evaluated)]
    y = aligned[0][1]
    if any(not np.array_equal(y, theirs) for _, theirs in aligned):
        raise ValueError("members disagree on the true genres of their test tracks: not the same metadata")
    thresholds = [float(s.get("threshold", 0.5)) for s in states]
    for member, (probs, _), threshold in zip(members, aligned, thresholds):
        metrics = score(y, probs, classes, multilabel, threshold)
        member["test"] = with_intervals(metrics, multilabel, run)
        print(test_line(f"member {member['checkpoint']}", metrics, member["test"], multilabel,
                        f"best epoch {member['best_epoch']}"))
    ensemble = score(y, average_probs([p for p, _ in aligned]), classes, multilabel, float(np.mean(thresholds)))
    return report_test(results, ensemble, states[0], common, run, out, f"mean of {len(states)} members")


def shared_tracks(paths: list[str], track_ids: list[np.ndarray], members: list[dict]) -> np.ndarray:
    """The test tracks every member has (in the first member's order); each member's left_out_tracks
    counts the others, and the console says how many were left out."""
    common = track_ids[0][np.all([np.isin(track_ids[0], ids) for ids in track_ids], axis=0)]
    for member, ids in zip(members, track_ids):
        member["left_out_tracks"] = int(len(ids) - len(common))
    lost = [f"{p}: {m['left_out_tracks']}" for p, m in zip(paths, members) if m["left_out_tracks"]]
    if lost:
        print(f"left out the test tracks that not every member could decode ({', '.join(lost)}); "
              f"{len(common)} tracks remain")
    return common


def aligned_rows(ids: np.ndarray, common: np.ndarray, metrics: dict) -> tuple[np.ndarray, np.ndarray]:
    """A member's (probs, y_true) rows of the `common` track ids, in that order."""
    where = {int(t): i for i, t in enumerate(ids)}
    idx = np.array([where[int(t)] for t in common], dtype=np.int64)
    return metrics["probs"][idx], metrics["y_true"][idx]


def model_audio(run: RunConfig, audio: AudioConfig, given: set) -> AudioConfig:
    """The model's own audio parameters (its class's `audio`, e.g. musicnn's 16 kHz / 96 mels) as the
    run's defaults: a parameter set explicitly (preset or command line) wins."""
    own = MODELS[run.model].audio
    return replace(audio, **{k: v for k, v in own.items() if k not in given})


def load_init(run: RunConfig, audio: AudioConfig) -> dict:
    """The --init checkpoint, checked before anything is built: the run's model, the run's log-mel."""
    init = load_checkpoint(run.init)
    name = init["model_config"]["name"]
    if name != run.model:
        raise ValueError(f"--init {run.init} holds a {name} model, not {run.model} "
                         f"(--model {name} fine-tunes it)")
    theirs, ours = AudioConfig(**init["audio"]).features(), audio.features()
    differ = [k for k in ours if ours[k] != theirs[k]]
    if differ:
        options = ", ".join("--" + k.replace("_", "-") for k in differ)
        raise ValueError(f"--init {run.init} was trained on other features than this run's: "
                         + ", ".join(f"{k} {theirs[k]} (this run: {ours[k]})" for k in differ)
                         + f"; give the checkpoint's values ({options})")
    return init


def normalisation(run: RunConfig, cache, train_rows, init: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (mean, std) the inputs are standardised with: the --init checkpoint's (what its weights
    were trained on); none, i.e. mean 0 / std 1, for a model that takes log-mel dB as it is
    (`standardize = False`, e.g. musicnn); otherwise the training split's band_stats."""
    if init is not None:
        return init["mean"].numpy().astype(np.float32), init["std"].numpy().astype(np.float32)
    if not MODELS[run.model].standardize:
        n_mels = cache.audio.n_mels
        return np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32)
    return band_stats(cache, train_rows, seed=run.seed)


def initialise(model, init: dict, run: RunConfig, classes: list[str]) -> dict:
    """Load the --init weights into `model` (a fresh head when the classes differ); print and return
    the report that config.json and the checkpoints keep."""
    fresh_head = init["classes"] != list(classes) or init.get("target", "top") != run.target
    loaded, fresh = load_backbone(model, init, fresh_head=fresh_head)
    print(f"init from {run.init}: loaded {len(loaded)} tensors; initialised afresh: {', '.join(fresh) or 'none'}")
    return {"path": run.init, "loaded": len(loaded), "fresh": fresh, "freeze_backbone": run.freeze_backbone,
            **({"pretrained": init["pretrained"]} if "pretrained" in init else {})}


def train(run: RunConfig, audio: AudioConfig, given: set,
          on_epoch: Callable[[int, dict], None] | None = None, dist: Dist = Dist()) -> int:
    """Train one run (main.py without --seeds). `on_epoch(epoch, row)`, if given, is called after each
    epoch's metrics.csv row is logged and its checkpoints are saved; an exception it raises ends the
    run (W&B closed, checkpoints kept).

    Under torchrun (`dist`), every rank runs this: DistributedDataParallel over its share of each epoch
    (--batch-size clips per rank and step), the same weights everywhere (DDP broadcasts rank 0's at the
    start), augmentation seeded per rank; evaluation sharded and gathered (test.evaluate); rank 0 alone
    writes the run directory and logs. Every rank reads the data, the cache and --resume's checkpoint,
    so on several machines they must be on a file system all of them share."""
    resume = None
    if run.resume:
        path = Path(run.resume)
        resume = load_checkpoint(path / "last.pt" if path.is_dir() else path)
        saved = RunConfig(**resume["run_config"])
        run = RunConfig(**{**asdict(saved), **{k: getattr(run, k) for k in RESUME_OVERRIDES if k in given},
                           "resume": run.resume})
        audio = AudioConfig(**resume["audio"])
    if run.freeze_backbone and not run.init:
        raise ValueError("--freeze-backbone needs --init PATH: it trains the head on the backbone's pretrained weights")
    init = load_init(run, audio) if run.init and not resume else None  # a resumed run's weights come from last.pt
    device = torch.device(dist.device) if dist.device else pick_device(run.device)
    if run.sync_bn and dist.enabled and device.type != "cuda":
        raise ValueError("--sync-bn needs CUDA: torch's SyncBatchNorm has no CPU implementation (leave it off on CPU)")
    run = replace(run, threads=make_reproducible(run.threads, run.deterministic, device))  # recorded, kept on resume
    cache = prepare(run, audio, dist)
    multilabel = run.target == "all"
    classes, splits, vocab = make_targets(run.target, run, cache, resume)
    train_rows, train_targets = splits["training"]
    if len(train_rows) == 0:
        raise DataError(f"no usable training tracks in {run.data_dir} (subset {run.subset})")
    out = Path(run.out or Path("runs") / (run.name or
               f"{run.model}-{run.subset}-s{run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"))
    if resume:
        out = Path(run.resume) if Path(run.resume).is_dir() else Path(run.resume).parent
    out = Path(dist.broadcast(str(out)))  # rank 0's name (its timestamp)

    seed_everything(run.seed)
    if resume:
        mean, std = resume["mean"].numpy(), resume["std"].numpy()
        mcfg = ModelConfig(**resume["model_config"])
    else:  # with --init, the checkpoint's architecture (its sizes); the options given here override it
        mean, std = dist.broadcast(normalisation(run, cache, train_rows, init) if dist.main else None)
        base = ModelConfig(**init["model_config"]) if init else ModelConfig(name=run.model)
        mcfg = replace(base, n_classes=len(classes), n_mels=audio.n_mels,
                       **{k: getattr(run, k) for k in ("width", "dropout") if getattr(run, k) is not None})
    model = build_model(mcfg)
    init_report = resume.get("init") if resume else None
    if init:
        init_report = initialise(model, init, run, classes)
    if run.freeze_backbone:
        model.freeze_backbone()
    if run.sync_bn and dist.enabled:
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # the same module, its BatchNorms replaced
    model = accelerate(model.to(device), device, compile=run.compile)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
    crop_frames = audio.frames_for(run.crop_seconds) if run.crop_seconds else None
    n_params, n_trainable = count_parameters(model, trainable_only=False), count_parameters(model)
    print(f"{mcfg.name}: {n_params:,} parameters" + (f" ({n_trainable:,} trained)" if n_trainable < n_params else "")
          + f" | {len(classes)} {'genres (multi-label)' if multilabel else 'classes'} | "
          + " / ".join(f"{len(r)} {s}" for s, (r, _) in splits.items()) + f" tracks | device {device} | {out}")
    if dist.enabled:
        print(f"{dist.world_size} processes ({dist.backend}): {run.batch_size} clips per process and step, a global "
              f"batch of {run.batch_size * dist.world_size}" + (", SyncBatchNorm" if run.sync_bn else ""))

    generator = torch.Generator()
    loader = make_loader(cache, train_rows, train_targets, mean, std, run, device, crop_frames, train=True,
                         generator=generator, dist=dist)
    val_rows, val_targets = splits["validation"]
    eval_crops = run.eval_crops if crop_frames else 0
    val_loader = make_loader(cache, val_rows, val_targets, mean, std, run, device, crop_frames,
                             eval_crops=eval_crops, dist=dist) if len(val_rows) else None
    optimizer, scheduler = make_optimizer(model, run, len(loader))
    scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and run.amp else None
    augment = Augment(freq_masks=2 if run.augment else 0, time_masks=2 if run.augment else 0, mixup=run.mixup,
                      eq_db=run.eq_db, contrast=run.contrast, band_std=torch.as_tensor(std, dtype=torch.float32))
    loss_fn = make_loss(run.target, run.balance, train_targets, len(classes), device)
    selection = "validation macro ROC-AUC" if multilabel else "validation accuracy"

    start_epoch, step, best, history, threshold = 1, 0, float("-inf"), [], 0.5
    if resume:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        if scheduler is not None and resume["scheduler"]:
            scheduler.load_state_dict(resume["scheduler"])
        start_epoch, step, best = resume["epoch"] + 1, resume["global_step"], resume["best_metric"]
        history, threshold = resume["history"], resume.get("threshold", 0.5)
        set_rng_state(resume["rng"])
        print(f"resuming {out} after epoch {resume['epoch']} (best {selection} {best:.4f})")
        trained_with = resume.get("world_size", 1)
        if trained_with != dist.world_size:
            print(f"note: epochs 1-{resume['epoch']} ran on {trained_with} process(es), the rest on "
                  f"{dist.world_size}: the global batch changes from {run.batch_size * trained_with} to "
                  f"{run.batch_size * dist.world_size}, so this run will not equal an uninterrupted one")
    net = model if not dist.enabled else torch.nn.parallel.DistributedDataParallel(  # broadcasts rank 0's weights
        model, device_ids=[device.index] if device.type == "cuda" else None)

    config = {"run": asdict(run), "audio": asdict(audio), "model": asdict(mcfg), "classes": classes,
              "parameters": n_params, "trained_parameters": n_trainable,
              **({"init": init_report} if init_report else {}), **({"genres": vocab} if multilabel else {}),
              **({"distributed": {"world_size": dist.world_size, "backend": dist.backend}} if dist.enabled else {})}
    if dist.main:
        (out / "config.json").write_text(json.dumps(config, indent=2))
    logger = Logger(run, out, config, resume.get("wandb_id") if resume else None, active=dist.main)

    def state_at(epoch: int) -> dict:
        return {"model": model.state_dict(), "model_config": asdict(mcfg), "classes": classes,
                "audio": asdict(audio), "mean": torch.from_numpy(mean), "std": torch.from_numpy(std),
                "crop_frames": crop_frames, "eval_crops": eval_crops, "target": run.target,
                **({"genres": vocab, "threshold": threshold} if multilabel else {}),
                **({"init": init_report} if init_report else {}),
                "run_config": asdict(run), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "epoch": epoch, "global_step": step, "best_metric": best, "history": history,
                "rng": rng_state(), "wandb_id": logger.wandb_id,
                **({"world_size": dist.world_size} if dist.enabled else {})}

    def on_step(m: dict):
        nonlocal step
        step += 1
        logger.step(step, m)

    show = not run.quiet and dist.main  # progress bars
    per_step_schedule = scheduler if isinstance(scheduler, torch.optim.lr_scheduler.OneCycleLR) else None
    started = time.perf_counter()
    try:  # the W&B run is closed however train() ends (an exception, a pruned trial of tune.py)
        for epoch in range(start_epoch, run.epochs + 1):
            # each epoch's shuffling, crops and masks are reproducible (and, under torchrun, each rank's its own)
            seed_everything(dist.seed(run.seed * 1000 + epoch))
            generator.manual_seed(dist.seed(run.seed * 1000 + epoch))
            if hasattr(loader.sampler, "set_epoch"):  # torchrun: this epoch's shuffle, the same on every rank
                loader.sampler.set_epoch(epoch)
            tr = train_one_epoch(net, loader, optimizer, device, loss_fn=loss_fn, augment=augment,
                                 scheduler=per_step_schedule, amp=run.amp, scaler=scaler, on_step=on_step,
                                 progress=show, dist=dist)
            va = (evaluate(model, val_loader, device, classes, run.amp, multilabel, progress=show, dist=dist)
                  if val_loader is not None else None)
            if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
                scheduler.step(va["loss"] if va else tr["loss"])
            elif scheduler is not None and per_step_schedule is None:
                scheduler.step()
            metric = selection_metric(tr, va, multilabel)
            is_best = metric > best
            best = max(best, metric)
            if multilabel:
                threshold = va["threshold"] if va else 0.5  # saved with the epoch's weights, applied to test
            measured = {"train_accuracy": tr["accuracy"]} if not multilabel else {}  # no accuracy for multi-hot targets
            measured.update({f"val_{k}": va[k] if va else float("nan")
                             for k in ("loss",) + (MULTILABEL_EPOCH if multilabel else ("accuracy", "macro_f1"))})
            row = {"epoch": epoch, "train_loss": tr["loss"], **measured, "lr": optimizer.param_groups[0]["lr"],
                   "seconds": tr["seconds"], "clips_per_s": tr["clips_per_s"]}
            history.append(row)
            logger.epoch(step, row, history)
            if dist.main:
                state = state_at(epoch)
                if is_best:  # best.pt before last.pt: once last.pt claims this epoch, best.pt holds its weights
                    save_checkpoint(out / "best.pt", state)
                save_checkpoint(out / "last.pt", state)
            scores = (f"train loss {tr['loss']:.4f}  |  val loss {row['val_loss']:.4f} ROC-AUC {row['val_macro_roc_auc']:.3f} "
                      f"AP {row['val_macro_ap']:.3f} micro-F1 {row['val_micro_f1']:.3f}" if multilabel else
                      f"train loss {tr['loss']:.4f} acc {tr['accuracy']:.3f}  |  "
                      f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f} F1 {row['val_macro_f1']:.3f}")
            print(f"epoch {epoch:3d}/{run.epochs}  {scores}  |  "
                  f"{tr['seconds']:.1f} s, {tr['clips_per_s']:.0f} clips/s{'  *' if is_best else ''}", flush=True)
            if on_epoch is not None:  # e.g. tune.py: report to Optuna, raise optuna.TrialPruned to stop
                on_epoch(epoch, row)
        wall = time.perf_counter() - started

        dist.barrier()  # rank 0 has written best.pt
        best_state = load_checkpoint(out / "best.pt", map_location=device)
        model.load_state_dict(best_state["model"])
        results = test_report(model, best_state, cache, classes, splits, run, device, out, dist)
        if dist.main:
            plot_curves(history, out / "curves.png", "macro_roc_auc" if multilabel else "accuracy")
            results.update({"epochs": run.epochs, "train_seconds": round(wall, 1),
                            ("val_macro_roc_auc" if multilabel else "val_accuracy"):
                                best if splits["validation"][0].size else None})
            write_results(results, out)
            logger.final(step, results, classes, out)
        dist.barrier()  # results.json is there for every rank (--seeds looks for it)
    finally:
        logger.close()
    print(f"wrote {out}/: {', '.join(sorted(p.name for p in out.iterdir() if p.is_file()))}")
    return 0


def demo_if_no_fma(run: RunConfig, given: set) -> RunConfig:
    """`python main.py` with no --data-dir and no FMA in data/: the synthetic demo set in data/demo,
    generated (about 3 minutes, once) if absent. An explicit --data-dir is never replaced."""
    if "data_dir" in given or (Path(run.data_dir) / "fma_metadata" / "tracks.csv").is_file():
        return run
    demo = Path(run.data_dir) / "demo"
    print(f"no FMA in {run.data_dir}/ (get it with `bash download_data.sh {run.subset}`): "
          f"using the synthetic demo set {demo}/ (demo numbers are not FMA numbers)")
    import demo_data
    demo_data.main(["--out", str(demo)])  # does nothing when the set is already there
    return replace(run, data_dir=str(demo))


SEED_METRICS = {"top": ("accuracy", "macro_f1"), "all": ("macro_roc_auc", "macro_ap", "micro_f1", "macro_f1")}
METRIC_NAMES = {"accuracy": "accuracy", "macro_f1": "macro-F1", "macro_roc_auc": "macro ROC-AUC",
                "macro_ap": "macro PR-AUC", "micro_f1": "micro-F1"}


def seed_list(value) -> list[int]:
    """--seeds '0,1,2' (or a preset's list [0, 1, 2]) -> [0, 1, 2]; empty -> [] (a single run)."""
    if value is None or value == "":
        return []
    items = value if isinstance(value, (list, tuple)) else str(value).split(",")
    try:
        seeds = [int(str(s).strip()) for s in items]
    except ValueError:
        raise ValueError(f"--seeds takes comma-separated integers such as 0,1,2, not {value!r}") from None
    if len(set(seeds)) < len(seeds):
        raise ValueError(f"--seeds {value}: a seed is given twice")
    return seeds


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


# options a rerun of --seeds may change without retraining the finished seeds
SEED_FREE = set(RESUME_OVERRIDES) - {"epochs"} | {"resume", "out", "name", "cache_dir", "wandb_project", "bootstrap",
                                                  "ci_level"}


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


def main(argv=None) -> int:
    run, audio, given = load_config(argv, description=__doc__.splitlines()[0])
    if run.model not in MODELS:
        print(f"error: unknown model {run.model!r}: choose from {', '.join(MODELS)}", file=sys.stderr)
        return 2
    dist = Dist()
    try:
        seeds = seed_list(run.seeds)
        if seeds and (run.resume or run.evaluate_only):
            print("error: --seeds trains new runs and does not combine with --resume or --evaluate-only (rerun "
                  "the --seeds command to continue it: finished seeds are skipped)", file=sys.stderr)
            return 2
        if run.shard is not None and not run.prepare_only:
            raise ValueError("--shard builds one slice of the cache and goes with --prepare-only (training needs "
                             "the whole cache; under torchrun every process builds its slice by itself)")
        dist = setup(run.device)  # torchrun's process group, when there is one
        if dist.enabled and (run.evaluate_only or run.shard is not None):
            raise ValueError(f"--{'evaluate-only' if run.evaluate_only else 'shard'} runs in one process, not under "
                             "torchrun (python main.py ...)")
        with quiet_unless_main(dist):  # each console line once
            return run_main(run, audio, given, seeds, dist)
    except (DataError, CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        cleanup(dist)


def run_main(run: RunConfig, audio: AudioConfig, given: set, seeds: list[int], dist: Dist) -> int:
    """What main.py was asked to do: evaluate, build the cache, or train (one run, or one per seed)."""
    if run.evaluate_only:
        return evaluate_only(run, given)
    if not run.resume:
        run = dist.main_first(lambda: demo_if_no_fma(run, given))  # rank 0 generates it, the others find it
        audio = model_audio(run, audio, given)
    if run.prepare_only:
        prepare(run, audio, dist)
        return 0
    return train_seeds(run, audio, given, seeds, dist) if seeds else train(run, audio, given, dist=dist)


if __name__ == "__main__":
    sys.exit(main())
