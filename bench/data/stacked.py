"""Stacked digits: 3 digits as R, G, B channels (1000 modes), as DDGAN's datasets_prep/stackmnist_data.py."""

import math

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.data.memory import resize_square, to_unit_range


def stack_indices(n: int, size: int, generator: torch.Generator) -> Tensor:
    """[size, 3] indices into n base images; channel c concatenates ceil(size / n) permutations of range(n).

    With size = 2n this is DDGAN's recipe (two permutations per channel), drawn from a seeded generator.
    """
    reps = math.ceil(size / n)
    cols = [torch.cat([torch.randperm(n, generator=generator) for _ in range(reps)])[:size] for _ in range(3)]
    return torch.stack(cols, dim=1)


class StackedDataset(Dataset):
    """Items (x [3, H, W] in [-1, 1], mode 100 * d_r + 10 * d_g + d_b) built on the fly from base digits.

    base: [n, 1, H, W] (uint8 0..255, or float in [-1, 1]); base_labels: [n] digits 0..9; index: [N, 3].
    With image_size the base digits are resized once, here: the resize acts on each channel alone, so an item
    equals its resized triple, and a training batch no longer pays 3 x batch resizes.
    """

    def __init__(self, name: str, base: Tensor, base_labels: Tensor, index: Tensor, *,
                 image_size: int | None = None):
        if image_size is not None:
            base = resize_square(to_unit_range(base), image_size)
        self.name, self.base, self.index = name, base, index
        digits = base_labels.long()[index]  # [N, 3]
        self.labels = digits @ torch.tensor([100, 10, 1])
        self.shape, self.num_modes, self.hflip = (3, *base.shape[-2:]), 1000, False

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return to_unit_range(self.base[self.index[i], 0]), self.labels[i]  # [3, H, W]
