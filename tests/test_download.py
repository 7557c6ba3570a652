"""Tests for download_data.sh: the real script, run against a small HTTP server on 127.0.0.1.

The server (started per test in a background thread, loopback only) serves fake FMA zips built
here, supports HTTP Range requests (206 + Content-Range), logs every request with its Range
header, and can cut a transfer short to simulate an interrupted download.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import struct
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
SCRIPT = TESTS.parent / "download_data.sh"
FIXTURES = TESTS / "data"

pytestmark = pytest.mark.skipif(
    shutil.which("bash") is None or shutil.which("curl") is None,
    reason="download_data.sh needs bash and curl",
)


# ---------------------------------------------------------------------------------------------
# Local HTTP server


class RangeHandler(BaseHTTPRequestHandler):
    """Serves files under server.root; HTTP/1.0, so each response ends the connection."""

    server: FileServer

    def log_message(self, format, *args):  # keep test output quiet
        pass

    def do_GET(self):
        srv = self.server
        range_header = self.headers.get("Range")
        with srv.lock:
            srv.requests.append((self.path, range_header))
            interrupt = self.path in srv.interrupt_once
            srv.interrupt_once.discard(self.path)

        rel = self.path.split("?", 1)[0].lstrip("/")
        file = srv.root / rel
        if ".." in Path(rel).parts or not file.is_file():
            self.send_error(404, "Not Found")
            return
        data = file.read_bytes()
        size = len(data)

        status, start, end = 200, 0, size - 1
        if range_header is not None:
            m = re.fullmatch(r"bytes=(\d+)-(\d*)", range_header.strip())
            if m is None or int(m.group(1)) >= size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status, start = 206, int(m.group(1))
            if m.group(2):
                end = min(int(m.group(2)), size - 1)
        body = data[start : end + 1]

        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if interrupt:
            # Promise the whole body, send half of it, then drop the connection.
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


class FileServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.root = root
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.interrupt_once: set[str] = set()  # paths whose next GET is cut in half

    def url(self, prefix: str = "fma") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{prefix}/"

    def requests_for(self, name: str) -> list[str | None]:
        """Range headers (None for a plain GET) of the requests made for NAME."""
        with self.lock:
            return [rng for path, rng in self.requests if path.endswith("/" + name)]

    def request_count(self) -> int:
        with self.lock:
            return len(self.requests)


@pytest.fixture
def server(tmp_path):
    root = tmp_path / "srv"
    (root / "fma").mkdir(parents=True)
    srv = FileServer(root)
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


# ---------------------------------------------------------------------------------------------
# Fake FMA zips (same layout and compression as the real ones: bzip2 inside zip)


def _sha1(path: Path) -> str:
    return hashlib.sha1(path.read_bytes()).hexdigest()


def _write_zip(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_BZIP2) as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.fixture
def fake_fma(server):
    """Writes fma_metadata.zip and fma_small.zip into the server's /fma/ folder."""
    rng = random.Random(1234)
    metadata = {
        "fma_metadata/tracks.csv": (FIXTURES / "fma_metadata" / "tracks.csv").read_bytes(),
        "fma_metadata/genres.csv": (FIXTURES / "fma_metadata" / "genres.csv").read_bytes(),
        "fma_metadata/README.txt": b"fake fma_metadata for tests\n",
    }
    small = {
        "fma_small/README.txt": b"fake fma_small for tests\n",
        "fma_small/000/000002.mp3": rng.randbytes(30_000),
        "fma_small/000/000005.mp3": rng.randbytes(20_000),
        "fma_small/098/098565.mp3": rng.randbytes(5_000),
        "fma_small/155/155066.mp3": rng.randbytes(25_000),
    }
    folder = server.root / "fma"
    _write_zip(folder / "fma_metadata.zip", metadata)
    _write_zip(folder / "fma_small.zip", small)
    return {
        "members": {"fma_metadata": metadata, "fma_small": small},
        "sha1": {
            "fma_metadata": _sha1(folder / "fma_metadata.zip"),
            "fma_small": _sha1(folder / "fma_small.zip"),
        },
        "zip": {"fma_metadata": folder / "fma_metadata.zip", "fma_small": folder / "fma_small.zip"},
    }


# ---------------------------------------------------------------------------------------------
# Running the script


@pytest.fixture
def run(tmp_path, server, fake_fma):
    """run(*args, **env) runs download_data.sh in tmp_path with test-friendly settings."""
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.lower().endswith("_proxy") and not k.startswith("FMA_")
    }
    base_env.update(
        NO_PROXY="127.0.0.1,localhost",
        CURL_HOME=str(tmp_path),  # ignore any ~/.curlrc
        FMA_SHA1_METADATA=fake_fma["sha1"]["fma_metadata"],
        FMA_SHA1_SMALL=fake_fma["sha1"]["fma_small"],
        FMA_RETRIES="3",
        FMA_RETRY_DELAY="0",
        FMA_EXTRACTOR="python",
        FMA_PYTHON=sys.executable,
    )

    def _run(*args: str, default_args: bool = True, **env: str) -> subprocess.CompletedProcess:
        argv = ["bash", str(SCRIPT), *args]
        if default_args:
            argv += ["--data-dir", "data", "--base-url", server.url()]
        return subprocess.run(
            argv,
            cwd=tmp_path,
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    return _run


def _assert_extracted(data: Path, fake_fma, name: str) -> None:
    target = data / name
    members = fake_fma["members"][name]
    for member, content in members.items():
        path = data / member
        assert path.is_file(), member
        assert path.read_bytes() == content, member
    assert (target / ".complete").read_text().strip() == fake_fma["sha1"][name]
    files = {p.relative_to(data).as_posix() for p in target.rglob("*") if p.is_file()}
    assert files == set(members) | {f"{name}/.complete"}


def _assert_no_leftovers(data: Path) -> None:
    assert not list(data.glob("*.part"))
    assert not list(data.glob(".*.extracting"))


# ---------------------------------------------------------------------------------------------
# Tests


def test_fake_zips_use_bzip2_like_the_real_ones(fake_fma):
    for path in fake_fma["zip"].values():
        with zipfile.ZipFile(path) as zf:
            assert {info.compress_type for info in zf.infolist()} == {zipfile.ZIP_BZIP2}


def test_success_then_rerun_does_nothing(tmp_path, server, fake_fma, run):
    result = run("small")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    _assert_extracted(data, fake_fma, "fma_metadata")
    _assert_extracted(data, fake_fma, "fma_small")
    assert (data / "fma_small" / "000" / "000002.mp3").is_file()  # NNN/ folders kept
    _assert_no_leftovers(data)
    assert _sha1(data / "fma_small.zip") == fake_fma["sha1"]["fma_small"]
    assert server.requests_for("fma_metadata.zip") == [None]
    assert server.requests_for("fma_small.zip") == [None]
    assert server.url() + "fma_small.zip" in result.stdout  # says what it fetches
    assert "GiB" in result.stdout  # and how big the real thing is

    before = server.request_count()
    again = run("small")
    assert again.returncode == 0, again.stderr
    assert "already done" in again.stdout
    assert server.request_count() == before  # no new request reached the server
    _assert_extracted(data, fake_fma, "fma_small")


def test_default_subset_is_small(tmp_path, server, fake_fma, run):
    result = run()
    assert result.returncode == 0, result.stderr
    _assert_extracted(tmp_path / "data", fake_fma, "fma_small")


def test_wrong_checksum_fails_then_rerun_with_right_one_succeeds(tmp_path, server, fake_fma, run):
    wrong = "0123456789abcdef0123456789abcdef01234567"
    result = run("small", FMA_SHA1_SMALL=wrong)
    assert result.returncode != 0
    assert "error:" in result.stderr
    assert "checksum" in result.stderr
    assert wrong in result.stderr and fake_fma["sha1"]["fma_small"] in result.stderr
    data = tmp_path / "data"
    assert not (data / "fma_small").exists()  # nothing that could look complete
    assert not (data / "fma_small.zip").exists()  # bad zip removed so a rerun fetches it again
    _assert_no_leftovers(data)
    _assert_extracted(data, fake_fma, "fma_metadata")  # the good part is kept

    fixed = run("small")
    assert fixed.returncode == 0, fixed.stderr
    _assert_extracted(data, fake_fma, "fma_small")
    assert server.requests_for("fma_metadata.zip") == [None]  # not downloaded twice
    assert server.requests_for("fma_small.zip") == [None, None]


def test_interrupted_download_resumes_on_rerun(tmp_path, server, fake_fma, run):
    server.interrupt_once.add("/fma/fma_small.zip")
    size = fake_fma["zip"]["fma_small"].stat().st_size
    result = run("small", FMA_RETRIES="1")
    assert result.returncode != 0
    assert "error:" in result.stderr and "rerun" in result.stderr
    data = tmp_path / "data"
    part = data / "fma_small.zip.part"
    assert part.stat().st_size == size // 2
    assert not (data / "fma_small.zip").exists()
    assert not (data / "fma_small").exists()

    resumed = run("small", FMA_RETRIES="1")
    assert resumed.returncode == 0, resumed.stderr
    assert server.requests_for("fma_small.zip") == [None, f"bytes={size // 2}-"]
    assert _sha1(data / "fma_small.zip") == fake_fma["sha1"]["fma_small"]
    _assert_extracted(data, fake_fma, "fma_small")
    _assert_no_leftovers(data)


def test_interrupted_download_resumes_within_one_run(tmp_path, server, fake_fma, run):
    server.interrupt_once.add("/fma/fma_small.zip")
    size = fake_fma["zip"]["fma_small"].stat().st_size
    result = run("small")
    assert result.returncode == 0, result.stderr
    assert "attempt 1 failed" in result.stderr
    assert server.requests_for("fma_small.zip") == [None, f"bytes={size // 2}-"]
    _assert_extracted(tmp_path / "data", fake_fma, "fma_small")
    _assert_no_leftovers(tmp_path / "data")


def test_http_404_fails_with_clear_message(tmp_path, server, run):
    url = server.url("no-such-folder")
    result = run("small", default_args=False, **{"FMA_BASE_URL": url, "FMA_DATA_DIR": "data"})
    assert result.returncode == 1
    assert "error:" in result.stderr
    assert "404" in result.stderr and "Not Found" in result.stderr
    assert url + "fma_metadata.zip" in result.stderr
    data = tmp_path / "data"
    assert not (data / "fma_metadata.zip").exists()
    assert not (data / "fma_metadata").exists()
    _assert_no_leftovers(data)
    assert len(server.requests_for("fma_metadata.zip")) == 1  # a 404 is not retried


def test_corrupt_zip_with_matching_checksum_is_not_extracted_nor_redownloaded(
    tmp_path, server, fake_fma, run
):
    # Corrupt the compressed data of the last member so that earlier members do get extracted.
    path = fake_fma["zip"]["fma_small"]
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.infolist()[-1]
    name_len, extra_len = struct.unpack("<HH", raw[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    for i in range(start + 20, start + 60):
        raw[i] ^= 0xFF
    path.write_bytes(bytes(raw))
    sha1 = hashlib.sha1(raw).hexdigest()

    result = run("small", FMA_SHA1_SMALL=sha1)
    assert result.returncode != 0
    assert "error:" in result.stderr and "extract" in result.stderr
    data = tmp_path / "data"
    assert not (data / "fma_small").exists()
    _assert_no_leftovers(data)
    assert (data / "fma_small.zip").is_file()  # verified zip kept

    again = run("small", FMA_SHA1_SMALL=sha1)
    assert again.returncode != 0
    assert server.requests_for("fma_small.zip") == [None]  # not downloaded again
    assert not (data / "fma_small").exists()


def test_existing_unmarked_folder_is_left_alone(tmp_path, server, run):
    manual = tmp_path / "data" / "fma_metadata" / "tracks.csv"
    manual.parent.mkdir(parents=True)
    manual.write_text("mine\n")
    result = run("small")
    assert result.returncode == 1
    assert "error:" in result.stderr and "not marked complete" in result.stderr
    assert manual.read_text() == "mine\n"
    assert server.request_count() == 0


@pytest.mark.parametrize(
    "args",
    [
        ["tiny"],
        ["--bogus"],
        ["small", "medium"],
        ["--data-dir"],
        ["small", "--base-url"],
    ],
)
def test_bad_arguments_exit_2_with_usage(tmp_path, server, run, args):
    result = run(*args, default_args=False)
    assert result.returncode == 2
    assert "error:" in result.stderr
    assert "Usage:" in result.stderr
    assert server.request_count() == 0
    assert not (tmp_path / "data").exists()


def test_malformed_checksum_override_exits_2(tmp_path, server, run):
    result = run("small", FMA_SHA1_SMALL="not-a-sha1")
    assert result.returncode == 2
    assert "FMA_SHA1_SMALL" in result.stderr
    assert server.request_count() == 0


def test_help(run):
    result = run("--help", default_args=False)
    assert result.returncode == 0
    assert "Usage:" in result.stdout
    assert "--data-dir" in result.stdout and "--base-url" in result.stdout


@pytest.mark.skipif(
    not any(shutil.which(tool) for tool in ("7z", "7za", "7zz")), reason="7-Zip not installed"
)
def test_extracts_with_7zip_when_available(tmp_path, server, fake_fma, run):
    result = run("small", FMA_EXTRACTOR="7z")
    assert result.returncode == 0, result.stderr
    data = tmp_path / "data"
    _assert_extracted(data, fake_fma, "fma_metadata")
    _assert_extracted(data, fake_fma, "fma_small")
    _assert_no_leftovers(data)
