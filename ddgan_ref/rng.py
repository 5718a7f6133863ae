"""Per-sample random streams: row i of every draw depends only on seed + i (NVlabs/edm's habit)."""

from __future__ import annotations

import torch
from torch import Tensor


class SeedStream:
    """Row i of every draw comes from its own CPU generator seeded with seed + i.

    Draws are made on the CPU and then moved to `device`, so a seed gives the same noise on every
    device and for every batch split: sampling images 0..99 in batches of 1, 7 or 100 draws the same
    numbers for each image.
    """

    def __init__(self, seed: int, n: int, device: torch.device | str = "cpu"):
        if n < 1:
            raise ValueError(f"a SeedStream needs n >= 1 rows, got {n}")
        self.seed, self.n, self.device = int(seed), int(n), torch.device(device)
        self._gens = [torch.Generator("cpu").manual_seed(self.seed + i) for i in range(self.n)]

    def randn(self, *shape: int) -> Tensor:
        """Standard normal draws, float32 [n, *shape] on `device`."""
        rows = [torch.randn(shape, generator=g) for g in self._gens]
        return torch.stack(rows).to(self.device)

    def randint(self, high: int) -> Tensor:
        """One integer in [0, high) per row, int64 [n] on `device`."""
        rows = [torch.randint(high, (1,), generator=g) for g in self._gens]
        return torch.cat(rows).to(self.device)
