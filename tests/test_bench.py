"""bench.py: its pieces run on tiny inputs and the report is a well-formed Markdown table.

Speed goals are not tested (timings depend on the machine); this only checks that the benchmark
works, on the real clips of tests/data, in-process and with the smallest sizes.
"""
import re

import pytest

import bench
import bench_report
from measure import measured

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_parser_defaults_and_unknown_options():
    args = bench.resolve(bench.build_parser().parse_args(["--quick"]))
    assert args.tracks_per_genre == 6 and args.memory_steps == 10 and args.output == "BENCHMARKS.md"
    full = bench.resolve(bench.build_parser().parse_args([]))
    assert full.tracks_per_genre == 25
    assert [s.crop_seconds for s in bench.train_specs(args, "cpu", "crnn")] == [3.0]
    gpu = bench.train_specs(args, "cuda", "crnn")
    assert [(s.crop_seconds, s.compile) for s in gpu] == [(3.0, False), (3.0, True), (0.0, False), (0.0, True)]
    assert all(s.amp and s.channels_last and s.loader_workers == 4 for s in gpu)
    assert bench.setup(gpu[1]) == "cuda, AMP, channels_last, torch.compile"
    cpu = bench.train_specs(args, "cpu", "crnn")[0]
    assert not (cpu.amp or cpu.channels_last or cpu.compile) and cpu.loader_workers == 0
    assert bench.setup(cpu) == "cpu"
    args.compile = "on"
    assert [s.compile for s in bench.train_specs(args, "cpu", "crnn")] == [True]
    with pytest.raises(SystemExit):
        bench.build_parser().parse_args(["--no-such-option"])


def test_pieces_and_report(small_tree, tmp_path):
    args = bench.resolve(bench.build_parser().parse_args(
        ["--quick", "--workers", "2", "--batch-size", "4", "--models", "cnn1d"]))
    files = bench.demo_files(small_tree)
    assert len(files) == 6
    extract = {"original": measured(bench.extract_original, (files[:2], tmp_path / "pickles"), {}),
               "floor": measured(bench.extract_floor, (files, 2), {}),
               "ours": measured(bench.extract_ours, (small_tree, tmp_path / "cache", 2), {})}
    assert {"wall_s", "user_s", "sys_s", "rss_mb"} == set(extract["ours"]["usage"])
    assert extract["ours"]["tracks"] == 6 and len(list((tmp_path / "pickles").glob("*.pkl"))) == 2
    cache = next(p for p in (tmp_path / "cache").iterdir() if p.is_dir())  # beside it: its .lock file
    spec = bench.TrainSpec("cnn1d", "cpu", 3.0, 4, 1, 0.0, 1, 0, False, False, False)
    train = bench.train_window(str(cache), spec, rows_needed=16)
    assert train["clips"] == 4 and train["clips_per_s"] > 0 and train["load_clips_per_s"] > 0
    infer = bench.inference("cnn1d", files[:2], "cpu", 2, latency_songs=1)
    assert infer["ms_per_song"] > 0 and infer["songs_per_s"] > 0
    shipped = bench.inference("pretrained/musicnn_msd.pt", files[:2], "cpu", 2, latency_songs=1)
    assert shipped["ms_per_song"] > 0 and shipped["songs_per_s"] > 0
    from config import AudioConfig
    large = bench.write_large_cache(tmp_path / "large", 400, AudioConfig())
    mem = bench.train_window(str(large), spec, rows_needed=None)
    assert mem["rss_mb"] > 0
    check = bench.stat_check(tmp_path / "tree", 300)
    assert check["files"] == 300 and min(check["index_s"], check["paths_s"], check["stat_s"]) > 0
    assert len(list((tmp_path / "tree" / "fma_large").glob("*/*.mp3"))) == 300
    assert {p.name for p in (tmp_path / "tree" / "fma_large").iterdir()} == {f"{i:03d}" for i in range(156)}
    predict = bench.predict_folder(tmp_path / "predict", songs=2)  # real processes, real clips
    assert [r["songs"] for r in predict["rows"]] == [1, 2] and predict["rows"][1]["usage"]["rss_mb"] > 100
    results = {"machine": "test machine", "command": "python bench.py --quick", "wall_s": 1.0, "files": files,
               "extract": extract, "check": check,
               "train": [{"model": "cnn1d", "device": "cpu", "crop_seconds": 3.0, **train},
                         {"model": "cnn1d", "device": "cuda", "crop_seconds": 0.0, "note": bench_report.NOT_MEASURED}],
               "infer": [{"model": "cnn1d", "device": "cpu", **infer},
                         {"model": "pretrained/musicnn_msd.pt", "device": "cpu", **shipped},
                         {"model": "cnn1d", "device": "cuda", "note": bench_report.NOT_MEASURED}],
               "predict": predict, "memory": {**mem, "tracks": 400, "gb": 0.1, "loader_workers": 0},
               "e2e": [{"device": "cpu", "accuracy": 0.875, "ci": [0.79, 0.96], "test_tracks": 48, "epochs": 40,
                        "usage": {"wall_s": 300.0, "user_s": 500.0, "sys_s": 20.0, "rss_mb": 1500.0}},
                       {"device": "cuda", "note": bench_report.NOT_MEASURED}]}
    text = bench_report.report(args, results)
    tables = re.findall(r"((?:^\|.*\|$\n?)+)", text, flags=re.M)
    assert len(tables) == 8  # extraction, training, inference, prediction, memory, end to end, cache check, goals
    assert "| cpu | 40 | 0.875 | 0.790 to 0.960 | 48 | 300.0 | 500.0 | 20.0 | 1,500 MiB |" in text
    for table in tables:
        rows = table.strip().splitlines()
        assert re.fullmatch(r"\|(-+:?\|)+", rows[1].replace("---:", "---").replace("---", "-"))
        assert all(r.count("|") == rows[0].count("|") for r in rows), table
    assert "vs original-style" in text and "not yet measured (no GPU available)" in text
    assert re.search(r"extraction >= 4x the original-style pipeline \| \d+\.\d\dx", text)
    assert re.search(r"^\| 300 \| \d+\.\d\d s \| [\d.]+ us \| \d+\.\d\d s \| \d+\.\d\d s \| \d+\.\d\dx \| "
                     r"[\d.]+ tracks \(2 threads\) \|$", text, flags=re.M), text
    results["check"] = {"note": "skipped: no inodes"}
    assert "| 106,574 | skipped: no inodes | | | | | |" in bench_report.report(args, results)


def test_the_allocator_goal_takes_the_median_of_its_pairs():
    row = lambda malloc, clips, rss: {"model": "crnn", "device": "cpu", "crop_seconds": 3.0, "malloc": malloc,
                                       "clips_per_s": clips, "load_clips_per_s": 8000.0,
                                       "usage": {"wall_s": 7.0, "user_s": 9.0, "sys_s": 1.0, "rss_mb": rss}}
    r = {"train": [row("auto", 120.0, 700.0), row("mallopt", 110.0, 900.0), row("glibc", 50.0, 680.0),
                   {**row("auto", 999.0, 1.0), "device": "cuda"}],
         "allocator_pairs": [{"auto": 100.0, "glibc": 50.0}, {"auto": 130.0, "glibc": 50.0}]}
    speedups, rss = bench_report.allocator_ratios(r)
    assert speedups == pytest.approx([2.4, 2.0, 2.6]) and rss == {"crnn": pytest.approx(700 / 680)}
    assert bench_report.median_of(speedups) == "2.40x (median of 3: 2.00-2.60x)"
    assert bench_report.median_of([0.2034], 3, " s") == "0.203 s" and bench_report.median_of([]) == "-"
    args = bench.resolve(bench.build_parser().parse_args(["--quick"]))
    assert "100.0 / 50.0, 130.0 / 50.0" in "\n".join(bench_report.training(args, r))


def test_prediction_repeats_take_the_median(tmp_path, monkeypatch):
    walls = iter([2.0, 4.0, 2.5, 6.5, 2.0, 5.0])  # (1 song, 3 songs) three times: 1.0, 2.0 and 1.5 s per song
    commands = []

    def fake(cmd, **kw):
        commands.append(cmd)
        return bench.subprocess.CompletedProcess(cmd, 0, "", ""), {"wall_s": next(walls), "rss_mb": 400.0}
    monkeypatch.setattr(bench, "run_command", fake)
    p = bench.predict_folder(tmp_path, songs=3, repeats=3)
    assert [r["songs"] for r in p["rows"]] == [1, 3] * 3 and len(commands) == 6
    assert [r.get("s_per_song") for r in p["rows"]] == [None, 1.0, None, 2.0, None, 1.5] and p["s_per_song"] == 1.5
    assert len(list((tmp_path / "predict-3").glob("*.mp3"))) == 3


def test_wrong_repeats_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as e:
        bench.resolve(bench.build_parser().parse_args(["--repeats", "0"]))
    assert e.value.code == 2 and capsys.readouterr().err.strip().startswith("error: ")


# ---------------------------------------------------------------------------- BENCHMARKS.md: its markers

NOTES = ("### Notes (written by hand; the tables above are the script's output)\n\n"
         "- A hand-written note, with `code`, a | pipe | and trailing spaces   \n"
         "- <!-- a comment of ours --> and a last line without a newline")
TABLE = "Machine: test.\n\n### Training throughput\n\n| model | clips/s |\n|---|---:|\n| cnn1d | {} |\n"


def test_rerun_keeps_the_hand_written_notes(tmp_path, monkeypatch):
    """`python bench.py --quick` (its measurements mocked) rewrites only the part between the markers of
    a BENCHMARKS.md: the notes after it and the title before it stay byte for byte."""
    head = "# Benchmarks\n\nOur own introduction.\n\n"
    path = tmp_path / "BENCHMARKS.md"
    path.write_text(f"{head}{bench_report.REPORT_BEGIN}\n\n{TABLE.format('1.0')}\n{bench_report.REPORT_END}\n\n{NOTES}")
    monkeypatch.setattr(bench, "run", lambda args, command: {"command": command})
    monkeypatch.setattr(bench, "report", lambda args, results: TABLE.format("1,584.0"))
    assert bench.main(["--quick", "--output", str(path)]) == 0
    text = path.read_text()
    assert text.startswith(head + bench_report.REPORT_BEGIN + "\n") and text.endswith(f"{bench_report.REPORT_END}\n\n{NOTES}")
    assert "| cnn1d | 1,584.0 |" in text and "| cnn1d | 1.0 |" not in text
    assert bench_report.update_report(path, TABLE.format("1,584.0")) == "updated" and path.read_text() == text  # stable


def test_update_report_never_drops_text(tmp_path):
    fresh = tmp_path / "new.md"  # missing: a skeleton with the markers
    assert bench_report.update_report(fresh, TABLE.format("2.0")) == "created"
    assert fresh.read_text() == f"{bench_report.DOC_HEAD}{bench_report.REPORT_BEGIN}\n\n{TABLE.format('2.0')}\n{bench_report.REPORT_END}\n"
    old = tmp_path / "old.md"  # written before the markers: the report is appended, nothing is replaced
    old.write_text(NOTES)
    assert bench_report.update_report(old, TABLE.format("3.0")) == "appended"
    assert old.read_text() == f"{NOTES}\n\n{bench_report.REPORT_BEGIN}\n\n{TABLE.format('3.0')}\n{bench_report.REPORT_END}\n"
    assert bench_report.update_report(old, TABLE.format("4.0")) == "updated"  # and from then on, only between them
    assert old.read_text().startswith(NOTES) and "| 4.0 |" in old.read_text() and "| 3.0 |" not in old.read_text()
    crlf = tmp_path / "crlf.md"  # Windows line ends stay as they are
    crlf.write_bytes(f"# B\n{bench_report.REPORT_BEGIN}\nold\n{bench_report.REPORT_END}\n{NOTES}\n".replace("\n", "\r\n").encode())
    bench_report.update_report(crlf, TABLE.format("5.0"))
    data = crlf.read_bytes()
    assert data.endswith(f"{bench_report.REPORT_END}\n{NOTES}\n".replace("\n", "\r\n").encode())
    assert b"| 5.0 |" in data and b"old" not in data and data.count(b"\n") == data.count(b"\r\n")


@pytest.mark.parametrize("markers", [("begin",), ("end",), ("begin", "begin", "end"), ("end", "begin")])
def test_malformed_markers_leave_the_file_alone(tmp_path, markers):
    lines = {"begin": bench_report.REPORT_BEGIN, "end": bench_report.REPORT_END}
    path = tmp_path / "BENCHMARKS.md"
    path.write_text("".join(f"{lines[m]}\ntext {i}\n" for i, m in enumerate(markers)) + NOTES)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="markers by hand; nothing was written"):
        bench_report.update_report(path, TABLE.format("6.0"))
    assert path.read_bytes() == before and not (tmp_path / "BENCHMARKS.md.tmp").exists()


def test_the_repository_benchmarks_md_has_its_markers(tmp_path):
    """BENCHMARKS.md as shipped: one report between markers, then the notes, which an update keeps."""
    shipped = bench.ROOT / "BENCHMARKS.md"
    copy = tmp_path / "BENCHMARKS.md"
    copy.write_bytes(shipped.read_bytes())
    notes = shipped.read_text().split(bench_report.REPORT_END)[1]
    assert "### Notes (written by hand" in notes
    assert bench_report.update_report(copy, TABLE.format("7.0")) == "updated"
    assert copy.read_text().split(bench_report.REPORT_END)[1] == notes
    assert copy.read_text().split(bench_report.REPORT_BEGIN)[0] == shipped.read_text().split(bench_report.REPORT_BEGIN)[0]
