"""Everything that scores a model: the one inference function (`infer`: windows to probabilities), `evaluate`
for validation and test, the test report (results.json, test_predictions.csv, plots), `--evaluate-only` and
ensembles (change evaluation and the metrics reported here).

A clip's probabilities come from the whole cached clip, or are the mean over K evenly spaced crops inside the
real audio (utils.eval_windows): the same windowing that pre_trained_models.py applies to songs of any
length, through the same `infer`, so evaluation and prediction give the same probabilities.

    python main.py --evaluate-only --checkpoint runs/NAME/best.pt   # re-evaluate a checkpoint on test
    python main.py --evaluate-only --checkpoint runs/A runs/B       # an ensemble of two checkpoints
"""
from __future__ import annotations

import contextlib
import csv
import functools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from cache import open_cache
from collection import Collection, DataError, open_collection
from config import AudioConfig, RunConfig, parse_fractions
from distributed import Dist, gather_batches
from loss import Loss
from metrics import bootstrap_metrics, classification_metrics, multilabel_metrics
from models import count_parameters
from models_utils import (BatchProgress, load_checkpoint, machine, model_from_checkpoint,
                          output_probs, pick_device)
from plots import plot_auc_vs_count, plot_confusion
from utils import make_loader, make_targets

MULTILABEL_SCALARS = ("macro_roc_auc", "micro_roc_auc", "macro_ap", "micro_ap", "micro_f1", "macro_f1", "threshold",
                      "loss")


# windows per model call on CPU: an evaluation batch is batch_size clips x eval_crops windows (32 x 8 = 256),
# whose activations (about 1.2 GB for the CRNN) would set the peak memory of a training run; 32 windows, a training
# batch, reuse the training step's memory. The same logits: every model treats a batch's windows independently
# in eval mode.
CPU_WINDOWS_PER_FORWARD = 32


@torch.inference_mode()
def infer(model: torch.nn.Module, x: torch.Tensor, amp: bool = False, multilabel: bool = False,
          embed: bool = False):
    """The one inference function: standardised log-mel windows -> (B, n_classes) probabilities (softmax,
    or per-genre sigmoids when `multilabel`), under float16 autocast on CUDA when `amp`.

    x is (B, M, T), one window per row, or (B, K, M, T), K windows per clip (utils.eval_windows) whose
    probabilities are averaged. With `embed`, returns (probs, embeddings): model.embed of each row, (B, D),
    averaged over the K windows too (the pooled backbone output that the head classifies, same pass).
    """
    use_amp = amp and x.device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    windows = x if x.ndim == 4 else x[:, None]  # (B, M, T) -> (B, 1, M, T)
    B, K = windows.shape[:2]
    flat = windows.flatten(0, 1)  # (B*K, M, T)
    chunks = flat.split(CPU_WINDOWS_PER_FORWARD) if x.device.type == "cpu" else (flat,)
    with autocast:
        if embed:  # model.forward is head(embed(check_input(x))): the same computation, split
            emb = torch.cat([model.embed(model.check_input(c)).float() for c in chunks])  # (B*K, D)
            logits = model.head(emb)
        else:
            logits = torch.cat([model(c).float() for c in chunks])  # (B*K, C)
    probs = output_probs(logits.float().view(B, K, -1), multilabel).mean(1)  # (B, K, C) -> (B, C)
    return (probs, emb.view(B, K, -1).mean(1)) if embed else probs


@torch.no_grad()
def evaluate(model: torch.nn.Module, loader, device: torch.device, classes: list[str], amp: bool = False,
             multilabel: bool = False, threshold: float | None = None, progress: bool = False,
             dist: Dist | None = None) -> dict:
    """Metrics of a model on a loader (`score` of its clip probabilities), plus `probs` (n_clips,
    n_classes) and `y_true` as arrays for callers that need them (test_predictions.csv, intervals,
    ensembles).

    The loader yields (x, y) with x as `infer` takes it (whole clips, or K windows per clip).
    `progress` shows a per-batch bar on a terminal (models_utils.BatchProgress; off by default).
    Under torchrun (`dist`), each rank's loader yields its share of the batches (distributed.ShardedBatches)
    and `model` is the plain module (not its DistributedDataParallel); the batches are gathered on rank 0
    in single-process order and scored there, and every rank returns rank 0's result.
    """
    model.eval()
    batches = []
    with BatchProgress(loader, progress, "evaluate") as bar:
        for x, y in loader:
            batches.append((infer(model, x.to(device, non_blocking=True), amp, multilabel).cpu(), y))
            bar.update(len(y), Loss(multilabel).of_probs(batches[-1][0].numpy(), y.numpy()) if bar.shown else None)
    if dist is not None and dist.enabled:
        batches = gather_batches(dist, batches)
        return dist.broadcast(_score_batches(batches, classes, multilabel, threshold) if dist.main else None)
    return _score_batches(batches, classes, multilabel, threshold)


def _score_batches(batches: list, classes: list[str], multilabel: bool, threshold: float | None) -> dict:
    """`score` of evaluated (probabilities, targets) batches."""
    p = torch.cat([b[0] for b in batches]).numpy() if batches else np.zeros((0, len(classes)), np.float32)
    if batches:
        y = torch.cat([b[1] for b in batches]).numpy()
    else:
        y = np.zeros((0, len(classes)), np.float32) if multilabel else np.zeros(0, np.int64)
    return score(y, p, classes, multilabel, threshold)


def score(y: np.ndarray, p: np.ndarray, classes: list[str], multilabel: bool = False,
          threshold: float | None = None) -> dict:
    """Metrics of clip probabilities `p` (n_clips, n_classes) against targets `y`, with `probs` and
    `y_true`: what `evaluate` returns, and what an ensemble's averaged probabilities get.

    Single-label (targets are class indices): loss (loss.Loss of the clip probabilities), accuracy, macro-F1,
    per-class precision/recall, confusion matrix. Multi-label (`multilabel`, targets are multi-hot rows):
    loss (loss.Loss of the clip probabilities), macro/micro ROC-AUC, macro/micro AP, per-genre
    ROC-AUC and AP, and F1 at `threshold` (tuned on these clips when None: pass validation's to test);
    see metrics.multilabel_metrics.
    """
    loss = Loss(multilabel).of_probs(p, y)
    if multilabel:
        return {"loss": loss, **multilabel_metrics(y, p, classes, threshold), "probs": p, "y_true": y}
    return {"loss": loss, **classification_metrics(y, p.argmax(1), classes), "probs": p, "y_true": y}


# ------------------------------------------------------------------------------------------ ensembles

def average_probs(probs: list[np.ndarray]) -> np.ndarray:
    """An ensemble's probabilities: the mean of its members' (each (n, n_classes), same rows and classes)."""
    return np.mean(np.stack(probs), axis=0)


def _kind(state: dict) -> str:
    """What a checkpoint predicts, in words: the one thing ensemble members must share before classes."""
    if state.get("target", "top") != "all":
        return "a genre classifier (--target top)"
    if not state.get("genres"):
        return f"a tagger ({len(state['classes'])} tags, no FMA genres)"
    return "a multi-label genre classifier (--target all)"


def _vocabulary(state: dict) -> list[str]:
    genres = state.get("genres") or {}
    return [f"{i} {t}" for i, t in zip(genres.get("ids", []), genres.get("titles", []))]


def _differ(a: list, b: list) -> tuple[str, str]:
    """The items of `a` and of `b` that tell them apart: those only one has, else (same items in
    another order) the first position where they differ."""
    only_a, only_b = [x for x in a if x not in b], [x for x in b if x not in a]
    if only_a or only_b or len(a) != len(b):
        return f"[{', '.join(map(str, only_a))}]", f"[{', '.join(map(str, only_b))}]"
    i = next(i for i, (x, y) in enumerate(zip(a, b)) if x != y)
    return f"{a[i]!r} at position {i}", f"{b[i]!r} there (the same items in another order)"


def ensemble_mismatch(members: list[tuple[str, dict]]) -> str | None:
    """Why the checkpoints `members` ((path, state) pairs) cannot be averaged, or None when they can:
    their probabilities must mean the same things, i.e. the same kind of model (a tagger only with
    taggers), the same classes in the same order and, multi-label, the same FMA genre vocabulary.
    Audio parameters, windows and normalisation may differ: each member uses its own."""
    (first, ref), rest = members[0], members[1:]
    for path, state in rest:
        if _kind(state) != _kind(ref):
            return (f"members disagree on what they predict: {first} is {_kind(ref)}, {path} is {_kind(state)}; "
                    f"only models of one kind can be ensembled")
        for what, get in (("their classes", lambda s: [str(c) for c in s["classes"]]),
                          ("their genre vocabulary", _vocabulary)):
            if get(state) != get(ref):
                mine, theirs = _differ(get(ref), get(state))
                return f"members disagree on {what}: {first} has {mine}, {path} has {theirs}"
    return None


# ------------------------------------------------------------------------------------------ the test report

def per_genre_rows(vocab: dict, per_genre: dict) -> list[dict]:
    """One row per genre of the vocabulary: per_genre_auc.csv, the W&B table, the AUC plot."""
    return [{"genre_id": g, "title": t, "parent_id": p, "parent": path.rpartition(" > ")[0].rpartition(" > ")[2],
             "path": path, "train_positives": int(n), "test_positives": per_genre[t]["positives"],
             "roc_auc": per_genre[t]["roc_auc"], "ap": per_genre[t]["ap"]}
            for g, t, p, path, n in zip(vocab["ids"], vocab["titles"], vocab["parents"], vocab["paths"],
                                        vocab["train_positives"])]


def public(metrics: dict) -> dict:
    """Evaluation metrics without the per-clip arrays."""
    return {k: v for k, v in metrics.items() if k not in ("probs", "y_true")}


def test_report(model, state: dict, cache, classes, splits, run: RunConfig, device, out: Path,
                dist: Dist = Dist()) -> dict | None:
    """Evaluate on the test split; write test_files.csv, test_predictions.csv and confusion_matrix.png
    (top) or per_genre_auc.csv and auc_vs_train_count.png (all, at the threshold tuned on validation)
    into `out`; return what results.json gets, with `--bootstrap` confidence intervals under test.ci.
    Under torchrun every rank evaluates its share of the batches, and rank 0 alone writes and returns."""
    rows, targets = splits["test"]
    metrics = member_metrics(model, state, cache, rows, targets, classes, run, device, dist) if len(rows) else None
    if not dist.main:
        return None
    track_ids = cache.index["track_id"].to_numpy()[rows]
    write_test_files(cache.collection.table.loc[track_ids, "path"], label_names(targets, classes), out)
    results = {"model": state["model_config"]["name"], "parameters": count_parameters(model, trainable_only=False),
               "best_epoch": state["epoch"], "classes": classes, "test_tracks": int(len(rows)),
               "machine": machine(), **vocabulary_fields(state)}
    if metrics is None:
        print("no test tracks in this data: test report skipped")
        results["test"] = None
        return results
    return report_test(results, metrics, state, track_ids, run, out, f"best epoch {state['epoch']}")


def label_names(targets: np.ndarray, classes: list[str]) -> list[str]:
    """Each track's true class (class indices), or its genres joined with ';' (multi-hot rows)."""
    if targets.ndim == 1:
        return [classes[i] for i in targets]
    return [";".join(c for c, y in zip(classes, row) if y) for row in targets]


def write_test_files(paths, labels: list[str], out: Path) -> None:
    """test_files.csv: path,label of each test track, a manifest that `pre_trained_models.py FILE.csv` predicts
    with the true genres beside the predicted ones."""
    with open(out / "test_files.csv", "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["path", "label"])
        writer.writerows(zip(paths, labels))


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
    ci = functools.partial(ci_text, test)
    n, n_classes = metrics["probs"].shape
    if multilabel:
        return (f"{label}: macro ROC-AUC {metrics['macro_roc_auc']:.4f}{ci('macro_roc_auc')}  micro ROC-AUC "
                f"{metrics['micro_roc_auc']:.4f}  macro PR-AUC (AP) {metrics['macro_ap']:.4f}{ci('macro_ap')}  "
                f"micro-F1 {metrics['micro_f1']:.4f}{ci('micro_f1')} at threshold {metrics['threshold']:.2f}  "
                f"({n} tracks, {metrics['scored_genres']} of {n_classes} genres scored, {about}{ci('level')})")
    return (f"{label}: accuracy {metrics['accuracy']:.4f}{ci('accuracy')}  macro-F1 {metrics['macro_f1']:.4f}"
            f"{ci('macro_f1')}  ({n} tracks, {about}{ci('level')})")


def ci_text(test: dict, key: str) -> str:
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


def trained_data(path: str, state: dict, run: RunConfig, given: set) -> tuple[RunConfig, Collection]:
    """`run` on the data a checkpoint was trained on (its data folder, subset and cache folder), unless given
    (--data-dir, --subset, --cache-dir), and that collection, opened; a DataError, before any work, when that
    data is not there or has no test track."""
    saved = state.get("run_config") or {}
    if "data_dir" not in given and not saved.get("data_dir"):
        raise DataError(f"{path} does not say what data trained it: give --data-dir DIR")
    kept = {k: saved[k] for k in ("data_dir", "subset", "cache_dir", "split_fractions", "split_seed")
            if k not in given and saved.get(k) is not None}
    if kept.get("cache_dir") and not Path(kept["cache_dir"]).is_dir():
        del kept["cache_dir"]  # moved or deleted: the default, DATA_DIR/cache
    run = replace(run, **kept)
    if "data_dir" not in given and not Path(run.data_dir).exists():
        raise DataError(f"{path} was trained on the data in {run.data_dir}, which is not there (moved?): give "
                        f"--data-dir DIR")
    collection = open_collection(run.data_dir, run.subset, parse_fractions(run.split_fractions), run.split_seed)
    if not (collection.table["split"] == "test").any():
        raise DataError(f"no test tracks in {collection}: nothing to evaluate")
    return run, collection


def evaluate_only(run: RunConfig, given: set) -> int:
    """--evaluate-only: the test report of one --checkpoint (into RUN_DIR/evaluate/), or of the
    ensemble of several (evaluate_ensemble), on the data the first was trained on unless --data-dir is given;
    --out replaces the folder."""
    states = [load_checkpoint(path) for path in run.checkpoint]
    run, collection = trained_data(run.checkpoint[0], states[0], run, given)
    device = pick_device(run.device)
    out = evaluate_out(run)
    if len(states) > 1:
        results = evaluate_ensemble(run.checkpoint, states, run, given, device, out, collection)
    else:
        model, cache, classes, splits = load_member(states[0], run, given, device, collection)
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


def load_member(state: dict, run: RunConfig, given: set, device, collection: Collection):
    """(model on `device`, cache, classes, splits) of a checkpoint: the log-mel cache of `collection` at its own
    audio parameters (built when missing) and its classes' targets; --eval-crops, when given, replaces its
    number of evaluation crops (the one evaluation setting that may change)."""
    cache = open_cache(run, AudioConfig(**state["audio"]), collection=collection)
    classes, splits, _ = make_targets(state.get("target", "top"), cache, state)
    model = model_from_checkpoint(state, device)
    if "eval_crops" in given and state["crop_frames"]:
        state["eval_crops"] = run.eval_crops
    return model, cache, classes, splits


def evaluate_ensemble(paths: list[str], states: list[dict], run: RunConfig, given: set, device, out: Path,
                      collection: Collection) -> dict:
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
    members, track_ids, evaluated, caches = [], [], [], []
    for path, state in zip(paths, states):
        model, cache, classes, splits = load_member(state, run, given, device, collection)
        caches.append(cache)
        rows, targets = splits["test"]
        track_ids.append(cache.index["track_id"].to_numpy()[rows])
        evaluated.append(member_metrics(model, state, cache, rows, targets, classes, run, device))
        members.append({"checkpoint": str(path), "model": state["model_config"]["name"],
                        "parameters": count_parameters(model, trainable_only=False), "best_epoch": state["epoch"],
                        "audio": state["audio"], "crop_frames": state["crop_frames"],
                        "eval_crops": state["eval_crops"], "test_tracks": int(len(rows))})
    common = shared_tracks(paths, track_ids, members)
    aligned = [aligned_rows(ids, common, metrics) for ids, metrics in zip(track_ids, evaluated)]
    y = aligned[0][1]
    if any(not np.array_equal(y, theirs) for _, theirs in aligned):
        raise ValueError("members disagree on the true genres of their test tracks: not the same metadata")
    out.mkdir(parents=True, exist_ok=True)
    write_test_files(caches[0].collection.table.loc[common, "path"], label_names(y, classes), out)
    results = {"model": "ensemble", "parameters": sum(m["parameters"] for m in members), "classes": classes,
               "test_tracks": int(len(common)), "machine": machine(), **vocabulary_fields(states[0]),
               "members": members}
    if len(common) == 0:
        print("no test tracks shared by every member: test report skipped")
        results["test"] = None
        return results
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
