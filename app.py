"""A local web page for the genre models: drop a song (or record one, or pick an example clip) and see its
genres, their timeline under the log-mel spectrogram, and the JSON that pre_trained_models.py writes.

    python app.py                                   # http://127.0.0.1:7860, the shipped musicnn tagger
    python app.py --port 8000 --runs runs           # also every runs/*/best.pt, in a model picker
    python app.py --checkpoint runs/A/best.pt --checkpoint runs/B/best.pt    # an ensemble
    python app.py --help                            # the options and the limits

The page predicts through `predictor.predict_songs`, the function behind pre_trained_models.py,
with its defaults (top-k 3, no segments): the JSON it offers for download is byte for byte what
`python pre_trained_models.py --checkpoint C --format json SONG` writes, its "path" being the uploaded
file's name (an example's: its path in the repository). A tagger whose tags map to FMA genres
(pretrained/musicnn_msd.pt) shows each FMA top genre's score (`Predictor.genre_scores`: the highest
probability among its tags) and its top tags; a model trained on FMA shows its genres. The timeline is
pre_trained_models.py's `--plot` figure, for one checkpoint (an ensemble gets none, as with --plot).

Private and offline: the server listens on 127.0.0.1 only and makes no Gradio share link; no analytics;
the theme uses the system's fonts (no font, script or style from a CDN); the server process refuses any
connection of its own to an address outside the loopback (and says so on stderr). Uploads land in a
folder of the server's own (a new temporary folder, removed when it stops), and each upload is deleted
once analysed (one never analysed, within the hour); the figure and JSON of a result stay there an hour
for download. The server serves no file outside that folder.

One song is analysed at a time: a second visitor waits in Gradio's queue (the page shows their place),
and each visitor gets only their own results. Bad input (not audio, empty, too large, too long) gets a
message in the page, and the server goes on serving.
"""
from __future__ import annotations

if __name__ == "__main__":  # first, before torch is loaded: this process again on tcmalloc where installed (allocator.py)
    from allocator import restart_with_tcmalloc
    restart_with_tcmalloc()

import argparse
import collections
import csv
import ipaddress
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from allocator import tune_malloc

ROOT = Path(__file__).resolve().parent
DEFAULT_CHECKPOINT = "pretrained/musicnn_msd.pt"
MAX_UPLOAD_MIB = 200          # larger uploads are refused by the upload itself and again before decoding
MAX_MINUTES = 20              # longer songs are refused: by their header before decoding where it tells, else
                              # where decoding reaches the limit (load_predictors' max_seconds)
TOP_GENRES, TOP_TAGS = 16, 10  # bars shown: FMA has 16 top genres; a tagger's 10 best tags
RESULTS_KEEP_S = 3600         # a result's figure and JSON stay downloadable this long
PROGRESS_POLL_S = 0.25
EXAMPLES_DIR = "tests/data"   # real FMA clips shipped with the repository, with their licences
EXAMPLE_FILES = ("fma_small/000/000002.mp3", "fma_small/000/000010.mp3", "fma_small/000/000140.mp3")
MODEL_CACHE = 3               # checkpoints (or ensembles) kept loaded at once
CSS = "#status {min-height: 2.5em}"


# ------------------------------------------------------------------------------------------ models

@dataclass
class ModelChoice:
    """One entry of the model picker: a checkpoint (or an ensemble) and a line about it."""

    label: str
    checkpoints: tuple
    about: str


def find_runs(runs_dir: Path) -> list[ModelChoice]:
    """Every best.pt under `runs_dir` (sorted), each with the classes and test accuracy of its results.json."""
    choices = []
    for ckpt in sorted(runs_dir.rglob("best.pt")):
        run = ckpt.parent
        try:
            results = json.loads((run / "results.json").read_text())
        except (OSError, ValueError):
            results = {}
        test = results.get("test") if isinstance(results.get("test"), dict) else {}
        accuracy = test.get("accuracy")
        classes = [str(c) for c in results.get("classes") or []]
        acc = f"test accuracy {accuracy:.3f}" if isinstance(accuracy, (int, float)) else "test accuracy n/a"
        name = str(run.relative_to(runs_dir)) if run != runs_dir else run.name
        label = f"{name} ({len(classes) or '?'} class{'' if len(classes) == 1 else 'es'}, {acc})"
        about = (f"`{ckpt}`: {acc}; classes: {', '.join(classes)}" if classes
                 else f"`{ckpt}`: {acc}; no results.json with its classes")
        choices.append(ModelChoice(label, (str(ckpt),), about))
    return choices


def describe(predictors: list, checkpoints: tuple) -> str:
    """A line about loaded predictors: what their classes are."""
    p = predictors[0]
    if p.zero_shot:
        what = f"a tagger of {len(p.classes)} tags, FMA genres zero-shot ({len(p.tag_genres)} mapped)"
    elif p.tagger:
        what = f"a tagger of {len(p.classes)} tags"
    else:
        more = " ..." if len(p.labels) > TOP_GENRES else ""
        what = f"{len(p.classes)} genres: {', '.join(p.labels[:TOP_GENRES])}{more}"
    members = f"an ensemble of {len(checkpoints)}: " if len(checkpoints) > 1 else ""
    return members + " + ".join(f"`{c}`" for c in checkpoints) + f": {what}"


class Models:
    """The picker's choices (label -> ModelChoice) and their loaded Predictors (at most MODEL_CACHE,
    the default always), loaded on first use."""

    def __init__(self, default: tuple, default_predictors: list, runs: list[ModelChoice]):
        label = " + ".join(default)
        self.choices = {label: ModelChoice(label, default, describe(default_predictors, default))}
        self.choices.update((r.label, r) for r in runs if r.label not in self.choices)
        self.default, self.default_key = label, self.key(default)
        # loaded by checkpoint files: two labels of one file share its Predictors
        self.loaded = collections.OrderedDict({self.default_key: default_predictors})
        self.lock = threading.Lock()

    @staticmethod
    def key(checkpoints: tuple) -> tuple:
        return tuple(Path(c).resolve() for c in checkpoints)

    def about(self, label: str) -> str:
        choice = self.choices.get(label)
        return choice.about if choice else "pick a model"

    def get(self, label: str) -> tuple[ModelChoice, list]:
        """(the choice, its Predictors); ValueError (or CheckpointError) with a readable reason."""
        from predictor import load_predictors
        choice = self.choices.get(label)
        if choice is None:
            raise ValueError(f"unknown model {label!r}")
        key = self.key(choice.checkpoints)
        with self.lock:
            if key not in self.loaded:
                self.loaded[key] = load_predictors(list(choice.checkpoints), max_seconds=MAX_MINUTES * 60)
                while len(self.loaded) > MODEL_CACHE:
                    oldest = next(k for k in self.loaded if k != self.default_key)
                    del self.loaded[oldest]
            self.loaded.move_to_end(key)
            return choice, self.loaded[key]


# ------------------------------------------------------------------------------------------ examples

@dataclass
class Example:
    label: str
    path: str       # relative to the repository (the JSON's "path")
    credit: str     # artist, title, licence


def load_examples() -> list[Example]:
    """EXAMPLE_FILES with their artist, title and licence from EXAMPLES_DIR/ATTRIBUTION.csv."""
    base = ROOT / EXAMPLES_DIR
    with open(base / "ATTRIBUTION.csv", newline="") as f:
        rows = {r["file"]: r for r in csv.DictReader(f)}
    examples = []
    for name in EXAMPLE_FILES:
        r = rows[name]
        label = f"{r['artist']} - {r['title']} ({r['genre_top']})"
        credit = (f"**{r['title']}** by {r['artist']} (FMA track {r['track_id']}, genre {r['genre_top']}): "
                  f"{r['license']}")
        examples.append(Example(label, f"{EXAMPLES_DIR}/{name}", credit))
    return examples


# ------------------------------------------------------------------------------------------ analysis

def check_song(path: Path) -> Optional[str]:
    """A reason to refuse the file before decoding it (too large; too long by its header), else None."""
    try:
        size = path.stat().st_size
    except OSError:
        return "the file is no longer on the server (uploads are deleted once analysed): upload it again"
    if size > MAX_UPLOAD_MIB * 2**20:
        return f"too large ({size / 2**20:.0f} MiB; the limit is {MAX_UPLOAD_MIB} MiB)"
    from audio import SOUNDFILE_EXTENSIONS
    if path.suffix.lower() in SOUNDFILE_EXTENSIONS:
        import soundfile as sf
        try:
            seconds = sf.info(str(path)).duration
        except Exception:  # not readable: the prediction says why, as pre_trained_models.py does
            return None
        if seconds > MAX_MINUTES * 60:
            return f"too long ({seconds / 60:.1f} minutes; the limit is {MAX_MINUTES} minutes)"
    return None


def predict_with_progress(predictors: list, checkpoints: tuple, song, progress):
    """predict_songs on one song in a worker thread, while this thread reports its progress: decoding,
    then the windows the model has done (an ensemble's members work on copies: no count for them)."""
    from predictor import predict_songs
    box = {}

    def work():
        try:
            box["song"] = next(predict_songs(predictors, list(checkpoints), [song], 1,
                                             keep_features=len(predictors) == 1))
        except BaseException as e:  # handed to the request's thread
            box["error"] = e

    worker = threading.Thread(target=work, name="predict", daemon=True)
    worker.start()
    while worker.is_alive():
        if len(predictors) > 1:
            progress(None, desc=f"predicting with an ensemble of {len(predictors)}")
        elif song.starts is None:
            progress(0.0, desc="decoding")
        else:
            progress((song.done, len(song.starts)), desc="model", unit="windows")
        worker.join(PROGRESS_POLL_S)
    if "error" in box:
        raise box["error"]
    return box["song"]


def bars(song, predictor) -> tuple[dict, Optional[dict]]:
    """(genre bars, tag bars or None): a zero-shot tagger's FMA genre scores and top tags, a tagger's
    tags, or a model's genres."""
    from pre_trained_models import top_k
    if predictor.zero_shot:
        genres = top_k(predictor.genre_scores(song.probs), list(predictor.tag_genres), TOP_GENRES)
        return dict(genres), dict(top_k(song.probs, predictor.labels, TOP_TAGS))
    if predictor.tagger:
        return {}, dict(top_k(song.probs, predictor.labels, TOP_TAGS))
    return dict(top_k(song.probs, predictor.labels, TOP_GENRES)), None


class Analyser:
    """What the page's events call: a song in, (status, genre bars, tag bars, figure, JSON) out."""

    def __init__(self, models: Models, workdir: Path):
        self.models, self.workdir = models, workdir
        self.results = workdir / "results"

    def __call__(self, path: Path, display: str, label: str, progress) -> tuple:
        from models_utils import CheckpointError
        start = time.perf_counter()
        try:
            problem = check_song(path)
            if problem:
                return failure(display, problem)
            try:
                choice, predictors = self.models.get(label)
            except (CheckpointError, ValueError) as e:  # a run's checkpoint that does not load
                return failure(display, f"the model could not be loaded: {e}")
            return self.predict(path, display, choice, predictors, progress, start)
        except Exception as e:  # a crash: a message in the page, the traceback on stderr, the server goes on
            traceback.print_exc()
            return failure(display, f"{type(e).__name__}: {e}".replace(str(path), display))

    def predict(self, path: Path, display: str, choice: ModelChoice, predictors: list, progress, start: float):
        from pre_trained_models import TOP_K, plot_song, record
        from predictor import Song
        song = predict_with_progress(predictors, choice.checkpoints, Song(str(path)), progress)
        seconds = time.perf_counter() - start
        if not song.ok:
            return failure(display, song.error.replace(str(path), display).removeprefix(f"{display}: "))
        song.path = display  # the name the user knows it by, as pre_trained_models.py would print it
        predictor = predictors[0]  # an ensemble's members share classes and labels (load_predictors)
        k = min(TOP_K, len(predictor.classes))
        out = self.new_result_dir()
        stem = Path(display).stem or "song"
        json_path = out / f"{stem}-genres.json"
        json_path.write_text(json.dumps([record(song, predictor, k, False)], indent=2) + "\n")
        figure, plotted = None, 0.0
        if song.features is not None:
            progress(1.0, desc="drawing the timeline")
            figure, t0 = out / f"{stem}-timeline.png", time.perf_counter()
            plot_song(song, predictor, figure, k)
            plotted = time.perf_counter() - t0
        genres, tags = bars(song, predictor)
        status = summary(song, display, choice, predictor, seconds, plotted)
        return (status, label_update(genres), label_update(tags), str(figure) if figure else None,
                str(json_path), None)

    def new_result_dir(self) -> Path:
        """A fresh folder for one result (inside Gradio's folder, so served from there); those of results
        older than RESULTS_KEEP_S are removed."""
        self.results.mkdir(exist_ok=True)
        for old in self.results.iterdir():
            if time.time() - old.stat().st_mtime > RESULTS_KEEP_S:
                shutil.rmtree(old, ignore_errors=True)
        out = self.results / uuid.uuid4().hex
        out.mkdir()
        return out

    def discard(self, path: Path) -> None:
        """Delete an upload (and its folder when empty) once analysed; only inside the server's folder."""
        try:
            path = path.resolve()
            if self.workdir.resolve() not in path.parents:
                return
            path.unlink(missing_ok=True)
            if path.parent != self.workdir.resolve() and not any(path.parent.iterdir()):
                path.parent.rmdir()
        except OSError as e:
            print(f"app.py: could not delete the upload {path}: {e}", file=sys.stderr)


def label_update(scores: Optional[dict]):
    import gradio as gr
    if scores is None:
        return gr.update(value=None, visible=False)
    return gr.update(value=scores or None, visible=bool(scores))


def failure(display: str, reason: str) -> tuple:
    """The page's outputs for a song that could not be analysed: the reason, and nothing else."""
    return (f"**Could not analyse {display}:** {reason}" if display else reason, label_update({}),
            label_update(None), None, None, None)


def fmt_duration(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}:{s:04.1f}"


def summary(song, display: str, choice: ModelChoice, predictor, seconds: float, plotted: float) -> str:
    kind = "tags" if predictor.tagger else "genres"
    from pre_trained_models import top_k
    best = ", ".join(f"{g} {p:.2f}" for g, p in top_k(song.probs, predictor.labels, 3))
    figure = (f"; figure {plotted:.2f} s" if plotted else
              "; no timeline for an ensemble (as pre_trained_models.py --plot)" if len(choice.checkpoints) > 1 else "")
    return (f"**{display}**: {fmt_duration(song.duration)}, {song.windows} windows. Top {kind}: {best}  \n"
            f"Model: {' + '.join(f'`{c}`' for c in choice.checkpoints)}. "
            f"Took {seconds:.2f} s (decoding and model){figure}.")


# ------------------------------------------------------------------------------------------ the page

def build_page(models: Models, examples: list[Example], analyser: Analyser):
    import gradio as gr
    by_label = {e.label: e for e in examples}
    theme = gr.themes.Default(font=["ui-sans-serif", "system-ui", "sans-serif"],
                              font_mono=["ui-monospace", "Consolas", "monospace"])
    with gr.Blocks(title="Music genres", analytics_enabled=False, delete_cache=(600, RESULTS_KEEP_S)) as page:
        gr.Markdown(f"# Music genres of a song\nDrop an audio file (wav, flac, ogg, mp3, ...; up to {MAX_MINUTES} "
                    f"minutes and {MAX_UPLOAD_MIB} MiB), record one, or analyse an example clip. Everything "
                    "stays on this machine; an upload is deleted once analysed.")
        with gr.Row():
            with gr.Column(scale=2):
                model = gr.Dropdown(list(models.choices), value=models.default, label="Model")
                about = gr.Markdown(models.about(models.default), elem_id="about")
                audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="Your song",
                                 elem_id="upload")
                with gr.Group():
                    example = gr.Radio([e.label for e in examples], value=examples[0].label,
                                       label="Example clips (Free Music Archive)", elem_id="examples")
                    run_example = gr.Button("Analyse the example", variant="primary", elem_id="run-example")
                gr.Markdown("Licences of the examples (Creative Commons, non-commercial):\n\n"
                            + "\n".join(f"- {e.credit}" for e in examples), elem_id="licences")
            with gr.Column(scale=3):
                status = gr.Markdown("Results appear here.", elem_id="status")
                with gr.Row():
                    genres = gr.Label(label="FMA genres", num_top_classes=TOP_GENRES, elem_id="genres")
                    tags = gr.Label(label="Top tags", num_top_classes=TOP_TAGS, elem_id="tags")
                gr.Markdown("**Over time**: the log-mel spectrogram, and each window's probabilities under it")
                timeline = gr.Image(show_label=False, type="filepath", format="png", interactive=False,
                                    elem_id="timeline")
                download = gr.File(label="JSON (as pre_trained_models.py --format json)", interactive=False,
                                   elem_id="json")
        outputs = [status, genres, tags, timeline, download, audio]
        model.change(models.about, model, about, queue=False)

        def on_audio(path, label, progress=gr.Progress()):
            if not path:
                return failure("", "Nothing was uploaded.")
            try:
                return analyser(Path(path), Path(path).name, label, progress)
            finally:
                analyser.discard(Path(path))

        def on_example(name, label, progress=gr.Progress()):
            ex = by_label.get(name)
            if ex is None:
                return failure("", "Pick an example clip.")
            return analyser(ROOT / ex.path, ex.path, label, progress)

        events = dict(outputs=outputs, concurrency_limit=1, concurrency_id="analyse", show_progress_on=[timeline])
        audio.upload(on_audio, [audio, model], **events)
        audio.stop_recording(on_audio, [audio, model], **events)
        run_example.click(on_example, [example, model], **events)
    return page, theme


# ------------------------------------------------------------------------------------------ offline

def is_loopback(host) -> bool:
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host is None or host in ("", "localhost"):
        return True
    try:
        return ipaddress.ip_address(str(host).split("%")[0]).is_loopback
    except ValueError:
        return False


def refuse_outside_connections() -> None:
    """An audit hook: this process resolves and connects to the loopback only; anything else raises
    ConnectionRefusedError in the caller, and is said once per host on stderr."""
    said = set()

    def hook(event: str, args: tuple) -> None:
        if event == "socket.connect":
            address = args[1]
            host = address[0] if isinstance(address, tuple) else None  # AF_UNIX: a path
        elif event == "socket.getaddrinfo":
            host = args[0]
        else:
            return
        if is_loopback(host):
            return
        if host not in said:
            said.add(host)
            print(f"app.py: refused a connection to {host!s} (this server stays offline)", file=sys.stderr)
        raise ConnectionRefusedError(f"{host!s}: app.py connects to this machine only")

    sys.addaudithook(hook)


# ------------------------------------------------------------------------------------------ command line

def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="app.py", allow_abbrev=False,
        description="Serve a local web page (on 127.0.0.1) that predicts the genres of a song: upload or record "
                    "one, or pick an example clip; see its genres as bars, their timeline under the log-mel "
                    "spectrogram, and download the JSON of pre_trained_models.py --format json.",
        epilog=f"Limits: uploads up to {MAX_UPLOAD_MIB} MiB; songs up to {MAX_MINUTES} minutes (checked from "
               "the file's header before decoding for wav/flac/ogg/mp3 and the other formats libsndfile reads, "
               "after decoding for the others). One song is analysed at a time (others wait in a queue). "
               "Offline: no analytics, no CDN, no share link; uploads are deleted once analysed. "
               "Exit status 2: bad options, a missing or invalid checkpoint.")
    p.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (default: 7860)")
    p.add_argument("--checkpoint", action="append", default=None,
                   help=f"checkpoint (a .pt file or a run directory); repeated, an ensemble (the mean of the "
                        f"members' probabilities); the page's default model (default: {DEFAULT_CHECKPOINT})")
    p.add_argument("--runs", type=Path, default=None, metavar="DIR",
                   help="also offer every best.pt under DIR (e.g. runs) in the model picker, with its classes "
                        "and test accuracy from its results.json (default: none)")
    return p


def main(argv=None) -> int:
    tune_malloc()  # first: glibc's thresholds where tcmalloc is not loaded (allocator.py)
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        parser.error(f"--port {args.port}: not a port (1-65535)")
    if args.runs is not None and not args.runs.is_dir():
        parser.error(f"--runs {args.runs}: not a directory")
    default = DEFAULT_CHECKPOINT if Path(DEFAULT_CHECKPOINT).is_file() else str(ROOT / DEFAULT_CHECKPOINT)
    checkpoints = tuple(args.checkpoint or [default])
    from models_utils import CheckpointError
    from predictor import load_predictors
    try:
        predictors = load_predictors(list(checkpoints), max_seconds=MAX_MINUTES * 60)
    except (CheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    runs = find_runs(args.runs) if args.runs is not None else []
    workdir = Path(tempfile.mkdtemp(prefix="genre-app-"))
    try:
        serve(Models(checkpoints, predictors, runs), workdir, args.port)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def serve(models: Models, workdir: Path, port: int) -> None:
    """Launch the page on 127.0.0.1:port, offline, until interrupted (Ctrl-C or SIGTERM)."""
    import signal
    os.environ.update(GRADIO_ANALYTICS_ENABLED="False", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1",
                      GRADIO_TEMP_DIR=str(workdir), GRADIO_EXAMPLES_CACHE=str(workdir / "examples"))
    for name in ("GRADIO_ALLOWED_PATHS", "GRADIO_SHARE", "GRADIO_SERVER_NAME", "GRADIO_ROOT_PATH"):
        os.environ.pop(name, None)
    refuse_outside_connections()
    signal.signal(signal.SIGTERM, _interrupt)
    page, theme = build_page(models, load_examples(), Analyser(models, workdir))
    page.queue(default_concurrency_limit=1)
    print(f"app.py: serving on http://127.0.0.1:{port} (uploads in {workdir}; Ctrl-C stops)", flush=True)
    page.launch(server_name="127.0.0.1", server_port=port, share=False, inbrowser=False, theme=theme, css=CSS,
                allowed_paths=[], max_file_size=MAX_UPLOAD_MIB * 2**20, show_error=False, footer_links=[],
                run_history=False, enable_monitoring=False, ssr_mode=False, pwa=False, mcp_server=False)


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # Gradio's launch closes the server on it; main's finally removes the folder


if __name__ == "__main__":
    sys.exit(main())
