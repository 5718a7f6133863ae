"""FIR up/downsampling through ddgan_ref.ops.upfirdn2d (score_sde/models/up_or_down_sampling.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.ops import upfirdn2d

FIR_KERNEL = (1, 3, 3, 1)


def fir_filter(k: Sequence[float], like: Tensor) -> Tensor:
    """outer(k, k) / sum, as a [len(k), len(k)] tensor with the dtype and device of `like`."""
    k1 = torch.as_tensor(k, dtype=torch.float64)
    f = torch.outer(k1, k1)
    return (f / f.sum()).to(dtype=like.dtype, device=like.device)


def upsample_2d(x: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """[N, C, H, W] -> [N, C, H*factor, W*factor], FIR-interpolated (gain factor^2 keeps DC)."""
    p = len(k) - factor
    a, b = (p + 1) // 2 + factor - 1, p // 2
    return upfirdn2d(x, fir_filter(k, x) * factor**2, up=factor, pad=(a, b, a, b))


def downsample_2d(x: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """[N, C, H, W] -> [N, C, H//factor, W//factor], FIR-filtered then subsampled."""
    p = len(k) - factor
    a, b = (p + 1) // 2, p // 2
    return upfirdn2d(x, fir_filter(k, x), down=factor, pad=(a, b, a, b))


def conv_downsample_2d(x: Tensor, w: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """FIR filter then a stride-`factor` conv with w [C_out, C_in, kh, kw] (no bias), padded once."""
    p = (len(k) - factor) + (w.shape[-1] - 1)
    a, b = (p + 1) // 2, p // 2
    x = upfirdn2d(x, fir_filter(k, x), pad=(a, b, a, b))
    return F.conv2d(x, w, stride=factor)
