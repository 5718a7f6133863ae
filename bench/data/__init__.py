"""Datasets for the benchmark: a registry of builders whose items are (x float32 in [-1, 1], int64 label)."""

from pathlib import Path
from typing import Protocol

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.data.cifar import build_cifar10
from bench.data.digits import build_digits, build_stacked_digits
from bench.data.errors import DatasetCorruptError, DatasetNotFoundError, DatasetTooSmallError
from bench.data.folder import build_image_folder
from bench.data.mnist import build_mnist, build_stacked_mnist
from bench.data.toy import build_gaussians25, build_ring8

__all__ = [
    "DATASETS", "FILE_BACKED", "DatasetCorruptError", "DatasetNotFoundError", "DatasetTooSmallError", "build_dataset",
    "stack_items",
]


class Builder(Protocol):
    """Every builder takes these keywords and ignores the ones its dataset does not use (see its docstring).

    The dataset it returns has `name`, `shape` (of x), `num_modes` (distinct labels, or None), `labels`
    ([N] int64, -1 where undefined) and `hflip` (upstream DDGAN trains it with random flips; no dataset
    flips by itself).
    """

    def __call__(self, *, root: str | Path | None, train: bool, download: bool, size: int | None, seed: int,
                 image_size: int | None) -> Dataset: ...


FILE_BACKED = ("mnist", "stacked-mnist", "cifar10", "image-folder")  # read from a data folder (--root)

DATASETS: dict[str, Builder] = {
    "gaussians25": build_gaussians25,
    "ring8": build_ring8,
    "digits": build_digits,
    "stacked-digits": build_stacked_digits,
    "mnist": build_mnist,
    "stacked-mnist": build_stacked_mnist,
    "cifar10": build_cifar10,
    "image-folder": build_image_folder,
}


def build_dataset(name: str, *, root: str | Path | None = None, train: bool = True, download: bool = False,
                  size: int | None = None, seed: int = 0, image_size: int | None = None) -> Dataset:
    """The dataset `name`; see the DATASETS builders for defaults. Raises KeyError for an unknown name."""
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose from {sorted(DATASETS)}")
    build = DATASETS[name]
    return build(root=root, train=train, download=download, size=size, seed=seed, image_size=image_size)


def stack_items(dataset: Dataset) -> Tensor:
    """Every x of a dataset that fits in memory as one tensor [N, *shape] (float32 in [-1, 1])."""
    return torch.stack([dataset[i][0] for i in range(len(dataset))]).float()
