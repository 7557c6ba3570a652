"""Metrics of the project, one place for all of them: single-label (`classification_metrics`), multi-label
(`multilabel_metrics`, `tune_threshold`), their uncertainty over test tracks (`bootstrap_ci`,
`bootstrap_metrics`, `MultilabelScores` for fast resamples) and paired tests between two runs
(`mcnemar_exact`, `paired_bootstrap_diff`). Point estimates come from scikit-learn; the resampled ones are
checked against it (tests/test_uncertainty.py).
"""
from __future__ import annotations

import numpy as np


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: list[str],
                           macro_over: list[int] | None = None) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix (lists).
    Macro-F1 averages over every class, or over the class indices `macro_over`."""
    from sklearn.metrics import confusion_matrix, f1_score, precision_recall_fscore_support
    labels = list(range(len(classes)))
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "accuracy": float(np.mean(y_true == y_pred)) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels if macro_over is None else macro_over,
                                   average="macro", zero_division=0)),
        "per_class": {c: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                      for i, c in enumerate(classes)},
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


THRESHOLDS = np.round(np.linspace(0.01, 0.99, 99), 2)  # candidates for the multi-label decision threshold


def _scored(y_true: np.ndarray) -> np.ndarray:
    """Columns with at least one positive and one negative: the only ones ROC-AUC and AP are defined on."""
    pos = y_true.sum(0)
    return (pos > 0) & (pos < len(y_true))


def tune_threshold(y_true: np.ndarray, probs: np.ndarray) -> float:
    """The one decision threshold (0.01-0.99) that maximises micro-F1 over the scored genres; tuned on
    the validation split and applied unchanged to the test split."""
    keep = _scored(y_true)
    if not keep.any():
        return 0.5
    y, p = y_true[:, keep].astype(bool), probs[:, keep]
    best, best_f1 = 0.5, -1.0
    for t in THRESHOLDS:
        pred = p >= t
        tp = np.count_nonzero(pred & y)
        f1 = 2 * tp / max(np.count_nonzero(pred) + np.count_nonzero(y), 1)
        if f1 > best_f1:
            best, best_f1 = float(t), f1
    return best


def multilabel_metrics(y_true: np.ndarray, probs: np.ndarray, classes: list[str],
                       threshold: float | None = None) -> dict:
    """Multi-label metrics of (n_clips, n_genres) 0/1 targets and probabilities.

    Genres without a positive (or without a negative) among these clips have no ROC-AUC or AP: they
    are listed in `dropped` and left out of every average, micro included. Macro = the mean of the
    per-genre values; micro = one curve over all (clip, genre) pairs. F1 (micro and macro, over the
    scored genres) is taken at `threshold`, tuned here with `tune_threshold` when not given.
    """
    from sklearn.metrics import average_precision_score, f1_score, roc_auc_score
    y_true = np.asarray(y_true).astype(np.int64)
    keep = _scored(y_true) if len(y_true) else np.zeros(len(classes), bool)
    threshold = tune_threshold(y_true, probs) if threshold is None else float(threshold)
    per_genre, nan = {}, float("nan")
    for j, c in enumerate(classes):
        per_genre[c] = {"positives": int(y_true[:, j].sum()) if len(y_true) else 0,
                        "roc_auc": float(roc_auc_score(y_true[:, j], probs[:, j])) if keep[j] else nan,
                        "ap": float(average_precision_score(y_true[:, j], probs[:, j])) if keep[j] else nan}
    out = {"threshold": threshold, "scored_genres": int(keep.sum()),
           "dropped": [c for c, k in zip(classes, keep) if not k], "per_genre": per_genre}
    if not keep.any():
        return {"macro_roc_auc": nan, "micro_roc_auc": nan, "macro_ap": nan, "micro_ap": nan,
                "micro_f1": nan, "macro_f1": nan, **out}
    y, p = y_true[:, keep], probs[:, keep]
    pred = (p >= threshold).astype(np.int64)
    return {"macro_roc_auc": float(np.mean([per_genre[c]["roc_auc"] for c, k in zip(classes, keep) if k])),
            "micro_roc_auc": float(roc_auc_score(y.ravel(), p.ravel())),
            "macro_ap": float(np.mean([per_genre[c]["ap"] for c, k in zip(classes, keep) if k])),
            "micro_ap": float(average_precision_score(y.ravel(), p.ravel())),
            "micro_f1": float(f1_score(y, pred, average="micro", zero_division=0)),
            "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)), **out}


# Uncertainty: bootstrap intervals over test tracks and paired tests between two runs on the same tracks.
# The resampled metrics are NumPy versions of the scikit-learn ones above, equal to them (tested in
# tests/test_uncertainty.py): a scikit-learn call costs milliseconds, i.e. minutes for 1000 resamples
# of 163 genres.

def _resamples(m: int, n: int, seed: int) -> np.ndarray:
    """(n, m) row indices drawn with replacement, as scipy.stats.bootstrap draws them from this generator."""
    return np.random.default_rng(seed).integers(0, m, (n, m))


def _interval(values, level: float) -> dict:
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not len(values):
        return {"low": None, "high": None, "n_boot": 0, "level": level}
    low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
    return {"low": float(low), "high": float(high), "n_boot": int(len(values)), "level": level}


def bootstrap_ci(y_true, scores, metric_fn, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Percentile bootstrap interval of `metric_fn(y_true, scores)` over the rows (tracks).

    The `n` resamples draw row indices with replacement, all at once from `np.random.default_rng(seed)`,
    as `scipy.stats.bootstrap(..., paired=True, method='percentile', rng=np.random.default_rng(seed))`
    does; the interval is the (1 - level) / 2 and (1 + level) / 2 quantiles of the resampled metric.
    Resamples where the metric is undefined (NaN, e.g. no genre with both a positive and a negative)
    are left out; `n_boot` counts the ones used. Returns {"low", "high", "n_boot", "level"}; low and
    high are None when no resample (or no track) is left.
    """
    y_true, scores = np.asarray(y_true), np.asarray(scores)
    idx = _resamples(len(y_true), n, seed) if n > 0 and len(y_true) else []
    return _interval([metric_fn(y_true[i], scores[i]) for i in idx], level)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(y_true == y_pred))


def macro_f1_score(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, over: list[int] | None = None) -> float:
    """Macro-F1 over all `n_classes` classes (integer labels), or over the class indices `over`, 0 for a class
    never true nor predicted: sklearn's f1_score(labels=over or range(n_classes), average='macro',
    zero_division=0)."""
    cm = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    tp, denom = np.diag(cm), cm.sum(0) + cm.sum(1)  # 2 tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros(n_classes), where=denom > 0)
    return float(np.mean(f1 if over is None else f1[over]))


class MultilabelScores:
    """Macro ROC-AUC, macro AP, micro- and macro-F1 (at `threshold`) of fixed (n_clips, n_genres)
    targets and probabilities, for any weighting of the clips: `scores(weights)` with weights[i] = how
    often clip i was drawn (default: all 1), so a bootstrap resample costs one weighted pass over scores
    sorted once. Each metric averages over the genres with a positive and a negative of positive weight
    (NaN when none), like multilabel_metrics; with unit weights they equal sklearn's roc_auc_score (ties
    count one half), average_precision_score (tied scores form one threshold) and f1_score
    (zero_division=0). The F1 scores keep the genres scored with unit weights in every resample (their
    true positives may be drawn zero times), so that a resample does not drop the rare genres from them."""

    METRICS = ("macro_roc_auc", "macro_ap", "micro_f1", "macro_f1")

    def __init__(self, y_true: np.ndarray, probs: np.ndarray, threshold: float = 0.5):
        y, probs = np.asarray(y_true).astype(np.float64), np.asarray(probs)
        n, g = probs.shape
        self.order = np.argsort(probs, axis=0, kind="stable")  # ascending, per genre
        s = np.take_along_axis(probs, self.order, 0)
        rows = np.broadcast_to(np.arange(n)[:, None], s.shape)
        new = np.ones(s.shape, bool)
        new[1:] = s[1:] != s[:-1]  # first row of each run of tied scores
        last = np.ones(s.shape, bool)
        last[:-1] = new[1:]
        start = np.maximum.accumulate(np.where(new, rows, 0), axis=0)
        end = np.minimum.accumulate(np.where(last, rows, n)[::-1], axis=0)[::-1]
        cols = np.arange(g)
        self.before = np.maximum(start - 1, 0) * g + cols  # flat index of the row before each run of ties
        self.has_before = start > 0
        self.end = end * g + cols  # flat index of the run's last row
        self.y, self.y_sorted = y, np.take_along_axis(y, self.order, 0)
        self.pred = (probs >= threshold).astype(np.float64)
        self.hits = self.pred * y
        self.scored = (y.sum(0) > 0) & (y.sum(0) < n)  # the genres multilabel_metrics scores

    def _upto_before(self, c: np.ndarray) -> np.ndarray:
        """Column-wise cumulative sums `c`, taken just before each row's run of tied scores."""
        return np.where(self.has_before, c.ravel()[self.before], 0.0)

    def __call__(self, weights=None) -> dict:
        w = np.ones(len(self.y)) if weights is None else np.asarray(weights, np.float64)
        ws = w[self.order]
        pos = ws * self.y_sorted
        cpos, call = pos.cumsum(0), ws.cumsum(0)
        cneg = call - cpos
        n_pos, n_neg = cpos[-1], cneg[-1]
        keep = (n_pos > 0) & (n_neg > 0)
        if not keep.any():
            return dict.fromkeys(self.METRICS, float("nan"))
        below = self._upto_before(cneg)  # negatives scored lower
        tied = cneg.ravel()[self.end] - below  # negatives scored the same (this row's own weight included)
        auc = (pos * (below + 0.5 * tied)).sum(0)[keep] / (n_pos * n_neg)[keep]
        at_least = call[-1] - self._upto_before(call)  # clips scored >= this row's score
        precision = np.divide(n_pos - self._upto_before(cpos), at_least, out=np.zeros_like(at_least),
                              where=at_least > 0)
        ap = (pos * precision).sum(0)[keep] / n_pos[keep]
        tp, denom = (w @ self.hits)[self.scored], (w @ self.pred + n_pos)[self.scored]  # 2 tp + fp + fn
        return {"macro_roc_auc": float(auc.mean()), "macro_ap": float(ap.mean()),
                "micro_f1": float(2 * tp.sum() / max(denom.sum(), 1)),
                "macro_f1": float(np.mean(np.divide(2 * tp, denom, out=np.zeros(len(tp)), where=denom > 0)))}


def bootstrap_metrics(y_true: np.ndarray, probs: np.ndarray, multilabel: bool = False, threshold: float = 0.5,
                      n: int = 1000, level: float = 0.95, seed: int = 0, macro_over: list[int] | None = None) -> dict:
    """The bootstrap intervals results.json keeps: {"accuracy": [low, high], "macro_f1": [...]} for a
    single-label run (macro-F1 over the class indices `macro_over`, or all); macro_roc_auc, macro_ap, micro_f1
    and macro_f1 (at `threshold`) for a multi-label one; plus "level" and "resamples". Every metric sees the
    same resamples (bootstrap_ci's)."""
    if not multilabel:
        k, pred = probs.shape[1], probs.argmax(1)
        cis = {"accuracy": bootstrap_ci(y_true, pred, accuracy, n=n, seed=seed, level=level),
               "macro_f1": bootstrap_ci(y_true, pred, lambda y, p: macro_f1_score(y, p, k, macro_over), n=n,
                                        seed=seed, level=level)}
    else:
        scores = MultilabelScores(y_true, probs, threshold)
        idx = _resamples(len(y_true), n, seed) if n > 0 and len(y_true) else []
        values = [scores(np.bincount(i, minlength=len(y_true))) for i in idx]
        cis = {name: _interval([v[name] for v in values], level) for name in scores.METRICS}
    return {**{name: [ci["low"], ci["high"]] for name, ci in cis.items()}, "level": level, "resamples": n}


def mcnemar_exact(correct_a, correct_b) -> dict:
    """McNemar's exact test of two classifiers on the same tracks (per-track correctness, booleans):
    a two-sided binomial test of the discordant counts (A right and B wrong vs A wrong and B right)
    against p = 1/2. p_value is 1 when there is no discordant track."""
    from scipy.stats import binomtest
    a, b = np.asarray(correct_a, bool), np.asarray(correct_b, bool)
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p = binomtest(a_only, a_only + b_only, 0.5).pvalue if a_only + b_only else 1.0
    return {"a_only": a_only, "b_only": b_only, "p_value": float(p)}


def paired_bootstrap_diff(correct_a, correct_b, n: int = 1000, seed: int = 0, level: float = 0.95) -> dict:
    """Bootstrap interval of accuracy(A) - accuracy(B), resampling the tracks both were tested on."""
    return bootstrap_ci(np.asarray(correct_a, np.float64), np.asarray(correct_b, np.float64),
                        lambda a, b: a.mean() - b.mean(), n=n, seed=seed, level=level)
