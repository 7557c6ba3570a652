"""First contact: every bad input of main.py, pre_trained_models.py and tune.py is one `error:` line, exit status 2,
no traceback and nothing created; --resume extends or refuses; --evaluate-only finds the data that trained the
checkpoint; Ctrl-C says how to continue; --help reads well and docs/cli.md is generated from it.

Runs train on `tiny_tree` (the real clips of tests/data: 3 training tracks, one validation, one test track).

    pytest tests/test_cli.py
"""
import csv
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

import config
import main
import pre_trained_models
import tune
from conftest import ROOT, STEREO_44K, run_main, tiny_tree

MUSICNN = ROOT / "pretrained" / "musicnn_msd.pt"
TINY_RUN = ["--model", "cnn1d", "--batch-size", 2, "--crop-seconds", 2, "--eval-crops", 2, "--wandb", "disabled",
            "--bootstrap", 50, "--quiet"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny FMA tree, its cache, and a 2-epoch CNN1D run on it (default schedule: one-cycle)."""
    root = tmp_path_factory.mktemp("tiny")
    data = tiny_tree(root / "fma")
    r = run_main("--data-dir", data, "--cache-dir", root / "cache", "--out", root / "run", "--epochs", 2, *TINY_RUN)
    assert r.returncode == 0, r.stdout + r.stderr
    return {"data": data, "cache": root / "cache", "run": root / "run"}


def tree(path: Path) -> dict:
    """Every file and folder under `path` with its size and modification time: what 'nothing changed' compares."""
    return {str(p.relative_to(path)): (p.stat().st_size, p.stat().st_mtime_ns) if p.is_file() else "dir"
            for p in sorted(path.rglob("*"))}


# ------------------------------------------------------------------------------------------ the bad-input table

def files(tmp: Path, tiny: dict) -> dict:
    """What the table's rows refer to, made in `tmp`: presets, a file that is not a checkpoint, a copy of the
    tiny run (for --resume), a file where a folder belongs, and a folder where a file belongs."""
    (tmp / "bad.yaml").write_text("epochs: [1, 2\n")
    (tmp / "typo.yaml").write_text("epocs: 3\n")
    (tmp / "many.yaml").write_text("epochs: many\n")
    (tmp / "list.yaml").write_text("- crnn\n- cnn1d\n")
    shutil.copy(ROOT / "configs" / "search_space.yaml", tmp / "space.yaml")
    (tmp / "notckpt.pt").write_text("not a checkpoint\n")
    (tmp / "afile.txt").write_text("x\n")
    (tmp / "afolder").mkdir()
    shutil.copytree(tiny["run"], tmp / "run")
    notest = tiny_tree(tmp / "notest", splits={141: "training"})  # no test track left
    return {"RUN": str(tmp / "run"), "CKPT": str(tmp / "run" / "best.pt"), "DATA": str(tiny["data"]),
            "NOTEST": str(notest), "CLIP": str(STEREO_44K), "MUSICNN": str(MUSICNN)}


MAIN_ROWS = [  # (arguments, what the error line says)
    (["--config", "missing.yaml"], "preset missing.yaml not found"),
    (["--config", "bad.yaml"], "is not valid YAML"),
    (["--config", "space.yaml"], "is a search space for tune.py"),
    (["--config", "list.yaml"], "must be a mapping of option: value"),
    (["--config", "typo.yaml"], "unknown option 'epocs' (did you mean epochs?)"),
    (["--config", "many.yaml"], "epochs must be an integer, not 'many'"),
    (["--epocs", "3"], "unknown option --epocs (did you mean --epochs?)"),
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lr", "-0.1"], "--lr must be above 0"),
    (["--lr", "fast"], "lr must be a number"),
    (["--crop-seconds", "-2"], "--crop-seconds must be at least 0"),
    (["--dropout", "1.5"], "--dropout must be at most 1"),
    (["--model", "nosuch"], "unknown model 'nosuch': choose from"),
    (["--scheduler", "linear"], "unknown scheduler 'linear'"),
    (["--seeds", "0,x"], "--seeds takes comma-separated integers"),
    (["--shard", "1/2"], "--shard builds one slice of the cache and goes with --prepare-only"),
    (["--prepare-only", "--shard", "3/2"], "--shard takes K/N"),
    (["--freeze-backbone"], "--freeze-backbone needs --init PATH"),
    (["--data-dir", "{DATA}", "--model", "cnn1d", "--temporal-pool", "mean"], "cnn1d does not take --temporal-pool"),
    (["--data-dir", "nowhere"], "nowhere/fma_metadata/tracks.csv not found"),
    (["--out", "afile.txt"], "--out afile.txt is a file, not a folder"),
    (["--init", "notckpt.pt", "--data-dir", "{DATA}", "--model", "cnn1d"], "notckpt.pt: not a readable checkpoint"),
    (["--evaluate-only"], "--evaluate-only needs --checkpoint PATH"),
    (["--checkpoint", "{CKPT}"], "--checkpoint goes with --evaluate-only"),
    (["--evaluate-only", "--checkpoint", "{CKPT}", "{CKPT}"], "--checkpoint takes one path"),
    (["--evaluate-only", "--checkpoint", "notckpt.pt"], "notckpt.pt: not a readable checkpoint"),
    (["--evaluate-only", "--checkpoint", "missing.pt"], "missing.pt: checkpoint not found"),
    (["--evaluate-only", "--checkpoint", "{CKPT}", "--data-dir", "{NOTEST}"], "no test tracks in"),
    (["--resume", "{RUN}", "--lr", "0.5"], "--resume continues a run as it was trained: --lr would change it"),
    (["--resume", "{RUN}", "--model", "crnn", "--augment"], "--augment, --model would change it"),
    (["--resume", "{RUN}", "--epochs", "1"], "has already trained 2 epochs"),
    (["--resume", "nowhere"], "--resume nowhere: no such run folder or checkpoint"),
    (["--resume", "{RUN}", "--evaluate-only", "--checkpoint", "{CKPT}"], "does not combine with --resume"),
]
PREDICT_ROWS = [
    (["--checkpoint", "{MUSICNN}", "--output", "afolder", "{CLIP}"], "--output afolder: is a folder"),
    (["--checkpoint", "{MUSICNN}", "--output", "afile.txt/x.csv", "{CLIP}"], "cannot write there"),
    (["--checkpoint", "{MUSICNN}", "{CKPT}", "{CLIP}"], "is a checkpoint, not audio: for an ensemble repeat"),
    (["--checkpoint", "notckpt.pt", "{CLIP}"], "notckpt.pt: not a readable checkpoint"),
    (["--checkpoint", "{MUSICNN}", "--top-k", "0", "{CLIP}"], "--top-k must be at least 1"),
    (["{CLIP}"], "the following arguments are required: --checkpoint"),
    (["--checkpoint", "{MUSICNN}", "--bogus", "{CLIP}"], "unknown option --bogus"),
    (["--checkpoint", "{MUSICNN}"], "no INPUT given"),
]
TUNE_ROWS = [
    (["--resume", "x"], "--resume is not for tune.py"),
    (["--space", "space.yaml", "--n-trials", "0"], "--n-trials must be at least 1"),
    (["--space", "space.yaml", "--config", "missing.yaml"], "preset missing.yaml not found"),
    (["--space", "space.yaml", "--epocs", "3"], "unknown option --epocs (did you mean --epochs?)"),
    (["--space", "space.yaml", "--data-dir", "nowhere"], "nowhere/fma_metadata/tracks.csv not found"),
]
ROWS = ([(main.main, *r) for r in MAIN_ROWS] + [(pre_trained_models.main, *r) for r in PREDICT_ROWS]
        + [(tune.main, *r) for r in TUNE_ROWS])


@pytest.mark.parametrize("command, args, message", ROWS,
                         ids=[f"{c.__module__}:{' '.join(a)}" for c, a, _ in ROWS])
def test_bad_input_is_one_error_line_exit_2_and_nothing_created(command, args, message, tiny, tmp_path, capsys,
                                                                 monkeypatch):
    names = files(tmp_path, tiny)
    monkeypatch.chdir(tmp_path)
    before, data_before = tree(tmp_path), tree(tiny["data"].parent)
    code = command([a.format(**names) for a in args])
    out, err = capsys.readouterr()
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, out + err
    assert len(errors) == 1 and message in errors[0], err
    assert "Traceback" not in err + out and "weights_only" not in err
    assert tree(tmp_path) == before and tree(tiny["data"].parent) == data_before  # nothing created or changed


def test_a_bad_option_in_a_real_process(tmp_path):
    """The same, through `python main.py` itself: no usage block, only the line."""
    r = run_main("--epocs", "3", cwd=tmp_path)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "error: unknown option --epocs (did you mean --epochs?); main.py --help lists every option"]
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ resume

def test_resume_with_more_epochs_adds_exactly_them_under_one_cycle(tiny, tmp_path):
    """--resume RUN --epochs 3 after 2 one-cycle epochs: one more epoch, the first two rows as they were; the
    schedule is planned anew for 3 epochs (its learning rate rises from the end of the old one)."""
    run = tmp_path / "run"
    shutil.copytree(tiny["run"], run)
    before = list(csv.DictReader(open(run / "metrics.csv")))
    r = run_main("--resume", run, "--epochs", 3, "--cache-dir", tiny["cache"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "planned anew for 3 epochs" in r.stdout and "epoch   3/3" in r.stdout and "epoch   2/3" not in r.stdout
    after = list(csv.DictReader(open(run / "metrics.csv")))
    assert [row["epoch"] for row in after] == ["1", "2", "3"] and after[:2] == before
    import torch
    steps = torch.load(run / "last.pt", weights_only=True)["global_step"] // 3
    sgd = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    plan = torch.optim.lr_scheduler.OneCycleLR(sgd, max_lr=3e-3, epochs=3, steps_per_epoch=steps, pct_start=0.2)
    for _ in range(3 * steps):
        sgd.step()
        plan.step()
    assert float(after[2]["lr"]) == pytest.approx(plan.get_last_lr()[0], rel=1e-6)  # a 3-epoch one-cycle's end
    assert json.loads((run / "config.json").read_text())["run"]["epochs"] == 3
    assert json.loads((run / "results.json").read_text())["epochs"] == 3


def test_refused_resume_leaves_the_run_folder_byte_identical(tiny, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(tiny["run"], run)
    before = {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()}
    r = run_main("--resume", run, "--epochs", 3, "--lr", 0.1)
    assert r.returncode == 2 and "--lr would change it" in r.stderr and "what may change: --epochs" in r.stderr
    assert {p.name: p.read_bytes() for p in run.iterdir() if p.is_file()} == before


# ------------------------------------------------------------------------------------------ evaluate-only

def test_evaluate_only_uses_the_data_that_trained_the_checkpoint(tiny, tmp_path):
    """From another folder, without --data-dir: the checkpoint's own (absolute) data folder, not a demo set."""
    r = run_main("--evaluate-only", "--checkpoint", tiny["run"] / "best.pt", "--out", tmp_path / "eval",
                 "--cache-dir", tiny["cache"], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo" not in r.stdout
    assert sorted(os.listdir(tmp_path)) == ["eval"]
    results = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert results["test_tracks"] == 1 and results["test"]["accuracy"] in (0.0, 1.0)
    rows = list(csv.DictReader(open(tmp_path / "eval" / "test_files.csv")))
    assert rows == [{"path": str(tiny["data"] / "fma_small" / "000" / "000141.mp3"), "label": "Folk"}]


def test_evaluate_only_names_missing_data(tiny, tmp_path):
    moved = tmp_path / "ckpt.pt"
    import torch
    state = torch.load(tiny["run"] / "best.pt", weights_only=True)
    state["run_config"]["data_dir"] = str(tmp_path / "gone")
    torch.save(state, moved)
    r = run_main("--evaluate-only", "--checkpoint", moved, cwd=tmp_path)
    assert r.returncode == 2 and f"was trained on the data in {tmp_path / 'gone'}, which is not there" in r.stderr


# ------------------------------------------------------------------------------------------ defaults, help, docs

def test_plain_main_py_trains_the_recipe_of_best_yaml():
    best = yaml.safe_load((ROOT / "configs" / "best.yaml").read_text())
    defaults = config.RunConfig()
    assert {k: getattr(defaults, k) for k in best} == best


def help_entries(text: str) -> list[list[str]]:
    """--help's option entries: each option's lines (the option, then the lines its help continues on)."""
    entries = []
    for line in text.split("\noptions:\n", 1)[1].splitlines():
        if line.startswith("  -"):
            entries.append([line])
        elif line.startswith(" " * config.HELP_INDENT) and entries:
            entries[-1].append(line)
    return entries


def test_help_is_grouped_by_concern_and_each_option_takes_two_lines_at_most(capsys):
    with pytest.raises(SystemExit):
        main.main(["--help"])
    text = capsys.readouterr().out
    titles = [line[:-1] for line in text.splitlines() if line.endswith(":") and not line.startswith(" ")]
    assert titles == ["options"] + list(config.GROUPS.values())
    entries = help_entries(text)
    assert len(entries) == len(config.all_fields()) + 1  # and -h
    for entry in entries:
        help_lines = len(entry) - 1 + (1 if re.match(r"  \S.*?\S {2,}\S", entry[0]) else 0)
        assert help_lines <= 2 and " ".join(entry).count("(default") <= 1, entry


def test_docs_cli_md_is_the_parser_s_reference():
    """docs/cli.md is written by `python config.py > docs/cli.md`: rerun it when an option changes."""
    assert (ROOT / "docs" / "cli.md").read_text() == config.markdown_reference()


def test_tune_help_shows_its_own_options_first_and_no_option_it_refuses(capsys):
    with pytest.raises(SystemExit):
        tune.main(["--help"])
    text = capsys.readouterr().out
    assert text.index("tune.py's options") < text.index("\ndata:\n")
    options = {entry[0].split()[0].rstrip(",") for entry in help_entries(text)}
    assert {"--space", "--n-trials", "--lr", "--model"} <= options
    assert not options & {"--resume", "--evaluate-only", "--checkpoint", "--seeds", "--prepare-only", "--shard"}


# ------------------------------------------------------------------------------------------ Ctrl-C

DRIVER = textwrap.dedent('''
    """main.py interrupted (SIGINT, as Ctrl-C sends) at optimizer step STEP:  driver.py ROOT STEP ARGS"""
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    import main
    from torch.optim.optimizer import register_optimizer_step_post_hook
    steps, at = [0], int(sys.argv[2])

    def hook(optimizer, args, kwargs):
        steps[0] += 1
        if steps[0] == at:
            os.kill(os.getpid(), signal.SIGINT)

    register_optimizer_step_post_hook(hook)
    sys.exit(main.main(sys.argv[3:]))
''')


def test_ctrl_c_in_training_says_how_to_continue_and_resume_finishes(tiny, tmp_path):
    driver, out = tmp_path / "driver.py", tmp_path / "run"
    driver.write_text(DRIVER)
    args = ["--data-dir", tiny["data"], "--cache-dir", tiny["cache"], "--out", out, "--epochs", 3, *TINY_RUN]
    r = subprocess.run([sys.executable, driver, ROOT, "3", *map(str, args)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 130, r.stdout + r.stderr
    assert r.stderr.strip().splitlines()[-1] == f"interrupted: continue exactly where it stopped with: python main.py " \
                                                f"--resume {out}"
    assert "Traceback" not in r.stderr
    r = run_main("--resume", out, "--cache-dir", tiny["cache"])
    assert r.returncode == 0 and "epoch   3/3" in r.stdout, r.stdout + r.stderr


def test_ctrl_c_in_prediction_writes_what_was_predicted(tmp_path, monkeypatch, capsys):
    import predictor
    songs = [tmp_path / f"{i}.mp3" for i in range(3)]
    for s in songs:
        shutil.copy(STEREO_44K, s)
    real, calls = predictor.Predictor._forward, [0]

    def forward(self, x):
        calls[0] += 1
        if calls[0] == 3:  # the third batch of windows: the first song is done
            raise KeyboardInterrupt
        return real(self, x)

    monkeypatch.setattr(predictor.Predictor, "_forward", forward)
    code = pre_trained_models.main(["--checkpoint", str(MUSICNN), "--batch-windows", "5", "--workers", "1",
                                    "--format", "csv", "--output", str(tmp_path / "p.csv"), *map(str, songs)])
    err = capsys.readouterr().err
    assert code == 130 and "interrupted: the 1 songs predicted before Ctrl-C are written; 2 were not" in err
    rows = list(csv.DictReader(open(tmp_path / "p.csv")))
    assert [r["path"] for r in rows] == [str(songs[0])] and rows[0]["status"] == "ok"


# ------------------------------------------------------------------------------------------ prediction

def test_the_tagger_answers_in_fma_genres_before_its_tags(capsys):
    """The README's first command on a real Hip-Hop clip: the FMA genre line, then the Last.fm tags."""
    assert pre_trained_models.main(["--checkpoint", str(MUSICNN), str(STEREO_44K)]) == 0
    header, line = capsys.readouterr().out.splitlines()[:2]
    assert header.index("FMA genres") < header.index("tags")
    genres, tags = line.split("|")
    assert genres.split()[3] == "Hip-Hop" and "Hip-Hop" in tags
    assert pre_trained_models.main(["--checkpoint", str(MUSICNN), "--format", "json", str(STEREO_44K)]) == 0
    rec = json.loads(capsys.readouterr().out)[0]
    assert list(rec).index("genres") < list(rec).index("top_k") and rec["genres"]["top_k"][0]["genre"] == "Hip-Hop"
    assert "highest probability among its tags" in rec["genres"]["scored_by"]
    assert pre_trained_models.main(["--checkpoint", str(MUSICNN), "--format", "csv", str(STEREO_44K)]) == 0
    header = next(csv.reader(capsys.readouterr().out.splitlines()))
    assert header.index("genre_1") < header.index("tag_1")


def test_synthetic_checkpoints_warn_and_odd_audio_is_flagged(tiny, tmp_path, capsys):
    import numpy as np
    import soundfile as sf
    import torch
    state = torch.load(tiny["run"] / "best.pt", weights_only=True)
    assert state["data"] == {"dir": str(tiny["data"]), "kind": "fma", "name": "small", "synthetic": False,
                             "training_tracks": 3}
    state["data"]["synthetic"] = True
    torch.save(state, tmp_path / "synthetic.pt")
    sf.write(tmp_path / "quiet.wav", np.full(22050, 1e-5, np.float32), 22050)  # 1 s at -100 dBFS
    sf.write(tmp_path / "blip.wav", np.zeros(2205, np.float32), 22050)  # 0.1 s
    code = pre_trained_models.main(["--checkpoint", str(tmp_path / "synthetic.pt"), "--format", "json",
                                    str(tmp_path / "quiet.wav"), str(tmp_path / "blip.wav")])
    out, err = capsys.readouterr()
    assert code == 1 and "trained on the synthetic demo set: its genres mean nothing for real music" in err
    quiet, blip = json.loads(out)
    assert any("near-silent" in w for w in quiet["warnings"]) and any("padded" in w for w in quiet["warnings"])
    assert blip["status"] == "error" and "too short (0.10 s < 0.5 s minimum)" in blip["error"]
    assert pre_trained_models.main(["--checkpoint", str(tiny["run"] / "best.pt"), str(STEREO_44K)]) == 0
    assert "synthetic" not in capsys.readouterr().err


def test_a_manifest_shows_true_and_predicted_genres_and_their_accuracy(tiny, capsys):
    """What `make run` ends with: the run's test_files.csv predicted with its checkpoint."""
    manifest = tiny["run"] / "test_files.csv"
    assert pre_trained_models.main(["--checkpoint", str(tiny["run"] / "best.pt"), str(manifest)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "true" in lines[0] and "predicted" in lines[0] and lines[1].split()[3] == "Folk"
    assert lines[-1].startswith("accuracy of the 1 labelled files: ")


def test_results_table_skips_incomplete_runs_with_a_note(tiny, tmp_path, capsys):
    import results_table
    (tmp_path / "failed").mkdir()
    (tmp_path / "failed" / "config.json").write_text("{}")
    assert results_table.main([str(tiny["run"]), str(tmp_path / "failed")]) == 0
    out, err = capsys.readouterr()
    assert "note: skipped" in err and "failed" in err and "no results.json" in err
    assert len([line for line in out.splitlines() if line.startswith("| cnn1d")]) == 1
