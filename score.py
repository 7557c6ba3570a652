"""Scoring a labelled collection through prediction: `pre_trained_models.py --checkpoint C --data-dir D` predicts
the tracks of FMA, a folder of class folders or a manifest from their audio files (predictor.py, test.infer) and
scores them against their labels, with bootstrap intervals and the confusion matrix; a tagger with a tag ->
genre map (pretrained/musicnn_msd.pt) is scored zero-shot on the FMA genres its tags reach (change it here).

    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt --data-dir data --subset small
    python pre_trained_models.py --checkpoint runs/NAME --data-dir my_songs.csv --split test --confusion cm.png
"""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

from collection import SUBSETS, Collection, multi_hot, open_collection
from config import RunConfig, parse_fractions
from metrics import bootstrap_metrics, classification_metrics, multilabel_metrics
from predictor import Predictor, Song
from test import ci_text

RESAMPLES = 1000  # bootstrap resamples of the report's intervals


def _name(label: str) -> str:
    """A genre name as labels are compared zero-shot: 'Hip-Hop', 'hiphop' and 'hip hop' are one."""
    return re.sub(r"[^a-z0-9]", "", str(label).lower())


def selection(args, predictor: Predictor, warn) -> tuple[list[Song], dict]:
    """Songs for --data-dir: the collection's tracks of --split whose label the model knows (FMA: of --subset,
    outside the checkpoint's training subset), and what the report says of them. The collection is split as the
    checkpoint's run split it (its --split-fractions and --split-seed)."""
    if predictor.tagger and not predictor.zero_shot:
        raise ValueError("the checkpoint's classes are tags with no genre map (neither genres nor tag_genres): "
                         "it cannot score a labelled collection")
    run, default = predictor.run_config, RunConfig()
    fractions = parse_fractions(run.get("split_fractions") or default.split_fractions)
    collection = open_collection(args.data_dir, args.subset, fractions, run.get("split_seed", default.split_seed),
                                 splits=args.split != "all")  # --split all: no split needed
    table, info = collection.table, {"data_dir": str(collection.root), "kind": collection.kind}
    if collection.kind == "fma":
        table, info = fma_tracks(args, predictor, collection, warn)
    if args.split != "all":
        table = table[table["split"] == args.split]
    labels, genre_ids = known_labels(table, predictor, collection)
    known = (labels != "").to_numpy()
    songs = [Song(path, track_id=int(tid) if collection.kind == "fma" else None, label=label, genre_ids=ids)
             for tid, path, label, ids in zip(table.index[known], table["path"][known], labels[known],
                                              np.asarray(genre_ids, dtype=object)[known])]
    info.update(split=args.split, selected=int(len(table)), known_genre=int(known.sum()),
                other_genre=int((~known).sum()))
    if predictor.zero_shot:
        top = (collection.genres.loc[collection.genres["parent"] == 0, "title"].astype(str)
               if collection.genres is not None else set(table["label"]))
        reached = {_name(g) for g in predictor.tag_genres}
        info.update(zero_shot=True, unmapped_genres=sorted(g for g in set(top) if _name(g) not in reached))
    return songs, info


def known_labels(table: pd.DataFrame, predictor: Predictor, collection: Collection) -> tuple[pd.Series, list]:
    """Each track's label as the model knows it ('' when it does not; a zero-shot tagger's: the FMA genre name
    it matches) and, for a multi-label model, its labels as the model's genre ids (else None each)."""
    none = [None] * len(table)
    if predictor.zero_shot:
        names = {_name(g): g for g in predictor.tag_genres}
        return table["label"].map(lambda label: names.get(_name(label), "")), none
    if not predictor.multilabel:
        return table["label"].where(table["label"].isin(predictor.classes), ""), none
    ids = dict(zip(predictor.genres["titles"], predictor.genres["ids"]))
    if collection.kind == "fma":
        vocab = set(predictor.genres["ids"])
        lists = [[int(g) for g in gs if int(g) in vocab] for gs in collection.genres_all.reindex(table.index)]
    else:
        lists = [[ids[x] for x in label.split(";") if x in ids] for label in table["label"]]
    return pd.Series([label or "-" if ls else "" for label, ls in zip(table["label"], lists)], index=table.index), lists


def fma_tracks(args, predictor: Predictor, collection: Collection, warn) -> tuple[pd.DataFrame, dict]:
    """FMA's tracks of --subset, outside the checkpoint's training subset when that is smaller (a zero-shot
    tagger never heard FMA: nothing is left out)."""
    trained_on = predictor.run_config.get("subset")
    order = list(SUBSETS) + ["full"]
    table, excluded = collection.table, None
    if predictor.zero_shot:
        pass  # nothing to leave out, nothing to warn about: the report says "zero-shot"
    elif trained_on in SUBSETS and order.index(args.subset) > order.index(trained_on):
        table, excluded = table[~(table["subset"] <= trained_on).fillna(False).astype(bool)], trained_on
    elif trained_on in order:
        if args.split in ("all", "training"):
            warn(f"warning: the model was trained on {trained_on}'s training split; these tracks include it")
    else:
        warn("warning: the checkpoint does not say which subset it was trained on: no track is left out")
    return table, {"data_dir": str(collection.root), "kind": "fma", "subset": args.subset,
                   "training_subset": trained_on, "excluded_subset": excluded}


def report(songs: list[Song], predictor: Predictor, info: dict) -> dict:
    """Metrics of the predicted tracks against their labels, with 95% bootstrap intervals (ci): a single-label
    model's accuracy, macro-F1, per-class table and confusion matrix; a multi-label model's ROC-AUC, AP and F1
    over all their genres; a zero-shot tagger's over the mapped genres, each track predicted as its
    best-scoring mapped genre (macro-F1 over the mapped genres the selection holds)."""
    ok = [s for s in songs if s.ok]
    counts = {"predicted": len(ok), "failed": len(songs) - len(ok)}
    probs = np.stack([s.probs for s in ok]) if ok else np.zeros((0, len(predictor.classes)))  # (N, n_classes)
    if predictor.multilabel and not predictor.zero_shot:
        y = multi_hot([s.genre_ids for s in ok], predictor.genres["ids"])
        metrics = multilabel_metrics(y, probs, predictor.labels, predictor.threshold) if ok else {}
        ci = bootstrap_metrics(y, probs, True, predictor.threshold, n=RESAMPLES) if ok else {}
        return {**info, **counts, "classes": predictor.classes, "multilabel": True, **metrics, "ci": ci}
    classes = predictor.genre_names
    scores = predictor.genre_probs(probs)  # (N, n_classes), or a tagger's (N, n_mapped_genres)
    lookup = {c: i for i, c in enumerate(classes)}
    y_true = np.array([lookup[s.label] for s in ok], dtype=np.int64)
    # a zero-shot tagger's map names more genres than the selection holds: macro-F1 over those it holds
    present = sorted(set(y_true.tolist())) if predictor.zero_shot else None
    metrics = classification_metrics(y_true, scores.argmax(1), classes, macro_over=present) if ok else {}
    ci = bootstrap_metrics(y_true, scores, n=RESAMPLES, macro_over=present) if ok else {}
    extra = {"tag_genres": predictor.tag_genres, "macro_f1_genres": [classes[i] for i in present]} \
        if predictor.zero_shot else {}
    return {**info, **counts, "classes": classes, **extra, **metrics, "ci": ci}


def report_lines(rep: dict) -> list[str]:
    """The report as the table format prints it."""
    if rep["kind"] == "fma":
        where = f"fma_{rep['subset']}" + (f" outside fma_{rep['excluded_subset']} (the training subset)"
                                          if rep["excluded_subset"] else "")
    else:
        where = f"{rep['data_dir']} ({rep['kind']})"
    split = "all splits" if rep["split"] == "all" else f"split {rep['split']}"
    zero_shot = rep.get("zero_shot", False)
    known = "a genre its tags map to" if zero_shot else "a label the model knows"
    lines = [f"{where}, {split}: {rep['selected']} tracks; {rep['known_genre']} with {known}, "
             f"{rep['other_genre']} with another or no label (left out)"]
    if zero_shot:
        lines += ["zero-shot: a tagger that never heard these tracks; a genre's score is the highest probability of "
                  "its tags", "genres with no tag (not scored): " + (", ".join(rep["unmapped_genres"]) or "none")]
    lines.append(f"predicted {rep['predicted']}, failed {rep['failed']}")
    if not rep["predicted"]:
        return lines + ["no track predicted: nothing to score"]
    if rep.get("multilabel"):
        lines += [f"macro ROC-AUC {rep['macro_roc_auc']:.4f}{ci_text(rep, 'macro_roc_auc')}  micro ROC-AUC "
                  f"{rep['micro_roc_auc']:.4f}  macro AP {rep['macro_ap']:.4f}{ci_text(rep, 'macro_ap')}  micro-F1 "
                  f"{rep['micro_f1']:.4f} at threshold {rep['threshold']:.2f}  ({rep['scored_genres']} of "
                  f"{len(rep['classes'])} genres scored; 95% bootstrap intervals)", "",
                  f"{'genre':<40} {'roc_auc':>7} {'ap':>6} {'positives':>9}"]
        for c, m in rep["per_genre"].items():
            lines.append(f"{c[:40]:<40} {m['roc_auc']:>7.3f} {m['ap']:>6.3f} {m['positives']:>9d}")
        return lines
    over = (f"the {len(rep['macro_f1_genres'])} mapped genres with tracks here" if zero_shot
            else f"the model's {len(rep['classes'])} genres")
    lines += [f"accuracy {rep['accuracy']:.4f}{ci_text(rep, 'accuracy')}  macro-F1 {rep['macro_f1']:.4f}"
              f"{ci_text(rep, 'macro_f1')}  ({rep['predicted']} tracks; macro-F1 over {over}; 95% bootstrap intervals)",
              "", f"{'genre':<20} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>8}"]
    for c, m in rep["per_class"].items():
        lines.append(f"{c:<20} {m['precision']:>9.3f} {m['recall']:>7.3f} {m['f1']:>6.3f} {m['support']:>8d}")
    return lines
