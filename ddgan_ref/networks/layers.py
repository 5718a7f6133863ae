"""Shared DDGAN layers: initialisers, NIN, time embedding, PixelNorm, AdaGN (score_sde layers*.py, dense_layer.py)."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

GN_EPS = 1e-6


def _nonzero(scale: float) -> float:
    """Upstream maps init_scale 0 to 1e-10 so that "zero" layers still get a (tiny) random init."""
    return 1e-10 if scale == 0 else scale


@torch.no_grad()
def variance_scaling_(w: Tensor, scale: float = 1.0) -> Tensor:
    """JAX-style variance_scaling(scale, 'fan_avg', 'uniform') in place (layers.default_init).

    Fans use axis 1 as "in" and axis 0 as "out", times the receptive-field size.
    """
    receptive = w[0, 0].numel() if w.ndim > 2 else 1
    fan_avg = (w.shape[0] + w.shape[1]) * receptive / 2
    bound = math.sqrt(3.0 * _nonzero(scale) / fan_avg)
    return w.uniform_(-bound, bound)


@torch.no_grad()
def dense_uniform_(w: Tensor, scale: float = 1.0) -> Tensor:
    """dense_layer.variance_scaling_init_ in place: a kaiming-uniform whose 'fan_avg' mode is fan_out.

    Upstream quirk (spec §2.6): the bound is sqrt(3 * scale / max(1, fan_out)).
    """
    fan_out = w.shape[0] * (w[0, 0].numel() if w.ndim > 2 else 1)
    bound = math.sqrt(3.0 * _nonzero(scale) / max(1.0, fan_out))
    return w.uniform_(-bound, bound)


def ncsn_linear(in_features: int, out_features: int) -> nn.Linear:
    """nn.Linear with default_init weights and a zero bias (NCSN++ time MLP and Dense_0)."""
    lin = nn.Linear(in_features, out_features)
    variance_scaling_(lin.weight)
    nn.init.zeros_(lin.bias)
    return lin


def ncsn_conv(in_ch: int, out_ch: int, kernel_size: int = 3, *, init_scale: float = 1.0) -> nn.Conv2d:
    """ddpm_conv3x3 / ddpm_conv1x1: 'same'-padded conv with default_init weights and a zero bias."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=kernel_size // 2)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_features: int, out_features: int, *, init_scale: float = 1.0) -> nn.Linear:
    """dense_layer.dense: nn.Linear with the fan_out kaiming-uniform quirk and a zero bias."""
    lin = nn.Linear(in_features, out_features)
    dense_uniform_(lin.weight, init_scale)
    nn.init.zeros_(lin.bias)
    return lin


def conv2d(
    in_ch: int, out_ch: int, kernel_size: int, *, padding: int, bias: bool = True, init_scale: float = 1.0
) -> nn.Conv2d:
    """dense_layer.conv2d: nn.Conv2d with the fan_out kaiming-uniform quirk and a zero bias."""
    conv = nn.Conv2d(in_ch, out_ch, kernel_size, padding=padding, bias=bias)
    dense_uniform_(conv.weight, init_scale)
    if bias:
        nn.init.zeros_(conv.bias)
    return conv


def group_count(channels: int) -> int:
    """Number of GroupNorm groups used throughout NCSN++: min(C // 4, 32)."""
    return min(channels // 4, 32)


def timestep_embedding(t: Tensor, dim: int, max_positions: int = 10000) -> Tensor:
    """Sinusoidal embedding of integer steps t [B] -> [B, dim]: [sin(t w_k), cos(t w_k)], w_k = P^(-k/(h-1)).

    h = dim // 2 and P = max_positions (layers.get_timestep_embedding); odd dims get a zero column.
    """
    half = dim // 2
    step = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    angles = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
    return F.pad(emb, (0, dim % 2))


class NIN(nn.Module):
    """Per-pixel linear map ("network in network"); weight W is stored (C_in, C_out), bias b (C_out,)."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1):
        super().__init__()
        self.W = nn.Parameter(variance_scaling_(torch.empty(in_dim, num_units), init_scale))
        self.b = nn.Parameter(torch.zeros(num_units))

    def forward(self, x: Tensor) -> Tensor:
        """[B, C_in, H, W] -> [B, C_out, H, W]."""
        return torch.einsum("bchw,co->bohw", x, self.W) + self.b[:, None, None]


class PixelNorm(nn.Module):
    """z / sqrt(mean(z^2 over dim 1) + 1e-8)."""

    def forward(self, z: Tensor) -> Tensor:
        return z / torch.sqrt(torch.mean(z**2, dim=1, keepdim=True) + 1e-8)


class AdaptiveGroupNorm(nn.Module):
    """AdaGN: gamma(w) * GroupNorm(h) + beta(w), with [gamma, beta] = style(w) (layerspp.AdaptiveGroupNorm)."""

    def __init__(self, channels: int, style_dim: int):
        super().__init__()
        self.norm = nn.GroupNorm(group_count(channels), channels, eps=GN_EPS, affine=False)
        self.style = dense(style_dim, 2 * channels)
        with torch.no_grad():
            self.style.bias[:channels] = 1.0
            self.style.bias[channels:] = 0.0

    def forward(self, h: Tensor, w: Tensor) -> Tensor:
        """h: [B, C, H, W]; w: [B, style_dim]."""
        gamma, beta = self.style(w)[:, :, None, None].chunk(2, dim=1)
        return gamma * self.norm(h) + beta


def mapping_network(nz: int, z_emb_dim: int, n_mlp: int) -> nn.Sequential:
    """z_transform: PixelNorm -> dense(nz, z_emb_dim) -> SiLU -> n_mlp x [dense -> SiLU]; Linears at odd indices."""
    layers: list[nn.Module] = [PixelNorm(), dense(nz, z_emb_dim), nn.SiLU()]
    for _ in range(n_mlp):
        layers += [dense(z_emb_dim, z_emb_dim), nn.SiLU()]
    return nn.Sequential(*layers)
