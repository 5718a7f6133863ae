"""Fourier input features of the toy (2D) networks, shared by DDGAN's and the baselines' MLPs so that every
family sees the same input encoding."""

from __future__ import annotations

import torch
from torch import Tensor


def fourier_features(x: Tensor, octaves: int) -> Tensor:
    """[B, D] -> [B, D * (1 + 2 * octaves)]: x, sin(2^k pi x), cos(2^k pi x) for k < octaves (NeRF-style).

    Low-dimensional data with sharp modes (std 0.01 in [-1, 1]) is hard for a plain MLP to resolve
    (spectral bias); these features make fine structure learnable in a few thousand steps.
    """
    if octaves == 0:
        return x
    angles = x[..., None] * (torch.pi * 2.0 ** torch.arange(octaves, device=x.device, dtype=x.dtype))
    return torch.cat([x, angles.sin().flatten(1), angles.cos().flatten(1)], dim=1)
