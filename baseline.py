"""Spectrum-statistics baseline: how far do average spectra alone get on a dataset?

Logistic regression (scikit-learn, standardised features) on each clip's per-band mean and standard
deviation over time of the project's log-mel features (128 mels, 22,050 Hz, n_fft 2048, hop 512, dB;
see config.AudioConfig). It is trained on the official training split and reported on validation
and test. It sees no temporal order, so it measures how much of a genre is "average timbre":

    python baseline.py --data-dir data/demo            # the synthetic demo set (python demo_data.py)
    python baseline.py --data-dir data --subset small  # real FMA

The demo set is designed so that this baseline stays under 60% test accuracy while a CNN on log-mel
crops exceeds 80%: its genres live in rhythm, tempo and note patterns, and timbre, EQ and dynamics
are drawn per artist from pools shared by all genres. `spectrum_baseline(cache)` returns the numbers
for tests and reports. The log-mel cache is built (once) by cache.prepare_cache, like main.py does.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import argparse

import numpy as np

from allocator import tune_malloc

# Defaults of the command line (one place).
DEFAULTS = dict(data_dir="data", subset="small", cache_dir=None, workers=None, C=1.0, max_iter=5000)


def band_statistics(cache, rows) -> np.ndarray:
    """(len(rows), 2 * n_mels) float32: mean and std over time of each log-mel band (dB).

    Only the frames before padding count (a short clip is padded with silence in the cache).
    Reads one clip at a time, so memory stays flat in the number of tracks.
    """
    index = cache.index.set_index("row")
    out = []
    for row in rows:
        x = np.asarray(cache.read(int(row)), dtype=np.float32)
        frames = int(index.at[row, "frames"]) if "frames" in index.columns else x.shape[1]
        x = x[:, :max(1, min(frames, x.shape[1]))]
        out.append(np.concatenate([x.mean(axis=1), x.std(axis=1)]))
    return np.stack(out).astype(np.float32)


def spectrum_baseline(cache, C: float = DEFAULTS["C"], max_iter: int = DEFAULTS["max_iter"]) -> dict:
    """Fit on the training split, evaluate every split.

    Returns {"classes": [...], "C": C, "training" | "validation" | "test": {"accuracy", "macro_f1", "n"}}
    (splits without usable tracks are left out). Uses tracks with status 'ok' and a genre label.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    idx = cache.index
    idx = idx[(idx["status"] == "ok") & (idx["label"].astype(str) != "")]
    train = idx[idx["split"] == "training"]
    if train["label"].nunique() < 2:
        raise ValueError("the training split needs tracks of at least two genres")
    classes = sorted(train["label"].unique())
    model = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=max_iter))
    model.fit(band_statistics(cache, train["row"]), train["label"].to_numpy())
    result = {"classes": classes, "C": C}
    for split in ("training", "validation", "test"):
        part = idx[idx["split"] == split]
        if len(part) == 0:
            continue
        y, pred = part["label"].to_numpy(), model.predict(band_statistics(cache, part["row"]))
        result[split] = {"accuracy": float(accuracy_score(y, pred)),
                         "macro_f1": float(f1_score(y, pred, average="macro", labels=classes, zero_division=0)),
                         "n": int(len(part))}
    return result


def format_table(result: dict) -> str:
    lines = [f"spectrum baseline (logistic regression, C={result['C']:g}, "
             f"{len(result['classes'])} genres; per-band mean + std of log-mel)",
             f"{'split':<12}{'n':>6}{'accuracy':>10}{'macro-F1':>10}"]
    for split in ("training", "validation", "test"):
        if split in result:
            r = result[split]
            lines.append(f"{split:<12}{r['n']:>6}{r['accuracy']:>10.3f}{r['macro_f1']:>10.3f}")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--data-dir", default=DEFAULTS["data_dir"],
                   help="FMA root holding fma_metadata/ and fma_<subset>/ (or a demo set)")
    p.add_argument("--subset", default=DEFAULTS["subset"], choices=("small", "medium", "large", "full"),
                   help="FMA subset")
    p.add_argument("--cache-dir", default=DEFAULTS["cache_dir"],
                   help="where log-mel caches are kept (default: DATA_DIR/cache, shared with main.py)")
    p.add_argument("--workers", type=int, default=DEFAULTS["workers"],
                   help="parallel processes for building the cache (default: all cores)")
    p.add_argument("--C", type=float, default=DEFAULTS["C"],
                   help="inverse regularisation strength of the logistic regression (unitless)")
    return p


def main(argv=None) -> dict:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    args = build_parser().parse_args(argv)
    from cache import prepare_cache
    from config import AudioConfig
    cache = prepare_cache(args.data_dir, subset=args.subset, audio=AudioConfig(), cache_dir=args.cache_dir,
                          workers=args.workers)
    n_failed = int((cache.index["status"] != "ok").sum())
    if n_failed:
        print(f"{n_failed} tracks failed to decode and are left out (see the cache's index.csv)")
    result = spectrum_baseline(cache, C=args.C)
    print(format_table(result))
    return result


if __name__ == "__main__":
    main()
