"""Several processes under torchrun: each draws and embeds a contiguous shard of the samples, and the shards are
gathered in rank order, so the result is the single-process result (sample i always comes from seed + i).
gloo on CPU, nccl on GPU; one process (no torchrun) needs no process group at all."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import Tensor


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, n: int, align: int = 1) -> slice:
        """This rank's contiguous part of range(n); the parts of all ranks, in rank order, cover it once. Parts
        start on multiples of `align` (a batch size), so every batch is the one a single process would run."""
        blocks = -(-n // align)
        first, last = self.rank * blocks // self.size, (self.rank + 1) * blocks // self.size
        return slice(min(first * align, n), min(last * align, n))

    def gather(self, part: Tensor) -> Tensor:
        """Every rank's part (on CPU), concatenated in rank order, on every rank; empty parts (a rank whose shard
        is empty) are left out."""
        if self.size == 1:
            return part
        parts: list = [None] * self.size
        dist.all_gather_object(parts, part.cpu())
        return torch.cat([p for p in parts if p.numel()] or parts[:1])

    def broadcast(self, obj):
        """Rank 0's obj on every rank (picklable objects)."""
        if self.size == 1:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()


def setup(device: torch.device) -> World:
    """The World of this process: under torchrun (WORLD_SIZE > 1) a process group is initialised, nccl for
    CUDA devices and gloo otherwise."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size == 1:
        return World()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def teardown(world: World) -> None:
    if world.size > 1 and dist.is_initialized():
        dist.destroy_process_group()
