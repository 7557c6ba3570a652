"""Training on several processes (GPUs, machines) with torch.distributed, started by torchrun.

Nothing here is used unless torchrun started the process: `setup()` reads torchrun's environment
(WORLD_SIZE, RANK, LOCAL_RANK) and, with more than one process, joins the process group (NCCL on
CUDA, gloo on CPU). Without it, `setup()` returns `Dist()`, one process, and every helper below is a
no-op, so the single-process path stays what it was.

    torchrun --standalone --nproc_per_node=4 main.py --config configs/best.yaml      # one machine
    torchrun --nnodes=2 --nproc_per_node=4 --rdzv_backend=c10d --rdzv_endpoint=HOST:29500 main.py ...

What train.py and test.py do with it: DistributedDataParallel training, each process drawing its share of the
training clips (`train_sampler`), evaluation sharded by whole batches (`ShardedBatches`) and gathered
on rank 0 (`gather_batches`), so validation and test metrics are those of one process; all output
(console, files, checkpoints, W&B) from rank 0 only.
"""
from __future__ import annotations

import contextlib
import math
import os
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any, Callable, Iterator, Optional

import torch
import torch.distributed as td

TIMEOUT_MINUTES = 30  # a collective that waits longer than this fails (a rank died, or decodes a huge cache)


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes: rank (0 .. world_size-1), local_rank (its
    index on its machine, its GPU) and the backend; one process (`Dist()`) when not under torchrun."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    backend: Optional[str] = None  # 'nccl' or 'gloo' once the process group is joined
    device: Optional[str] = None   # 'cuda:LOCAL_RANK' under NCCL; None: the run's --device

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that prints, writes files and logs to W&B."""
        return self.rank == 0

    def seed(self, base: int) -> int:
        """A seed for this rank's randomness (augmentation, crops, mixup): distinct per rank, and `base`
        itself in a single process."""
        return base * self.world_size + self.rank

    def barrier(self) -> None:
        if self.enabled:
            td.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's `obj`, on every rank (picklable objects)."""
        if not self.enabled:
            return obj
        box = [obj]
        td.broadcast_object_list(box, src=0)
        return box[0]

    def gather(self, obj: Any) -> Optional[list]:
        """[obj of rank 0, obj of rank 1, ...] on rank 0; None on the others."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size if self.main else None
        td.gather_object(obj, out, dst=0)
        return out

    def sum(self, *values: float) -> tuple[float, ...]:
        """Each value summed over the ranks (float64)."""
        if not self.enabled:
            return values
        t = torch.tensor(values, dtype=torch.float64, device=self._device())
        td.all_reduce(t)
        return tuple(t.tolist())

    def max(self, value: float) -> float:
        if not self.enabled:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self._device())
        td.all_reduce(t, op=td.ReduceOp.MAX)
        return float(t.item())

    def main_first(self, fn: Callable[[], Any]) -> Any:
        """fn() on rank 0, then on the others (e.g. generate data once, which the others then find)."""
        if self.main:
            result = fn()
        self.barrier()
        if not self.main:
            result = fn()
        return result

    def _device(self) -> torch.device:
        return torch.device("cuda", torch.cuda.current_device()) if self.backend == "nccl" else torch.device("cpu")


def from_env(environ=os.environ) -> Dist:
    """The Dist that torchrun's environment describes (WORLD_SIZE, RANK, LOCAL_RANK); Dist() without it.
    A malformed environment is a ValueError naming the variables."""
    if "WORLD_SIZE" not in environ:
        return Dist()
    names = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")
    try:
        world, rank, local, local_world = (int(environ.get(k, d)) for k, d in zip(names, (1, 0, 0, 1)))
    except ValueError:
        raise ValueError("torchrun's " + ", ".join(names) + " must be integers (got "
                         + ", ".join(f"{k}={environ.get(k)!r}" for k in names) + ")") from None
    if not (world >= 1 and 0 <= rank < world and 0 <= local < local_world):
        raise ValueError("torchrun's environment is inconsistent: " + ", ".join(f"{k}={environ.get(k)}" for k in names))
    return Dist(rank=rank, world_size=world, local_rank=local, local_world_size=local_world)


def setup(device: str = "auto", environ=os.environ) -> Dist:
    """Join torchrun's process group when there is one of several processes: NCCL when this process
    trains on CUDA (`device` cuda or auto with a GPU; its GPU is cuda:LOCAL_RANK), gloo on CPU."""
    dist = from_env(environ)
    if not dist.enabled:
        return dist
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        if dist.local_rank >= torch.cuda.device_count():
            raise ValueError(f"local rank {dist.local_rank} has no GPU: this machine has "
                             f"{torch.cuda.device_count()} (give torchrun --nproc_per_node at most that)")
        torch.cuda.set_device(dist.local_rank)
    gpu = torch.device("cuda", dist.local_rank) if cuda else None
    td.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(minutes=TIMEOUT_MINUTES),
                          **({"device_id": gpu} if cuda else {}))
    return replace(dist, backend="nccl" if cuda else "gloo", device=str(gpu) if cuda else None)


def cleanup(dist: Dist) -> None:
    if dist.enabled and td.is_initialized():
        td.destroy_process_group()


@contextlib.contextmanager
def quiet_unless_main(dist: Dist):
    """Send the standard output of every rank but 0 to /dev/null for the block: each console line is
    printed once. Errors (stderr) still come from the rank that has them."""
    if dist.main:
        yield
        return
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        yield


class WeightedSampler(torch.utils.data.Sampler):
    """`--balance sampler` under torchrun: each epoch one draw of `num_samples` indices with replacement,
    weighted by `weights`, the same on every rank (seeded with seed + epoch), of which rank r takes every
    world_size-th: together the ranks see what one WeightedRandomSampler of as many draws would give."""

    def __init__(self, weights, num_samples: int, dist: Dist, seed: int = 0):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.dist, self.seed, self.epoch = dist, seed, 0
        self.per_rank = math.ceil(num_samples / dist.world_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.per_rank

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        draw = torch.multinomial(self.weights, self.per_rank * self.dist.world_size, replacement=True, generator=g)
        return iter(draw[self.dist.rank::self.dist.world_size].tolist())


def train_sampler(n: int, weights, dist: Dist, seed: int) -> torch.utils.data.Sampler:
    """This rank's share of an epoch's training clips (call set_epoch each epoch): a DistributedSampler
    (a shuffle of all n clips, the same on every rank, split between them; padded so every rank has as
    many batches), or, given `weights` (`--balance sampler`), a WeightedSampler."""
    if weights is not None:
        return WeightedSampler(weights, n, dist, seed)
    return torch.utils.data.DistributedSampler(range(n), num_replicas=dist.world_size, rank=dist.rank,
                                               shuffle=True, seed=seed)


class ShardedBatches(torch.utils.data.Sampler):
    """Evaluation batches of a single process (consecutive clips, `batch_size` each, the last one shorter),
    of which rank r takes batches r, r + world_size, ...: every clip is computed in the very batch it
    would be in one process, so gathering them back (`gather_batches`) gives one process's numbers."""

    def __init__(self, n: int, batch_size: int, dist: Dist):
        starts = range(0, n, batch_size)
        self.batches = [list(range(s, min(s + batch_size, n))) for s in starts][dist.rank::dist.world_size]

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.batches)


def gather_batches(dist: Dist, batches: list) -> Optional[list]:
    """Every rank's evaluated batches (lists in ShardedBatches order) back in single-process order, on
    rank 0; None on the others."""
    per_rank = dist.gather(batches)
    if per_rank is None:
        return None
    longest = max(len(b) for b in per_rank)
    return [b[k] for k in range(longest) for b in per_rank if k < len(b)]  # batch k*world + r is rank r's k-th
