"""The Markdown of bench.py's measurements: one table per part (feature extraction, training, inference,
prediction, memory, end to end, torchrun, cache check), the goals, and its place in BENCHMARKS.md between the
markers (change how a benchmark is shown here; what is measured is bench.py's).

    python bench.py --quick        # measures, then prints this report and writes it into BENCHMARKS.md

Every row that ran in a process of its own says what that process used: wall, user and sys seconds (its
children's included) and its peak RSS, so the time the kernel takes (page faults) shows beside the work.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from statistics import median

FMA_SMALL_EPOCH = 6400  # clips in fma_small's training split
GOALS = {"extract_vs_original": 4.0, "extract_vs_floor": 1.3, "infer_ms": 100.0, "rss_gb": 3.0,
         "gpu_crnn_clips_s": 2000.0, "sys_share": 0.15, "predict_s_per_song": 0.2, "predict_rss_mb": 800.0,
         "train_rss_vs_glibc": 1.2}
NOT_MEASURED = "not yet measured (no GPU available)"
E2E_PRESET = "configs/best.yaml"  # the end-to-end row's preset (the make run default)
USAGE_HEAD, USAGE_RULE = " wall s | user s | sys s | peak RSS |", "---:|---:|---:|---:|"


def fmt(x: float, digits: int = 1) -> str:
    return f"{x:,.{digits}f}"


def ratio(x: float) -> str:
    return f"{x:.2f}x"


def goal(ok) -> str:
    return "not measured" if ok is None else ("met" if ok else "**not met**")


def usage(row: dict) -> str:
    """' 12.3 | 10.1 | 0.4 | 812 MiB |': the row's process's wall, user and sys seconds and peak RSS."""
    u = row.get("usage")
    if not u:
        return " | | | |"
    return f" {fmt(u['wall_s'])} | {fmt(u['user_s'])} | {fmt(u['sys_s'])} | {fmt(u['rss_mb'], 0)} MiB |"


def tracks_per_s(r: dict) -> dict:
    """Tracks per second of each feature-extraction pipeline."""
    return {k: v["tracks"] / v["seconds"] for k, v in r["extract"].items()}


def extraction(args, r: dict) -> list[str]:
    ex, tps = r["extract"], tracks_per_s(r)
    names = {"original": "original-style: sequential `librosa.load` + `melspectrogram` + pickle per track",
             "floor": f"decode floor: decode + mono + resample only, {args.workers} threads",
             "ours": f"ours: `prepare_cache` (decode, log-mel, float16 cache), {args.workers} threads"}
    lines = ["", f"### Feature extraction ({ex['ours']['tracks']} demo MP3s of {args.seconds:g} s, "
                 f"{args.workers} workers)", "",
             "| pipeline | tracks/s | s per track | vs original-style | time vs decode floor |" + USAGE_HEAD,
             "|---|---:|---:|---:|---:|" + USAGE_RULE]
    for k in ("original", "floor", "ours"):
        lines.append(f"| {names[k]} | {fmt(tps[k])} | {ex[k]['seconds'] / ex[k]['tracks']:.3f} | "
                     f"{ratio(tps[k] / tps['original'])} | {ratio(tps['floor'] / tps[k])} |" + usage(ex[k]))
    return lines


def training(args, r: dict) -> list[str]:
    lines = ["", f"### Training throughput (batch {args.batch_size}, AdamW; timed window after "
                 f"{args.warmup_steps + 1} warm-up steps; epoch = {FMA_SMALL_EPOCH:,} clips)", "",
             "| model | device | input | clips/s | fma_small epoch | data path alone, clips/s | data loading share |"
             + USAGE_HEAD, "|---|---|---|---:|---:|---:|---:|" + USAGE_RULE]
    for t in r["train"]:
        inp = "whole 30 s clips" if not t["crop_seconds"] else f"{t['crop_seconds']:g} s crops of 30 s clips"
        if "clips_per_s" not in t:
            lines.append(f"| {t['model']} | {t.get('setup', t['device'])} | {inp} | {t['note']} | | | |" + usage(t))
            continue
        lines.append(f"| {t['model']} | {t.get('setup', t['device'])} | {inp} | {fmt(t['clips_per_s'])} | "
                     f"{fmt(FMA_SMALL_EPOCH / t['clips_per_s'], 0)} s | {fmt(t['load_clips_per_s'], 0)} | "
                     f"{100 * t['clips_per_s'] / t['load_clips_per_s']:.0f}% |" + usage(t))
    pairs = r.get("allocator_pairs")
    if pairs:
        lines += ["", "crnn again, tcmalloc then glibc's defaults, back to back (clips/s): "
                  + ", ".join(f"{fmt(p['auto'])} / {fmt(p['glibc'])}" for p in pairs) + "."]
    return lines


def inference(args, r: dict) -> list[str]:
    lines = ["", f"### Inference (model names: the default checkpoint shape, 8 crops of 3 s per 30 s clip at "
                 f"22,050 Hz; .pt rows: the shipped checkpoint, e.g. musicnn's 10 patches of 3 s at 16 kHz; "
                 f"{len(r['files'])} demo songs)", "",
             "| model | device | ms per 30 s song (decode + features + model, one at a time) | "
             f"songs/s over the folder ({args.workers} decoding threads) |" + USAGE_HEAD, "|---|---|---:|---:|" + USAGE_RULE]
    for i in r["infer"]:
        if "ms_per_song" not in i:
            lines.append(f"| {i['model']} | {i['device']} | {i['note']} | |" + usage(i))
            continue
        lines.append(f"| {i['model']} | {i['device']} | {fmt(i['ms_per_song'])} | {fmt(i['songs_per_s'])} |" + usage(i))
    return lines


def per_song_runs(p: dict) -> list[float]:
    """The prediction row's seconds per song after start-up, one per run of its pair of commands."""
    return [row["s_per_song"] for row in p.get("rows", []) if "s_per_song" in row]


def prediction(args, r: dict) -> list[str]:
    p = r.get("predict")
    if not p:
        return []
    lines = ["", f"### Prediction (`python pre_trained_models.py --checkpoint {p['checkpoint']} FOLDER` on real "
                 f"30 s FMA clips of tests/data, repeated; one process per command; the pair of commands run "
                 f"{len(per_song_runs(p))} time(s) in turn)", "",
             "| songs | per song after start-up |" + USAGE_HEAD, "|---:|---:|" + USAGE_RULE]
    for row in p["rows"]:
        lines.append(f"| {row['songs']} | {fmt(row['s_per_song'], 3) + ' s' if 's_per_song' in row else ''} |"
                     + usage(row))
    return lines + ([f"\nPrediction: {p['note']}"] if "note" in p else [])


def memory(args, r: dict) -> list[str]:
    ex, m = r["extract"], r["memory"]
    lines = ["", "### Memory (peak RSS)", "", "| what | main process | largest worker process |", "|---|---:|---:|",
             f"| cache build, {ex['ours']['tracks']} tracks, {args.workers} threads | "
             f"{fmt(ex['ours']['usage']['rss_mb'], 0)} MiB | (threads) |"]
    if "rss_mb" in m:
        lines.append(f"| training {m['steps']} batches of {args.batch_size} (crnn, 3 s crops, "
                     f"{m['loader_workers']} loader workers) over a {m['tracks']:,}-clip cache "
                     f"({m['gb']:.1f} GB float16, sparse) | {fmt(m['rss_mb'], 0)} MiB | "
                     f"{fmt(m['children_rss_mb'], 0) + ' MiB' if m['loader_workers'] else '-'} |")
    else:
        lines.append(f"| training over an fma_large-sized cache | {m['note']} | |")
    return lines


def end_to_end(args, r: dict) -> list[str]:
    if not r.get("e2e"):
        return []
    lines = ["", f"### End to end (`python main.py --config {E2E_PRESET}` on the demo set of `make run`: "
                 "cache build, training, test report)", "",
             "| device | epochs | test accuracy (synthetic demo set) | bootstrap interval | test tracks |" + USAGE_HEAD,
             "|---|---:|---:|---|---:|" + USAGE_RULE]
    for e in r["e2e"]:
        if "accuracy" not in e:
            lines.append(f"| {e['device']} | {e['note']} | | | |" + usage(e))
            continue
        ci = f"{e['ci'][0]:.3f} to {e['ci'][1]:.3f}" if e.get("ci") else "-"
        lines.append(f"| {e['device']} | {e['epochs']} | {e['accuracy']:.3f} | {ci} | {e['test_tracks']} |" + usage(e))
    return lines


def distributed(args, r: dict) -> list[str]:
    ddp, lines = [d for d in r.get("ddp", []) if "clips_per_s" in d], []
    if ddp:
        lines += ["", f"### Distributed training on CPU (torchrun, gloo; `python main.py --model {args.ddp_model} "
                      f"--batch-size {args.ddp_batch_size}` per process; median of epochs 2-{args.ddp_epochs})", "",
                  "| processes | threads each | global batch | training clips/s (all ranks) | vs 1 process |" + USAGE_HEAD,
                  "|---:|---:|---:|---:|---:|" + USAGE_RULE]
        for d in ddp:
            lines.append(f"| {d['processes']} | {d['threads']} | {args.ddp_batch_size * d['processes']} | "
                         f"{fmt(d['clips_per_s'])} | {ratio(d['clips_per_s'] / ddp[0]['clips_per_s'])} |" + usage(d))
    return lines + [f"\nDistributed training, {d['processes']} process(es): {d['note']}" for d in r.get("ddp", [])
                    if "note" in d]


def cache_check(args, r: dict) -> list[str]:
    c, ex = r["check"], r["extract"]
    lines = ["", "### Cache check (reopening a finished cache: every audio file stat'ed against index.csv)", "",
             "| files (FMA layout) | check: paths + stat + compare | per file | of which stat + compare | "
             "reading index.csv | check / index read | check = decoding of |", "|---:|---:|---:|---:|---:|---:|---:|"]
    if "files" not in c:
        return lines + [f"| {args.check_files:,} | {c['note']} | | | | | |"]
    check_s, decode_s = c["paths_s"] + c["stat_s"], ex["ours"]["seconds"] / ex["ours"]["tracks"]
    return lines + [f"| {c['files']:,} | {fmt(check_s, 2)} s | {fmt(1e6 * check_s / c['files'], 1)} us | "
                    f"{fmt(c['stat_s'], 2)} s | {fmt(c['index_s'], 2)} s | {ratio(check_s / c['index_s'])} | "
                    f"{fmt(check_s / decode_s, 1)} tracks ({args.workers} threads) |"]


def malloc(row: dict) -> str:
    """A training row's FMA_MALLOC (allocator.MODES): auto, or a baseline's mallopt or glibc."""
    return row.get("malloc", "auto")


def allocator_ratios(r: dict) -> tuple[list, dict]:
    """From the CPU training rows on 3 s crops: crnn's clips/s on the entry scripts' allocator (auto) over glibc's
    defaults, for the training table's pair and each of r["allocator_pairs"]; and for each model measured on
    both, peak RSS on auto over glibc's defaults."""
    pairs = {}
    for t in r["train"]:
        if t["device"] == "cpu" and t.get("crop_seconds") and "clips_per_s" in t and malloc(t) in ("auto", "glibc"):
            pairs.setdefault(t["model"], {}).setdefault(malloc(t), t)
    pairs = {m: p for m, p in pairs.items() if len(p) == 2}
    crnn = pairs.get("crnn")
    speedups = [crnn["auto"]["clips_per_s"] / crnn["glibc"]["clips_per_s"]] if crnn else []
    speedups += [p["auto"] / p["glibc"] for p in r.get("allocator_pairs", [])]
    return speedups, {m: p["auto"]["usage"]["rss_mb"] / p["glibc"]["usage"]["rss_mb"] for m, p in pairs.items()}


def median_of(values: list, digits: int = 2, unit: str = "x") -> str:
    """'2.41x' for one value, '2.41x (median of 3: 2.30-2.55x)' for several."""
    one = lambda v: f"{v:.{digits}f}{unit}"
    if len(values) < 2:
        return one(values[0]) if values else "-"
    return f"{one(median(values))} (median of {len(values)}: {min(values):.{digits}f}-{one(max(values))})"


def goals(args, r: dict) -> list[str]:
    m, tps = r["memory"], tracks_per_s(r)
    vs_orig, vs_floor = tps["ours"] / tps["original"], tps["floor"] / tps["ours"]
    crnn_gpu = max((t["clips_per_s"] for t in r["train"] if t["model"] == "crnn" and t["device"] == "cuda"
                    and not t["crop_seconds"] and "clips_per_s" in t), default=None)  # the faster of compile off/on
    gpu_ok = None if crnn_gpu is None else crnn_gpu >= GOALS["gpu_crnn_clips_s"]
    cpu_inf = {i["model"]: i["ms_per_song"] for i in r["infer"] if i["device"] == "cpu" and "ms_per_song" in i}
    fast = [k for k, v in cpu_inf.items() if v < GOALS["infer_ms"]]
    slow = [k for k, v in cpu_inf.items() if v >= GOALS["infer_ms"]]
    infer_status = (goal(None) if not cpu_inf else goal(not slow) if not (fast and slow)
                    else f"met for {', '.join(fast)}; **not met** for {', '.join(slow)}")
    worst_share = max((t["clips_per_s"] / t["load_clips_per_s"] for t in r["train"]
                       if t["device"] == "cpu" and "clips_per_s" in t), default=float("nan"))
    rss = max(m.get("rss_mb", float("nan")), m.get("rss_mb", 0) + m.get("children_rss_mb", 0) * m.get("loader_workers", 0))
    cpu = [t for t in r["train"] if t["device"] == "cpu" and t.get("usage")]
    sys_share, worst_sys = max(((t["usage"]["sys_s"] / max(t["usage"]["user_s"], 1e-9), t["model"]) for t in cpu
                                if malloc(t) == "auto"), default=(None, None))
    speedups, rss_ratio = allocator_ratios(r)
    speedup = median(speedups) if speedups else None
    p = r.get("predict") or {}
    predict_rss = max((row["usage"]["rss_mb"] for row in p.get("rows", [])), default=None)
    return ["", "### Goals", "", "| goal | measured | |", "|---|---|---|",
            f"| extraction >= {GOALS['extract_vs_original']:g}x the original-style pipeline | "
            f"{ratio(vs_orig)} | {goal(vs_orig >= GOALS['extract_vs_original'])} |",
            f"| extraction within {GOALS['extract_vs_floor']:g}x of the decode floor | {ratio(vs_floor)} | "
            f"{goal(vs_floor <= GOALS['extract_vs_floor'])} |",
            f"| CPU training: data loading never the bottleneck | data path alone takes at most "
            f"{100 * worst_share:.0f}% of a training step's time | {goal(worst_share < 0.25)} |",
            f"| CPU training (crnn, 3 s crops): the entry scripts' allocator >= 2.5x glibc's defaults' clips/s | "
            f"{median_of(speedups)} | {goal(None if speedup is None else speedup >= 2.5)} |",
            f"| CPU training ({', '.join(rss_ratio) or '-'}): peak RSS within {GOALS['train_rss_vs_glibc']:g}x "
            f"glibc's defaults' | {', '.join(f'{k} {ratio(v)}' for k, v in rss_ratio.items()) or '-'} | "
            f"{goal(max(rss_ratio.values()) <= GOALS['train_rss_vs_glibc'] if rss_ratio else None)} |",
            f"| CPU training (every model): sys time under {GOALS['sys_share']:.0%} of user time | "
            f"{'-' if sys_share is None else f'at most {sys_share:.0%} ({worst_sys})'} | "
            f"{goal(None if sys_share is None else sys_share < GOALS['sys_share'])} |",
            f"| inference < {GOALS['infer_ms']:g} ms per 30 s song on CPU | "
            f"{', '.join(f'{k} {fmt(v)} ms' for k, v in cpu_inf.items()) or '-'} | {infer_status} |",
            f"| prediction ({p.get('checkpoint', '-')}, {p['rows'][-1]['songs'] if p.get('rows') else '-'} real "
            f"30 s clips): <= {GOALS['predict_s_per_song']:g} s per song after start-up, peak RSS < "
            f"{GOALS['predict_rss_mb']:g} MiB | "
            + (f"{median_of(per_song_runs(p), 3, ' s')}, "
               f"{fmt(predict_rss, 0)} MiB | "
               f"{goal(p['s_per_song'] <= GOALS['predict_s_per_song'] and predict_rss < GOALS['predict_rss_mb'])} |"
               if "s_per_song" in p else "- | not measured |"),
            f"| peak RSS < {GOALS['rss_gb']:g} GB training over an fma_large-sized cache | "
            f"{fmt(rss / 1024, 2) + ' GiB (main + workers)' if 'rss_mb' in m else '-'} | "
            f"{goal(rss / 1024 < GOALS['rss_gb'] if 'rss_mb' in m else None)} |",
            f"| GPU: CRNN >= {GOALS['gpu_crnn_clips_s']:,.0f} clips/s of whole 30 s clips | "
            f"{fmt(crnn_gpu) + ' clips/s' if gpu_ok is not None else NOT_MEASURED} | {goal(gpu_ok)} |"]


def report(args, results: dict) -> str:
    """The Markdown report: machine, command, one table per part, the goals."""
    r = results
    lines = [f"Machine: {r['machine']}.", "", f"Command: `{r['command']}` ({r['wall_s']:.0f} s in all)."]
    for part in (extraction, training, inference, prediction, memory, end_to_end, distributed, cache_check, goals):
        lines += part(args, r)
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------ BENCHMARKS.md

DOC_HEAD = """# Benchmarks

The part between the `bench.py` markers is written by `python bench.py` (see its docstring for what
each number means); every number in it comes from the run named under "Command". Re-run it to
measure your machine; `--device cuda` on a GPU machine adds the GPU rows. Text outside the markers
is yours: reruns keep it.

"""
BEGIN, END = "<!-- bench.py: begin report", "<!-- bench.py: end report"  # how the marker lines start
REPORT_BEGIN = f"{BEGIN} (rewritten by python bench.py up to the end marker; edit outside) -->"
REPORT_END = f"{END} -->"


def update_report(path: Path, text: str) -> str:
    """Put the report `text` into the Markdown file `path` between its marker lines (REPORT_BEGIN and
    REPORT_END; recognised by how they start, BEGIN and END), leaving every byte outside them as it was.
    A missing file is created (DOC_HEAD, then the report between markers); a file without markers gets
    them, with the report, appended at its end. Returns 'created', 'appended' or 'updated'. Malformed
    markers (one missing, repeated, or the end first) raise ValueError and leave the file untouched."""
    path = Path(path)
    old = ""
    if path.exists():
        with open(path, newline="") as f:  # newline="": a CRLF file stays CRLF, byte for byte
            old = f.read()
    nl = "\r\n" if "\r\n" in old else "\n"
    block = f"\n{text.strip()}\n\n".replace("\n", nl)  # blank lines keep the markers apart from the tables
    begins, ends = _marker_lines(old, BEGIN), _marker_lines(old, END)
    if not path.exists():
        new, done = f"{DOC_HEAD}{REPORT_BEGIN}\n{block}{REPORT_END}\n", "created"
    elif not begins and not ends:
        sep = "" if not old or old.endswith(nl * 2) else nl if old.endswith(nl) else nl * 2
        new, done = f"{old}{sep}{REPORT_BEGIN}{nl}{block}{REPORT_END}{nl}", "appended"
    elif len(begins) == len(ends) == 1 and begins[0][1] <= ends[0][0]:
        new, done = old[:begins[0][1]] + block + old[ends[0][0]:], "updated"
    else:
        order = " (the end marker first)" if len(begins) == len(ends) == 1 else ""
        raise ValueError(f"{path}: expected one line starting {BEGIN!r} and, after it, one line starting {END!r}; "
                         f"found {len(begins)} and {len(ends)}{order}. Fix the markers by hand; nothing was written")
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", newline="") as f:
        f.write(new)
    os.replace(tmp, path)
    return done


def _marker_lines(text: str, start: str) -> list[tuple[int, int]]:
    """(offset of the line, offset after its newline) of each line of `text` that starts with `start`."""
    return [(m.start(), m.end()) for m in re.finditer(rf"^{re.escape(start)}\b.*(?:\n|$)", text, flags=re.M)]
