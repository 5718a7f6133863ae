"""FIR up/downsampling through ddgan_ref.ops.upfirdn2d (score_sde/models/up_or_down_sampling.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.ops import upfirdn2d

FIR_KERNEL = (1, 3, 3, 1)


_FILTERS: dict[tuple, Tensor] = {}  # eager-mode cache: a filter costs a fill per tap, so it is made once per key


def fir_filter(k: Sequence[float], like: Tensor, scale: float = 1.0) -> Tensor:
    """outer(k, k) / sum * scale, as a [len(k), len(k)] tensor with the dtype and device of `like`.

    Made once per (k, scale, dtype, device) and reused (read-only) in eager mode; built inline while compiling."""
    if torch.compiler.is_compiling():
        return _make_filter(k, like.dtype, like.device, scale)
    key = (tuple(float(v) for v in k), float(scale), like.dtype, like.device)
    if key not in _FILTERS:
        with torch.inference_mode(False), torch.no_grad():  # a plain tensor, usable by autograd later
            _FILTERS[key] = _make_filter(k, like.dtype, like.device, scale)
    return _FILTERS[key]


def _make_filter(k: Sequence[float], dtype: torch.dtype, device: torch.device, scale: float) -> Tensor:
    """The taps in float64 Python arithmetic, each filled on `device`: a filter copied from the host would
    synchronise with a GPU, and inside a compiled network inductor keeps such a copy as a blocking one, which a
    CUDA graph cannot capture."""
    products = [float(a) * float(b) for a in k for b in k]
    total = sum(products)
    taps = [torch.full((), p / total * scale, dtype=dtype, device=device) for p in products]
    return torch.stack(taps).reshape(len(k), len(k))


def upsample_2d(x: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """[N, C, H, W] -> [N, C, H*factor, W*factor], FIR-interpolated (gain factor^2 keeps DC)."""
    p = len(k) - factor
    a, b = (p + 1) // 2 + factor - 1, p // 2
    return upfirdn2d(x, fir_filter(k, x, factor**2), up=factor, pad=(a, b, a, b))


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
