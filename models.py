"""Genre classifiers on log-mel spectrograms: `nn.Module`s only (no training code, no data code).

Every model takes a float tensor of normalised log-mel spectrograms, shape (B, n_mels, T), and
returns logits, shape (B, n_classes): no activation and no dropout on the logits (use
cross-entropy on them; softmax for probabilities). T may be any number of frames >= the model's
`min_frames` (a class attribute); `n_mels` must be >= its `min_mels`. A shorter input, or a number
of mel bands other than the one the model was built for, is a ValueError that names the model.

    cfg = ModelConfig(name="crnn", n_classes=8)
    model = build_model(cfg)                   # weights initialised by init_weights
    logits = model(torch.randn(4, 128, 1292))  # (4, 8)
    ckpt = {"model": model.state_dict(), "model_config": asdict(model.config)}
    same = build_model(ModelConfig(**ckpt["model_config"]))

The registry `MODELS` maps a name to a class:

| name           | what                                                            | min_frames | min_mels |
|----------------|-----------------------------------------------------------------|-----------:|---------:|
| cnn1d          | the 2023 project's 1-D CNN over time (mel bands as channels)    |         59 |        1 |
| cnn2d          | the 2023 project's LeNet-like 2-D CNN                           |         16 |       16 |
| crnn           | the 2023 project's residual CNN + LSTM                          |          8 |      128 |
| shortchunk_res | short-chunk residual CNN (Won et al. 2020, "Evaluation of       |        128 |      128 |
|                | CNN-based automatic music tagging models")                      |            |          |

How these differ from the 2023 project's models (docs/training.md, "Models"):

- cnn1d: the seed applied ReLU + dropout to the logits; here the last layer is a plain linear layer.
  The seed flattened the time axis into its linear layer, which fixed the input length; here the
  time axis is pooled globally (mean and max, concatenated) first, so any length >= 59 frames works.
  Its three conv stages are the 2023 project's (197,760 parameters); only the head differs
  (199,816 parameters in all for 8 classes instead of 236,680).
- cnn2d: the 2023 project's FC 148016->256 held 99.9% of its 37.9 M weights and accepted only 1288-1291
  frames; here the feature map is average-pooled to a fixed 8x8 grid first (or, with `pool`
  'avg' / 'max' / 'avgmax', pooled globally), so any length >= 16 frames works. Conv stages and
  the 256 -> 64 -> classes head (each hidden layer Linear -> BatchNorm1d -> ReLU) are the 2023 project's.
- crnn: the seed reshaped the conv output (B, C, 1, T) to (B, T, C), which scrambles channels and
  time; here it is permuted. Default sizes reproduce the 2023 project's 438,808 parameters exactly.
  `temporal_pool='mean'` classifies from the mean LSTM output instead of the last step.
- shortchunk_res: 7 residual blocks (3x3 conv, BN, ReLU, 2x2 max-pool), channels w, w, 2w, 2w, 2w,
  2w, 4w (w=128 in the paper; `width` defaults to 64 here for CPU training), global max pool,
  dense layer + BN + ReLU, dropout, output.

Run `python models.py` for the parameter counts.
"""
from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass, fields, replace
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


# ------------------------------------------------------------------------------------------ config

@dataclass
class ModelConfig:
    """What `build_model` needs to rebuild a model: plain types only, so `asdict(cfg)` can be saved
    inside a checkpoint and `ModelConfig(**d)` rebuilds it.

    A field left at None means "the model's own default" (see each class's constructor); a field
    the model does not use must stay None. `build_model` stores the resolved config (defaults filled
    in) as `model.config`, so a checkpoint never depends on defaults that may change later.
    """

    name: str                             # a key of MODELS
    n_classes: int = 8                    # outputs (logits)
    n_mels: int = 128                     # mel bands of the input
    width: Optional[int] = None           # channels of the first stage: cnn1d 128, cnn2d 6, crnn 16,
                                          # shortchunk_res 64 (the paper's 128)
    dropout: Optional[float] = None       # cnn1d 0.25 (in each stage), cnn2d 0.0, crnn 0.5, shortchunk_res 0.5
    hidden: Optional[int] = None          # cnn2d first FC 256, crnn LSTM 128, shortchunk_res dense 4*width
    pool: Optional[str] = None            # global pooling: cnn1d 'avgmax', cnn2d 'grid', shortchunk_res 'max'
    temporal_pool: Optional[str] = None   # crnn only: 'last' (the 2023 project's) or 'mean' over the LSTM outputs

    def kwargs(self) -> dict:
        """The fields set (not None), as the model's constructor takes them; a ValueError naming any field
        the model does not take."""
        params = inspect.signature(model_class(self.name).__init__).parameters
        kwargs = {k: v for k, v in asdict(self).items() if k != "name" and v is not None}
        unused = [k for k in kwargs if k not in params]
        if unused:
            taken = ", ".join("--" + p.replace("_", "-") for p in params if p not in ("self", "n_classes", "n_mels"))
            raise ValueError(f"{self.name} does not take {', '.join('--' + k.replace('_', '-') for k in unused)} "
                             f"(its options: {taken})")
        return kwargs

    def check(self) -> None:
        """ValueError when a field is set that the model does not take, or to a value it refuses, before any
        work (the model is built on torch's meta device: no memory, no weights)."""
        with torch.device("meta"):
            model_class(self.name)(**self.kwargs())

    def resolved(self) -> "ModelConfig":
        """A copy with every field the model takes set (None -> the constructor's default)."""
        cls = model_class(self.name)
        params = inspect.signature(cls.__init__).parameters
        filled = {f.name: params[f.name].default for f in fields(self)
                  if f.name in params and getattr(self, f.name) is None}
        return replace(self, **filled)


# ---------------------------------------------------------------------------------- initialisation

def init_weights(module: nn.Module) -> None:
    """The one place where weights are initialised; `build_model` applies it to every submodule.

    Convolutions: Kaiming-normal (fan_out, ReLU), zero bias. Linear: Xavier-uniform, zero bias.
    BatchNorm: weight 1, bias 0. LSTM: Xavier-uniform input weights, orthogonal recurrent weights
    (per gate), zero biases.
    """
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Linear):
        nn.init.xavier_uniform_(module.weight)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LSTM):
        for name, p in module.named_parameters():
            if name.startswith("weight_ih"):
                nn.init.xavier_uniform_(p)
            elif name.startswith("weight_hh"):
                for gate in p.chunk(4, dim=0):  # (4H, H): input, forget, cell, output gates
                    nn.init.orthogonal_(gate)
            elif name.startswith("bias"):
                nn.init.zeros_(p)


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    """Number of trainable parameters (all of them with `trainable_only=False`, e.g. under
    `freeze_backbone`, where only the head trains)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


# ---------------------------------------------------------------------------------- building blocks

class SpectrogramModel(nn.Module):
    """Base class: input checks shared by every model. Subclasses set the class attributes."""

    name = "?"       # registry name, used in error messages
    min_frames = 1   # shortest input (frames) for which every layer has a non-empty output
    min_mels = 1     # fewest mel bands the architecture supports
    audio: dict = {}   # the model's own audio parameters (AudioConfig fields), the run's defaults
    standardize = True  # False: takes log-mel dB as it is (identity normalisation)

    def __init__(self, n_classes: int, n_mels: int):
        super().__init__()
        if n_classes < 1:
            raise ValueError(f"{self.name}: n_classes must be >= 1, got {n_classes}")
        if n_mels < self.min_mels:
            raise ValueError(f"{self.name}: needs n_mels >= {self.min_mels}, got {n_mels}")
        self.n_classes, self.n_mels = n_classes, n_mels

    def check_input(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 3 or x.shape[1] != self.n_mels or x.shape[2] < self.min_frames:
            raise ValueError(f"{self.name}: expects log-mel input of shape (batch, n_mels={self.n_mels}, "
                             f"frames >= {self.min_frames}) (min_frames={self.min_frames}), "
                             f"got {tuple(x.shape)}")
        return x

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """(B, n_mels, T) -> (B, D): the pooled backbone output, what `head` classifies."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(self.check_input(x)))  # (B, M, T) -> (B, D) -> (B, n_classes)

    # -- transfer learning: the backbone is every submodule but `head`
    def is_head(self, key: str) -> bool:
        """Whether a state_dict key belongs to the head (replaced when n_classes changes)."""
        return key.split(".", 1)[0] == "head"

    def freeze_backbone(self) -> None:
        """Train the head only: backbone parameters get no gradient and its BatchNorm layers stay in
        eval mode (running statistics unchanged), so every backbone tensor keeps its value."""
        for key, p in self.named_parameters():
            p.requires_grad_(self.is_head(key))
        self.frozen_backbone = True
        self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "frozen_backbone", False):
            for name, child in self.named_children():
                if name != "head":
                    child.eval()
        return self


def global_pool(x: torch.Tensor, how: str, dims) -> torch.Tensor:
    """Pool `x` over `dims`: 'avg', 'max', or 'avgmax' (both, concatenated on the channel dim 1)."""
    if how == "avg":
        return x.mean(dim=dims)
    if how == "max":
        return x.amax(dim=dims)
    return torch.cat([x.mean(dim=dims), x.amax(dim=dims)], dim=1)


GLOBAL_POOLS = ("avg", "max", "avgmax")


def _check_choice(model: str, arg: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"{model}: {arg} must be one of {', '.join(map(repr, choices))}, got {value!r}")


class ResBlock2d(nn.Module):
    """conv3x3 -> BN -> ReLU -> conv3x3 -> BN, plus a shortcut (1x1 conv -> BN when the channels
    change, identity otherwise), ReLU, then max-pool (`pool` = (freq, time) kernel; None: no pool)."""

    def __init__(self, c_in: int, c_out: int, pool: Optional[tuple] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = (nn.Sequential(nn.Conv2d(c_in, c_out, 1), nn.BatchNorm2d(c_out))
                         if c_in != c_out else nn.Identity())
        self.pool = nn.MaxPool2d(pool) if pool else nn.Identity()

    def forward(self, x):  # (B, C_in, F, T) -> (B, C_out, F // pf, T // pt)
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return self.pool(F.relu(out + self.shortcut(x)))


# ------------------------------------------------------------------------------------------ models

class CNN1D(SpectrogramModel):
    """The 2023 project's 1-D CNN: mel bands are the channels, convolution runs over time.

    3 stages of Conv1d(k=4) -> LeakyReLU -> Dropout -> BatchNorm1d -> MaxPool1d(4, 4, padding 2),
    then global pooling over time and one linear layer (no activation on the logits).
    min_frames 59: conv (T-3) -> pool -> conv -> pool must leave >= 4 frames for the third conv.
    """

    name, min_frames, min_mels = "cnn1d", 59, 1

    def __init__(self, n_classes: int = 8, n_mels: int = 128, width: int = 128, dropout: float = 0.25,
                 pool: str = "avgmax"):
        super().__init__(n_classes, n_mels)
        _check_choice(self.name, "pool", pool, GLOBAL_POOLS)
        self.pool = pool
        stages, c_in = [], n_mels
        for _ in range(3):
            stages += [nn.Conv1d(c_in, width, kernel_size=4), nn.LeakyReLU(), nn.Dropout(dropout),
                       nn.BatchNorm1d(width), nn.MaxPool1d(4, 4, padding=2)]
            c_in = width
        self.features = nn.Sequential(*stages)
        self.head = nn.Linear(width * (2 if pool == "avgmax" else 1), n_classes)

    def embed(self, x):
        x = self.features(x)                 # (B, M, T) -> (B, C, T')
        return global_pool(x, self.pool, -1)  # (B, C, T') -> (B, C) or (B, 2C)


class CNN2D(SpectrogramModel):
    """The 2023 project's LeNet-like 2-D CNN.

    Conv2d(1->w, 5) -> BN -> ReLU -> MaxPool2, Conv2d(w->8w/3, 5) -> BN -> ReLU -> MaxPool2 (w=6:
    6 and 16 channels, as LeNet), then pooling, then FC hidden -> hidden/4 -> n_classes, each hidden
    FC followed by BatchNorm1d -> ReLU -> Dropout.
    pool='grid' (default) average-pools the feature map to an 8x8 grid and flattens it (the seed
    flattened the whole map, which fixed the input length); 'avg' / 'max' / 'avgmax' pool globally.
    min_frames = min_mels = 16: conv5 -> pool2 -> conv5 -> pool2 must leave >= 1 bin.
    """

    name, min_frames, min_mels = "cnn2d", 16, 16

    def __init__(self, n_classes: int = 8, n_mels: int = 128, width: int = 6, dropout: float = 0.0,
                 hidden: int = 256, pool: str = "grid", grid: tuple = (8, 8)):
        super().__init__(n_classes, n_mels)
        _check_choice(self.name, "pool", pool, ("grid",) + GLOBAL_POOLS)
        c1, c2 = width, round(width * 16 / 6)
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 5), nn.BatchNorm2d(c1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5), nn.BatchNorm2d(c2), nn.ReLU(), nn.MaxPool2d(2))
        self.pool = pool
        self.grid = nn.AdaptiveAvgPool2d(grid) if pool == "grid" else None
        n_in = c2 * grid[0] * grid[1] if pool == "grid" else c2 * (2 if pool == "avgmax" else 1)
        h2 = hidden // 4
        self.head = nn.Sequential(
            nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, h2), nn.BatchNorm1d(h2), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(h2, n_classes))

    def embed(self, x):
        x = x.unsqueeze(1)                               # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)                             # (B, 1, M, T) -> (B, C, F', T')
        if self.grid is not None:
            return self.grid(x).flatten(1)               # (B, C, F', T') -> (B, C*8*8)
        return global_pool(x, self.pool, (-2, -1))       # (B, C, F', T') -> (B, C) or (B, 2C)


class CRNN(SpectrogramModel):
    """The 2023 project's CRNN: 4 residual blocks (1 -> w -> 2w -> 4w -> 8w channels) with max-pools
    (8,2), (4,2), (4,2), none (frequency, time), which collapse 128 mel bands to 1, then
    LSTM(8w -> hidden), dropout, linear; on the last LSTM step (temporal_pool='last', the 2023 project's)
    or on the mean over steps ('mean').

    The seed reshaped (B, C, 1, T) to (B, T, C), which interleaves channels and time; here the
    conv output is permuted, so LSTM step t sees all channels at time t.
    n_mels > 128 leaves a few frequency bins after the pools; they are max-pooled away.
    min_frames 8 (three time pools of 2), min_mels 128 (8 * 4 * 4).
    """

    name, min_frames, min_mels = "crnn", 8, 128

    def __init__(self, n_classes: int = 8, n_mels: int = 128, width: int = 16, dropout: float = 0.5,
                 hidden: int = 128, temporal_pool: str = "last"):
        super().__init__(n_classes, n_mels)
        _check_choice(self.name, "temporal_pool", temporal_pool, ("last", "mean"))
        self.temporal_pool = temporal_pool
        chans = [1, width, 2 * width, 4 * width, 8 * width]
        pools = [(8, 2), (4, 2), (4, 2), None]
        self.features = nn.Sequential(*[ResBlock2d(chans[i], chans[i + 1], pools[i]) for i in range(4)])
        self.lstm = nn.LSTM(chans[-1], hidden, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, n_classes)

    def embed(self, x):
        x = x.unsqueeze(1)                # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)              # (B, 1, M, T) -> (B, C, F', T/8), F' = 1 for M = 128
        x = x.amax(dim=2)                 # (B, C, F', T') -> (B, C, T')  (a squeeze when F' = 1)
        x = x.permute(0, 2, 1)            # (B, C, T') -> (B, T', C)  (the 2023 project's bug: reshape)
        out, _ = self.lstm(x)             # (B, T', C) -> (B, T', H)
        if self.temporal_pool == "last":
            out = out[:, -1]              # (B, T', H) -> (B, H)
        else:
            out = out.mean(dim=1)         # (B, T', H) -> (B, H)
        return self.dropout(out)          # (B, H); the head is linear


class ShortChunkRes(SpectrogramModel):
    """Short-chunk residual CNN (Won et al. 2020): 7 residual blocks of 3x3 convs with BN + ReLU and
    2x2 max-pool, channels w, w, 2w, 2w, 2w, 2w, 4w; global pooling over what is left of frequency and
    time ('max' as the paper; 'avg' / 'avgmax'), then Linear(4w -> hidden) -> BN -> ReLU -> Dropout ->
    Linear(hidden -> n_classes). The paper uses w = 128 on 3.69 s chunks; w defaults to 64 here.
    min_frames = min_mels = 128 (seven pools of 2).
    """

    name, min_frames, min_mels = "shortchunk_res", 128, 128

    def __init__(self, n_classes: int = 8, n_mels: int = 128, width: int = 64, dropout: float = 0.5,
                 hidden: Optional[int] = None, pool: str = "max"):
        super().__init__(n_classes, n_mels)
        _check_choice(self.name, "pool", pool, GLOBAL_POOLS)
        self.pool = pool
        w = width
        chans = [1, w, w, 2 * w, 2 * w, 2 * w, 2 * w, 4 * w]
        self.features = nn.Sequential(*[ResBlock2d(chans[i], chans[i + 1], (2, 2)) for i in range(7)])
        hidden = hidden or 4 * w
        n_in = chans[-1] * (2 if pool == "avgmax" else 1)
        self.head = nn.Sequential(nn.Linear(n_in, hidden), nn.BatchNorm1d(hidden), nn.ReLU(),
                                  nn.Dropout(dropout), nn.Linear(hidden, n_classes))

    def embed(self, x):
        x = x.unsqueeze(1)                            # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)                          # (B, 1, M, T) -> (B, C, M/128, T/128)
        return global_pool(x, self.pool, (-2, -1))    # (B, C, F', T') -> (B, C) or (B, 2C)


def conv_relu_bn_max(conv: nn.Conv2d, bn: nn.BatchNorm2d, x: torch.Tensor) -> torch.Tensor:
    """bn(relu(conv(x))).amax(dim=3), (B, C, T, F) -> (B, C, T): a musicnn front-end filter after its padding.

    In training (batch statistics) computed as written. In evaluation BatchNorm is a fixed affine map per
    channel, and it and ReLU are monotone, so they commute with the max over F: where BN's scale (weight /
    sqrt(var + eps), the weight's sign) is >= 0 the max of the conv is taken, where it is negative the min,
    as minus the max of the conv with negated weights and bias (exact: negation commutes with rounding).
    ReLU and BN then run on (B, C, T) instead of (B, C, T, F): no two passes over and two copies of the
    largest tensor of the model (F = 59 and 30 for the timbral filters, 96 for the temporal ones), and one
    max instead of a max and a min. The same values to float rounding (tests/test_musicnn.py)."""
    if bn.training or bn.running_mean is None:
        return bn(F.relu(conv(x))).amax(dim=3)
    sign = torch.ones(conv.out_channels, dtype=x.dtype, device=x.device) if bn.weight is None else \
        torch.where(bn.weight < 0, -1.0, 1.0).to(x.dtype)
    bias = conv.bias * sign if conv.bias is not None else None
    y = F.conv2d(x, conv.weight * sign[:, None, None, None], bias, conv.stride, conv.padding, conv.dilation,
                 conv.groups)
    y = y.amax(dim=3) * sign[:, None]  # (B, C, T): the max where BN increases, the min where it decreases
    return F.batch_norm(F.relu(y), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)


class TimbralBlock(nn.Module):
    """musicnn's "timbral" filter: a tall conv (time x a fraction of the mel bands) -> ReLU -> BN,
    then max over frequency. The time axis is zero-padded so that T is kept ('same' in time)."""

    def __init__(self, filters: int, time: int, freq: int):
        super().__init__()
        self.pad = (time - 1) // 2
        self.conv = nn.Conv2d(1, filters, (time, freq))
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)

    def forward(self, x):  # (B, 1, T, M) -> (B, C, T)
        x = F.pad(x, (0, 0, self.pad, self.pad))            # time only: (B, 1, T + 2p, M)
        return conv_relu_bn_max(self.conv, self.bn, x)     # (B, C, T, M') -> (B, C, T)


class TemporalBlock(nn.Module):
    """musicnn's "temporal" filter: a wide conv over time only (k x 1, TensorFlow's 'same' padding,
    which puts the odd sample after) -> ReLU -> BN, then max over frequency."""

    def __init__(self, filters: int, time: int):
        super().__init__()
        self.pads = ((time - 1) // 2, time - 1 - (time - 1) // 2)
        self.conv = nn.Conv2d(1, filters, (time, 1))
        self.bn = nn.BatchNorm2d(filters, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)

    def forward(self, x):  # (B, 1, T, M) -> (B, C, T)
        x = F.pad(x, (0, 0) + self.pads)                    # (B, 1, T + k - 1, M)
        return conv_relu_bn_max(self.conv, self.bn, x)     # (B, C, T, M) -> (B, C, T)


class ConvBN1d(nn.Module):
    """Conv1d over time ('same', odd kernel) -> ReLU -> BN: one layer of musicnn's mid-end."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 7):
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel, padding=kernel // 2)
        self.bn = nn.BatchNorm1d(c_out, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)

    def forward(self, x):  # (B, C_in, T) -> (B, C_out, T)
        return self.bn(F.relu(self.conv(x)))


TF_BN_EPS, TF_BN_MOMENTUM = 1e-3, 0.01  # tf.compat.v1.layers.batch_normalization's defaults (momentum 0.99)
MUSICNN_LN10 = 2.302585092994046        # ln(10)


class Musicnn(SpectrogramModel):
    """musicnn (Pons & Serra 2019, "musicnn: pre-trained convolutional neural networks for music audio
    tagging"), a port of the TensorFlow model of the `musicnn` package (MTG, UPF; ISC licence), whose
    MSD and MTT weights `convert_musicnn.py` turns into pretrained/musicnn_{msd,mtt}.pt.

    Input: the project's log-mel dB at musicnn's own audio parameters (`audio`: 16 kHz, n_fft 512,
    hop 256, 96 mels), unstandardised (`standardize = False`: checkpoints carry an identity
    normalisation). The model converts dB to its own compression log10(10000 * mel_power + 1) first,
    so there is still one feature function.

    input BatchNorm -> front-end: 2 timbral filters (7 x 0.4 M and 7 x 0.7 M, 204 each) and 3 temporal
    filters (128, 64, 32 frames x 1, 51 each), each max-pooled over frequency, concatenated (561) ->
    mid-end: 3 conv1d layers (k 7, `width` 64; the 2nd and 3rd residual), densely connected with the
    front-end (561 + 3 * 64 = 753) -> max and mean over time (1506) -> BN -> dropout -> dense `hidden`
    (200) -> ReLU -> BN -> dropout = the embedding -> `head`, Linear(hidden -> n_classes).
    Any number of frames works (musicnn was trained on 187-frame, 3 s patches); min_mels 3.
    """

    name, min_frames, min_mels = "musicnn", 1, 3
    audio = {"sample_rate": 16000, "n_fft": 512, "hop_length": 256, "n_mels": 96}  # its audio parameters
    standardize = False        # takes log-mel dB as it is (the compression below is its normalisation)
    frontend_filters = 1.6     # musicnn's num_filt: 1.6 * 128 timbral, 1.6 * 32 temporal filters

    def __init__(self, n_classes: int = 50, n_mels: int = 96, width: int = 64, dropout: float = 0.5,
                 hidden: int = 200):
        super().__init__(n_classes, n_mels)
        timbral, temporal = int(self.frontend_filters * 128), int(self.frontend_filters * 32)
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM)
        self.timbral = nn.ModuleList([TimbralBlock(timbral, 7, int(f * n_mels)) for f in (0.4, 0.7)])
        self.temporal = nn.ModuleList([TemporalBlock(temporal, k) for k in (128, 64, 32)])
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList([ConvBN1d(front, width), ConvBN1d(width, width), ConvBN1d(width, width)])
        pooled = 2 * (front + 3 * width)
        self.backend = nn.Sequential(
            nn.BatchNorm1d(pooled, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM), nn.Dropout(dropout),
            nn.Linear(pooled, hidden), nn.ReLU(),
            nn.BatchNorm1d(hidden, eps=TF_BN_EPS, momentum=TF_BN_MOMENTUM), nn.Dropout(dropout))
        self.head = nn.Linear(hidden, n_classes)

    @staticmethod
    def compress(db: torch.Tensor) -> torch.Tensor:
        """log-mel dB (10 log10 power) -> musicnn's log10(10000 * power + 1), computed as
        softplus(ln(10) * (dB / 10 + 4)) / ln(10): the same value, stable in any precision."""
        return F.softplus(MUSICNN_LN10 * (db.float() / 10 + 4)) / MUSICNN_LN10

    def embed(self, x):
        x = self.compress(x).transpose(1, 2).unsqueeze(1)          # (B, M, T) -> (B, 1, T, M)
        x = self.input_bn(x)
        front = torch.cat([blk(x) for blk in (*self.timbral, *self.temporal)], dim=1)  # (B, 561, T)
        mid1 = self.midend[0](front)                               # (B, 64, T)
        mid2 = self.midend[1](mid1) + mid1                         # residual
        mid3 = self.midend[2](mid2) + mid2
        feats = torch.cat([front, mid1, mid2, mid3], dim=1)        # (B, 753, T)
        pooled = torch.stack([feats.amax(dim=2), feats.mean(dim=2)], dim=2)  # (B, 753, 2): max, mean
        return self.backend(pooled.flatten(1))                    # (B, 1506) -> (B, hidden)


# ---------------------------------------------------------------------------------------- registry

MODELS: dict[str, type[SpectrogramModel]] = {
    cls.name: cls for cls in (CNN1D, CNN2D, CRNN, ShortChunkRes, Musicnn)
}


def model_class(name: str) -> type[SpectrogramModel]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    return MODELS[name]


def build_model(cfg: ModelConfig) -> SpectrogramModel:
    """The model named by `cfg`, with weights from `init_weights`; `model.config` is the resolved cfg."""
    model = model_class(cfg.name)(**cfg.kwargs())
    model.apply(init_weights)
    model.config = cfg.resolved()
    return model


def parameter_table(n_classes: int = 8, n_mels: int = 128) -> str:
    """One line per registered model (default sizes): name, parameters, min_frames."""
    lines = [f"{'model':<16}{'parameters':>12}{'min_frames':>12}"]
    for name, cls in MODELS.items():
        n = count_parameters(build_model(ModelConfig(name=name, n_classes=n_classes, n_mels=n_mels)))
        lines.append(f"{name:<16}{n:>12,}{cls.min_frames:>12}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(parameter_table())
