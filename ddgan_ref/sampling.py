"""DDGAN's T-step reverse process (sample_from_model in train_ddgan.py @ 6818ded).

For t = T-1 .. 0: z ~ N(0, I); x0_pred = G(x_{t+1}, t, z); x_t ~ q(x_t | x_{t+1}, x0_pred).
The generator is called exactly T times (NFE = T); at t = 0 the posterior has c1 = 1, c2 = 0 and no
noise, so the result is x0_pred of the last call (up to float32 rounding of c1, as upstream).
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor, nn

from ddgan_ref.diffusion import PosteriorCoefficients, posterior_sample


class NoiseSource(Protocol):
    def randn(self, *shape: int) -> Tensor:
        """Standard normal draws [n, *shape]."""


@torch.no_grad()
def sample(G: nn.Module, x_T: Tensor, coeffs: PosteriorCoefficients, rng: NoiseSource) -> Tensor:
    """x_T [N, *shape] -> x_0 [N, *shape]. Per step, z is drawn before the posterior noise, as upstream."""
    x = x_T
    for t in reversed(range(coeffs.T)):
        t_b = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        z = rng.randn(G.z_dim)
        x0_pred = G(x, t_b, z)
        x = posterior_sample(coeffs, x0_pred, x, t_b, noise=rng.randn(*x.shape[1:]))
    return x
