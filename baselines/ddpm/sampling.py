"""DDPM ancestral and DDIM sampling loops as pure functions: network, grid and injected per-sample noise in,
samples out (Ho et al. 2020 Algorithm 2 with the clipped-x0 posterior mean; Song et al. 2021 eq. 12)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from baselines.ddpm.schedule import alpha_bar_at, ddim_step, ddpm_step
from ddgan_ref.rng import SeedStream

EpsFn = Callable[[Tensor, Tensor], Tensor]  # (x_t [N, ...], t [N]) -> eps [N, ...]


def _steps(grid: list[int]) -> list[tuple[int, int]]:
    """(t, prev) pairs of a descending grid; prev = -1 after the last step."""
    return list(zip(grid, [*grid[1:], -1], strict=True))


@torch.no_grad()
def sample_ancestral(eps_fn: EpsFn, x_T: Tensor, alpha_bar: Tensor, grid: list[int], rng: SeedStream, *,
                     variance: str = "fixed_large", clip: bool = True) -> Tensor:
    """x_T -> x_0 by one Gaussian posterior step per grid point (the full grid is DDPM; a sub-grid is DDPM
    with respaced betas). Noise: one per-sample draw per step except the last."""
    x = x_T
    for t, prev in _steps(grid):
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        noise = rng.randn(*x.shape[1:]) if prev >= 0 else None
        x, _ = ddpm_step(x, eps, alpha_bar_at(alpha_bar, t), alpha_bar_at(alpha_bar, prev), noise,
                         variance=variance, clip=clip)
    return x


@torch.no_grad()
def sample_ddim(eps_fn: EpsFn, x_T: Tensor, alpha_bar: Tensor, grid: list[int], rng: SeedStream, *,
                eta: float = 0.0, clip: bool = True) -> Tensor:
    """x_T -> x_0 with DDIM steps on the grid; eta 0 is deterministic (no draws), eta > 0 draws per step."""
    x = x_T
    for t, prev in _steps(grid):
        eps = eps_fn(x, torch.full((x.shape[0],), t, device=x.device, dtype=torch.long))
        noise = rng.randn(*x.shape[1:]) if eta > 0 else None
        x, _ = ddim_step(x, eps, alpha_bar_at(alpha_bar, t), alpha_bar_at(alpha_bar, prev), eta=eta, noise=noise,
                         clip=clip)
    return x
