"""Predict the genres of songs with a trained checkpoint: any file, any length, any common format.

    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt song.mp3         # no training needed
    python pre_trained_models.py --checkpoint runs/NAME/best.pt song.mp3 album/ @playlist.txt
    python pre_trained_models.py --checkpoint runs/NAME song.ogg --top-k 5 --format json --output out.json
    python pre_trained_models.py --checkpoint runs/NAME long_mix.flac --segments --plot mix.png
    python pre_trained_models.py --checkpoint runs/A --checkpoint runs/B songs/             # an ensemble
    python pre_trained_models.py --checkpoint runs/NAME --data-dir data --subset medium --split test
    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt --data-dir my_songs/ --confusion cm.png
    python pre_trained_models.py --checkpoint pretrained/musicnn_msd.pt songs/ --embeddings songs.npz

INPUT is an audio file, a directory (searched recursively; hidden files skipped), or @LIST (a text file with
one path per line). Everything the prediction needs comes from the checkpoint (loaded weights-only): the
model, its classes, its audio parameters, windows and normalisation; predictor.py turns songs into
probabilities through test.py's inference function. Exit status: 0 every file predicted, 1 some failed (one
`error: PATH: reason` line each), 2 usage errors. docs/prediction.md has the details.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import argparse
import contextlib
import csv
import json
import os
import sys
from pathlib import Path
from typing import Optional

import numpy as np

from allocator import tune_malloc
from audio import quiet_native_stderr
from config import ConfigError, Parser
from models_utils import CheckpointError
from plots import plot_confusion, plot_timeline
from predictor import BATCH_WINDOWS, Predictor, Song, load_predictors, predict_songs
from score import report, report_lines, selection
from collection import AUDIO_EXTENSIONS, DataError, find_audio, read_manifest

PROGRESS_MIN_FILES = 5      # the progress bar shows (on a terminal) from this many files on
FORMATS = ("table", "csv", "json")
TOP_K = 3                   # genres (or tags) reported per song: --top-k, and the web page


# ------------------------------------------------------------------------------------------ inputs

def expand_inputs(inputs: list[str], warn) -> list[Song]:
    """Files, directories, @lists and CSV manifests -> Songs (missing paths become Songs with an error, a
    manifest's labels their `label`), deduplicated."""
    songs, seen = [], set()

    def add(path: Path, origin: Optional[Path] = None, label: Optional[str] = None):
        if path.is_dir():
            found = find_audio(path)
            if not found:
                warn(f"warning: {path}: no audio files found ({', '.join(sorted(AUDIO_EXTENSIONS))})")
            for f in found:
                add(f)
            return
        key = os.path.abspath(path)
        if key in seen:
            return
        seen.add(key)
        song = Song(str(path), label=label)
        if not path.exists():
            song.error = f"{path}: file not found" + (f" (listed in {origin})" if origin else "")
        songs.append(song)

    for item in inputs:
        if item.startswith("@") and len(item) > 1:
            for path, problem in list_file(Path(item[1:])):
                if problem:
                    songs.append(Song(path, error=problem))
                else:
                    add(path, origin=Path(item[1:]))
        elif item.lower().endswith(".csv"):
            manifest = read_manifest(item, need_label=False)
            for path, label in zip(manifest["path"], manifest["label"]):
                add(Path(path), origin=Path(item), label=label or None)
        else:
            add(Path(item).expanduser())
    return songs


def list_file(listing: Path) -> list[tuple]:
    """@LIST: (path, None) per line (blank lines and # comments skipped; a relative path is read from the
    current folder, else from the list's), or one (LIST, problem) when the list cannot be read."""
    try:
        lines = listing.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        return [(str(listing), f"{listing}: cannot read the list file ({e.strerror or e})" if isinstance(e, OSError)
                 else f"{listing}: list file is not text")]
    paths = []
    for line in map(str.strip, lines):
        if line and not line.startswith("#"):
            p = Path(line).expanduser()
            if not p.is_absolute() and not p.exists() and (listing.parent / p).exists():
                p = listing.parent / p
            paths.append((p, None))
    return paths


# ------------------------------------------------------------------------------------------ outputs

def top_k(probs: np.ndarray, classes: list[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(classes[i], float(probs[i])) for i in order]


def window_times(song: Song, predictor: Predictor) -> list[tuple[float, float]]:
    sec = predictor.audio.hop_length / predictor.audio.sample_rate
    return [(float(s) * sec, float(s + predictor.window_frames) * sec) for s in song.starts]


def fmt_time(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:05.2f}"


GENRE_SCORE = ("FMA genres scored by the tags mapped to them: a genre's score is the highest probability among "
               "its tags (not a probability of the genre)")


def label_scores(probs: np.ndarray, predictor: Predictor, k: int) -> dict:
    """{"top_k": the k most probable labels, "probabilities": every label's} of one probability vector."""
    return {"top_k": [{"genre": g, "probability": p} for g, p in top_k(probs, predictor.labels, k)],
            "probabilities": {c: float(p) for c, p in zip(predictor.labels, probs)}}


def genre_scores(probs: np.ndarray, predictor: Predictor, k: int) -> dict:
    """A zero-shot tagger's FMA genres (what they are, the k best, every mapped genre's score)."""
    scores = predictor.genre_scores(probs)
    return {"scored_by": GENRE_SCORE, "top_k": [{"genre": g, "score": s} for g, s in top_k(scores, list(
        predictor.tag_genres), k)], "scores": dict(zip(predictor.tag_genres, map(float, scores)))}


def predicted(song: Song, predictor: Predictor) -> Optional[str]:
    """The song's predicted genre (a tagger's best FMA genre), for comparison with its label; None for a
    multi-label model, which predicts several."""
    if predictor.multilabel and not predictor.zero_shot:
        return None
    names = predictor.genre_names
    return names[int(np.argmax(predictor.genre_probs(song.probs)))]


def record(song: Song, predictor: Predictor, k: int, segments: bool) -> dict:
    """The JSON object of one song (also the source of the CSV row): for a zero-shot tagger its FMA genres
    (`genres`) first, then the model's own classes (`top_k`, `probabilities`: tags for a tagger)."""
    rec = {"path": song.path}
    if song.track_id is not None:
        rec["track_id"] = song.track_id
    if song.label is not None:
        rec.update(label=song.label, predicted=predicted(song, predictor) if song.ok else None)
    rec.update(status="ok" if song.ok else "error", error=song.error or "", warnings=song.warnings,
               duration_s=round(song.duration, 3) if song.ok else None, windows=song.windows if song.ok else 0)
    if not song.ok:
        return {**rec, **({"genres": {}} if predictor.zero_shot else {}), "top_k": [], "probabilities": {}}
    if predictor.zero_shot:
        rec["genres"] = genre_scores(song.probs, predictor, k)
    rec.update(label_scores(song.probs, predictor, k))
    if segments:
        rec["segments"] = [{"start_s": round(a, 3), "end_s": round(b, 3),
                            **({"genres": genre_scores(wp, predictor, k)} if predictor.zero_shot else {}),
                            **label_scores(wp, predictor, k)}
                           for (a, b), wp in zip(window_times(song, predictor), song.window_probs)]
    if song.members:
        rec["members"] = [{"checkpoint": path, "windows": m.windows, **label_scores(m.probs, predictor, k)}
                          for path, m in song.members]
    return rec


def csv_header(k: int, predictor: Predictor, labelled: bool, fma: bool) -> list[str]:
    cols = ["path"] + (["track_id"] if fma else []) + (["label", "predicted"] if labelled else [])
    cols += ["status", "error", "warnings", "duration_s", "windows"]
    if predictor.zero_shot:
        cols += [c for i in range(1, k + 1) for c in (f"genre_{i}", f"score_{i}")]
    name = "tag" if predictor.tagger else "genre"
    return cols + [c for i in range(1, k + 1) for c in (f"{name}_{i}", f"prob_{i}")]


def csv_row(rec: dict, k: int, predictor: Predictor, labelled: bool, fma: bool) -> list:
    row = [rec["path"]] + ([rec.get("track_id")] if fma else [])
    row += [rec.get("label", ""), rec.get("predicted") or ""] if labelled else []
    row += [rec["status"], rec["error"], "; ".join(rec["warnings"]),
            "" if rec["duration_s"] is None else f"{rec['duration_s']:.3f}", rec["windows"]]
    parts = ([(rec["genres"].get("top_k", []), "score")] if predictor.zero_shot else []) + [(rec["top_k"], "probability")]
    for items, key in parts:
        for i in range(k):
            row += [items[i]["genre"], f"{items[i][key]:.6f}"] if i < len(items) else ["", ""]
    return row


def table_lines(songs: list[Song], predictor: Predictor, k: int, segments: bool) -> list[str]:
    """The readable table: one line per song (with its label and prediction when known), a tagger's FMA genres
    before its tags; each window's with `segments`."""
    ok = [s for s in songs if s.ok]
    if not ok:
        return []
    width = min(max(len("file"), *(len(s.path) for s in ok)), 80)
    labelled = any(s.label is not None for s in ok)
    true_width = max([len("true")] + [len(str(s.label)) for s in ok if s.label is not None])
    head = f"{'file':<{width}}  {'duration':>9}  {'windows':>7}"
    head += f"  {'true':<{true_width}}  {'predicted':<{true_width}}" if labelled else ""
    head += f"  top {k} FMA genres (tag score)  |  top {k} tags" if predictor.zero_shot else \
        f"  top {k} {'tags' if predictor.tagger else 'genres'}"
    lines = [head]
    for s in ok:
        line = f"{s.path:<{width}}  {fmt_time(s.duration):>9}  {s.windows:>7}"
        if labelled:
            line += f"  {str(s.label or ''):<{true_width}}  {str(predicted(s, predictor) or ''):<{true_width}}"
        lines.append(line + "  " + scores_text(s.probs, predictor, k) + "".join(f"  ({w})" for w in s.warnings))
        if segments:
            for (a, b), wp in zip(window_times(s, predictor), s.window_probs):
                pad = "  (partly padding)" if b > s.duration + 0.5 else ""
                lines.append(f"    {fmt_time(a)}-{fmt_time(b)}  {scores_text(wp, predictor, k)}{pad}")
    return lines + accuracy_lines(ok, predictor)


def scores_text(probs: np.ndarray, predictor: Predictor, k: int) -> str:
    """'Rock 0.81  Pop 0.10' (a zero-shot tagger: its FMA genre scores, then '|' and its tags)."""
    labels = "  ".join(f"{g} {p:.2f}" for g, p in top_k(probs, predictor.labels, k))
    if not predictor.zero_shot:
        return labels
    return "  ".join(f"{g} {p:.2f}" for g, p in top_k(predictor.genre_scores(probs), list(predictor.tag_genres), k)) \
        + "  |  " + labels


def accuracy_lines(songs: list[Song], predictor: Predictor) -> list[str]:
    """'accuracy of the N labelled files: ...' under the table, when the inputs carry labels (a manifest)."""
    labelled = [s for s in songs if s.label is not None and predicted(s, predictor) is not None]
    if not labelled:
        return []
    right = sum(s.label == predicted(s, predictor) for s in labelled)
    unknown = sorted({s.label for s in labelled} - set(predictor.genre_names))
    return [f"accuracy of the {len(labelled)} labelled files: {right / len(labelled):.1%} ({right} of "
            f"{len(labelled)})" + (f"; labels the model does not know: {', '.join(unknown)}" if unknown else "")]


def write_predictions(songs: list[Song], predictor: Predictor, fmt: str, k: int, segments: bool,
                      out, fma: bool = False) -> None:
    if fmt == "json":
        json.dump([record(s, predictor, k, segments) for s in songs], out, indent=2)
        out.write("\n")
    elif fmt == "csv":
        labelled = any(s.label is not None for s in songs)
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(csv_header(k, predictor, labelled, fma))
        for s in songs:
            writer.writerow(csv_row(record(s, predictor, k, False), k, predictor, labelled, fma))
    else:
        for line in table_lines(songs, predictor, k, segments):
            out.write(line + "\n")


def write_embeddings(path: str, songs: list[Song], predictor: Predictor, checkpoint: str, fma: bool) -> None:
    """--embeddings: np.savez of `embeddings` float32 (N, D), one per predicted song (the mean of
    model.embed over its windows), `files` (N,) and `model` (the checkpoint); with --fma-dir also
    `track_ids` and `labels` (genre_top). Failed songs are left out."""
    ok = [s for s in songs if s.ok]
    emb = np.stack([s.embedding for s in ok]) if ok else np.zeros((0, predictor.embedding_dim))  # (N, D)
    arrays = {"embeddings": emb.astype(np.float32), "files": np.array([s.path for s in ok], dtype=str),
              "model": np.array(str(checkpoint))}
    if fma:
        arrays.update(track_ids=np.array([s.track_id for s in ok], dtype=np.int64),
                      labels=np.array([s.label for s in ok], dtype=str))
    with _open_output(path, binary=True) as out:  # a file object: np.savez adds no ".npz" to the name
        np.savez(out, **arrays)


def plot_song(song: Song, predictor: Predictor, path: Path, k: int = 3) -> None:
    """--plot: the song's log-mel with each window's genre probabilities under it (plots.plot_timeline)."""
    best = ", ".join(f"{g} {p:.2f}" for g, p in top_k(song.probs, predictor.labels, k))
    plot_timeline(song.features, predictor.audio.hop_length / predictor.audio.sample_rate,
                  window_times(song, predictor), song.window_probs, song.probs, predictor.labels, song.duration,
                  f"{Path(song.path).name} ({fmt_time(song.duration)}): {best}", path)


class PlotNames:
    """FILE.png when there is one input; FILE-<song name>.png (numbered when names repeat) for several."""

    def __init__(self, base: Path, n_inputs: int):
        self.base, self.single, self.used = base, n_inputs == 1, set()

    def __call__(self, song: Song) -> Path:
        if self.single:
            return self.base
        name, i = f"{self.base.stem}-{Path(song.path).stem}", 1
        while name in self.used:
            i += 1
            name = f"{self.base.stem}-{Path(song.path).stem}-{i}"
        self.used.add(name)
        return self.base.with_name(name + (self.base.suffix or ".png"))


# ------------------------------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="pre_trained_models.py", allow_abbrev=False,
        description="Predict the genres (or tags) of audio files, or score FMA tracks, with a trained or "
                    "converted checkpoint.",
        epilog="Exit status: 0 all files predicted, 1 some failed (one 'error: PATH: reason' line each "
               "on stderr), 2 usage error (bad options, missing or invalid checkpoint, no input files).")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="audio files, directories (searched recursively), @LIST files (one path per line) or CSV "
                        "manifests (path,label: the true genres are shown beside the predictions)")
    p.add_argument("--checkpoint", required=True, action="append", metavar="PATH",
                   help="a .pt file, or a run folder (its best.pt); repeat the option for an ensemble "
                        "(--checkpoint A --checkpoint B): the mean of the members' probabilities")
    p.add_argument("--top-k", type=int, default=TOP_K, help=f"genres reported per song (default: {TOP_K})")
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="output format: table (readable), csv (one row per file), json (default: table)")
    p.add_argument("--output", default=None, help="write the predictions to this file (default: stdout)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: auto picks cuda when available (default: auto)")
    p.add_argument("--workers", type=int, default=None,
                   help="decoding threads (default: all cores, %d here)" % (os.cpu_count() or 1))
    p.add_argument("--batch-windows", type=int, default=None,
                   help="windows per model batch (default: %d on CPU, where each core runs its own batches, %d on "
                        "CUDA)" % (BATCH_WINDOWS["cpu"], BATCH_WINDOWS["cuda"]))
    p.add_argument("--segments", action="store_true",
                   help="also give each window's time span and genres (table and json; default: off)")
    p.add_argument("--plot", default=None, metavar="FILE.png",
                   help="draw the log-mel spectrogram with each window's genre probabilities under it; "
                        "with several songs, one FILE-<song>.png each (default: no plot)")
    p.add_argument("--embeddings", default=None, metavar="FILE.npz",
                   help="also write each predicted song's embedding (the mean over its windows of the model's "
                        "pooled backbone output, what its head classifies) with np.savez: embeddings float32 "
                        "(N, D), files (N,), model (the checkpoint); with --fma-dir also track_ids, labels. "
                        "Failed files are left out (default: none)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help=f"progress bar on stderr (default: on a terminal with {PROGRESS_MIN_FILES}+ files)")
    g = p.add_argument_group("scoring a labelled collection (score.py)")
    g.add_argument("--data-dir", "--fma-dir", default=None, metavar="DIR",
                   help="FMA root, a folder of class folders or a CSV manifest: predict its tracks instead of INPUTs "
                        "and score them against their labels, with intervals; a tagger with a tag -> genre map "
                        "(pretrained/musicnn_msd.pt) is scored zero-shot on the genres its tags reach")
    g.add_argument("--subset", choices=("small", "medium", "large", "full"), default="medium",
                   help="FMA: the subset to score; tracks of the checkpoint's training subset are left out when it "
                        "is smaller; none for a zero-shot tagger (default: medium)")
    g.add_argument("--split", choices=("training", "validation", "test", "all"), default="all",
                   help="only tracks of this split (a collection without one is split as the checkpoint's run "
                        "split it) (default: all)")
    g.add_argument("--confusion", default=None, metavar="FILE.png",
                   help="also draw the confusion matrix of a single-label score (default: none)")
    return p


def check_args(args) -> None:
    """The options that do not go together, an output that cannot be written, an INPUT that is a checkpoint
    (a second path meant for --checkpoint): ConfigErrors, before any checkpoint is loaded or song decoded."""
    if args.data_dir and args.inputs:
        raise ConfigError("give INPUT files or --data-dir, not both")
    if not args.data_dir and not args.inputs:
        raise ConfigError("no INPUT given (audio files, directories, @LIST or a manifest.csv), and no --data-dir")
    if args.confusion and not args.data_dir:
        raise ConfigError("--confusion goes with --data-dir (a score of labelled tracks)")
    if args.top_k < 1:
        raise ConfigError("--top-k must be at least 1")
    if args.workers is not None and args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    if args.batch_windows is not None and args.batch_windows < 1:
        raise ConfigError("--batch-windows must be at least 1")
    single = [o for o, given in (("--segments", args.segments), ("--plot", args.plot), ("--embeddings", args.embeddings),
                                 ("--data-dir", args.data_dir)) if given]
    if len(args.checkpoint) > 1 and single:
        raise ConfigError(f"{', '.join(single)}: one --checkpoint only (not an ensemble of {len(args.checkpoint)})")
    for item in args.inputs:
        path = Path(item)
        if path.suffix == ".pt" or (path.is_dir() and (path / "best.pt").is_file()):
            raise ConfigError(f"{item} is a checkpoint, not audio: for an ensemble repeat the option "
                              f"(--checkpoint {args.checkpoint[-1]} --checkpoint {item})")
    for option, path in (("--output", args.output), ("--embeddings", args.embeddings), ("--plot", args.plot),
                         ("--confusion", args.confusion)):
        problem = unwritable(path)
        if problem:
            raise ConfigError(f"{option} {path}: {problem}")


def unwritable(path: Optional[str]) -> Optional[str]:
    """Why a file cannot be written at `path` (a folder there, no permission), or None."""
    if path is None:
        return None
    p = Path(path)
    if p.is_dir():
        return "is a folder: give a file name"
    parent = next(q for q in [p.parent, *p.parent.parents] if q.exists())
    if not parent.is_dir():
        return f"cannot write there: {parent} is a file, not a folder"
    if not os.access(parent, os.W_OK | os.X_OK) or (p.exists() and not os.access(p, os.W_OK)):
        return f"cannot write there (permission denied in {parent})"
    return None


def main(argv=None) -> int:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    try:
        args = build_parser().parse_args(argv)
        check_args(args)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with quiet_native_stderr():
        return _run(args)


def load(args, warn) -> tuple[list[Predictor], list[Song], Optional[dict]]:
    """The predictors (with the synthetic-data warning), the songs to predict and, with --fma-dir, its info."""
    predictors = load_predictors(args.checkpoint, args.device, args.batch_windows)
    for path, p in zip(args.checkpoint, predictors):
        if p.synthetic:
            warn(f"warning: {path} was trained on the synthetic demo set: its genres mean nothing for real music")
    if args.data_dir is not None:
        return predictors, *selection(args, predictors[0], warn)
    return predictors, expand_inputs(args.inputs, warn), None


def _run(args) -> int:
    from tqdm import tqdm

    def warn(msg: str) -> None:
        tqdm.write(msg, file=sys.stderr)

    try:
        predictors, songs, info = load(args, warn)
    except (CheckpointError, DataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if not songs:
        print("error: no input files found" + ("" if info else f" in {' '.join(args.inputs)}"), file=sys.stderr)
        return 2
    if args.segments and args.format == "csv":
        warn("warning: --segments is not part of the csv output (one row per file); use table or json")
    results, interrupted = predict_all(args, predictors, songs, warn)
    write_all(args, predictors[0], results, info)
    failed = sum(not s.ok for s in results)
    print(f"predicted {len(results) - failed} of {len(results)} files"
          + (f" with an ensemble of {len(predictors)} checkpoints" if len(predictors) > 1 else "")
          + (f"; {failed} failed" if failed else "") + (f"; wrote {args.output}" if args.output else "")
          + (f"; wrote {args.embeddings}" if args.embeddings else ""), file=sys.stderr)
    if interrupted:
        print(f"interrupted: the {len(results)} songs predicted before Ctrl-C are written; "
              f"{len(songs) - len(results)} were not predicted", file=sys.stderr)
        return 130
    return 1 if failed else 0


def predict_all(args, predictors: list[Predictor], songs: list[Song], warn) -> tuple[list[Song], bool]:
    """The predicted songs, in order (with --plot, their figures), and whether Ctrl-C stopped it early."""
    from tqdm import tqdm
    predictor, k = predictors[0], min(args.top_k, len(predictors[0].classes))
    workers = args.workers or os.cpu_count() or 1
    show = args.progress if args.progress is not None else (len(songs) >= PROGRESS_MIN_FILES and sys.stderr.isatty())
    plot_name = PlotNames(Path(args.plot), len(songs)) if args.plot else None
    results = []
    with tqdm(total=len(songs), unit="song", file=sys.stderr, disable=not show, dynamic_ncols=True) as bar:
        try:
            for song in predict_songs(predictors, args.checkpoint, songs, workers, keep_features=bool(args.plot),
                                      embeddings=bool(args.embeddings)):
                if not song.ok:
                    warn(f"error: {song.error}")
                elif plot_name:
                    path = plot_name(song)
                    plot_song(song, predictor, path, k)
                    song.features = None
                    warn(f"wrote {path}")
                results.append(song)
                bar.update(1)
        except KeyboardInterrupt:
            return results, True
    return results, False


def write_all(args, predictor: Predictor, results: list[Song], info: Optional[dict]) -> None:
    """The predictions (--output or stdout), --embeddings, and with --fma-dir the report."""
    k, fma = min(args.top_k, len(predictor.classes)), info is not None and info["kind"] == "fma"
    if args.embeddings:
        write_embeddings(args.embeddings, results, predictor, args.checkpoint[0], fma)
    if args.output:
        with _open_output(args.output) as out:
            write_predictions(results, predictor, args.format, k, args.segments, out, fma=fma)
    elif info is None:
        write_predictions(results, predictor, args.format, k, args.segments, sys.stdout)
    if info is not None:
        scored = report(results, predictor, info)
        if args.format == "json":
            json.dump(scored, sys.stdout, indent=2)
            print()
        else:
            print("\n".join(report_lines(scored)))
        if args.confusion and scored.get("confusion_matrix"):
            plot_confusion(scored["confusion_matrix"], scored["classes"], args.confusion,
                           f"{args.checkpoint[0]}: accuracy {scored['accuracy']:.3f}")
    sys.stdout.flush()


@contextlib.contextmanager
def _open_output(path: str, binary: bool = False):
    p = Path(path)
    if p.parent != Path(""):
        p.parent.mkdir(parents=True, exist_ok=True)
    with (open(p, "wb") if binary else open(p, "w", newline="", encoding="utf-8")) as f:
        yield f


if __name__ == "__main__":
    sys.exit(main())
