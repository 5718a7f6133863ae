"""DDGAN time-conditioned discriminators D(x_t, t, x_tp1) (score_sde/models/discriminator.py, small and large)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.networks.layers import conv2d, dense, timestep_embedding
from ddgan_ref.networks.resample import FIR_KERNEL, downsample_2d

SLOPE = 0.2  # LeakyReLU negative slope used throughout


def minibatch_stddev(x: Tensor, group_size: int = 4) -> Tensor:
    """Append one channel holding the mean feature stddev of each sample's group. [B, C, H, W] -> [B, C+1, H, W].

    g = min(B, group_size); sample i shares its group with i + B/g, i + 2B/g, ... (biased variance).
    """
    b, c, h, w = x.shape
    g = min(b, group_size)
    if b % g != 0:
        raise ValueError(f"minibatch stddev needs the batch size to be divisible by {g}; got batch size {b}")
    std = torch.sqrt(x.view(g, -1, 1, c, h, w).var(0, unbiased=False) + 1e-8)  # [B/g, 1, C, H, W]
    std = std.mean(dim=(2, 3, 4)).view(-1, 1, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, std], dim=1)


class TimestepEmbedding(nn.Module):
    """sinusoidal(t, dim) -> dense -> LeakyReLU(0.2) -> dense; keys main.0 and main.2."""

    def __init__(self, embedding_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.embedding_dim = embedding_dim
        self.main = nn.Sequential(
            dense(embedding_dim, hidden_dim), nn.LeakyReLU(SLOPE), dense(hidden_dim, output_dim)
        )

    def forward(self, t: Tensor) -> Tensor:
        """t [B] int -> [B, output_dim]."""
        return self.main(timestep_embedding(t, self.embedding_dim).to(self.main[0].weight.dtype))


class DownConvBlock(nn.Module):
    """LReLU-conv3x3(+t)-LReLU-[FIR down]-conv3x3, plus a bias-free 1x1 skip of the (downsampled) input, /sqrt(2)."""

    def __init__(
        self, in_ch: int, out_ch: int, *, t_emb_dim: int, downsample: bool = False,
        fir_kernel: Sequence[int] = FIR_KERNEL,
    ):
        super().__init__()
        self.downsample, self.fir_kernel = downsample, tuple(fir_kernel)
        self.conv1 = nn.Sequential(conv2d(in_ch, out_ch, 3, padding=1))
        self.conv2 = nn.Sequential(conv2d(out_ch, out_ch, 3, padding=1, init_scale=0.0))
        self.dense_t1 = dense(t_emb_dim, out_ch)
        self.skip = nn.Sequential(conv2d(in_ch, out_ch, 1, padding=0, bias=False))

    def forward(self, x: Tensor, t_emb: Tensor) -> Tensor:
        """x: [B, C_in, H, W], t_emb: [B, t_emb_dim] -> [B, C_out, H', W']."""
        h = self.conv1(F.leaky_relu(x, SLOPE)) + self.dense_t1(t_emb)[..., None, None]
        h = F.leaky_relu(h, SLOPE)
        if self.downsample:
            h, x = downsample_2d(h, self.fir_kernel), downsample_2d(x, self.fir_kernel)
        return (self.conv2(h) + self.skip(x)) / math.sqrt(2.0)


class _Discriminator(nn.Module):
    """Shared body: t_embed, start_conv, conv1..convN, minibatch stddev, final_conv, sum-pool, end_linear."""

    def __init__(
        self, num_channels: int, ngf: int, t_emb_dim: int,
        plan: Sequence[tuple[int, int, bool]], final_init_scale: float,
    ):
        super().__init__()
        self.t_embed = TimestepEmbedding(t_emb_dim, t_emb_dim, t_emb_dim)
        self.start_conv = conv2d(2 * num_channels, 2 * ngf, 1, padding=0)
        self.num_blocks = len(plan)
        for i, (m_in, m_out, down) in enumerate(plan, start=1):
            block = DownConvBlock(m_in * ngf, m_out * ngf, t_emb_dim=t_emb_dim, downsample=down)
            self.add_module(f"conv{i}", block)
        ch = plan[-1][1] * ngf
        self.final_conv = conv2d(ch + 1, ch, 3, padding=1, init_scale=final_init_scale)
        self.end_linear = dense(ch, 1)

    def forward(self, x: Tensor, t: Tensor, x_cond: Tensor) -> Tensor:
        """x: x_t [B, C, H, W]; t: [B] int64; x_cond: x_{t+1} [B, C, H, W] -> logits [B, 1].

        B must be divisible by min(B, 4) (minibatch-stddev groups).
        """
        t_emb = F.leaky_relu(self.t_embed(t), SLOPE)
        h = self.start_conv(torch.cat([x, x_cond], dim=1))
        for i in range(1, self.num_blocks + 1):
            h = getattr(self, f"conv{i}")(h, t_emb)
        h = F.leaky_relu(self.final_conv(minibatch_stddev(h)), SLOPE)
        return self.end_linear(h.sum(dim=(2, 3)))


class DiscriminatorSmall(_Discriminator):
    """Discriminator_small (CIFAR-10, Stacked-MNIST): three FIR downsamplings, e.g. 32 -> 4."""

    def __init__(self, *, num_channels: int = 3, ngf: int = 64, t_emb_dim: int = 128):
        plan = ((2, 2, False), (2, 4, True), (4, 8, True), (8, 8, True))
        super().__init__(num_channels, ngf, t_emb_dim, plan, final_init_scale=0.0)


class DiscriminatorLarge(_Discriminator):
    """Discriminator_large (CelebA-HQ, LSUN 256): six FIR downsamplings, e.g. 256 -> 4."""

    def __init__(self, *, num_channels: int = 3, ngf: int = 64, t_emb_dim: int = 128):
        plan = ((2, 4, True), (4, 8, True)) + ((8, 8, True),) * 4
        super().__init__(num_channels, ngf, t_emb_dim, plan, final_init_scale=1.0)


# train_ddgan.py picks Discriminator_small for these datasets and Discriminator_large otherwise.
SMALL_D_DATASETS = ("cifar10", "stackmnist")


def discriminator_kwargs_from_official(config: Mapping[str, Any] | argparse.Namespace) -> dict[str, Any]:
    """DiscriminatorSmall/Large keyword arguments from an official train_ddgan.py config (argparse defaults)."""
    if isinstance(config, argparse.Namespace):
        config = vars(config)
    return {
        "num_channels": config.get("num_channels", 3),
        "ngf": config.get("ngf", 64),
        "t_emb_dim": config.get("t_emb_dim", 256),
    }


def discriminator_from_official(config: Mapping[str, Any] | argparse.Namespace) -> _Discriminator:
    """Build the discriminator train_ddgan.py would: small for cifar10/stackmnist (the default dataset), else large."""
    if isinstance(config, argparse.Namespace):
        config = vars(config)
    small = config.get("dataset", "cifar10") in SMALL_D_DATASETS
    cls = DiscriminatorSmall if small else DiscriminatorLarge
    return cls(**discriminator_kwargs_from_official(config))
