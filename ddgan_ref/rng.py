"""Per-sample random streams: row i of every draw depends only on seed + i (NVlabs/edm's habit)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ddgan_ref.ops import draw_rows


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
        out = torch.empty((self.n, *shape), dtype=torch.float32)
        self.draw_into([out], [0])
        return out.to(self.device)

    def randint(self, high: int) -> Tensor:
        """One integer in [0, high) per row, int64 [n] on `device`."""
        check_high(high)
        out = torch.empty(self.n, dtype=torch.long)
        self.draw_into([out], [high])
        return out.to(self.device)

    def draw_into(self, buffers: Sequence[Tensor], highs: Sequence[int]) -> None:
        """Fill CPU buffers [n, ...] in order, with the numbers the same sequence of calls would draw: high 0 as
        randn (float32), high > 0 as randint(high) (int64). Large draws run on threads (ddgan_ref.ops.draw_rows)."""
        draw_rows(buffers, highs, self._gens)


def check_high(high: int) -> None:
    """ValueError for a randint range that holds no integer: what SeedStream and its stand-ins (bench.speed.Tape)
    refuse when the draw is asked for."""
    if high < 1:
        raise ValueError(f"randint needs high >= 1, got {high}")
