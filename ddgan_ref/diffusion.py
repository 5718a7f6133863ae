"""DDGAN's discretised diffusion: schedules, forward process and posterior (train_ddgan.py @ 6818ded).

Notation (the code's index, spec ddgan.md §4): T steps, t in {0..T-1} names the transition
x_{t+1} -> x_t; index 0 of the forward arrays is clean data. ``beta`` are the per-step variances,
``alpha_bar`` the cumulative products, ``x0`` clean data, ``x_t`` / ``x_tp1`` the less / more noisy
samples of a pair, ``x0_pred`` the generator's prediction. All noise is passed in: nothing here
draws random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
from torch import Tensor

EPS_SMALL = 1e-3  # the time grid starts at eps, as upstream
DUMMY_BETA = 1e-8  # upstream prepends a placeholder beta_0


def time_grid(T: int, eps: float = EPS_SMALL) -> Tensor:
    """s_i = eps + (1 - eps) * i / T for i = 0..T, float64 [T+1] (get_time_schedule)."""
    if T < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {T}")
    return torch.arange(T + 1, dtype=torch.float64) / T * (1.0 - eps) + eps


def vp_variance(s: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """Marginal variance 1 - alpha_bar(s) of the VP SDE (var_func_vp)."""
    log_mean_coeff = -0.25 * s**2 * (beta_max - beta_min) - 0.5 * s * beta_min
    return 1.0 - torch.exp(2.0 * log_mean_coeff)


def geometric_variance(s: Tensor, beta_min: float, beta_max: float) -> Tensor:
    """Geometric variance beta_min * (beta_max / beta_min)^s (var_func_geometric).

    Upstream yields NaN when a variance reaches 1, e.g. with the VP defaults 0.1 / 20, so the range is
    checked here: 0 < beta_min < beta_max < 1.
    """
    if not 0.0 < beta_min < beta_max < 1.0:
        raise ValueError(
            f"the geometric schedule needs 0 < beta_min < beta_max < 1 (they are variances), got "
            f"beta_min={beta_min}, beta_max={beta_max}; upstream produces NaN here. Pass variances such "
            f"as beta_min=0.01, beta_max=0.95, or use the VP schedule (use_geometric=False)."
        )
    return beta_min * (beta_max / beta_min) ** s


def sigma_schedule(
    T: int, beta_min: float = 0.1, beta_max: float = 20.0, use_geometric: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """(sigmas, a_s, betas), float32 [T+1] each, betas[0] the dummy 1e-8 (get_sigma_schedule)."""
    s = time_grid(T)
    var = (geometric_variance if use_geometric else vp_variance)(s, beta_min, beta_max)
    alpha_bar = 1.0 - var
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    betas = torch.cat([torch.tensor([DUMMY_BETA], dtype=torch.float64), betas]).float()
    return betas**0.5, torch.sqrt(1 - betas), betas


@dataclass(frozen=True)
class DiffusionCoefficients:
    """Forward-process arrays, float32 [T+1], index 0 = clean data (Diffusion_Coefficients)."""

    sigmas: Tensor
    a_s: Tensor
    a_s_cum: Tensor
    sigmas_cum: Tensor
    a_s_prev: Tensor

    @property
    def T(self) -> int:
        return self.a_s.shape[0] - 1

    def to(self, device: torch.device | str) -> DiffusionCoefficients:
        return DiffusionCoefficients(*(getattr(self, f.name).to(device) for f in fields(self)))


@dataclass(frozen=True)
class PosteriorCoefficients:
    """q(x_t | x_{t+1}, x0) arrays, float32 [T], dummy beta dropped (Posterior_Coefficients)."""

    betas: Tensor
    alphas: Tensor
    alphas_cumprod: Tensor
    alphas_cumprod_prev: Tensor
    posterior_variance: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_recip_alphas_cumprod: Tensor
    sqrt_recipm1_alphas_cumprod: Tensor
    posterior_mean_coef1: Tensor
    posterior_mean_coef2: Tensor
    posterior_log_variance_clipped: Tensor

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    def to(self, device: torch.device | str) -> PosteriorCoefficients:
        return PosteriorCoefficients(*(getattr(self, f.name).to(device) for f in fields(self)))


def diffusion_coefficients(
    T: int, beta_min: float = 0.1, beta_max: float = 20.0, use_geometric: bool = False
) -> DiffusionCoefficients:
    """The forward-process arrays for T steps; float32 as upstream."""
    sigmas, a_s, _ = sigma_schedule(T, beta_min, beta_max, use_geometric)
    a_s_cum = torch.cumprod(a_s, 0)
    a_s_prev = a_s.clone()
    a_s_prev[-1] = 1
    return DiffusionCoefficients(sigmas, a_s, a_s_cum, torch.sqrt(1 - a_s_cum**2), a_s_prev)


def posterior_coefficients(
    T: int, beta_min: float = 0.1, beta_max: float = 20.0, use_geometric: bool = False
) -> PosteriorCoefficients:
    """The posterior arrays for T steps; float32, same op order as upstream."""
    betas = sigma_schedule(T, beta_min, beta_max, use_geometric)[2][1:]
    alphas = 1 - betas
    ab = torch.cumprod(alphas, 0)
    ab_prev = torch.cat([torch.ones(1, dtype=torch.float32), ab[:-1]])
    variance = betas * (1 - ab_prev) / (1 - ab)
    return PosteriorCoefficients(
        betas=betas, alphas=alphas, alphas_cumprod=ab, alphas_cumprod_prev=ab_prev,
        posterior_variance=variance,
        sqrt_alphas_cumprod=torch.sqrt(ab),
        sqrt_recip_alphas_cumprod=torch.rsqrt(ab),
        sqrt_recipm1_alphas_cumprod=torch.sqrt(1 / ab - 1),
        posterior_mean_coef1=betas * torch.sqrt(ab_prev) / (1 - ab),
        posterior_mean_coef2=(1 - ab_prev) * torch.sqrt(alphas) / (1 - ab),
        posterior_log_variance_clipped=torch.log(variance.clamp(min=1e-20)),
    )


def extract(arr: Tensor, t: Tensor, ndim: int) -> Tensor:
    """arr[t] reshaped to [B, 1, ..., 1] so it broadcasts over a tensor with `ndim` dims."""
    out = torch.gather(arr.to(t.device), 0, t)
    return out.reshape(t.shape[0], *([1] * (ndim - 1)))


def q_sample(coeffs: DiffusionCoefficients, x0: Tensor, t: Tensor, noise: Tensor) -> Tensor:
    """x_t ~ q(x_t | x0) = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise; t in 0..T."""
    return extract(coeffs.a_s_cum, t, x0.ndim) * x0 + extract(coeffs.sigmas_cum, t, x0.ndim) * noise


def q_sample_pairs(
    coeffs: DiffusionCoefficients, x0: Tensor, t: Tensor, noise_t: Tensor, noise_tp1: Tensor
) -> tuple[Tensor, Tensor]:
    """(x_t, x_{t+1}): x_t ~ q(x_t | x0), then one forward step x_{t+1} ~ q(x_{t+1} | x_t); t in 0..T-1.

    Upstream draws `noise_tp1` first, then `noise_t` inside q_sample.
    """
    x_t = q_sample(coeffs, x0, t, noise_t)
    x_tp1 = extract(coeffs.a_s, t + 1, x0.ndim) * x_t + extract(coeffs.sigmas, t + 1, x0.ndim) * noise_tp1
    return x_t, x_tp1


def posterior_sample(
    coeffs: PosteriorCoefficients, x0_pred: Tensor, x_tp1: Tensor, t: Tensor, noise: Tensor
) -> Tensor:
    """x_t ~ q(x_t | x_{t+1}, x0_pred); rows with t == 0 get no noise (sample_posterior)."""
    nd = x_tp1.ndim
    mean = extract(coeffs.posterior_mean_coef1, t, nd) * x0_pred + extract(coeffs.posterior_mean_coef2, t, nd) * x_tp1
    log_var = extract(coeffs.posterior_log_variance_clipped, t, nd)
    nonzero = (1 - (t == 0).float()).reshape(-1, *([1] * (nd - 1)))
    return mean + nonzero * torch.exp(0.5 * log_var) * noise
