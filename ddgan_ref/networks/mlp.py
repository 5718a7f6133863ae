"""Toy DDGAN networks for low-dimensional data (the 25-Gaussian grid), conditioned like NCSNpp / Discriminator_small."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.networks.layers import mapping_network, timestep_embedding
from ddgan_ref.ops.fourier import fourier_features

SLOPE = 0.2


class _AdaLNBlock(nn.Module):
    """Residual MLP block: h + Linear(SiLU(gamma(w) * LayerNorm(h) + beta(w))) + Linear(SiLU(temb))."""

    def __init__(self, dim: int, zemb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim, elementwise_affine=False)
        self.style = nn.Linear(zemb_dim, 2 * dim)
        with torch.no_grad():
            self.style.bias[:dim] = 1.0
            self.style.bias[dim:] = 0.0
        self.linear = nn.Linear(dim, dim)
        self.dense_t = nn.Linear(dim, dim)

    def forward(self, h: Tensor, temb: Tensor, zemb: Tensor) -> Tensor:
        gamma, beta = self.style(zemb).chunk(2, dim=1)
        y = F.silu(gamma * self.norm(h) + beta)
        return h + self.linear(y) + self.dense_t(F.silu(temb))


class MLPGenerator(nn.Module):
    """x0_pred = G(x_tp1 [B, D], t [B] int64, z [B, nz]) -> [B, D], tanh-squashed unless not_use_tanh.

    t: sinusoidal embedding -> Linear -> SiLU -> Linear; z: PixelNorm mapping network (as NCSNpp);
    the mapped z is concatenated to the input features and injected again by adaptive LayerNorm (FiLM) in
    each of the `num_layers` residual blocks.
    """

    def __init__(
        self, *, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3, nz: int = 8,
        z_emb_dim: int = 64, n_mlp: int = 2, t_emb_dim: int = 32, not_use_tanh: bool = False,
        fourier_octaves: int = 0,
    ):
        super().__init__()
        self.z_dim, self.t_emb_dim, self.not_use_tanh = nz, t_emb_dim, not_use_tanh
        self.fourier_octaves = fourier_octaves
        self.t_embed = nn.Sequential(
            nn.Linear(t_emb_dim, hidden_dim), nn.SiLU(), nn.Linear(hidden_dim, hidden_dim)
        )
        self.z_transform = mapping_network(nz, z_emb_dim, n_mlp)
        self.input = nn.Linear(data_dim * (1 + 2 * fourier_octaves) + z_emb_dim, hidden_dim)
        self.blocks = nn.ModuleList(_AdaLNBlock(hidden_dim, z_emb_dim) for _ in range(num_layers))
        self.out_norm = nn.LayerNorm(hidden_dim)
        self.output = nn.Linear(hidden_dim, data_dim)

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """x: x_{t+1} [B, D]; t: [B] int64; z: [B, nz] -> x0_pred [B, D]."""
        temb = self.t_embed(timestep_embedding(t, self.t_emb_dim).to(x.dtype))
        zemb = self.z_transform(z)
        h = self.input(torch.cat([fourier_features(x, self.fourier_octaves), zemb], dim=1))
        for block in self.blocks:
            h = block(h, temb, zemb)
        h = self.output(F.silu(self.out_norm(h)))
        return h if self.not_use_tanh else torch.tanh(h)


class MLPDiscriminator(nn.Module):
    """logits = D(x_t [B, D], t [B] int64, x_cond = x_{t+1} [B, D]) -> [B, 1]; LeakyReLU(0.2) MLP.

    The time embedding (sinusoidal -> Linear -> LReLU -> Linear -> LReLU) is projected and added
    before every hidden activation. Smooth in x, so R1 (double backward) works.
    """

    def __init__(self, *, data_dim: int = 2, hidden_dim: int = 128, num_layers: int = 3, t_emb_dim: int = 32,
                 fourier_octaves: int = 0):
        super().__init__()
        self.t_emb_dim, self.fourier_octaves = t_emb_dim, fourier_octaves
        self.t_embed = nn.Sequential(
            nn.Linear(t_emb_dim, hidden_dim), nn.LeakyReLU(SLOPE), nn.Linear(hidden_dim, hidden_dim)
        )
        self.input = nn.Linear(data_dim * (2 + 2 * fourier_octaves), hidden_dim)
        self.layers = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.dense_t = nn.ModuleList(nn.Linear(hidden_dim, hidden_dim) for _ in range(num_layers))
        self.output = nn.Linear(hidden_dim, 1)

    def forward(self, x: Tensor, t: Tensor, x_cond: Tensor) -> Tensor:
        """x: x_t [B, D]; t: [B] int64; x_cond: x_{t+1} [B, D] -> logits [B, 1]."""
        temb = F.leaky_relu(self.t_embed(timestep_embedding(t, self.t_emb_dim).to(x.dtype)), SLOPE)
        features = torch.cat([fourier_features(x, self.fourier_octaves), x_cond], dim=1)  # x_cond is too noisy for them
        h = F.leaky_relu(self.input(features), SLOPE)
        for layer, dense_t in zip(self.layers, self.dense_t, strict=True):
            h = F.leaky_relu(layer(h) + dense_t(temb), SLOPE)
        return self.output(h)
