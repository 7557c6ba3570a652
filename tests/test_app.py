"""app.py, the local web page: a real `python app.py` (started once for the module) driven by Debian's
Chromium (/usr/bin/chromium, through Playwright from PyPI; no browser is downloaded), with real clips
from tests/data. Every request the pages make is recorded, and each must stay on 127.0.0.1.

    pytest tests/test_app.py                  (make test installs chromium with apt-get when missing)
    APP_SCREENSHOT=docs/app.png pytest tests/test_app.py -k upload    # the README's screenshot

The browser tests skip, saying so, only where no Chromium is installed; the others need none.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import soundfile as sf

from conftest import MONO_44K, ROOT, STEREO_44K

import app

pytestmark = pytest.mark.slow  # a server and a browser: pytest -m "not slow" leaves it out
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream"]  # a fake microphone: a beep
MSD = "pretrained/musicnn_msd.pt"
FOLK = ROOT / "tests" / "data" / "fma_small" / "000" / "000140.mp3"
RESULT_S = 90_000  # ms to wait for a result (the first analysis also warms the model up)
AUDIO_SUFFIXES = {".mp3", ".wav", ".flac", ".ogg"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py --port P --runs RUNS` (RUNS: a run whose best.pt is the shipped MSD tagger, and one
    whose best.pt is not a checkpoint), its temporary folder under a TMPDIR of the test's own; stopped
    (SIGTERM) at the end, which must remove that folder."""
    base = tmp_path_factory.mktemp("app")
    run = base / "runs" / "msd-run"
    run.mkdir(parents=True)
    (run / "best.pt").symlink_to(ROOT / MSD)
    (run / "results.json").write_text(json.dumps({"classes": ["rock", "pop"], "test": {"accuracy": 0.625}}))
    (base / "runs" / "broken").mkdir()
    (base / "runs" / "broken" / "best.pt").write_bytes(b"not a checkpoint")
    (base / "tmp").mkdir()
    port, log = free_port(), open(base / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--runs", str(base / "runs")], cwd=ROOT,
                            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "TMPDIR": str(base / "tmp")})
    url = f"http://127.0.0.1:{port}/"
    deadline = time.time() + 120
    while True:
        assert proc.poll() is None, f"app.py exited: {(base / 'server.log').read_text()}"
        assert time.time() < deadline, f"app.py did not answer in 120 s: {(base / 'server.log').read_text()}"
        try:
            urllib.request.urlopen(url, timeout=2).close()
            break
        except OSError:
            time.sleep(0.5)
    yield {"url": url, "log": base / "server.log", "tmp": base / "tmp", "run": run / "best.pt"}
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    log.close()
    assert not list((base / "tmp").glob("genre-app-*")), "the server left its folder behind"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM}: install Debian's chromium (make test does so with apt-get)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def visit(browser, server):
    """visit() -> a new page (own context: own session) on the app, recording every request it makes;
    after the test, each of them must have gone to 127.0.0.1 (data: and blob: URLs are local)."""
    contexts, requests = [], []

    def open_page():
        ctx = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
        ctx.on("request", lambda r: requests.append(r.url))
        contexts.append(ctx)
        page = ctx.new_page()
        page.goto(server["url"])
        page.wait_for_selector("#upload input[type=file]", state="attached")
        return page

    yield open_page
    for ctx in contexts:
        ctx.close()
    assert_local(requests)
    assert "refused a connection" not in server["log"].read_text()


def assert_local(urls: list) -> None:
    assert len(urls) > 20, f"too few requests recorded to say anything: {urls}"
    outside = [u for u in urls if urlparse(u).scheme not in ("data", "blob")
               and urlparse(u).hostname not in ("127.0.0.1", "localhost")]
    assert not outside, f"requests that left the machine: {outside}"


def upload(page, path: Path) -> None:
    page.locator("#upload input[type=file]").set_input_files(str(path))


def wait_result(page, name: str) -> str:
    """The status line once the result for `name` (or a message about it) is there."""
    page.wait_for_selector(f"#status:has-text('{name}')", timeout=RESULT_S)
    return page.locator("#status").inner_text()


def bars(page, which: str) -> dict:
    """{label: value} of a gr.Label's bars, from their <meter> elements (the value as sent)."""
    pairs = page.locator(f"#{which} meter").evaluate_all(
        "ms => ms.map(m => [m.getAttribute('aria-label'), m.getAttribute('value')])")
    return {k: float(v) for k, v in pairs}


def timeline_width(page) -> int:
    img = page.locator("#timeline img")
    img.wait_for(timeout=RESULT_S)
    page.wait_for_function("() => document.querySelector('#timeline img').complete")
    return img.evaluate("i => i.naturalWidth")


def audio_files(folder: Path) -> list:
    return [p for p in folder.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES]


def cli_json(song: str, cwd: Path = ROOT) -> bytes:
    out = subprocess.run([sys.executable, str(ROOT / "pre_trained_models.py"), "--checkpoint", str(ROOT / MSD),
                          "--format", "json", song], cwd=cwd, capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


# ------------------------------------------------------------------------------------------ in a browser

def test_upload_shows_genres_and_timeline_and_nothing_leaves_the_machine(visit, server, tmp_path):
    page = visit()
    upload(page, STEREO_44K)
    status = wait_result(page, "000002.mp3")
    assert "10 windows" in status and MSD in status and "Took" in status
    genres = bars(page, "genres")
    assert max(genres, key=genres.get) == "Hip-Hop"  # AWOL's "Food", an FMA Hip-Hop track
    assert page.locator("#genres [data-testid=label-output-value]").inner_text() == "Hip-Hop"
    assert len(bars(page, "tags")) == app.TOP_TAGS
    assert timeline_width(page) > 500
    assert page.locator("#json a").count() == 1
    page.screenshot(path=os.environ.get("APP_SCREENSHOT") or str(tmp_path / "app.png"), full_page=True)
    assert not audio_files(server["tmp"]), "the upload was not deleted after use"


def test_not_audio_or_too_large_gives_a_message_then_a_real_clip_works(visit, tmp_path):
    page = visit()
    fake = tmp_path / "notes.mp3"
    fake.write_text("these are my notes, not a song\n" * 20)
    upload(page, fake)
    status = wait_result(page, "notes.mp3")
    assert "Could not analyse notes.mp3" in status and "not decodable audio" in status
    assert page.locator("#timeline img").count() == 0
    huge = tmp_path / "huge.mp3"
    with open(huge, "wb") as f:  # sparse: no disk used; refused by the page before it is sent
        f.truncate(app.MAX_UPLOAD_MIB * 2**20 + 1)
    upload(page, huge)
    page.get_by_text("exceed the maximum allowed size").first.wait_for(timeout=RESULT_S)
    upload(page, MONO_44K)
    status = wait_result(page, "000666.mp3")
    assert "windows" in status and "Could not" not in status
    assert timeline_width(page) > 500 and len(bars(page, "genres")) > 5


def test_page_json_and_genres_equal_the_command_line(visit):
    """The example clip's JSON download is byte for byte `pre_trained_models.py --format json` on the same
    clip and checkpoint, and each FMA genre bar is the best of its tags' probabilities there."""
    import torch
    page = visit()
    page.locator("#run-example").click()  # the first example: AWOL, "Food"
    wait_result(page, "tests/data/fma_small/000/000002.mp3")
    with page.expect_download() as download:
        page.locator("#json a").first.click()
    page_json = Path(download.value.path()).read_bytes()
    assert page_json == cli_json("tests/data/fma_small/000/000002.mp3")
    probs = json.loads(page_json)[0]["probabilities"]
    tag_genres = torch.load(ROOT / MSD, weights_only=True)["tag_genres"]
    expected = {g: max(probs[t] for t in tags) for g, tags in tag_genres.items()}
    shown = bars(page, "genres")
    assert shown and all(shown[g] == pytest.approx(expected[g], rel=1e-9) for g in shown)
    assert max(shown, key=shown.get) == max(expected, key=expected.get)


def test_recording_from_the_microphone(visit, server):
    page = visit()  # Chromium's fake microphone plays a beep
    page.locator("#upload button[aria-label='Record audio']").click()
    page.locator("#upload button", has_text="Record").first.click()
    page.wait_for_timeout(4000)  # musicnn's checkpoint needs 3 s at least
    page.locator("#upload button", has_text="Stop").first.click()
    status = wait_result(page, ".wav")
    assert "windows" in status and "Could not" not in status
    assert timeline_width(page) > 500
    assert not audio_files(server["tmp"]), "the recording was not deleted after use"


def test_two_visitors_at_once_are_queued_not_crossed(visit, server):
    """Two sessions upload at the same moment, one with the run picked from --runs: each gets its own song
    and its own model."""
    first, second = visit(), visit()
    second.get_by_label("Model").click()
    second.get_by_role("option", name="msd-run (2 classes, test accuracy 0.625)").click()
    second.locator("#about:has-text('rock, pop')").wait_for()
    upload(first, STEREO_44K)
    upload(second, FOLK)
    a, b = wait_result(first, "000002.mp3"), wait_result(second, "000140.mp3")
    assert "000140" not in a and MSD in a and str(server["run"]) not in a
    assert "000002" not in b and str(server["run"]) in b
    assert bars(first, "genres") != bars(second, "genres")


def test_a_run_that_does_not_load_gives_a_message(visit):
    page = visit()
    page.get_by_label("Model").click()
    page.get_by_role("option", name="broken (? classes, test accuracy n/a)").click()
    page.locator("#run-example").click()
    status = wait_result(page, "Could not analyse")
    assert "the model could not be loaded" in status and "broken/best.pt" in status


# ------------------------------------------------------------------------------------------ no browser

def test_the_server_serves_no_file_outside_its_folder(server):
    for path in ("/etc/passwd", ROOT / "app.py", STEREO_44K, ROOT / MSD):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"{server['url']}gradio_api/file={path}", timeout=10)
        assert e.value.code == 403, path


def test_limits_are_checked_before_decoding(tmp_path):
    big = tmp_path / "big.mp3"
    with open(big, "wb") as f:  # sparse: no disk used
        f.truncate(app.MAX_UPLOAD_MIB * 2**20 + 1)
    assert "too large" in app.check_song(big)
    long = tmp_path / "long.wav"  # silence, 1 s longer than the limit, at 1 kHz
    sf.write(long, np.zeros(1000 * (app.MAX_MINUTES * 60 + 1), dtype=np.int16), 1000)
    assert "too long" in app.check_song(long) and f"limit is {app.MAX_MINUTES} minutes" in app.check_song(long)
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(1000 * 60, dtype=np.int16), 1000)
    assert app.check_song(short) is None
    assert "no longer on the server" in app.check_song(tmp_path / "gone.wav")


def test_help_names_the_options_and_limits():
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    for text in ("--port", "--checkpoint", "--runs", f"{app.MAX_UPLOAD_MIB} MiB", f"{app.MAX_MINUTES} minutes"):
        assert text in " ".join(out.stdout.split()), text
    bad = subprocess.run([sys.executable, "app.py", "--checkpoint", "missing.pt"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode == 2 and "missing.pt" in bad.stderr


def test_the_server_process_refuses_connections_outside_the_loopback():
    """The audit hook, fed the events a socket would raise (sys.audit: no packet is sent)."""
    code = textwrap.dedent("""
        import sys, app
        app.refuse_outside_connections()
        sys.audit("socket.connect", None, ("127.0.0.1", 80))
        sys.audit("socket.connect", None, ("::1", 80, 0, 0))
        sys.audit("socket.getaddrinfo", "localhost", 80, 0, 0, 0)
        for args in (("socket.connect", None, ("192.0.2.1", 443)), ("socket.getaddrinfo", "example.org", 443, 0, 0, 0)):
            try:
                sys.audit(*args)
            except ConnectionRefusedError:
                print("refused", args[0])
        """)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["refused socket.connect", "refused socket.getaddrinfo"]
    assert "192.0.2.1" in out.stderr and "example.org" in out.stderr


def test_runs_are_listed_with_their_classes_and_test_accuracy(tmp_path):
    for name, results in (("a", {"classes": ["Rock", "Pop"], "test": {"accuracy": 0.5}}),
                          ("b/seed1", {"classes": ["Rock"], "test": None}), ("c", None)):
        (tmp_path / name).mkdir(parents=True)
        (tmp_path / name / "best.pt").write_bytes(b"")
        if results is not None:
            (tmp_path / name / "results.json").write_text(json.dumps(results))
    runs = app.find_runs(tmp_path)
    assert [r.label for r in runs] == ["a (2 classes, test accuracy 0.500)", "b/seed1 (1 class, test accuracy n/a)",
                                       "c (? classes, test accuracy n/a)"]
    assert "Rock, Pop" in runs[0].about and runs[0].checkpoints == (str(tmp_path / "a" / "best.pt"),)
