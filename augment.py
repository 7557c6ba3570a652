"""Augmentation of training clips, and only of training clips (evaluation and prediction never see it):
the random crop rule, random EQ and dynamics, SpecAugment masks and mixup (change augmentation here).

    augment = Augment.from_run(run, band_std)   # every knob is an option: --augment --freq-masks 2 ...
    x, mix = augment(x)                         # (B, M, T) standardised log-mels, on the device
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


def crop_start(valid_frames: int, crop_frames: int) -> int:
    """The start frame of a random training crop of `crop_frames` inside a clip's `valid_frames` of real audio
    (at 0 when the audio is shorter than a crop: the rest is the clip's silence padding)."""
    span = max(int(valid_frames), crop_frames)  # stay inside the real audio
    return int(torch.randint(0, span - crop_frames + 1, ()))


@dataclass
class Mix:
    """One batch's mixup: each clip mixed with clip `partner[i]`, `lam` of itself."""

    lam: float
    partner: torch.Tensor


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

    @classmethod
    def from_run(cls, run, band_std, device=None) -> "Augment":
        """The augmentation a RunConfig asks for (SpecAugment only with --augment); band_std goes to `device`
        (the batches' device) once, not a copy per batch."""
        return cls(freq_masks=run.freq_masks if run.augment else 0, freq_width=run.freq_width,
                   time_masks=run.time_masks if run.augment else 0, time_width=run.time_width, mixup=run.mixup,
                   eq_db=run.eq_db, eq_points=run.eq_points, contrast=run.contrast,
                   band_std=torch.as_tensor(band_std, dtype=torch.float32, device=device))

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, Optional[Mix]]:
        """EQ and dynamics, masks, then mixup (None when off) of a training batch (B, M, T)."""
        x = self.masks(self.production(x))
        if self.mixup <= 0:
            return x, None
        mix = Mix(float(torch.distributions.Beta(self.mixup, self.mixup).sample()),
                  torch.randperm(x.shape[0], device=x.device))
        return mix.lam * x + (1 - mix.lam) * x[mix.partner], mix

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
        if not (self.freq_masks or self.time_masks):
            return x
        B, M, T = x.shape
        keep = torch.ones(B, M, T, dtype=torch.bool, device=x.device)
        for n, width, axis, size in ((self.freq_masks, self.freq_width, 1, M), (self.time_masks, self.time_width, 2, T)):
            pos = torch.arange(size, device=x.device)[None]  # (1, size)
            for _ in range(n):
                w = torch.randint(0, min(width, size) + 1, (B, 1), device=x.device)
                start = (torch.rand(B, 1, device=x.device) * (size - w + 1)).long()
                hit = (pos >= start) & (pos < start + w)  # (B, size)
                keep &= ~(hit[:, :, None] if axis == 1 else hit[:, None, :])
        return x * keep
