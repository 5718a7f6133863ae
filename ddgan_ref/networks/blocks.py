"""NCSN++ blocks with AdaGN z-injection: BigGAN ResBlock, attention, pyramid downsample (layerspp.py)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.networks.layers import (
    GN_EPS,
    NIN,
    AdaptiveGroupNorm,
    group_count,
    ncsn_conv,
    ncsn_linear,
    variance_scaling_,
)
from ddgan_ref.networks.resample import FIR_KERNEL, conv_downsample_2d, downsample_2d, upsample_2d

SQRT2 = math.sqrt(2.0)


class ResBlock(nn.Module):
    """ResnetBlockBigGANpp_Adagn: AdaGN-SiLU-[resample]-conv(+temb)-AdaGN-SiLU-dropout-conv, skip, /sqrt(2)."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int | None = None,
        *,
        temb_dim: int,
        zemb_dim: int,
        up: bool = False,
        down: bool = False,
        dropout: float = 0.0,
        fir_kernel: Sequence[int] = FIR_KERNEL,
    ):
        super().__init__()
        out_ch = out_ch or in_ch
        self.up, self.down, self.fir_kernel = up, down, tuple(fir_kernel)
        self.GroupNorm_0 = AdaptiveGroupNorm(in_ch, zemb_dim)
        self.Conv_0 = ncsn_conv(in_ch, out_ch, 3)
        self.Dense_0 = ncsn_linear(temb_dim, out_ch)
        self.GroupNorm_1 = AdaptiveGroupNorm(out_ch, zemb_dim)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = ncsn_conv(out_ch, out_ch, 3, init_scale=0.0)
        self.Conv_2 = ncsn_conv(in_ch, out_ch, 1) if (in_ch != out_ch or up or down) else None

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return upsample_2d(x, self.fir_kernel, factor=2)
        if self.down:
            return downsample_2d(x, self.fir_kernel, factor=2)
        return x

    def forward(self, x: Tensor, temb: Tensor, zemb: Tensor) -> Tensor:
        """x: [B, C_in, H, W], temb: [B, temb_dim], zemb: [B, zemb_dim] -> [B, C_out, H', W']."""
        h = F.silu(self.GroupNorm_0(x, zemb))
        h, x = self._resample(h), self._resample(x)
        h = self.Conv_0(h) + self.Dense_0(F.silu(temb))[:, :, None, None]
        h = F.silu(self.GroupNorm_1(h, zemb))
        h = self.Conv_1(self.Dropout_0(h))
        if self.Conv_2 is not None:
            x = self.Conv_2(x)
        return (x + h) / SQRT2


class AttnBlock(nn.Module):
    """AttnBlockpp: GroupNorm, single-head self-attention over H*W positions via NIN q/k/v/out, /sqrt(2)."""

    def __init__(self, channels: int):
        super().__init__()
        self.GroupNorm_0 = nn.GroupNorm(group_count(channels), channels, eps=GN_EPS)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=0.0)

    def forward(self, x: Tensor) -> Tensor:
        """[B, C, H, W] -> [B, C, H, W]."""
        b, c, hgt, wid = x.shape
        h = self.GroupNorm_0(x)
        q, k, v = (nin(h).reshape(b, c, hgt * wid) for nin in (self.NIN_0, self.NIN_1, self.NIN_2))
        w = torch.softmax(torch.bmm(q.transpose(1, 2), k) * c**-0.5, dim=-1)  # [B, HW (query), HW (key)]
        h = torch.bmm(v, w.transpose(1, 2)).reshape(b, c, hgt, wid)
        return (x + self.NIN_3(h)) / SQRT2


class FIRDownConv(nn.Module):
    """up_or_down_sampling.Conv2d(down=True): FIR-filtered stride-2 conv with a bias."""

    def __init__(self, in_ch: int, out_ch: int, kernel: int = 3, fir_kernel: Sequence[int] = FIR_KERNEL):
        super().__init__()
        self.fir_kernel = tuple(fir_kernel)
        self.weight = nn.Parameter(variance_scaling_(torch.empty(out_ch, in_ch, kernel, kernel)))
        self.bias = nn.Parameter(torch.zeros(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        """[B, C_in, H, W] -> [B, C_out, H/2, W/2]."""
        return conv_downsample_2d(x, self.weight, self.fir_kernel) + self.bias[None, :, None, None]


class PyramidDownsample(nn.Module):
    """layerspp.Downsample(with_conv=True, fir=True): the input-pyramid path of progressive_input='residual'."""

    def __init__(self, in_ch: int, out_ch: int, fir_kernel: Sequence[int] = FIR_KERNEL):
        super().__init__()
        self.Conv2d_0 = FIRDownConv(in_ch, out_ch, 3, fir_kernel)

    def forward(self, x: Tensor) -> Tensor:
        return self.Conv2d_0(x)
