"""upfirdn2d: upsample, pad, FIR-filter, downsample (semantics of stylegan2-ada-pytorch `upfirdn2d`).

`upfirdn2d_ref` is the readable PyTorch oracle; `upfirdn2d` dispatches to it or to the csrc/ kernels,
registered as the custom op `ddgan::upfirdn2d` (fake shape function and autograd included, so
torch.compile traces it and R1's double backward runs the same kernels).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.ops import _build
from ddgan_ref.ops._impl import Impl, call, current_impl, resolve

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
    """Reference upfirdn2d in plain PyTorch (any float dtype, any-order autograd); twin of the csrc/ kernels.

    x: [N, C, H, W]; f: [kh, kw], or [k] meaning the separable filter outer(f, f).
    Zero-insertion upsampling by `up`, zero padding (negative pad crops), true convolution with
    f (f is correlated as given when flip_filter=True), scaling by `gain`, subsampling by `down`.
    Returns [N, C, (H*up + y0 + y1 - kh) // down + 1, (W*up + x0 + x1 - kw) // down + 1].
    The kernels' tests compare with it, and `impl="auto"` falls back to it where they cannot run.
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


# The signature repeats upfirdn2d_ref's on purpose: the dispatcher is a drop-in for its oracle.
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
    """Upsample by zero-insertion, pad, FIR-filter with f, downsample. x: [N, C, H, W]; f: [kh, kw] or [k].

    Same semantics and output shape as `upfirdn2d_ref`. `impl` picks the implementation ("auto", "ref",
    "cpu", "cuda"); None takes the `using()` default. The compiled kernels treat f as a constant (no
    gradient): "auto" uses the reference when f requires grad, an explicit "cpu"/"cuda" raises.
    A 1-D f runs as two 1-D passes (horizontal, then vertical).
    """
    _check_args(x, f, up, down, pad)
    chosen = resolve(impl, x, "upfirdn2d")
    if chosen != "ref" and f.requires_grad:
        if (impl or current_impl()) != "auto":
            raise RuntimeError(f"upfirdn2d: impl={chosen!r} treats f as a constant, but f requires grad; use 'ref'")
        chosen = "ref"
    if chosen == "ref":
        return upfirdn2d_ref(x, f, up=up, down=down, pad=pad, flip_filter=flip_filter, gain=gain)
    f = f.to(device=x.device, dtype=torch.float64 if x.dtype == torch.float64 else torch.float32)
    eager = type(x) is torch.Tensor and not torch.compiler.is_compiling()
    x0, x1, y0, y1 = pad
    if f.ndim == 1:
        x = _run(eager, x, f[None, :], [up, 1], [down, 1], [x0, x1, 0, 0], flip_filter, float(gain))
        return _run(eager, x, f[:, None], [1, up], [1, down], [0, 0, y0, y1], flip_filter, 1.0)
    return _run(eager, x, f, [up, up], [down, down], [x0, x1, y0, y1], flip_filter, float(gain))


def _run(eager: bool, *args):
    return call(eager, _upfirdn2d_op, _Upfirdn2d, *args)


def _output_hw(x: Tensor, f: Tensor, up: list[int], down: list[int], pad: list[int]) -> tuple[int, int]:
    """The kernels' output size, twin of out_h/out_w in csrc/upfirdn2d.cpp: the fake function must agree with it."""
    h = (x.shape[2] * up[1] + pad[2] + pad[3] - f.shape[0]) // down[1] + 1
    w = (x.shape[3] * up[0] + pad[0] + pad[1] - f.shape[1]) // down[0] + 1
    return h, w


def _output_format(x: Tensor) -> torch.memory_format:
    """The kernels' layout rule, twin of upfirdn2d_output_format (csrc/upfirdn2d.h): channels_last in and out."""
    channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
    return torch.channels_last if channels_last else torch.contiguous_format


def _upfirdn2d_kernel(
    x: Tensor, f: Tensor, up: list[int], down: list[int], pad: list[int], flip_filter: bool, gain: float
) -> Tensor:
    """The compiled kernel. up, down: [x, y]; pad: [x0, x1, y0, y1]; f: [kh, kw] float32 (float64 for x)."""
    kernel = _build.extension("upfirdn2d", "cuda" if x.is_cuda else "cpu")
    return kernel.upfirdn2d(x, f, up[0], up[1], down[0], down[1], *pad, flip_filter, gain)


_upfirdn2d_op = torch.library.custom_op("ddgan::upfirdn2d", _upfirdn2d_kernel, mutates_args=())


@_upfirdn2d_op.register_fake
def _upfirdn2d_fake(x, f, up, down, pad, flip_filter, gain):
    h, w = _output_hw(x, f, up, down, pad)
    return x.new_empty((x.shape[0], x.shape[1], h, w)).contiguous(memory_format=_output_format(x))


def _upfirdn2d_setup(ctx, inputs, output, eager=False):
    ctx.eager = eager
    x, f, up, down, pad, flip_filter, gain = inputs
    ctx.save_for_backward(f)
    ctx.args, ctx.in_hw = (up, down, pad, flip_filter, gain), (x.shape[2], x.shape[3])


def _upfirdn2d_backward(ctx, dy):
    """The adjoint is upfirdn2d again: up and down swapped, the filter flipped, paddings recomputed."""
    (f,) = ctx.saved_tensors
    up, down, pad, flip_filter, gain = ctx.args
    (in_h, in_w), (out_h, out_w), (kh, kw) = ctx.in_hw, dy.shape[2:], f.shape
    p = [
        kw - pad[0] - 1,
        in_w * up[0] - out_w * down[0] + pad[0] - up[0] + 1,
        kh - pad[2] - 1,
        in_h * up[1] - out_h * down[1] + pad[2] - up[1] + 1,
    ]
    dx = _run(ctx.eager, dy, f, down, up, p, not flip_filter, gain) if ctx.needs_input_grad[0] else None
    return dx, None, None, None, None, None, None


_upfirdn2d_op.register_autograd(_upfirdn2d_backward, setup_context=_upfirdn2d_setup)


class _Upfirdn2d(torch.autograd.Function):
    """Eager twin of ddgan::upfirdn2d: same kernel, same backward, microseconds less per call."""

    kernel = staticmethod(_upfirdn2d_kernel)

    @staticmethod
    def forward(ctx, *inputs):
        _upfirdn2d_setup(ctx, inputs, None, eager=True)
        return _upfirdn2d_kernel(*inputs)

    @staticmethod
    def backward(ctx, dy):
        return _upfirdn2d_backward(ctx, dy)
