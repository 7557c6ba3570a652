"""tune.py: Optuna search over main.train. The acceptance test (a study killed with -9 after its first
trial, continued by two workers at once on its SQLite storage, ends with --n-trials finished trials and a best
preset that main.py trains), pruning (checkpoints deleted, W&B run closed and grouped by study), the journal
storage's heartbeat, the space file's checks, and bad input (exit 2, nothing written). Trials are tiny: CNN1D,
2 epochs on the session's demo set."""
import json
import signal
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import optuna
import pytest
import yaml

import tune
from conftest import NO_AUG, ROOT, run_main

pytestmark = pytest.mark.slow  # minutes of work: pytest -m "not slow" leaves it out

TINY = ["--batch-size", 8, "--crop-seconds", 2, "--eval-crops", 2, "--wandb", "disabled", "--bootstrap", 0,
        "--threads", 1, "--quiet", *NO_AUG]
SPACE = """\
model: {type: categorical, choices: [cnn1d, crnn]}   # --model cnn1d on the command line fixes it
lr: {type: float, low: 1e-3, high: 1e-2, log: true}
dropout: {type: float, low: 0.0, high: 0.5}
scheduler: plateau
epochs: 2
"""


def write_space(tmp_path, text=SPACE, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def tune_args(demo, out, space, *extra):
    return [str(a) for a in ("--space", space, "--out", out, "--data-dir", demo / "data", "--cache-dir",
                             demo / "cache", "--model", "cnn1d", *TINY, *extra)]


def start_tune(args, log):
    return subprocess.Popen([sys.executable, str(ROOT / "tune.py"), *args], cwd=ROOT, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def states(db) -> list[str]:
    """The trials' states in an Optuna SQLite storage, read-only ([] until the study has its tables)."""
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as con:
            return [s for (s,) in con.execute("SELECT state FROM trials ORDER BY number")]
    except sqlite3.OperationalError:
        return []


def test_killed_study_continues_with_two_workers_and_its_best_preset_trains(demo, tmp_path):
    out, db = tmp_path / "study", tmp_path / "study" / "study.db"
    args = tune_args(demo, out, write_space(tmp_path), "--n-trials", 3, "--heartbeat", 2)
    first = start_tune(args, tmp_path / "first.log")
    deadline = time.monotonic() + 180
    while not (states(db).count("COMPLETE") == 1 and "RUNNING" in states(db)):  # trial 1 under way
        assert first.poll() is None and time.monotonic() < deadline, (tmp_path / "first.log").read_text()
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert states(db) == ["COMPLETE", "RUNNING"]  # what kill -9 leaves: trial 1 RUNNING forever

    workers = [start_tune(args, tmp_path / f"worker{i}.log") for i in (1, 2)]  # two at once, same storage
    logs = []
    for i, w in enumerate(workers, 1):
        assert w.wait(timeout=240) == 0, (tmp_path / f"worker{i}.log").read_text()
        logs.append((tmp_path / f"worker{i}.log").read_text())
    final = states(db)
    assert sum(s in ("COMPLETE", "PRUNED") for s in final) == 3 and "RUNNING" not in final, final
    assert final[1] == "FAIL"  # the killed worker's trial: failed, not counted, run again by a live worker
    assert any("trial 1: no heartbeat" in log for log in logs)
    assert all("model: fixed to 'cnn1d' by the command line" in log for log in logs)
    for t in optuna.load_study(study_name="space", storage=f"sqlite:///{db}").trials:
        run_dir = out / f"trial-{t.number}"
        if t.state.name == "PRUNED":
            assert not list(run_dir.glob("*.pt"))
        if t.state.name == "COMPLETE":
            assert t.value == json.loads((run_dir / "results.json").read_text())["val_accuracy"]
            assert t.intermediate_values.keys() == {1, 2}  # every epoch reported
    for name in ("best.yaml", "trials.csv", "history.png", "parallel_coordinate.png", "importances.png"):
        assert (out / name).stat().st_size > 0, name
    best = yaml.safe_load((out / "best.yaml").read_text())
    assert best["model"] == "cnn1d" and best["epochs"] == 2 and best["scheduler"] == "plateau"
    assert 1e-3 <= best["lr"] <= 1e-2 and "out" not in best and "cache_dir" not in best
    assert best["data_dir"] == str((demo / "data").resolve())  # the study's data, recorded

    r = run_main("--config", out / "best.yaml", "--epochs", 1, "--cache-dir", demo / "cache", "--out",
                 tmp_path / "best-run", "--wandb", "disabled", "--bootstrap", 0, cwd=tmp_path)  # no --data-dir
    assert r.returncode == 0, r.stdout + r.stderr
    assert "demo set" not in r.stdout
    assert json.loads((tmp_path / "best-run" / "config.json").read_text())["run"]["data_dir"] == best["data_dir"]
    assert json.loads((tmp_path / "best-run" / "config.json").read_text())["run"]["lr"] == best["lr"]

    # the same study with another space is refused, and nothing changes
    other = write_space(tmp_path, SPACE.replace("epochs: 2", "epochs: 3"), "other.yaml")
    assert tune.main(tune_args(demo, out, other, "--name", "space", "--n-trials", 3)) == 2
    assert states(db) == final


PRUNE = """\
import json, sys
import optuna, wandb
import tune
seen = []
def always(trial):  # the pruner's verdict, and the W&B run it reports from
    seen.append(wandb.run.group if wandb.run else None)
    return True
optuna.trial.Trial.should_prune = always
code = tune.main(sys.argv[1:])
print("RESULT", json.dumps({"code": code, "seen": seen, "closed": wandb.run is None}))
"""


def test_pruned_trial_loses_its_checkpoints_and_closes_its_grouped_wandb_run(demo, tmp_path):
    out, journal = tmp_path / "study", tmp_path / "study.log"
    args = tune_args(demo, out, write_space(tmp_path), "--n-trials", 1, "--wandb", "offline", "--prune-after", 1,
                     "--storage", f"journal:{journal}", "--name", "pruned")
    r = subprocess.run([sys.executable, "-c", PRUNE, *args], cwd=ROOT, capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout + r.stderr
    result = json.loads(r.stdout.split("RESULT ")[-1])
    assert result == {"code": 0, "seen": ["pruned"], "closed": True}  # stopped after epoch 1, W&B finished
    trial = optuna.load_study(study_name="pruned", storage=tune.open_storage(str(journal))).trials[0]
    assert trial.state.name == "PRUNED" and list(trial.intermediate_values) == [1]
    run_dir = out / "trial-0"
    assert not list(run_dir.glob("*.pt")) and (run_dir / "metrics.csv").read_text().count("\n") == 2
    assert list((run_dir / "wandb").glob("offline-run-*"))
    assert not (out / "best.yaml").exists() and "no trial completed yet" in r.stdout
    assert (out / "trials.csv").is_file() and not (out / "study.db").exists()  # the journal holds the study


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize("kind", ["journal", "sqlite"])
def test_storage_fails_only_the_trials_whose_heartbeat_stopped(kind, tmp_path):
    """A worker killed after its last beat, or between creating its trial and the first beat: both trials are
    stale after 2 heartbeats; a live one is not."""
    spec = f"journal:{tmp_path / 'j.log'}" if kind == "journal" else f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=tune.open_storage(spec), study_name="s")
    dead, never, live = study.ask(), study.ask(), study.ask()
    with tune.Heartbeat(dead, 1):  # one beat, then the worker is gone
        pass
    time.sleep(2.2)
    with tune.Heartbeat(live, 1):
        tune.fail_stale(study, heartbeat=1)
    assert [t.state.name for t in study.trials] == ["FAIL", "FAIL", "RUNNING"]
    assert "heartbeat" in study.trials[0].user_attrs and "heartbeat" not in study.trials[1].user_attrs


def test_a_trial_beyond_n_trials_is_not_run():
    """Two workers asking at once can create one trial too many: the later one is failed before training."""
    study = optuna.create_study()
    done, running, extra = study.ask(), study.ask(), study.ask()
    study.tell(done, 0.5)
    objective = tune.make_objective(SimpleNamespace(n_trials=2), *[None] * 7, state={"failures": 0})
    with pytest.raises(tune.Surplus):
        objective(extra)


def test_default_space_searches_every_kind_of_parameter():
    search, fixed = tune.load_space(str(ROOT / "configs" / "search_space.yaml"))
    assert set(search) == {"lr", "weight_decay", "batch_size", "crop_seconds", "augment", "eq_db", "contrast",
                           "mixup", "width", "dropout", "scheduler", "model"}
    assert search["lr"] == {"type": "float", "low": 3e-4, "high": 1e-2, "log": True, "step": None}
    assert fixed["epochs"] > 0


@pytest.mark.parametrize("text, message", [
    ("learning_rate: {type: float, low: 1.0e-4, high: 1.0e-2}", "unknown parameter 'learning_rate'"),
    ("lr: {type: float, low: 1.0e-2, high: 1.0e-4}", "lr: empty range: low 0.01 must be below high 0.0001"),
    ("batch_size: {type: int, low: 32, high: 32}", "empty range"),
    ("lr: {type: gaussian, low: 0.0, high: 1.0}", "type 'gaussian' is not one of float, int, categorical"),
    ("weight_decay: {type: float, low: 0.0, high: 1.0, log: true}", "a log range needs low > 0"),
    ("lr: {type: float, low: 0.0, high: 1.0}", "--lr must be above 0"),
    ("device: cuda", "device says where and how trials run"),
    ("lr: {type: float, lo: 0.1, high: 1.0}", "unknown key(s) lo"),
    ("model: {type: categorical, choices: [crnn, nosuch]}", "unknown model 'nosuch': choose from"),
    ("model: {type: categorical, choices: []}", "at least two values"),
    ("batch_size: {type: float, low: 8, high: 64}", "does not fit batch_size, which must be an integer"),
    ("scheduler: {type: categorical, choices: [cosine, cosine]}", "given twice"),
    ("epochs: fast", "epochs must be an integer"),
    ("n_mels: {type: categorical, choices: [64, 128]}", "n_mels is an audio parameter"),
    ("out: elsewhere", "out is set by tune.py"),
    ("epochs: 3", "nothing to search"),
])
def test_bad_space_file_exits_2_and_writes_nothing(tmp_path, capsys, text, message):
    space = write_space(tmp_path, text + "\n")
    assert tune.main(["--space", str(space), "--out", str(tmp_path / "study")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


@pytest.mark.parametrize("storage, message", [
    ("sqlite:///{tmp}/no/such/folder/study.db", "does not exist"),
    ("postgresql://nouser@127.0.0.1:1/none", "cannot open storage postgresql://nouser@127.0.0.1:1/none"),
    ("journal:{tmp}/no/such/folder/study.log", "does not exist"),
    ("study.db", "not an Optuna storage"),
])
def test_unreachable_storage_exits_2_and_writes_nothing(tmp_path, capsys, storage, message):
    space = write_space(tmp_path, "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    code = tune.main(["--space", str(space), "--out", str(tmp_path / "study"), "--storage",
                      storage.format(tmp=tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]


def test_options_that_do_not_fit_a_study_exit_2(tmp_path, capsys):
    space = write_space(tmp_path, "lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    for extra, message in ((["--resume", "runs/x"], "--resume is not for tune.py"),
                           (["--n-trials", "0"], "--n-trials must be at least 1"),
                           (["--config", str(tmp_path / "none.yaml")], "none.yaml not found")):
        assert tune.main(["--space", str(space), "--out", str(tmp_path / "study"), *extra]) == 2
        assert message in capsys.readouterr().err
    assert tune.main(["--space", str(space), "--no-such-option", "1"]) == 2
    assert "unknown option --no-such-option" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["space.yaml"]
