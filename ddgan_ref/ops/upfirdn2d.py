"""upfirdn2d: upsample, pad, FIR-filter, downsample (semantics of rosinality/stylegan2-ada `upfirdn2d`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.ops._impl import Impl, resolve

Pad = tuple[int, int, int, int]


def _check_args(x: Tensor, f: Tensor, up: int, down: int, pad: Pad) -> None:
    if x.ndim != 4:
        raise ValueError(f"x must be [N, C, H, W]; got shape {tuple(x.shape)}")
    if f.ndim not in (1, 2):
        raise ValueError(f"f must be a 2-D [kh, kw] or 1-D separable filter; got shape {tuple(f.shape)}")
    if not (isinstance(up, int) and isinstance(down, int) and up >= 1 and down >= 1):
        raise ValueError(f"up and down must be integers >= 1; got up={up!r}, down={down!r}")
    if len(pad) != 4 or not all(isinstance(p, int) for p in pad):
        raise ValueError(f"pad must be four integers (x0, x1, y0, y1); got {pad!r}")


def _zero_insert(x: Tensor, up: int) -> Tensor:
    """[N, C, H, W] -> [N, C, H*up, W*up] with x at (i*up, j*up) and zeros elsewhere."""
    if up == 1:
        return x
    n, c, h, w = x.shape
    x = x.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
    return x.reshape(n, c, h * up, w * up)


def _pad_or_crop(x: Tensor, pad: Pad) -> Tensor:
    """Zero-pad by the positive entries of (x0, x1, y0, y1), crop by the negative ones."""
    x0, x1, y0, y1 = pad
    x = F.pad(x, (max(x0, 0), max(x1, 0), max(y0, 0), max(y1, 0)))
    h, w = x.shape[2], x.shape[3]
    return x[:, :, max(-y0, 0) : h - max(-y1, 0), max(-x0, 0) : w - max(-x1, 0)]


def upfirdn2d_ref(
    x: Tensor,
    f: Tensor,
    *,
    up: int = 1,
    down: int = 1,
    pad: Pad = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
) -> Tensor:
    """Reference upfirdn2d in plain PyTorch (any float dtype, any-order autograd).

    x: [N, C, H, W]; f: [kh, kw], or [k] meaning the separable filter outer(f, f).
    Zero-insertion upsampling by `up`, zero padding (negative pad crops), true convolution with
    f (f is correlated as given when flip_filter=True), scaling by `gain`, subsampling by `down`.
    Returns [N, C, (H*up + y0 + y1 - kh) // down + 1, (W*up + x0 + x1 - kw) // down + 1].
    """
    _check_args(x, f, up, down, pad)
    f = f.to(device=x.device, dtype=x.dtype)
    f = torch.outer(f, f) if f.ndim == 1 else f
    if not flip_filter:
        f = f.flip([0, 1])
    n, c = x.shape[:2]
    y = _pad_or_crop(_zero_insert(x, up), pad)
    kh, kw = f.shape
    if y.shape[2] < kh or y.shape[3] < kw:
        raise ValueError(f"padded input {tuple(y.shape[2:])} is smaller than the filter {(kh, kw)}")
    y = F.conv2d(y.reshape(n * c, 1, *y.shape[2:]), (f * gain)[None, None])
    y = y[:, :, ::down, ::down]
    return y.reshape(n, c, *y.shape[2:])


def upfirdn2d(
    x: Tensor,
    f: Tensor,
    *,
    up: int = 1,
    down: int = 1,
    pad: Pad = (0, 0, 0, 0),
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: Impl | None = None,
) -> Tensor:
    """Upsample by zero-insertion, pad, FIR-filter with f, downsample. x: [N, C, H, W].

    `impl` picks the implementation ("auto", "ref", "cpu", "cuda"); None takes the `using()`
    default. Only "ref" exists in this build; an explicit "cpu" or "cuda" raises RuntimeError.
    """
    resolve(impl, x)
    return upfirdn2d_ref(x, f, up=up, down=down, pad=pad, flip_filter=flip_filter, gain=gain)
