"""One training epoch: `train_one_epoch(...)`. main.py calls it once per epoch.

Augmentation happens here and only here (evaluation and prediction never see it): random crops come
from the Dataset, SpecAugment masks and mixup are applied to each batch on the device.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from typing import Callable, Optional

import torch
import torch.nn.functional as F


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


def train_one_epoch(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, device: torch.device,
                    loss_fn: Callable = F.cross_entropy, augment: Optional[Augment] = None,
                    scheduler=None, amp: bool = False, scaler: Optional[torch.amp.GradScaler] = None,
                    on_step: Optional[Callable[[dict], None]] = None, max_steps: Optional[int] = None) -> dict:
    """Train for one pass over `loader`; return {'loss', 'accuracy', 'clips', 'seconds', 'clips_per_s'}.

    `scheduler` (if given) steps after every batch (per-step schedules such as OneCycle);
    `on_step(metrics)` receives each step's loss and learning rate, for the caller to log.
    `amp` enables bfloat16/float16 autocast on CUDA; it is a no-op on CPU.
    """
    model.train()
    augment = augment or Augment()
    use_amp = amp and device.type == "cuda"
    autocast = torch.autocast("cuda", dtype=torch.float16) if use_amp else contextlib.nullcontext()
    total_loss, correct, seen, start = 0.0, 0.0, 0, time.perf_counter()
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
        n = x.shape[0]
        total_loss += loss.item() * n
        correct += (logits.argmax(1) == y).sum().item() if y.ndim == 1 else 0.0
        seen += n
        if on_step is not None:
            on_step({"loss": loss.item(), "lr": optimizer.param_groups[0]["lr"]})
    seconds = time.perf_counter() - start
    return {"loss": total_loss / max(seen, 1), "accuracy": correct / max(seen, 1), "clips": seen,
            "seconds": seconds, "clips_per_s": seen / max(seconds, 1e-9)}


def _soft(y: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """Class indices -> one-hot rows matching the logits; (multi-)label vectors pass through."""
    return y.float() if y.ndim > 1 else F.one_hot(y, logits.shape[1]).float()
