"""Uncertainty: bootstrap confidence intervals over test tracks (metrics.py), paired tests
between two runs, `main.py --seeds` with aggregate.json, and results_table.py's intervals, mean ± std
and --compare."""
import csv
import json
import shutil

import numpy as np
import pytest
from scipy.stats import bootstrap
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

import main
import test
import results_table
from conftest import run_main
from metrics import (MultilabelScores, _resamples, accuracy, bootstrap_ci, bootstrap_metrics, macro_f1_score,
                     mcnemar_exact, multilabel_metrics, paired_bootstrap_diff)
from test_train import demo_args


def predictions(n, right=0.75, classes=8, seed=0):
    """n tracks of integer labels and predictions, a fraction `right` of them correct."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    wrong = rng.random(n) >= right
    return y, np.where(wrong, (y + rng.integers(1, classes, n)) % classes, y)


# ------------------------------------------------------------------------------------- bootstrap

def test_bootstrap_matches_scipy_and_a_hand_computed_percentile_bootstrap():
    y, pred = predictions(40)
    f1 = lambda a, b: macro_f1_score(a, b, 8)  # noqa: E731
    for metric in (accuracy, f1):
        ours = bootstrap_ci(y, pred, metric, n=500, seed=3, level=0.9)
        ref = bootstrap((y, pred), metric, paired=True, vectorized=False, method="percentile", n_resamples=500,
                        confidence_level=0.9, rng=np.random.default_rng(3)).confidence_interval
        assert (ours["low"], ours["high"]) == pytest.approx((ref.low, ref.high), abs=1e-12)
        assert ours["n_boot"] == 500 and ours["level"] == 0.9
    # by hand: resample track indices, the 5th and 95th percentiles of the resampled accuracy
    rng = np.random.default_rng(3)
    values = [np.mean(y[i] == pred[i]) for i in rng.integers(0, len(y), (500, len(y)))]
    ours = bootstrap_ci(y, pred, accuracy, n=500, seed=3, level=0.9)
    assert [ours["low"], ours["high"]] == pytest.approx(np.percentile(values, [5, 95]))


def test_interval_contains_the_estimate_narrows_with_more_tracks_and_is_reproducible():
    widths = []
    for n in (48, 800):
        y, pred = predictions(n)
        ci = bootstrap_ci(y, pred, accuracy)
        assert ci["low"] <= accuracy(y, pred) <= ci["high"]
        widths.append(ci["high"] - ci["low"])
        assert bootstrap_ci(y, pred, accuracy) == ci  # same seed, same interval
        assert bootstrap_ci(y, pred, accuracy, seed=1) != ci
    assert widths[1] < widths[0] / 2  # about 1/sqrt(n): 4x narrower for 16x the tracks
    assert 0.15 < widths[0] < 0.35  # 48 tracks at 75%: about +-12 points
    assert bootstrap_ci([], [], accuracy) == {"low": None, "high": None, "n_boot": 0, "level": 0.95}


def test_single_label_metrics_equal_sklearn():
    rng = np.random.default_rng(0)
    for _ in range(20):
        y, pred = rng.integers(0, 6, 25), rng.integers(0, 6, 25)  # classes 6 and 7 never occur: F1 0
        assert macro_f1_score(y, pred, 8) == pytest.approx(f1_score(y, pred, labels=range(8), average="macro",
                                                                    zero_division=0))
    y, probs = rng.integers(0, 8, 30), rng.random((30, 8))
    ci = bootstrap_metrics(y, probs, n=200)
    assert set(ci) == {"accuracy", "macro_f1", "level", "resamples"} and ci["resamples"] == 200
    assert ci["accuracy"] == [bootstrap_ci(y, probs.argmax(1), accuracy, n=200)[k] for k in ("low", "high")]


def multilabel_data(seed, n=30, genres=12):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, genres)) < rng.random(genres) * 0.4).astype(np.uint8)
    y[:, 0] = 0
    y[0, 0] = 1  # a genre with a single positive: most resamples leave it unscored
    return y, np.round(rng.random((n, genres)), 1)  # rounded: tied scores


def test_multilabel_metrics_equal_sklearn_and_resampling():
    for seed in range(10):
        y, p = multilabel_data(seed)
        ours, ref = MultilabelScores(y, p, 0.3)(), multilabel_metrics(y, p, [str(j) for j in range(y.shape[1])], 0.3)
        for key in MultilabelScores.METRICS:
            assert ours[key] == pytest.approx(ref[key]), key
        keep = (y.sum(0) > 0) & (y.sum(0) < len(y))
        assert ours["macro_roc_auc"] == pytest.approx(np.mean([roc_auc_score(y[:, j], p[:, j])
                                                               for j in np.flatnonzero(keep)]))
        assert ours["macro_ap"] == pytest.approx(np.mean([average_precision_score(y[:, j], p[:, j])
                                                          for j in np.flatnonzero(keep)]))
        # weighting the clips by how often a resample drew them == scoring the resampled clips; the F1
        # scores keep the genres of the whole sample (a resample may draw none of a rare genre's positives)
        scores, scored = MultilabelScores(y, p, 0.3), np.flatnonzero(keep)
        for i in _resamples(len(y), 5, seed):
            weighted, resampled = scores(np.bincount(i, minlength=len(y))), MultilabelScores(y[i], p[i], 0.3)()
            for key in ("macro_roc_auc", "macro_ap"):
                assert weighted[key] == pytest.approx(resampled[key], nan_ok=True)
            for average in ("micro", "macro"):
                assert weighted[f"{average}_f1"] == pytest.approx(f1_score(
                    y[i][:, scored], (p[i] >= 0.3)[:, scored], average=average, zero_division=0))


def test_multilabel_bootstrap_skips_undefined_resamples():
    y, p = multilabel_data(0)
    ci = bootstrap_metrics(y, p, multilabel=True, threshold=0.3, n=300)
    point = MultilabelScores(y, p, 0.3)()
    for key in MultilabelScores.METRICS:
        low, high = ci[key]
        assert low <= point[key] <= high, key
    only = np.zeros((20, 3), np.uint8)
    only[0, 0] = 1  # one positive of one genre: a resample without track 0 scores no genre at all
    ci = bootstrap_metrics(only, np.random.default_rng(0).random((20, 3)), multilabel=True, n=300)
    assert ci["macro_roc_auc"][0] is not None  # from the resamples that drew track 0 (64% of them)
    assert bootstrap_metrics(np.zeros((20, 3)), np.ones((20, 3)), multilabel=True, n=50)["macro_ap"] == [None, None]


# ------------------------------------------------------------------------------------- paired tests

def test_mcnemar_exact_known_values():
    a = np.array([1] * 1 + [0] * 9 + [1] * 30, bool)  # 1 track only A got right, 9 only B, 30 both
    b = np.array([0] * 1 + [1] * 9 + [1] * 30, bool)
    test = mcnemar_exact(a, b)
    assert test["a_only"] == 1 and test["b_only"] == 9
    assert test["p_value"] == pytest.approx(0.021484375)  # 2 * (1 + 10) / 2**10
    assert mcnemar_exact(a, a)["p_value"] == 1.0


def test_paired_bootstrap_of_the_accuracy_difference():
    y, pa = predictions(200, right=0.8, seed=1)
    pb = np.where(np.random.default_rng(2).random(200) < 0.15, (pa + 1) % 8, pa)  # B breaks 15% of A's
    ca, cb = pa == y, pb == y
    ci = paired_bootstrap_diff(ca, cb)
    assert ci["low"] <= ca.mean() - cb.mean() <= ci["high"] and ci["low"] > 0
    assert paired_bootstrap_diff(ca, ca)["low"] == paired_bootstrap_diff(ca, ca)["high"] == 0


# ------------------------------------------------------------------------------------- main.py --seeds

@pytest.fixture(scope="module")
def seeds_run(demo, tmp_path_factory):
    """--seeds 0,1: two one-epoch CNN1D runs on the demo set, and aggregate.json."""
    out = tmp_path_factory.mktemp("seeds") / "cnn1d"
    r = run_main(*demo_args(demo, out, "--epochs", 1, "--wandb", "disabled", "--seeds", "0,1"))
    assert r.returncode == 0, r.stdout + r.stderr
    return out, r.stdout


def test_single_run_results_have_intervals_and_predictions(seeds_run):
    out, stdout = seeds_run
    run = out / "seed-0"  # each seed is exactly a single run with --seed K --out OUT/seed-K
    res = json.loads((run / "results.json").read_text())
    test, ci = res["test"], res["test"]["ci"]
    assert ci["level"] == 0.95 and ci["resamples"] == 1000
    for key in ("accuracy", "macro_f1"):
        assert ci[key][0] <= test[key] <= ci[key][1], key
    assert f"test: accuracy {test['accuracy']:.4f} [{ci['accuracy'][0]:.3f}, {ci['accuracy'][1]:.3f}]" in stdout
    with open(run / "test_predictions.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == res["test_tracks"] == len((run / "test_files.csv").read_text().splitlines()) - 1
    assert list(rows[0]) == ["track_id", "true", "predicted", *(f"p_{c}" for c in res["classes"])]
    assert np.mean([r["true"] == r["predicted"] for r in rows]) == test["accuracy"]
    probs = np.array([[float(r[f"p_{c}"]) for c in res["classes"]] for r in rows])
    assert np.allclose(probs.sum(1), 1, atol=1e-4)
    assert [res["classes"][i] for i in probs.argmax(1)] == [r["predicted"] for r in rows]


def test_seeds_write_one_run_per_seed_and_the_aggregate(seeds_run):
    out, stdout = seeds_run
    agg = json.loads((out / "aggregate.json").read_text())
    assert agg["seeds"] == [0, 1] and agg["target"] == "top" and agg["metrics"] == ["accuracy", "macro_f1"]
    for seed, entry in zip((0, 1), agg["per_seed"]):
        res = json.loads((out / f"seed-{seed}" / "results.json").read_text())
        config = json.loads((out / f"seed-{seed}" / "config.json").read_text())["run"]
        assert config["seed"] == seed and config["out"] == str(out / f"seed-{seed}") and config["seeds"] == ""
        assert entry["seed"] == seed and entry["accuracy"] == res["test"]["accuracy"]
        assert entry["ci"] == res["test"]["ci"]
    for key in ("accuracy", "macro_f1"):
        values = [e[key] for e in agg["per_seed"]]
        assert agg["mean"][key] == pytest.approx(np.mean(values))
        assert agg["std"][key] == pytest.approx(np.std(values, ddof=1))
        assert agg["range"][key] == [min(values), max(values)]
    assert f"2 seeds (0,1): test accuracy {agg['mean']['accuracy']:.4f} ± {agg['std']['accuracy']:.4f}" in stdout


def test_seeds_rerun_skips_finished_seeds(seeds_run, demo, capsys):
    out, _ = seeds_run
    before = (out / "aggregate.json").read_text()
    assert main.main(list(map(str, demo_args(demo, out, "--epochs", 1, "--wandb", "disabled", "--seeds", "0,1")))) == 0
    stdout = capsys.readouterr().out
    assert stdout.count("exists: skipped") == 2 and "epoch " not in stdout
    assert (out / "aggregate.json").read_text() == before
    # another configuration into the same directory is refused, not mixed in
    code = main.main(list(map(str, demo_args(demo, out, "--epochs", 2, "--wandb", "disabled", "--seeds", "0,1"))))
    assert code == 2 and "seed-0 was trained with other options: epochs 1 (now 2)" in capsys.readouterr().err


def test_seeds_rerun_resumes_a_seed_killed_before_its_report(seeds_run, demo, tmp_path, capsys):
    out, _ = seeds_run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    (copy / "seed-1" / "results.json").unlink()  # as if killed after its last epoch, before the test report
    (copy / "aggregate.json").unlink()
    assert main.main(list(map(str, demo_args(demo, copy, "--epochs", 1, "--wandb", "disabled", "--seeds", "0,1")))) == 0
    stdout = capsys.readouterr().out
    assert "seed 0: " in stdout and "exists: skipped" in stdout and "seed 1: continuing from" in stdout
    again = json.loads((copy / "aggregate.json").read_text())
    assert again["mean"] == json.loads((out / "aggregate.json").read_text())["mean"]


@pytest.mark.parametrize("extra, message", [(["--resume", "runs/x"], "--resume"),
                                            (["--evaluate-only", "--checkpoint", "x.pt"], "--evaluate-only"),
                                            ([], "comma-separated integers")])
def test_seeds_bad_combinations_fail_clearly(extra, message, capsys):
    assert main.main(["--seeds", "0,1" if extra else "0,x", *extra]) == 2
    assert message in capsys.readouterr().err


def test_results_table_prints_mean_std_for_seeds_and_intervals_for_single_runs(seeds_run, capsys):
    out, _ = seeds_run
    agg = json.loads((out / "aggregate.json").read_text())
    single = json.loads((out / "seed-0" / "results.json").read_text())["test"]
    assert results_table.main([str(out), str(out / "seed-0")]) == 0
    lines = capsys.readouterr().out.splitlines()
    seeds_row, single_row = lines[2], lines[3]
    mean, std = agg["mean"]["accuracy"], agg["std"]["accuracy"]
    assert f"| {mean:.1%} ± {std * 100:.1f} (2 seeds) |" in seeds_row and "--seeds 0,1`" in seeds_row
    assert "--seed " not in seeds_row and "min per seed" in seeds_row
    low, high = single["ci"]["accuracy"]
    assert f"| {single['accuracy']:.1%} [{low * 100:.1f}, {high * 100:.1f}] |" in single_row
    assert "±" not in single_row


def test_compare_prints_mcnemar_and_the_paired_interval(seeds_run, capsys):
    out, _ = seeds_run
    assert results_table.main(["--compare", str(out / "seed-0"), str(out / "seed-1"), "--bootstrap", "200"]) == 0
    line = capsys.readouterr().out.strip()
    assert "shared test tracks" in line and "95% paired bootstrap [" in line and "McNemar exact p = " in line
    assert results_table.main(["--compare", str(out), str(out)]) == 0  # two --seeds runs: seed by seed
    lines = capsys.readouterr().out.strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["seed 0", "seed 1", "over 2 seeds"]
    assert "A - B +0.0 points, 95% paired bootstrap [+0.0, +0.0]; McNemar exact p = 1 " in lines[0]
    with pytest.raises(SystemExit) as e:
        results_table.main(["--compare", str(out), str(out / "seed-0")])
    assert e.value.code == 2 and "two --seeds directories" in capsys.readouterr().err


def test_multilabel_predictions_csv(tmp_path):
    metrics = {"y_true": np.array([[1, 0, 1], [0, 1, 0]]), "probs": np.array([[0.9, 0.2, 0.6], [0.1, 0.4, 0.3]]),
               "threshold": 0.35}
    test.write_predictions(tmp_path / "p.csv", [2, 5], metrics, ["Rock", "Punk", "Pop"], multilabel=True)
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["track_id"], r["true"], r["predicted"]) for r in rows] == [("2", "Rock|Pop", "Rock|Pop"),
                                                                         ("5", "Punk", "Punk")]
    assert rows[0]["p_Rock"] == "0.900000"
