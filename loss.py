"""The one loss: training, validation and test losses all come from `Loss` (change the loss here).

    loss = Loss(multilabel=False)
    loss(logits, y)                 # training: logits (B, C), class indices or soft rows (mixup)
    loss.of_probs(probs, y)         # evaluation: clip probabilities (windows averaged), the same loss
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

PROB_FLOOR = {False: 1e-12, True: 1e-7}  # of_probs clips probabilities to [floor, 1 - floor] (single, multi-label)
POS_WEIGHT_CAP = 100.0                   # --balance weights: largest BCE pos_weight of a rare genre


class Loss:
    """Cross-entropy over the classes (single-label), or binary cross-entropy per genre (multi-label,
    `--target all`), on logits; `weight` (optional) is cross-entropy's per-class weight or BCE's pos_weight."""

    def __init__(self, multilabel: bool = False, weight: torch.Tensor | None = None):
        self.multilabel, self.weight = multilabel, weight

    @classmethod
    def for_training(cls, multilabel: bool, balance: str, targets: np.ndarray, n_classes: int, device) -> "Loss":
        """The training loss, weighted for `--balance weights`: n / (classes * n_class) per class (single-label),
        pos_weight n_negative / n_positive per genre, capped at POS_WEIGHT_CAP (multi-label)."""
        if balance != "weights":
            return cls(multilabel)
        if multilabel:
            pos = targets.sum(0).astype(np.float64)
            weight = np.minimum((len(targets) - pos) / np.maximum(pos, 1), POS_WEIGHT_CAP)
        else:
            counts = np.bincount(targets, minlength=n_classes).astype(np.float64)
            weight = len(targets) / (n_classes * np.maximum(counts, 1))
        return cls(multilabel, torch.tensor(weight, dtype=torch.float32, device=device))

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss of logits (B, C) against class indices (B,) or probability rows (B, C)."""
        weight = None if self.weight is None else self.weight.to(logits.dtype)
        if self.multilabel:
            return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), pos_weight=weight)
        return F.cross_entropy(logits, target if target.ndim == 1 else target.to(logits.dtype), weight=weight)

    def mixed(self, y: torch.Tensor, partner: torch.Tensor, lam: float, n_classes: int) -> torch.Tensor:
        """Mixup's soft targets: lam of each clip's target and 1 - lam of its partner's, as probability rows."""
        def rows(t):
            return t.float() if t.ndim > 1 else F.one_hot(t, n_classes).float()
        return lam * rows(y) + (1 - lam) * rows(partner)

    def of_probs(self, probs: np.ndarray, y: np.ndarray) -> float:
        """Mean loss of clip probabilities `probs` (n, C) against targets `y` (0 without clips): this same loss
        applied, in float64, to the logits those probabilities are the softmax (log p) or sigmoids (logit p) of,
        with p clipped to [PROB_FLOOR, 1 - PROB_FLOOR]. Evaluation averages a clip's window probabilities first."""
        if not len(y):
            return 0.0
        floor = PROB_FLOOR[self.multilabel]
        p = torch.from_numpy(np.clip(np.asarray(probs, dtype=np.float64), floor, 1 - floor))
        logits = torch.log(p) - torch.log1p(-p) if self.multilabel else torch.log(p)
        target = torch.from_numpy(np.asarray(y))
        return float(self(logits, target.double() if self.multilabel else target.long()))
