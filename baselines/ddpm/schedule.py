"""DDPM/DDIM schedules and single update steps, as pure functions (Ho et al. 2020 eq. 4, 6, 7; Song et al.
2021 eq. 12), in the float32 formula order of diffusers 0.42 `DDPMScheduler` / `DDIMScheduler`.

Notation: beta_t, alpha_bar_t = prod_{s<=t} (1 - beta_s) over the training grid t = 0..T-1; eps is the
network's noise prediction; x0 is the predicted clean sample; "prev" is the next (smaller) step of the
sampling grid, with alpha_bar = 1 after the last one.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SPACINGS = ("uniform", "quad")


def linear_betas(T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02) -> Tensor:
    """[T] float32 betas, linear in t (the DDPM CIFAR-10 schedule)."""
    return torch.linspace(beta_start, beta_end, T, dtype=torch.float32)


def alphas_cumprod(betas: Tensor) -> Tensor:
    """[T] alpha_bar_t = cumprod(1 - beta), float32 like diffusers."""
    return torch.cumprod(1.0 - betas, dim=0)


def timesteps(T: int, steps: int, spacing: str = "uniform") -> list[int]:
    """Descending sampling grid of `steps` training steps (one network call each). "uniform": 0, T//S,
    2 T//S, ... (diffusers "leading", ermongroup/ddim "uniform"); "quad": int(linspace(0, sqrt(0.8 T), S)^2)
    (ermongroup/ddim "quad", the DDIM paper's CIFAR-10 protocol)."""
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be in [1, {T}]; got {steps}")
    if spacing == "uniform":
        grid = [i * (T // steps) for i in range(steps)]
    elif spacing == "quad":
        grid = [int(s) for s in np.linspace(0, np.sqrt(T * 0.8), steps) ** 2]
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {SPACINGS}")
    return grid[::-1]  # "quad" repeats its first steps for large S (0, 0, 0, 1, ...), as DDIM's code does


def alpha_bar_at(alpha_bar: Tensor, t: int) -> Tensor:
    """alpha_bar_t as a 0-d tensor; 1 for t < 0 (after the last step)."""
    return alpha_bar[t] if t >= 0 else torch.ones((), dtype=alpha_bar.dtype, device=alpha_bar.device)


def add_noise(alpha_bar: Tensor, x0: Tensor, noise: Tensor, t: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise; t: [N] integer steps."""
    a = alpha_bar.to(x0.device)[t].reshape(-1, *[1] * (x0.ndim - 1))
    return a**0.5 * x0 + (1 - a) ** 0.5 * noise


def predict_x0(x_t: Tensor, eps: Tensor, a_t: Tensor, clip: bool, clip_range: float = 1.0) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t), clipped to [-clip_range, clip_range] if asked.

    The square roots are taken in float64 (as Python scalars), as diffusers does: at t ~ T the division by
    sqrt(alpha_bar_t) ~ 6e-3 amplifies float32 rounding of the roots ~150x."""
    x0 = (x_t - float(1 - a_t) ** 0.5 * eps) / float(a_t) ** 0.5
    return x0.clamp(-clip_range, clip_range) if clip else x0


def ddpm_step(x_t: Tensor, eps: Tensor, a_t: Tensor, a_prev: Tensor, noise: Tensor | None, *,
              variance: str = "fixed_large", clip: bool = True, clip_range: float = 1.0) -> tuple[Tensor, Tensor]:
    """Ancestral step x_t -> x_prev through the posterior mean given the (clipped) x0: returns (x_prev, x0).

    variance "fixed_large": beta_t (the official CIFAR-10 run); "fixed_small": the posterior variance.
    `noise` is used when the step is not the last (a_prev < 1); pass None for the last step.
    """
    beta_t = 1 - a_t / a_prev
    x0 = predict_x0(x_t, eps, a_t, clip, clip_range)
    mean = (a_prev**0.5 * beta_t) / (1 - a_t) * x0 + (1 - beta_t) ** 0.5 * (1 - a_prev) / (1 - a_t) * x_t
    if noise is None:
        return mean, x0
    if variance == "fixed_large":
        var = beta_t
    elif variance == "fixed_small":
        var = ((1 - a_prev) / (1 - a_t) * beta_t).clamp(min=1e-20)
    else:
        raise ValueError(f"unknown variance {variance!r}; choose fixed_large or fixed_small")
    return mean + var**0.5 * noise, x0


def ddim_step(x_t: Tensor, eps: Tensor, a_t: Tensor, a_prev: Tensor, *, eta: float = 0.0, noise: Tensor | None = None,
              clip: bool = True, clip_range: float = 1.0, use_clipped_eps: bool = False) -> tuple[Tensor, Tensor]:
    """Generalised (DDIM) step x_t -> x_prev (eta 0: deterministic; eta 1: DDPM's posterior variance).

    Returns (x_prev, x0). With use_clipped_eps, the direction term uses eps re-derived from the clipped x0.
    """
    x0 = predict_x0(x_t, eps, a_t, clip, clip_range)
    std = eta * (((1 - a_prev) / (1 - a_t)) * (1 - a_t / a_prev)) ** 0.5
    if use_clipped_eps:
        eps = (x_t - a_t**0.5 * x0) / (1 - a_t) ** 0.5
    x_prev = a_prev**0.5 * x0 + (1 - a_prev - std**2) ** 0.5 * eps
    if eta > 0:
        if noise is None:
            raise ValueError("eta > 0 needs noise")
        x_prev = x_prev + std * noise
    return x_prev, x0
