"""2D Gaussian mixtures (25-Gaussian grid, 8-Gaussian ring): PacGAN's synthetic data scaled into [-1, 1]."""

import math
from pathlib import Path

import torch
from torch import Tensor

from bench.data.memory import InMemoryDataset, pick_size

# PacGAN (Lin et al. 2018): grid means {-4, -2, 0, 2, 4}^2 with sigma 0.05; ring of radius 1 with sigma 0.01.
# Scaled here: grid by 0.2 (means linspace(-0.8, 0.8, 5)^2), ring to radius 0.8; sigma keeps its ratio to the
# mode spacing. Points lie >= 20 sigma inside [-1, 1], so the clamp to [-1, 1] changes no sample in practice.
GRID_STD = 0.01
RING_STD = 0.008
RING_RADIUS = 0.8
DEFAULT_SIZE = 100_000  # PacGAN's training-set size


def grid_centers() -> Tensor:
    """[25, 2] means on linspace(-0.8, 0.8, 5)^2; mode k = 5 * row + column."""
    lin = torch.linspace(-0.8, 0.8, 5)
    return torch.cartesian_prod(lin, lin)


def ring_centers(radius: float = RING_RADIUS, n: int = 8) -> Tensor:
    """[n, 2] means at radius * (cos 2 pi k / n, sin 2 pi k / n)."""
    angle = torch.arange(n, dtype=torch.float64) * (2 * math.pi / n)
    return (radius * torch.stack([angle.cos(), angle.sin()], dim=1)).float()


def sample_mixture(centers: Tensor, std: float, n: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
    """n points [n, 2] in [-1, 1] and their modes [n] int64; mode counts differ by at most 1."""
    modes = torch.randperm(n, generator=generator) % len(centers)
    x = centers[modes] + std * torch.randn(n, 2, generator=generator)
    return x.clamp(-1, 1), modes


class GaussianMixture2D(InMemoryDataset):
    """2D points with their mixture's `centers` [M, 2] and `std`: mode-coverage metrics call a sample
    high-quality when it lies within 3 std of its nearest centre."""

    def __init__(self, name: str, centers: Tensor, std: float, size: int, generator: torch.Generator):
        x, modes = sample_mixture(centers, std, size, generator)
        super().__init__(name, x, modes, num_modes=len(centers))
        self.centers, self.std = centers, std


def split_generator(seed: int, train: bool) -> torch.Generator:
    """Generator seeded with 2 * seed + (not train): the train and test splits never share a stream."""
    return torch.Generator().manual_seed(2 * seed + (0 if train else 1))


def _build(name: str, centers: Tensor, std: float, size: int | None, seed: int, train: bool,
           image_size: int | None) -> GaussianMixture2D:
    if image_size is not None:
        raise ValueError(f"{name} holds 2D points; image_size={image_size} does not apply")
    n = pick_size(name, size, DEFAULT_SIZE)
    return GaussianMixture2D(name, centers, std, n, split_generator(seed, train))


def build_gaussians25(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                      size: int | None = None, seed: int = 0,
                      image_size: int | None = None) -> GaussianMixture2D:
    """25-Gaussian grid, `size` points (default 100,000); root and download are unused."""
    return _build("gaussians25", grid_centers(), GRID_STD, size, seed, train, image_size)


def build_ring8(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                size: int | None = None, seed: int = 0, image_size: int | None = None) -> GaussianMixture2D:
    """8-Gaussian ring, `size` points (default 100,000); root and download are unused."""
    return _build("ring8", ring_centers(), RING_STD, size, seed, train, image_size)
