"""Ensembles: `--checkpoint` given several times to `main.py --evaluate-only` and to pre_trained_models.py.

Two one-epoch CNN1D checkpoints on the session demo set, one on 128 mel bands and one on 64 (another
log-mel cache, other normalisation), so that every member must be evaluated on its own features.
The ensemble's probabilities are the mean of the members' own single-checkpoint ones; results.json lists
each member's metrics and intervals beside the ensemble's; a pair whose probabilities mean different
things (other classes; a tagger and a genre classifier) is refused with exit status 2, naming the difference.
"""
import csv
import json

import numpy as np
import pytest
import torch

import main
import test
import pre_trained_models as ptm
from conftest import demo_args, run_main

MEMBERS = {"a": ("--seed", 0), "mel64": ("--seed", 1, "--n-mels", 64)}


@pytest.fixture(scope="module")
def members(demo, tmp_path_factory):
    """{name: best.pt} of the two one-epoch members."""
    root = tmp_path_factory.mktemp("ensemble")
    for name, extra in MEMBERS.items():
        r = run_main(*demo_args(demo, root / name, "--epochs", 1, "--eval-crops", 2, "--wandb", "disabled", *extra))
        assert r.returncode == 0, r.stdout + r.stderr
    return {name: root / name / "best.pt" for name in MEMBERS}


def evaluate_only(demo, out, *checkpoints) -> int:
    """main.py --evaluate-only of one checkpoint, or of the ensemble of several (--checkpoint repeated)."""
    return main.main(["--evaluate-only", *[a for c in checkpoints for a in ("--checkpoint", str(c))],
                      "--data-dir", str(demo / "data"),
                      "--cache-dir", str(demo / "cache"), "--out", str(out), "--wandb", "disabled"])


def probabilities(run_dir) -> dict[int, np.ndarray]:
    """{track_id: p_CLASS values} of a test_predictions.csv."""
    with open(run_dir / "test_predictions.csv", newline="") as f:
        return {int(r["track_id"]): np.array([float(v) for k, v in r.items() if k.startswith("p_")])
                for r in csv.DictReader(f)}


def test_ensemble_is_the_mean_of_its_members(members, demo, tmp_path, capsys):
    singles = {}
    for name, ckpt in members.items():
        assert evaluate_only(demo, tmp_path / name, ckpt) == 0
        singles[name] = json.loads((tmp_path / name / "results.json").read_text())
        assert "members" not in singles[name] and singles[name]["model"] == "cnn1d"  # one checkpoint: as before
    assert evaluate_only(demo, tmp_path / "ens", members["a"], members["mel64"]) == 0
    stdout = capsys.readouterr().out
    res = json.loads((tmp_path / "ens" / "results.json").read_text())
    assert res["model"] == "ensemble" and [m["checkpoint"] for m in res["members"]] == list(map(str, members.values()))
    assert [m["audio"]["n_mels"] for m in res["members"]] == [128, 64]  # each member with its own features
    assert res["test_tracks"] == singles["a"]["test_tracks"] > 0 and res["classes"] == singles["a"]["classes"]
    assert {"accuracy", "macro_f1", "loss", "ci"} <= set(res["test"])
    assert set(res["test"]["ci"]) >= {"accuracy", "macro_f1", "level", "resamples"}
    for member, single in zip(res["members"], singles.values()):  # on the same tracks: each member's own report
        assert member["left_out_tracks"] == 0 and member["test"] == single["test"]
        assert f"member {member['checkpoint']}: accuracy {single['test']['accuracy']:.4f}" in stdout
    assert f"test: accuracy {res['test']['accuracy']:.4f}" in stdout and "mean of 2 members" in stdout

    ensemble, own = probabilities(tmp_path / "ens"), [probabilities(tmp_path / n) for n in members]
    assert list(ensemble) == list(own[0])
    for tid, p in ensemble.items():
        assert p == pytest.approx(np.mean([o[tid] for o in own], axis=0), abs=2e-6)
    assert (tmp_path / "ens" / "test_files.csv").read_text() == (tmp_path / "a" / "test_files.csv").read_text()

    # prediction: two members (128 and 64 mels) on two files of the test split
    files = [row["path"] for row in csv.DictReader(open(tmp_path / "a" / "test_files.csv"))][:2]
    assert ptm.main(["--checkpoint", str(members["a"]), "--checkpoint", str(members["mel64"]), "--format", "json",
                     "--top-k", "2", *files]) == 0
    out, err = capsys.readouterr()
    recs = json.loads(out)
    assert "with an ensemble of 2 checkpoints" in err and [r["path"] for r in recs] == files
    assert ptm.main(["--checkpoint", str(members["a"]), "--format", "json", *files]) == 0
    alone = json.loads(capsys.readouterr().out)
    pair = [probabilities(tmp_path / n) for n in ("a", "mel64")]
    for rec, single in zip(recs, alone):
        assert [m["checkpoint"] for m in rec["members"]] == [str(members["a"]), str(members["mel64"])]
        assert rec["members"][0]["probabilities"] == single["probabilities"]  # a member predicts as it alone does
        assert rec["windows"] == sum(m["windows"] for m in rec["members"]) and len(rec["top_k"]) == 2
        p = np.array(list(rec["probabilities"].values()))
        assert p == pytest.approx(np.mean([list(m["probabilities"].values()) for m in rec["members"]], axis=0))
        tid = int(rec["path"].rsplit("/", 1)[1].split(".")[0])  # the song's features are the cache's: same mean
        assert p == pytest.approx(np.mean([o[tid] for o in pair], axis=0), abs=1e-4)


def other_classes(state: dict) -> dict:
    state["classes"] = state["classes"][:-1] + ["Zzz"]
    return state


def tagger(state: dict) -> dict:
    state["target"] = "all"  # multi-label without FMA genres: musicnn's kind
    return state


@pytest.mark.parametrize("rewrite, message", [
    (other_classes, "members disagree on their classes: {a} has [{last}], {bad} has [Zzz]"),
    (tagger, "members disagree on what they predict: {a} is a genre classifier (--target top), {bad} is a "
             "tagger (8 tags, no FMA genres)")])
def test_mismatched_members_are_refused(members, demo, tmp_path, capsys, rewrite, message):
    state = torch.load(members["a"], weights_only=True)
    bad = tmp_path / "bad.pt"
    expected = message.format(a=members["a"], bad=bad, last=state["classes"][-1])
    torch.save(rewrite(state), bad)
    assert evaluate_only(demo, tmp_path / "e", members["a"], bad) == 2
    assert expected in capsys.readouterr().err and not (tmp_path / "e").exists()
    assert ptm.main(["--checkpoint", str(members["a"]), "--checkpoint", str(bad), str(tmp_path / "x.mp3")]) == 2
    assert expected in capsys.readouterr().err


def test_single_checkpoint_options_refuse_an_ensemble(members, capsys):
    code = ptm.main(["--checkpoint", str(members["a"]), "--checkpoint", str(members["mel64"]), "--segments", "x.mp3"])
    assert code == 2 and "--segments: one --checkpoint only" in capsys.readouterr().err


def test_checkpoint_takes_one_path_and_repeats(tmp_path):
    """--checkpoint A --checkpoint B in both tools; `--checkpoint A B` is a mistake, not a silent single model."""
    from config import ConfigError, load_config
    assert load_config(["--checkpoint", "a", "--checkpoint", "c"])[0].checkpoint == ["a", "c"]
    with pytest.raises(ConfigError, match="--checkpoint takes one path; for an ensemble repeat the option"):
        load_config(["--checkpoint", "a", "b"])
    preset = tmp_path / "p.yaml"
    for text, paths in (("checkpoint: [a.pt, b.pt]\n", ["a.pt", "b.pt"]), ("checkpoint: a.pt\n", ["a.pt"])):
        preset.write_text(text)
        assert load_config(["--config", str(preset)])[0].checkpoint == paths
        assert load_config(["--config", str(preset), "--checkpoint", "c"])[0].checkpoint == ["c"]


def test_members_are_scored_on_the_tracks_they_share(capsys):
    members = [{}, {}]
    common = test.shared_tracks(["a.pt", "b.pt"], [np.array([5, 2, 9]), np.array([9, 5])], members)
    assert common.tolist() == [5, 9] and [m["left_out_tracks"] for m in members] == [1, 0]
    assert "(a.pt: 1); 2 tracks remain" in capsys.readouterr().out
