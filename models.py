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
| cnn1d          | the seed's 1-D CNN over time (mel bands as channels)            |         59 |        1 |
| cnn2d          | the seed's LeNet-like 2-D CNN                                   |         16 |       16 |
| crnn           | the seed's residual CNN + LSTM                                  |          8 |      128 |
| shortchunk_res | short-chunk residual CNN (Won et al. 2020, "Evaluation of       |        128 |      128 |
|                | CNN-based automatic music tagging models")                      |            |          |

How these differ from the seed's models (DESIGN.md, "The seed's models and results"):

- cnn1d: the seed applied ReLU + dropout to the logits; here the last layer is a plain linear layer.
  The seed flattened the time axis into its linear layer, which fixed the input length; here the
  time axis is pooled globally (mean and max, concatenated) first, so any length >= 59 frames works.
  Its three conv stages are the seed's (197,760 parameters); only the head differs
  (199,816 parameters in all for 8 classes instead of 236,680).
- cnn2d: the seed's FC 148016->256 held 99.9% of its 37.9 M weights and accepted only 1288-1291
  frames; here the feature map is average-pooled to a fixed 8x8 grid first (or, with `pool`
  'avg' / 'max' / 'avgmax', pooled globally), so any length >= 16 frames works. Conv stages and
  the 256 -> 64 -> classes head (each hidden layer Linear -> BatchNorm1d -> ReLU) are the seed's.
- crnn: the seed reshaped the conv output (B, C, 1, T) to (B, T, C), which scrambles channels and
  time; here it is permuted. Default sizes reproduce the seed's 438,808 parameters exactly.
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
    temporal_pool: Optional[str] = None   # crnn only: 'last' (the seed's) or 'mean' over the LSTM outputs

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


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ---------------------------------------------------------------------------------- building blocks

class SpectrogramModel(nn.Module):
    """Base class: input checks shared by every model. Subclasses set the class attributes."""

    name = "?"       # registry name, used in error messages
    min_frames = 1   # shortest input (frames) for which every layer has a non-empty output
    min_mels = 1     # fewest mel bands the architecture supports

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
    """The seed's 1-D CNN: mel bands are the channels, convolution runs over time.

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

    def forward(self, x):
        x = self.check_input(x)              # (B, M, T)
        x = self.features(x)                 # (B, M, T) -> (B, C, T')
        x = global_pool(x, self.pool, -1)    # (B, C, T') -> (B, C) or (B, 2C)
        return self.head(x)                  # (B, n_classes)


class CNN2D(SpectrogramModel):
    """The seed's LeNet-like 2-D CNN.

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

    def forward(self, x):
        x = self.check_input(x)
        x = x.unsqueeze(1)                               # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)                             # (B, 1, M, T) -> (B, C, F', T')
        if self.grid is not None:
            x = self.grid(x).flatten(1)                  # (B, C, F', T') -> (B, C*8*8)
        else:
            x = global_pool(x, self.pool, (-2, -1))      # (B, C, F', T') -> (B, C) or (B, 2C)
        return self.head(x)                              # (B, n_classes)


class CRNN(SpectrogramModel):
    """The seed's CRNN: 4 residual blocks (1 -> w -> 2w -> 4w -> 8w channels) with max-pools
    (8,2), (4,2), (4,2), none (frequency, time), which collapse 128 mel bands to 1, then
    LSTM(8w -> hidden), dropout, linear; on the last LSTM step (temporal_pool='last', the seed's)
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

    def forward(self, x):
        x = self.check_input(x)
        x = x.unsqueeze(1)                # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)              # (B, 1, M, T) -> (B, C, F', T/8), F' = 1 for M = 128
        x = x.amax(dim=2)                 # (B, C, F', T') -> (B, C, T')  (a squeeze when F' = 1)
        x = x.permute(0, 2, 1)            # (B, C, T') -> (B, T', C)  (the seed's bug: reshape)
        out, _ = self.lstm(x)             # (B, T', C) -> (B, T', H)
        if self.temporal_pool == "last":
            out = out[:, -1]              # (B, T', H) -> (B, H)
        else:
            out = out.mean(dim=1)         # (B, T', H) -> (B, H)
        return self.head(self.dropout(out))  # (B, n_classes)


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

    def forward(self, x):
        x = self.check_input(x)
        x = x.unsqueeze(1)                            # (B, M, T) -> (B, 1, M, T)
        x = self.features(x)                          # (B, 1, M, T) -> (B, C, M/128, T/128)
        x = global_pool(x, self.pool, (-2, -1))       # (B, C, F', T') -> (B, C) or (B, 2C)
        return self.head(x)                           # (B, n_classes)


# ---------------------------------------------------------------------------------------- registry

MODELS: dict[str, type[SpectrogramModel]] = {
    cls.name: cls for cls in (CNN1D, CNN2D, CRNN, ShortChunkRes)
}


def model_class(name: str) -> type[SpectrogramModel]:
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}: choose from {', '.join(MODELS)}")
    return MODELS[name]


def build_model(cfg: ModelConfig) -> SpectrogramModel:
    """The model named by `cfg`, with weights from `init_weights`; `model.config` is the resolved cfg."""
    cls = model_class(cfg.name)
    params = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in asdict(cfg).items() if k != "name" and v is not None}
    unused = [k for k in kwargs if k not in params]
    if unused:
        raise ValueError(f"{cfg.name}: does not take {', '.join(unused)} (leave it None); "
                         f"it takes {', '.join(p for p in params if p != 'self')}")
    model = cls(**kwargs)
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
