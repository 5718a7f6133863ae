"""scikit-learn's bundled 8x8 digits, resized, and Stacked Digits: an offline, 1000-mode Stacked MNIST."""

from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.data.memory import InMemoryDataset, pick_size, resize_square
from bench.data.stacked import StackedDataset, stack_indices

NUM_TEST = 359  # round(0.2 * 1797)
DEFAULT_IMAGE_SIZE = 32
DEFAULT_STACKED_SIZE = 26_000  # the Stacked MNIST protocol's sample count (PacGAN, VEEGAN)


def load_digit_images(train: bool, image_size: int = DEFAULT_IMAGE_SIZE) -> tuple[Tensor, Tensor]:
    """One split of sklearn's digits: images [n, 1, S, S] float32 in [-1, 1], labels [n] int64.

    The split is fixed whatever the seed: numpy RandomState(0).permutation(1797) (a stream NumPy keeps
    stable), first 359 indices (20 %) test, the other 1438 train. Pixels 0..16 map to [-1, 1], then a
    bilinear, antialiased resize from 8x8 to S x S (S = image_size).
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    perm = np.random.RandomState(0).permutation(len(digits.images))
    keep = np.sort(perm[NUM_TEST:] if train else perm[:NUM_TEST])
    images = torch.from_numpy(digits.images[keep]).float()[:, None] / 8 - 1
    return resize_square(images, image_size), torch.from_numpy(digits.target[keep]).long()


def build_digits(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                 size: int | None = None, seed: int = 0, image_size: int | None = None) -> InMemoryDataset:
    """Greyscale digits [1, S, S] (S = image_size, default 32), label = class; `size` keeps the first items.

    root, download and seed are unused.
    """
    images, labels = load_digit_images(train, image_size or DEFAULT_IMAGE_SIZE)
    n = pick_size("digits", size, len(images), len(images))
    return InMemoryDataset("digits", images[:n], labels[:n], num_modes=10)


def build_stacked_digits(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                         size: int | None = None, seed: int = 0,
                         image_size: int | None = None) -> StackedDataset:
    """`size` (default 26,000) seeded triples of a split's digits as RGB [3, S, S], mode 100 r + 10 g + b.

    root and download are unused.
    """
    images, labels = load_digit_images(train, image_size or DEFAULT_IMAGE_SIZE)
    n = pick_size("stacked-digits", size, DEFAULT_STACKED_SIZE)
    index = stack_indices(len(images), n, torch.Generator().manual_seed(seed))
    return StackedDataset("stacked-digits", images, labels, index)
