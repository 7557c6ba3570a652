"""Your own music: a folder of class folders and a CSV manifest train, evaluate and predict like FMA
(collection.py); splits never put a group in two splits; a manifest's own split is used as given; bad
manifests are one error line each; musicnn's head alone trains on a collection; a changed collection is noticed.

The collections are the synthetic demo set in both layouts (demo_data.py --layout, the same clips) and the real
clips of tests/data arranged as class folders.

    pytest tests/test_collections.py
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import main
import pre_trained_models
from collection import DataError, open_collection, split_table
from conftest import DATA, NO_AUG, REAL_CLIPS, ROOT, run_main

MUSICNN = ROOT / "pretrained" / "musicnn_msd.pt"
SMALL = ["--model", "cnn1d", "--epochs", 1, "--batch-size", 4, "--crop-seconds", 2, "--eval-crops", 2, "--wandb",
         "disabled", "--bootstrap", 50, "--quiet", *NO_AUG]


@pytest.fixture(scope="module")
def both(tmp_path_factory):
    """One synthetic set (6 tracks per genre, 3 s) as class folders and as a manifest (artist groups, the
    artist-filtered split) in the same folder: the folders are links to the manifest's clips."""
    root = tmp_path_factory.mktemp("collections") / "set"
    subprocess.run([sys.executable, str(ROOT / "demo_data.py"), "--out", str(root / ".fma"), "--tracks-per-genre", "6",
                    "--seconds", "3", "--workers", "2"], check=True, capture_output=True, cwd=ROOT)
    from demo.layouts import export
    export(root, "folders")
    export(root, "manifest")
    return root


def run(data, out, *extra):
    r = run_main("--data-dir", data, "--out", out, *SMALL, *extra)
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def test_folders_and_manifest_of_the_same_clips_train_evaluate_and_predict(both, tmp_path):
    folders = run(both, tmp_path / "folders", "--split-fractions", "0.5,0.25,0.25")
    assert "(folders): split 0.5/0.25/0.25 (seed 0), stratified by label; no group column" in folders.stdout
    manifest = run(both / "manifest.csv", tmp_path / "manifest")
    assert "prepared 51 tracks: 48 ok, 3 failed" in folders.stdout and "prepared 51 tracks: 48 ok, 3 failed" in \
        manifest.stdout
    for name in ("folders", "manifest"):
        out = tmp_path / name
        results = json.loads((out / "results.json").read_text())
        assert results["classes"] == sorted(p.name for p in both.iterdir() if p.is_dir() and p.name[0] != ".")
        split = pd.read_csv(out / "split.csv", keep_default_na=False)
        assert set(split["split"]) == {"training", "validation", "test"} and len(split) == 51
        r = run_main("--evaluate-only", "--checkpoint", out / "best.pt", "--out", tmp_path / f"{name}-eval",
                     "--bootstrap", 0, cwd=tmp_path)  # its data and split from the checkpoint
        assert r.returncode == 0, r.stderr
        again = json.loads((tmp_path / f"{name}-eval" / "results.json").read_text())
        assert again["test"]["accuracy"] == results["test"]["accuracy"] and again["test_tracks"] == results[
            "test_tracks"]
        files = [row["path"] for row in csv.DictReader(open(out / "test_files.csv"))]
        r = subprocess.run([sys.executable, ROOT / "pre_trained_models.py", "--checkpoint", out / "best.pt",
                            "--format", "json", *files[:3]], capture_output=True, text=True)
        assert r.returncode == 0 and {rec["top_k"][0]["genre"] for rec in json.loads(r.stdout)} <= set(
            results["classes"]), r.stderr
        assert "trained on the synthetic demo set" in r.stderr  # demo_data.py's layouts are marked synthetic


def test_the_manifest_s_own_split_is_used_as_given(both, tmp_path):
    run(both / "manifest.csv", tmp_path / "m")
    given = pd.read_csv(both / "manifest.csv", keep_default_na=False)
    used = pd.read_csv(tmp_path / "m" / "split.csv", keep_default_na=False)
    assert [os.path.relpath(p, both) for p in used["path"]] == list(given["path"])
    assert list(used["split"]) == list(given["split"]) and list(used["group"]) == list(given["group"])


@pytest.mark.parametrize("seed", range(20))
def test_a_computed_split_never_puts_a_group_in_two_splits(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(60, 200))
    table = pd.DataFrame({"path": [f"{i}.mp3" for i in range(n)],
                          "label": rng.choice(["a", "b", "c", "d"], n), "split": "",
                          "group": [f"artist-{g}" for g in rng.integers(0, n // 3, n)]})
    table["split"] = split_table(table, (0.8, 0.1, 0.1), seed, "t")
    assert (table.groupby("group")["split"].nunique() == 1).all()
    assert set(table["split"]) == {"training", "validation", "test"}
    again = table.assign(split="")
    assert list(split_table(again, (0.8, 0.1, 0.1), seed, "t")) == list(table["split"])  # deterministic


def test_without_groups_the_split_is_stratified():
    table = pd.DataFrame({"path": [f"{i}.mp3" for i in range(100)], "label": ["a"] * 50 + ["b"] * 50, "split": "",
                          "group": ""})
    split = split_table(table, (0.8, 0.1, 0.1), 0, "t")
    for part, size in (("training", 40), ("validation", 5), ("test", 5)):
        assert ((split == part) & (table["label"] == "a")).sum() == size, part


# ------------------------------------------------------------------------------------------ bad manifests

def bad_manifests(tmp: Path) -> dict:
    """name -> (data_dir, extra options): collections that are refused."""
    clips = tmp / "clips"
    clips.mkdir()
    for i, clip in enumerate(REAL_CLIPS[:6]):
        shutil.copy(clip, clips / f"{i}.mp3")

    def manifest(name, text):
        (tmp / name).write_text(text)
        return tmp / name

    rows = "".join(f"clips/{i}.mp3,{'ab'[i % 2]},{'training' if i < 4 else 'test'},g{i}\n" for i in range(6))
    (tmp / "empty_class" / "rock").mkdir(parents=True)
    shutil.copy(REAL_CLIPS[0], tmp / "empty_class" / "rock" / "x.mp3")
    (tmp / "empty_class" / "jazz").mkdir()
    return {
        "no label column": manifest("a.csv", "path\nclips/0.mp3\n"),
        "no path column": manifest("b.csv", "file,label\nclips/0.mp3,a\n"),
        "unknown split": manifest("c.csv", "path,label,split\nclips/0.mp3,a,train\n"),
        "missing file": manifest("d.csv", "path,label\nclips/0.mp3,a\nclips/nothing.mp3,b\n"),
        "empty label": manifest("e.csv", "path,label\nclips/0.mp3,a\nclips/1.mp3,\n"),
        "listed twice": manifest("f.csv", "path,label\nclips/0.mp3,a\nclips/0.mp3,b\n"),
        "group in two splits": manifest("g.csv", "path,label,split,group\n" + rows.replace(",g5", ",g0")),
        "split on some rows": manifest("h.csv", "path,label,split\nclips/0.mp3,a,training\nclips/1.mp3,a,\n"),
        "class too small to split": manifest("i.csv", "path,label\n" + "".join(
            f"clips/{i}.mp3,{'a' if i else 'b'}\n" for i in range(6))),
        "no rows": manifest("j.csv", "path,label\n"),
        "class without training track": manifest("k.csv", "path,label,split\nclips/0.mp3,a,training\n"
                                                          "clips/1.mp3,b,test\n"),
        "manifest not found": tmp / "none.csv",
        "empty class folder": tmp / "empty_class",
    }


BAD = {"no label column": "no label column", "no path column": "no path column", "unknown split":
       "line 2: a split that is not training, validation or test ('train')", "missing file": "line 3:",
       "empty label": "line 3: an empty label", "listed twice": "line 3:", "group in two splits": "group 'g0' is in",
       "split on some rows": "line 3: no split, where other rows have one", "class too small to split":
       "class 'b' has 1 track(s)", "no rows": "no rows under its header", "class without training track":
       "class 'b' has no training track", "manifest not found": "manifest", "empty class folder":
       "a class folder without audio files"}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_collection_is_one_error_line_exit_2_and_nothing_created(case, tmp_path, capsys, monkeypatch):
    data = bad_manifests(tmp_path)[case]
    monkeypatch.chdir(tmp_path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    assert main.main(["--data-dir", str(data), *map(str, SMALL)]) == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and err.startswith("error: ") and BAD[case] in err and "Traceback" not in err, err
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before  # no cache, no run folder


def test_fma_only_options_are_refused_on_a_collection(both, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main.main(["--data-dir", str(both), "--subset", "medium", *map(str, SMALL)]) == 2
    assert "--subset is FMA's" in capsys.readouterr().err and not list(tmp_path.iterdir())


# ------------------------------------------------------------------------------------------ musicnn's head

def test_frozen_musicnn_trains_its_head_on_a_collection_and_predicts_its_labels(both, tmp_path):
    out = tmp_path / "frozen"
    r = run_main("--config", ROOT / "configs" / "musicnn_frozen.yaml", "--data-dir", both / "manifest.csv", "--out",
                 out, "--epochs", 1, "--batch-size", 8, "--eval-crops", 2, "--wandb", "disabled", "--bootstrap", 0,
                 "--quiet")
    assert r.returncode == 0, r.stdout + r.stderr
    trained, pretrained = torch.load(out / "best.pt", weights_only=True), torch.load(MUSICNN, weights_only=True)
    backbone = [k for k in pretrained["model"] if not k.startswith("head.")]
    assert backbone and all(torch.equal(trained["model"][k], pretrained["model"][k]) for k in backbone)
    assert trained["model"]["head.weight"].shape[0] == 8 and trained["classes"] == json.loads(
        (out / "results.json").read_text())["classes"]
    code = pre_trained_models.main(["--checkpoint", str(out / "best.pt"), "--format", "json", str(REAL_CLIPS[0])])
    assert code == 0


def test_musicnn_scores_real_clips_arranged_as_class_folders_zero_shot(tmp_path, capsys):
    """tests/data's real clips in class folders of their FMA genres, scored by the shipped tagger: intervals,
    the confusion matrix, and the genres no tag reaches."""
    labels = pd.read_csv(DATA / "ATTRIBUTION.csv").set_index("file")["genre_top"]
    for file, genre in labels.items():
        (tmp_path / "real" / genre.lower()).mkdir(parents=True, exist_ok=True)  # 'hip-hop': matched by name
        shutil.copy(DATA / file, tmp_path / "real" / genre.lower() / Path(file).name)
    code = pre_trained_models.main(["--checkpoint", str(MUSICNN), "--data-dir", str(tmp_path / "real"),
                                    "--format", "json", "--confusion", str(tmp_path / "cm.png")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["zero_shot"] and report["kind"] == "folders"
    assert report["predicted"] == 7 and report["unmapped_genres"] == ["international"]  # no tag reaches it
    assert report["ci"]["accuracy"][0] <= report["accuracy"] <= report["ci"]["accuracy"][1]
    assert np.array(report["confusion_matrix"]).sum() == 7
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"


# ------------------------------------------------------------------------------------------ changes on disk

def test_a_changed_collection_is_noticed_by_the_cache(tmp_path):
    from cache import prepare_cache
    root = tmp_path / "songs"
    for i, clip in enumerate(REAL_CLIPS[:6]):
        (root / "ab"[i % 2]).mkdir(parents=True, exist_ok=True)
        shutil.copy(clip, root / "ab"[i % 2] / f"{i}.mp3")
    logs = []
    build = lambda: prepare_cache(open_collection(root, splits=False), progress=False, log=logs.append)  # noqa: E731
    first = build()
    assert first.summary() == "prepared 6 tracks: 6 ok, 0 failed" and (root / ".cache").is_dir()
    before = first.read(0).copy()  # a/0.mp3's features
    logs.clear()
    shutil.copy(REAL_CLIPS[5], root / "a" / "0.mp3")  # replaced
    second = build()
    assert any("1 changed" in line and "re-decoded 1" in line for line in logs), logs
    assert not np.array_equal(second.read(0), before)
    logs.clear()
    shutil.copy(REAL_CLIPS[0], root / "b" / "new.mp3")  # added
    (root / "a" / "2.mp3").unlink()  # removed
    third = build()
    paths = set(third.collection.table["path"])
    assert str(root / "b" / "new.mp3") in paths and str(root / "a" / "2.mp3") not in paths
    assert any("building log-mel cache for 6 of 6 tracks" in line for line in logs), logs  # a new track list
    with pytest.raises(DataError, match="a class folder without audio files"):
        for f in (root / "b").iterdir():
            f.unlink()
        open_collection(root)
