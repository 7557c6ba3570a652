"""One training epoch: `train_one_epoch(...)`. main.py calls it once per epoch.

Augmentation happens here and only here (evaluation and prediction never see it): random crops come
from the Dataset, SpecAugment masks and mixup are applied to each batch on the device. `BatchProgress`
is the per-batch progress bar of training and evaluation (test.evaluate).
"""
from __future__ import annotations

import contextlib
import sys
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from distributed import Dist


@dataclass
class Augment:
    """Batch augmentation. Inputs are standardised log-mels, so 0 is the neutral (mean) fill value."""

    freq_masks: int = 0      # SpecAugment: frequency masks per clip
    freq_width: int = 16     # widest frequency mask, mel bands
    time_masks: int = 0      # SpecAugment: time masks per clip
    time_width: int = 24     # widest time mask, frames
    mixup: float = 0.0       # mixup Beta(alpha, alpha); 0 = off
    eq_db: float = 0.0       # random EQ: a smooth per-clip curve over the mel bands within +-eq_db dB; 0 = off
    eq_points: int = 6       # control points of that curve (linearly interpolated over the bands)
    contrast: float = 0.0    # random dynamics: scale each clip's dB deviation from its band means by
                             # a smooth curve within 2**(+-contrast); 0 = off
    band_std: Optional[torch.Tensor] = None  # (M,) dB std per band used to standardise (to express dB)

    def production(self, x: torch.Tensor) -> torch.Tensor:
        """Random EQ and dynamics per clip of (B, M, T): the mix and mastering choices that vary by
        artist, not by genre. Curves are smooth over the mel axis (eq_points control points)."""
        if self.eq_db <= 0 and self.contrast <= 0:
            return x
        B, M, T = x.shape

        def curve(amplitude):  # (B, M, 1): uniform control points in [-amplitude, amplitude], interpolated
            pts = (torch.rand(B, 1, self.eq_points, device=x.device) * 2 - 1) * amplitude
            return F.interpolate(pts, size=M, mode="linear", align_corners=True).transpose(1, 2)

        if self.contrast > 0:
            mean = x.mean(dim=2, keepdim=True)  # (B, M, 1): each band's level in this clip
            x = mean + (x - mean) * torch.exp2(curve(self.contrast))
        if self.eq_db > 0:
            std = self.band_std.to(x.device)[None, :, None] if self.band_std is not None else 1.0
            x = x + curve(self.eq_db) / std
        return x

    def masks(self, x: torch.Tensor) -> torch.Tensor:
        """Zero random bands (axis 1, mels) and random frame spans (axis 2, time) of (B, M, T)."""
        B, M, T = x.shape
        keep = torch.ones(B, M, T, dtype=torch.bool, device=x.device)
        for n, width, axis, size in ((self.freq_masks, self.freq_width, 1, M), (self.time_masks, self.time_width, 2, T)):
            for _ in range(n):
                w = torch.randint(0, min(width, size) + 1, (B, 1), device=x.device)
                start = (torch.rand(B, 1, device=x.device) * (size - w + 1)).long()
                pos = torch.arange(size, device=x.device)[None]  # (1, size)
                hit = (pos >= start) & (pos < start + w)  # (B, size)
                keep &= ~(hit[:, :, None] if axis == 1 else hit[:, None, :])
        return x * keep


class BatchProgress:
    """A per-batch tqdm bar on stderr: batches done of the loader's, ETA, and the running mean loss and
    clips/s of the batches so far. Shown only when `show` and stderr is a terminal (piped or logged
    output gets nothing); erased when closed (leave=False), so the caller's one line per epoch that
    follows it stays clean. Use it as a context manager and call `update(clips, loss)` after each batch."""

    def __init__(self, loader, show: bool, desc: str, max_steps: Optional[int] = None):
        total = len(loader) if hasattr(loader, "__len__") else None
        if max_steps is not None:
            total = max_steps if total is None else min(total, max_steps)
        self.bar = tqdm(total=total, desc=desc, unit="batch", leave=False, dynamic_ncols=True, file=sys.stderr,
                        disable=not show or not sys.stderr.isatty())
        if self.shown and self.bar.dynamic_ncols and (self.bar.ncols or 0) <= 0:  # a terminal that reports no
            self.bar.dynamic_ncols = self.bar.ncols = self.bar.nrows = None       # size (script, some CI): tqdm
            #                                                                      would hide the bar
        self.clips, self.loss_clips, self.loss_sum, self.start = 0, 0, 0.0, time.perf_counter()

    @property
    def shown(self) -> bool:
        return not self.bar.disable

    def update(self, clips: int, loss: Optional[float] = None) -> None:
        """One batch of `clips` clips done; `loss` is its mean loss (None: not measured; the bar shows the
        mean over the batches that gave one)."""
        if not self.shown:
            return
        self.clips += clips
        if loss is not None:
            self.loss_sum, self.loss_clips = self.loss_sum + loss * clips, self.loss_clips + clips
        text = f"{self.clips / max(time.perf_counter() - self.start, 1e-9):,.0f} clips/s"
        if self.loss_clips:
            text = f"loss {self.loss_sum / self.loss_clips:.4f}, {text}"
        self.bar.set_postfix_str(text, refresh=False)  # drawn by update(), at most every 0.1 s
        self.bar.update(1)

    def __enter__(self) -> "BatchProgress":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


def train_one_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                    loss_fn: Callable = F.cross_entropy, augment: Optional[Augment] = None,
                    scheduler=None, amp: bool = False, scaler: Optional[torch.amp.GradScaler] = None,
                    on_step: Optional[Callable[[dict], None]] = None, max_steps: Optional[int] = None,
                    progress: bool = False, dist: Optional[Dist] = None) -> dict:
    """Train for one pass over `loader`; return {'loss', 'accuracy', 'clips', 'seconds', 'clips_per_s'}.

    `scheduler` (if given) steps after every batch (per-step schedules such as OneCycle);
    `on_step(metrics)` receives each step's loss and learning rate, for the caller to log.
    `amp` enables bfloat16/float16 autocast on CUDA; it is a no-op on CPU.
    `progress` shows a per-batch bar on a terminal (BatchProgress; off by default).
    Under torchrun (`dist`, with `model` a DistributedDataParallel and `loader` this rank's share) the
    returned numbers are those of every rank's clips together: clips/s of all ranks, seconds of the slowest.
    """
    model.train()
    augment = augment or Augment()
    use_amp = amp and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    total_loss, correct, seen, start = 0.0, 0.0, 0, time.perf_counter()
    with BatchProgress(loader, progress, "train", max_steps) as bar:
        for step, (x, y) in enumerate(loader):
            if max_steps is not None and step >= max_steps:
                break
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            x = augment.masks(augment.production(x))
            lam, perm = 1.0, None
            if augment.mixup > 0:  # mix each clip with a shuffled partner; targets become soft
                lam = float(torch.distributions.Beta(augment.mixup, augment.mixup).sample())
                perm = torch.randperm(x.shape[0], device=device)
                x = lam * x + (1 - lam) * x[perm]
            with autocast:
                logits = model(x)
            target = y if perm is None else lam * _soft(y, logits) + (1 - lam) * _soft(y[perm], logits)
            loss = loss_fn(logits.float(), target)
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None and use_amp:
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            else:
                loss.backward()
                optimizer.step()
            if scheduler is not None:
                scheduler.step()
            n, batch_loss = x.shape[0], loss.item()
            total_loss += batch_loss * n
            correct += (logits.argmax(1) == y).sum().item() if y.ndim == 1 else 0.0
            seen += n
            if on_step is not None:
                on_step({"loss": batch_loss, "lr": optimizer.param_groups[0]["lr"]})
            bar.update(n, batch_loss)
    seconds = time.perf_counter() - start
    if dist is not None:
        total_loss, correct, seen = dist.sum(total_loss, correct, seen)
        seen, seconds = int(seen), dist.max(seconds)
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "clips": seen,
            "seconds": seconds, "clips_per_s": seen / max(seconds, 1e-9)}


def _soft(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Class indices -> one-hot rows matching the logits; (multi-)label vectors pass through."""
    return y.float() if y.ndim > 1 else F.one_hot(y, logits.shape[1]).float()
