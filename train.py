"""Training: everything that changes weights. `train()` reads top to bottom: `set_up` (data, model, optimizer,
a resumed run's state), `fit` (the epoch loop: one pass, validation, schedule, checkpoints, logs), `finish`
(the best checkpoint's test report). Change the optimizer and the schedule here; the loss is loss.py's,
augmentation augment.py's, evaluation test.py's.

    python main.py --config configs/best.yaml      # train() through the command line
    python main.py --resume runs/NAME               # continue a run from its last.pt
"""
from __future__ import annotations

import contextlib
import csv
import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Optional

import numpy as np
import torch

from augment import Augment
from cache import open_cache
from collection import DataError
from config import AudioConfig, RunConfig, flag, names_with
from distributed import Dist
from loss import Loss
from models import MODELS, ModelConfig, build_model, count_parameters
from models_utils import (BatchProgress, accelerate, load_backbone, load_checkpoint, make_reproducible, pick_device,
                          rng_state, save_checkpoint, seed_everything, set_rng_state)
from test import MULTILABEL_SCALARS, evaluate, test_report, write_results
from plots import plot_curves
from utils import band_stats, make_loader, make_targets

MULTILABEL_EPOCH = ("macro_roc_auc", "micro_roc_auc", "macro_ap", "micro_f1", "threshold")  # per-epoch validation


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during training: `out` is the run folder, `resumable` whether a finished epoch's last.pt is there."""

    def __init__(self, out: Path):
        super().__init__(str(out))
        self.out, self.resumable = out, (out / "last.pt").is_file()


# ------------------------------------------------------------------------------------------ optimizer, logging

def make_optimizer(model, run: RunConfig, steps_per_epoch: int):
    """The optimizer of the trainable parameters (the head only under --freeze-backbone) and its schedule."""
    params = [p for p in model.parameters() if p.requires_grad]
    if run.optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=run.lr, momentum=0.9, weight_decay=run.weight_decay, nesterov=True)
    else:
        cls = torch.optim.AdamW if run.optimizer == "adamw" else torch.optim.Adam
        opt = cls(params, lr=run.lr, weight_decay=run.weight_decay)
    if run.scheduler == "plateau":
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=3)
    elif run.scheduler == "cosine":
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=run.epochs)
    elif run.scheduler == "onecycle":
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=run.lr, epochs=run.epochs,
                                                    steps_per_epoch=steps_per_epoch, pct_start=0.2)
    else:
        sched = None
    return opt, sched


class Logger:
    """metrics.csv + console + Weights & Biases (offline unless asked; nothing at all when disabled)."""

    def __init__(self, run: RunConfig, out: Path, config: dict, wandb_id: str | None, active: bool = True):
        self.out, self.wb, self.active = out, None, active  # inactive (ranks but 0 under torchrun): writes nothing
        if run.wandb != "disabled" and active:
            os.environ.setdefault("WANDB_SILENT", "true")
            import wandb
            self.wb = wandb.init(project=run.wandb_project, name=out.name, dir=str(out), mode=run.wandb,
                                 config=config, id=wandb_id, resume="allow" if wandb_id else None)

    @property
    def wandb_id(self):
        return self.wb.id if self.wb else None

    def step(self, step: int, metrics: dict):
        if self.wb:
            self.wb.log({f"train/{k}": v for k, v in metrics.items()}, step=step)

    def epoch(self, step: int, row: dict, history: list[dict]):
        if not self.active:
            return
        with open(self.out / "metrics.csv", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(history[0]))
            writer.writeheader()
            writer.writerows(history)
        if self.wb:
            self.wb.log({f"epoch/{k}": v for k, v in row.items()}, step=step)

    def final(self, step: int, results: dict, classes: list[str], out: Path):
        if not self.wb or not results.get("test"):
            return
        import wandb
        test = results["test"]
        if results.get("target") == "all":
            scalars = {k: test[k] for k in MULTILABEL_SCALARS}
            rows = results["_per_genre"]
            table = wandb.Table(columns=list(rows[0]), data=[list(r.values()) for r in rows]) if rows else None
            self.wb.log({**{f"test/{k}": v for k, v in scalars.items()},
                         **({"test/per_genre_auc": table} if table is not None else {}),
                         "test/auc_vs_train_count": wandb.Image(str(out / "auc_vs_train_count.png"))}, step=step)
            self.wb.summary.update({f"test_{k}": v for k, v in scalars.items()})
            self.wb.summary.update({"test_dropped_genres": test["dropped"]})
            return
        y_true, y_pred = results["_y"]
        self.wb.log({"test/accuracy": test["accuracy"], "test/macro_f1": test["macro_f1"],
                     "test/loss": test["loss"],
                     "test/confusion_matrix": wandb.plot.confusion_matrix(
                         y_true=list(map(int, y_true)), preds=list(map(int, y_pred)), class_names=classes)},
                    step=step)
        self.wb.summary.update({"test_accuracy": test["accuracy"], "test_macro_f1": test["macro_f1"]})

    def close(self):
        if self.wb:
            self.wb.finish()


# ------------------------------------------------------------------------------------------ one epoch

def train_one_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                    loss: Optional[Loss] = None, augment: Optional[Augment] = None, scheduler=None, amp: bool = False,
                    scaler: Optional[torch.amp.GradScaler] = None, log_interval: int = 20,
                    on_log: Optional[Callable[[int, dict], None]] = None, max_steps: Optional[int] = None,
                    progress: bool = False, dist: Optional[Dist] = None) -> dict:
    """Train for one pass over `loader`; return {'loss', 'accuracy', 'clips', 'steps', 'seconds', 'clips_per_s'}.

    `scheduler` (if given) steps after every batch (per-step schedules such as OneCycle). The loss stays on the
    device and is read back (a GPU sync) only every `log_interval` steps and at the end: then
    `on_log(steps_done, {"loss": mean over the interval, "lr": ...})` for the caller to log, and the progress bar
    (`progress`, on a terminal; BatchProgress) gets the interval's loss. `amp` enables float16 autocast on CUDA;
    it is a no-op on CPU. Under torchrun (`dist`, with `model` a DistributedDataParallel and `loader` this rank's
    share) the returned numbers are those of every rank's clips together: clips/s of all ranks, seconds of the
    slowest.
    """
    model.train()
    loss, augment = loss or Loss(), augment or Augment()
    use_amp = amp and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    sums = torch.zeros(2, dtype=torch.float64, device=device)  # loss x clips, correct clips (on the device)
    seen, since, logged, steps, start = 0, 0, 0.0, 0, time.perf_counter()  # since: clips since the last log
    with BatchProgress(loader, progress, "train", max_steps) as bar:
        for x, y in loader:
            if max_steps is not None and steps >= max_steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x, mix = augment(x)
            with autocast:
                logits = model(x)
            target = y if mix is None else loss.mixed(y, y[mix.partner], mix.lam, logits.shape[1])
            batch = loss(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and use_amp:
                scaler.scale(batch).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                batch.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            n, steps = x.shape[0], steps + 1
            sums[0] += batch.detach().double() * n
            if y.ndim == 1:  # no accuracy for multi-hot targets
                sums[1] += (logits.argmax(1) == y).sum()
            seen, since, interval = seen + n, since + n, None
            if steps % log_interval == 0 or steps == len(loader):  # the one read-back (sync) of the interval
                total = float(sums[0])
                interval, logged, since = (total - logged) / since, total, 0
                if on_log is not None:
                    on_log(steps, {"loss": interval, "lr": optimizer.param_groups[0]["lr"]})
            bar.update(n, interval)
    seconds = time.perf_counter() - start
    total_loss, correct = sums.tolist()
    if dist is not None:
        total_loss, correct, seen = dist.sum(total_loss, correct, seen)
        seen, seconds = int(seen), dist.max(seconds)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "clips": seen, "steps": steps,
            "seconds": seconds, "clips_per_s": seen / max(seconds, 1e-9)}


SELECTED = {"top": "accuracy", "all": "macro_roc_auc"}  # --target -> the validation metric that picks best.pt


def selected(multilabel: bool) -> str:
    """The validation metric that picks best.pt: accuracy, or for multi-label (--target all) macro ROC-AUC;
    metrics.csv and results.json call it val_<it>, tune.py's trials report it."""
    return SELECTED["all" if multilabel else "top"]


def selection_metric(tr: dict, va: dict | None, multilabel: bool) -> float:
    """What picks best.pt (higher is better): the `selected` validation metric; for multi-label the validation
    loss when no genre can be scored there; the training loss without a validation split."""
    if va is None:
        return -tr["loss"]
    value = va[selected(multilabel)]
    return value if not multilabel or np.isfinite(value) else -va["loss"]


# ------------------------------------------------------------------------------------------ set-up

@dataclass
class Training:
    """A run being trained: what set_up built, and the state the epoch loop carries (and checkpoints keep)."""

    run: RunConfig
    audio: AudioConfig
    dist: Dist
    device: torch.device
    cache: object
    classes: list
    splits: dict
    vocab: Optional[dict]
    out: Path
    mcfg: ModelConfig
    model: torch.nn.Module
    mean: np.ndarray
    std: np.ndarray
    crop_frames: Optional[int]
    init_report: Optional[dict]
    n_params: tuple = (0, 0)
    net: torch.nn.Module = None
    loader: object = None
    val_loader: object = None
    generator: torch.Generator = None
    optimizer: torch.optim.Optimizer = None
    scheduler: object = None
    scaler: object = None
    augment: Augment = None
    loss: Loss = None
    logger: Logger = None
    start_epoch: int = 1
    step: int = 0
    best: float = float("-inf")
    history: list = field(default_factory=list)
    threshold: float = 0.5

    @property
    def multilabel(self) -> bool:
        return self.run.target == "all"

    @property
    def data(self) -> dict:
        """What data trained it, as checkpoints and config.json record it (prediction warns about synthetic data)."""
        collection = self.cache.collection
        return {"dir": str(collection.root), "kind": collection.kind, "name": collection.name,
                "synthetic": collection.synthetic, "training_tracks": int(len(self.splits["training"][0]))}

    @property
    def eval_crops(self) -> int:
        return self.run.eval_crops if self.crop_frames else 0

    def state(self, epoch: int) -> dict:
        """The checkpoint of epoch `epoch`: self-contained for prediction, complete for --resume."""
        return {"model": self.model.state_dict(), "model_config": asdict(self.mcfg), "classes": self.classes,
                "audio": asdict(self.audio), "mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std),
                "crop_frames": self.crop_frames, "eval_crops": self.eval_crops, "target": self.run.target,
                **({"genres": self.vocab, "threshold": self.threshold} if self.multilabel else {}),
                **({"init": self.init_report} if self.init_report else {}),
                "data": self.data, "run_config": asdict(self.run), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler is not None else {},
                "epoch": epoch, "global_step": self.step, "best_metric": self.best, "history": self.history,
                "rng": rng_state(), "wandb_id": self.logger.wandb_id,
                **({"world_size": self.dist.world_size} if self.dist.enabled else {})}


def resumed_run(run: RunConfig, given: set) -> tuple[dict, RunConfig, AudioConfig]:
    """--resume: (its last.pt, its run with the options that may change on resume (config.py's roles length
    and machine) taken from `run`, its audio). --epochs below the epochs done is an error."""
    path = Path(run.resume)
    if not path.exists():
        raise ValueError(f"--resume {run.resume}: no such run folder or checkpoint")
    resume = load_checkpoint(path / "last.pt" if path.is_dir() else path)
    saved = RunConfig(**resume["run_config"])
    run = RunConfig(**{**asdict(saved), **{k: getattr(run, k) for k in names_with("length", "machine") if k in given},
                       "resume": run.resume})
    if run.epochs < resume["epoch"]:
        raise ValueError(f"--epochs {run.epochs}: {run.resume} has already trained {resume['epoch']} epochs")
    return resume, run, AudioConfig(**resume["audio"])


def load_init(run: RunConfig, audio: AudioConfig) -> dict:
    """The --init checkpoint, checked before anything is built: the run's model, the run's log-mel."""
    init = load_checkpoint(run.init)
    name = init["model_config"]["name"]
    if name != run.model:
        raise ValueError(f"--init {run.init} holds a {name} model, not {run.model} "
                         f"(--model {name} fine-tunes it)")
    theirs, ours = AudioConfig(**init["audio"]).features(), audio.features()
    differ = [k for k in ours if ours[k] != theirs[k]]
    if differ:
        options = ", ".join(flag(k) for k in differ)
        raise ValueError(f"--init {run.init} was trained on other features than this run's: "
                         + ", ".join(f"{k} {theirs[k]} (this run: {ours[k]})" for k in differ)
                         + f"; give the checkpoint's values ({options})")
    return init


def normalisation(run: RunConfig, cache, train_rows, init: dict | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-band (mean, std) the inputs are standardised with: the --init checkpoint's (what its weights
    were trained on); none, i.e. mean 0 / std 1, for a model that takes log-mel dB as it is
    (`standardize = False`, e.g. musicnn); otherwise the training split's band_stats."""
    if init is not None:
        return init["mean"].numpy().astype(np.float32), init["std"].numpy().astype(np.float32)
    if not MODELS[run.model].standardize:
        n_mels = cache.audio.n_mels
        return np.zeros(n_mels, np.float32), np.ones(n_mels, np.float32)
    return band_stats(cache, train_rows, seed=run.seed)


MODEL_OPTIONS = ("width", "dropout", "hidden", "pool", "temporal_pool")  # RunConfig fields of ModelConfig


def model_config(run: RunConfig, audio: AudioConfig, classes: list, init: dict | None) -> ModelConfig:
    """The run's model: --model's (with --init, the checkpoint's architecture, its sizes) for these classes and
    mel bands, with the model options given (MODEL_OPTIONS); a ValueError names an option the model does not take."""
    base = ModelConfig(**init["model_config"]) if init else ModelConfig(name=run.model)
    mcfg = replace(base, n_classes=len(classes), n_mels=audio.n_mels,
                   **{k: getattr(run, k) for k in MODEL_OPTIONS if getattr(run, k) is not None})
    mcfg.check()
    return mcfg


def initialise(model, init: dict, run: RunConfig, classes: list[str]) -> dict:
    """Load the --init weights into `model` (a fresh head when the classes differ); print and return
    the report that config.json and the checkpoints keep."""
    fresh_head = init["classes"] != list(classes) or init.get("target", "top") != run.target
    loaded, fresh = load_backbone(model, init, fresh_head=fresh_head)
    print(f"init from {run.init}: loaded {len(loaded)} tensors; initialised afresh: {', '.join(fresh) or 'none'}")
    return {"path": run.init, "loaded": len(loaded), "fresh": fresh, "freeze_backbone": run.freeze_backbone,
            **({"pretrained": init["pretrained"]} if "pretrained" in init else {})}


def run_dir(run: RunConfig, dist: Dist) -> Path:
    """--out, the resumed run's folder, or runs/NAME (NAME: --name or MODEL-SUBSET-sSEED-TIMESTAMP, rank 0's)."""
    if run.resume:
        out = Path(run.resume) if Path(run.resume).is_dir() else Path(run.resume).parent
    else:
        out = Path(run.out or Path("runs") / (run.name or
                   f"{run.model}-{run.subset}-s{run.seed}-{time.strftime('%Y%m%d-%H%M%S')}"))
    return Path(dist.broadcast(str(out)))


def build_network(t: Training, init: Optional[dict], resume: Optional[dict]) -> None:
    """t.model: the architecture, --init's weights (a resumed run's come later, from last.pt), the frozen
    backbone, SyncBatchNorm and speed settings; t.n_params."""
    t.model = build_model(t.mcfg)
    t.init_report = resume.get("init") if resume else None
    if init:
        t.init_report = initialise(t.model, init, t.run, t.classes)
    if t.run.freeze_backbone:
        t.model.freeze_backbone()
    if t.run.sync_bn and t.dist.enabled:
        t.model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(t.model)  # the same module, its BatchNorms replaced
    t.model = accelerate(t.model.to(t.device), t.device, compile=t.run.compile)
    t.n_params = count_parameters(t.model, trainable_only=False), count_parameters(t.model)


def build_loop(t: Training) -> None:
    """Loaders, optimizer, schedule, AMP scaler, augmentation and loss of the epoch loop."""
    run, device = t.run, t.device
    t.generator = torch.Generator()
    train_rows, train_targets = t.splits["training"]
    t.loader = make_loader(t.cache, train_rows, train_targets, t.mean, t.std, run, device, t.crop_frames, train=True,
                           generator=t.generator, dist=t.dist)
    val_rows, val_targets = t.splits["validation"]
    t.val_loader = make_loader(t.cache, val_rows, val_targets, t.mean, t.std, run, device, t.crop_frames,
                               eval_crops=t.eval_crops, dist=t.dist) if len(val_rows) else None
    t.optimizer, t.scheduler = make_optimizer(t.model, run, len(t.loader))
    t.scaler = torch.amp.GradScaler("cuda") if device.type == "cuda" and run.amp else None
    t.augment = Augment.from_run(run, t.std, t.device)
    t.loss = Loss.for_training(t.multilabel, run.balance, train_targets, len(t.classes), device)


def replan(scheduler, optimizer, steps_done: int) -> None:
    """A run extended by --resume --epochs: the fresh `scheduler` (planned for the new length) fast-forwarded over
    the `steps_done` steps (or epochs) already trained, from the schedule's initial learning rate. The rest of the
    run then follows the schedule it would have had with the new --epochs (one-cycle and cosine anneal to the new
    end instead of staying at their final, near-zero learning rate)."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"]
    with warnings.catch_warnings():  # "scheduler.step() before optimizer.step()": on purpose here
        warnings.simplefilter("ignore", UserWarning)
        for _ in range(steps_done):
            scheduler.step()


def restore(t: Training, resume: dict) -> None:
    """A resumed run's weights, optimizer, schedule, counters and random state, from its last.pt."""
    t.model.load_state_dict(resume["model"])
    t.optimizer.load_state_dict(resume["optimizer"])
    extended = t.run.epochs != resume["run_config"]["epochs"]
    if t.scheduler is not None and resume["scheduler"]:
        if extended and not isinstance(t.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            replan(t.scheduler, t.optimizer, resume["scheduler"]["last_epoch"])
            print(f"extending {t.out} from {resume['run_config']['epochs']} to {t.run.epochs} epochs: the {t.run.scheduler} "
                  f"schedule is planned anew for {t.run.epochs} epochs")
        else:
            t.scheduler.load_state_dict(resume["scheduler"])
    t.start_epoch, t.step, t.best = resume["epoch"] + 1, resume["global_step"], resume["best_metric"]
    t.history, t.threshold = resume["history"], resume.get("threshold", 0.5)
    set_rng_state(resume["rng"])
    selection = {"accuracy": "accuracy", "macro_roc_auc": "macro ROC-AUC"}[selected(t.multilabel)]
    print(f"resuming {t.out} after epoch {resume['epoch']} (best validation {selection} {t.best:.4f})")
    trained_with = resume.get("world_size", 1)
    if trained_with != t.dist.world_size:
        print(f"note: epochs 1-{resume['epoch']} ran on {trained_with} process(es), the rest on "
              f"{t.dist.world_size}: the global batch changes from {t.run.batch_size * trained_with} to "
              f"{t.run.batch_size * t.dist.world_size}, so this run will not equal an uninterrupted one")


def describe(t: Training) -> None:
    """The run's first console line (model, classes, tracks, device, folder), and torchrun's batch."""
    n_params, n_trainable = t.n_params
    print(f"{t.mcfg.name}: {n_params:,} parameters" + (f" ({n_trainable:,} trained)" if n_trainable < n_params else "")
          + f" | {len(t.classes)} {'genres (multi-label)' if t.multilabel else 'classes'} | "
          + " / ".join(f"{len(r)} {s}" for s, (r, _) in t.splits.items()) + f" tracks | device {t.device} | {t.out}")
    if t.dist.enabled:
        print(f"{t.dist.world_size} processes ({t.dist.backend}): {t.run.batch_size} clips per process and step, a "
              f"global batch of {t.run.batch_size * t.dist.world_size}" + (", SyncBatchNorm" if t.run.sync_bn else ""))


def set_up(run: RunConfig, audio: AudioConfig, given: set, dist: Dist) -> Training:
    """Everything the epoch loop needs, checked in order of cost: options and checkpoints, then the cache,
    the targets, the model, the loaders; a resumed run's state; config.json and the logger."""
    resume = None
    if run.resume:
        resume, run, audio = resumed_run(run, given)
    init = load_init(run, audio) if run.init and not resume else None  # a resumed run's weights come from last.pt
    if not resume:
        model_config(run, audio, ["?", "?"], init)  # the model's options checked (a ValueError) before the cache
    device = torch.device(dist.device) if dist.device else pick_device(run.device)
    if run.sync_bn and dist.enabled and device.type != "cuda":
        raise ValueError("--sync-bn needs CUDA: torch's SyncBatchNorm has no CPU implementation (leave it off on CPU)")
    run = replace(run, threads=make_reproducible(run.threads, run.deterministic, device))  # recorded, kept on resume
    cache = open_cache(run, audio, dist)
    classes, splits, vocab = make_targets(run.target, cache, resume)
    if len(splits["training"][0]) == 0:
        raise DataError(f"no usable training tracks in {run.data_dir} (subset {run.subset})")
    out = run_dir(run, dist)
    seed_everything(run.seed)
    if resume:
        mean, std, mcfg = resume["mean"].numpy(), resume["std"].numpy(), ModelConfig(**resume["model_config"])
    else:
        mean, std = dist.broadcast(normalisation(run, cache, splits["training"][0], init) if dist.main else None)
        mcfg = model_config(run, audio, classes, init)
    t = Training(run, audio, dist, device, cache, classes, splits, vocab, out, mcfg, None, mean, std,
                 audio.frames_for(run.crop_seconds) if run.crop_seconds else None, None)
    build_network(t, init, resume)
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if cache.collection.kind != "fma":  # the split it trains on, for evaluate-only and prediction to show
            cache.collection.table.to_csv(out / "split.csv", columns=["path", "label", "split", "group"], index=False)
    describe(t)
    build_loop(t)
    if resume:
        restore(t, resume)
    t.net = t.model if not dist.enabled else torch.nn.parallel.DistributedDataParallel(  # broadcasts rank 0's weights
        t.model, device_ids=[device.index] if device.type == "cuda" else None)
    config = {"run": asdict(run), "data": t.data, "audio": asdict(audio), "model": asdict(mcfg), "classes": classes,
              "parameters": t.n_params[0], "trained_parameters": t.n_params[1],
              **({"init": t.init_report} if t.init_report else {}), **({"genres": vocab} if t.multilabel else {}),
              **({"distributed": {"world_size": dist.world_size, "backend": dist.backend}} if dist.enabled else {})}
    if dist.main:
        (out / "config.json").write_text(json.dumps(config, indent=2))
    t.logger = Logger(run, out, config, resume.get("wandb_id") if resume else None, active=dist.main)
    return t


# ------------------------------------------------------------------------------------------ the epoch loop

def epoch_row(t: Training, epoch: int, tr: dict, va: Optional[dict]) -> dict:
    """metrics.csv's row of an epoch."""
    measured = {"train_accuracy": tr["accuracy"]} if not t.multilabel else {}  # no accuracy for multi-hot targets
    measured.update({f"val_{k}": va[k] if va else float("nan")
                     for k in ("loss",) + (MULTILABEL_EPOCH if t.multilabel else ("accuracy", "macro_f1"))})
    return {"epoch": epoch, "train_loss": tr["loss"], **measured, "lr": t.optimizer.param_groups[0]["lr"],
            "seconds": tr["seconds"], "clips_per_s": tr["clips_per_s"]}


def epoch_line(t: Training, epoch: int, tr: dict, row: dict, is_best: bool) -> str:
    """The console line of an epoch."""
    if t.multilabel:
        scores = (f"train loss {tr['loss']:.4f}  |  val loss {row['val_loss']:.4f} ROC-AUC {row['val_macro_roc_auc']:.3f} "
                  f"AP {row['val_macro_ap']:.3f} micro-F1 {row['val_micro_f1']:.3f}")
    else:
        scores = (f"train loss {tr['loss']:.4f} acc {tr['accuracy']:.3f}  |  "
                  f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.3f} F1 {row['val_macro_f1']:.3f}")
    return (f"epoch {epoch:3d}/{t.run.epochs}  {scores}  |  "
            f"{tr['seconds']:.1f} s, {tr['clips_per_s']:.0f} clips/s{'  *' if is_best else ''}")


def run_epoch(t: Training, epoch: int) -> tuple[dict, Optional[dict]]:
    """One pass over the training split, then validation, then the epoch's schedule step."""
    run, dist = t.run, t.dist
    show = not run.quiet and dist.main  # progress bars
    per_step = t.scheduler if isinstance(t.scheduler, torch.optim.lr_scheduler.OneCycleLR) else None
    # each epoch's shuffling, crops and masks are reproducible (and, under torchrun, each rank's its own)
    seed_everything(dist.seed(run.seed * 1000 + epoch))
    t.generator.manual_seed(dist.seed(run.seed * 1000 + epoch))
    if hasattr(t.loader.sampler, "set_epoch"):  # torchrun: this epoch's shuffle, the same on every rank
        t.loader.sampler.set_epoch(epoch)

    def on_log(steps: int, m: dict):
        t.logger.step(t.step + steps, m)

    tr = train_one_epoch(t.net, t.loader, t.optimizer, t.device, t.loss, augment=t.augment, scheduler=per_step,
                         amp=run.amp, scaler=t.scaler, log_interval=run.log_interval, on_log=on_log,
                         progress=show, dist=dist)
    t.step += tr["steps"]
    va = (evaluate(t.model, t.val_loader, t.device, t.classes, run.amp, t.multilabel, progress=show, dist=dist)
          if t.val_loader is not None else None)
    if isinstance(t.scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
        t.scheduler.step(va["loss"] if va else tr["loss"])
    elif t.scheduler is not None and per_step is None:
        t.scheduler.step()
    return tr, va


def fit(t: Training, on_epoch: Callable[[int, dict], None] | None) -> float:
    """The epoch loop from t.start_epoch to --epochs: train, validate, log, checkpoint (best.pt, then
    last.pt), and `on_epoch(epoch, row)` (tune.py's pruning); returns the wall time in seconds."""
    started = time.perf_counter()
    for epoch in range(t.start_epoch, t.run.epochs + 1):
        tr, va = run_epoch(t, epoch)
        metric = selection_metric(tr, va, t.multilabel)
        is_best = metric > t.best
        t.best = max(t.best, metric)
        if t.multilabel:
            t.threshold = va["threshold"] if va else 0.5  # saved with the epoch's weights, applied to test
        row = epoch_row(t, epoch, tr, va)
        t.history.append(row)
        t.logger.epoch(t.step, row, t.history)
        if t.dist.main:
            state = t.state(epoch)
            if is_best:  # best.pt before last.pt: once last.pt claims this epoch, best.pt holds its weights
                save_checkpoint(t.out / "best.pt", state)
            save_checkpoint(t.out / "last.pt", state)
        print(epoch_line(t, epoch, tr, row, is_best), flush=True)
        if on_epoch is not None:  # e.g. tune.py: report to Optuna, raise optuna.TrialPruned to stop
            on_epoch(epoch, row)
    return time.perf_counter() - started


def finish(t: Training, wall: float) -> None:
    """The best checkpoint's test report, curves.png and results.json (rank 0), the W&B summary."""
    t.dist.barrier()  # rank 0 has written best.pt
    best_state = load_checkpoint(t.out / "best.pt", map_location=t.device)
    t.model.load_state_dict(best_state["model"])
    results = test_report(t.model, best_state, t.cache, t.classes, t.splits, t.run, t.device, t.out, t.dist)
    if t.dist.main:
        plot_curves(t.history, t.out / "curves.png", selected(t.multilabel))
        results.update({"epochs": t.run.epochs, "train_seconds": round(wall, 1),
                        f"val_{selected(t.multilabel)}": t.best if t.splits["validation"][0].size else None})
        write_results(results, t.out)
        t.logger.final(t.step, results, t.classes, t.out)
    t.dist.barrier()  # results.json is there for every rank (--seeds looks for it)


def train(run: RunConfig, audio: AudioConfig, given: set,
          on_epoch: Callable[[int, dict], None] | None = None, dist: Dist = Dist()) -> int:
    """Train one run (main.py without --seeds). `on_epoch(epoch, row)`, if given, is called after each
    epoch's metrics.csv row is logged and its checkpoints are saved; an exception it raises ends the
    run (W&B closed, checkpoints kept).

    Under torchrun (`dist`), every rank runs this: DistributedDataParallel over its share of each epoch
    (--batch-size clips per rank and step), the same weights everywhere (DDP broadcasts rank 0's at the
    start), augmentation seeded per rank; evaluation sharded and gathered (test.evaluate); rank 0 alone
    writes the run directory and logs. Every rank reads the data, the cache and --resume's checkpoint,
    so on several machines they must be on a file system all of them share."""
    t = set_up(run, audio, given, dist)
    try:  # the W&B run is closed however training ends (an exception, a pruned trial of tune.py)
        finish(t, fit(t, on_epoch))
    except KeyboardInterrupt:
        raise Interrupted(t.out) from None
    finally:
        t.logger.close()
    print(f"wrote {t.out}/: {', '.join(sorted(p.name for p in t.out.iterdir() if p.is_file()))}")
    return 0
