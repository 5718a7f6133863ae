"""Compiled upfirdn2d (csrc/, C++ CPU on every run; CUDA with marker `cuda`) against upfirdn2d_ref.

Forward, backward and double backward over up/down factors, paddings (negative = crop), filter sizes
including 1-D separable ones, odd shapes, channels_last and dtypes; the custom-op registration through
torch.library.opcheck and torch.compile; the stylegan2_ops golden cases (official ada-pytorch ref ops).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ddgan_ref.ops import _build, upfirdn2d, upfirdn2d_ref
from ddgan_ref.ops.upfirdn2d import _upfirdn2d_op
from tests.ddgan_ref.closeness import assert_close_to_ref, gaussian_like, rounded_like

GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", Path(__file__).resolve().parents[1] / "golden"))
TOL = {  # spec/baselines.md 3.5: fp32 1e-5 relative (bit-level summation-order differences), fp16 1e-3
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
}
CASES = [  # (H, W, filter shape, up, down, pad (x0, x1, y0, y1))
    (8, 8, (4, 4), 2, 1, (2, 1, 2, 1)),  # NCSN++ / StyleGAN2 upsample, specialised path
    (8, 8, (4, 4), 1, 2, (1, 1, 1, 1)),  # downsample, specialised path
    (7, 9, (4, 4), 1, 1, (2, 2, 2, 2)),  # filter only (conv_downsample_2d), specialised path
    (5, 7, (3, 4), 1, 1, (1, 2, 0, 3)),  # asymmetric filter and padding
    (6, 9, (3, 2), 2, 2, (1, 2, 0, 3)),
    (7, 5, (4, 3), 3, 1, (-1, 2, 3, -2)),  # negative padding crops
    (9, 11, (2, 5), 1, 3, (-2, -1, 0, 1)),
    (6, 6, (5, 5), 2, 3, (2, 2, 2, 2)),
    (4, 10, (1, 3), 4, 2, (0, -3, 1, 0)),
    (5, 6, (1, 1), 1, 1, (0, 0, 0, 0)),
    (9, 7, (4,), 2, 1, (-1, 2, 1, -2)),  # 1-D separable filter, two 1-D passes
    (9, 7, (4,), 1, 2, (1, 1, 2, 0)),
    (3, 4, (6,), 2, 2, (3, 2, 3, 2)),
]


def make(shape, f_shape, dtype, device="cpu", channels_last=False, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64).to(device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    f = torch.randn(f_shape, generator=g, dtype=torch.float64)  # non-symmetric: catches a missing flip
    return x.requires_grad_(True), f


def check_against_ref(impl, x, f, up, down, pad, flip_filter, gain, tol):
    kwargs = dict(up=up, down=down, pad=pad, flip_filter=flip_filter, gain=gain)
    y = upfirdn2d(x, f.to(x.device), impl=impl, **kwargs)
    x64 = x.detach().double().requires_grad_(True)
    y_ref = upfirdn2d_ref(x64, f.to(x.device), **kwargs)
    assert y.dtype == x.dtype and y.shape == y_ref.shape
    # Rounding bounds: sum |f| |x| per output (a 1-D filter runs as two passes with a rounded intermediate).
    f_abs = f.abs().to(x.device)
    y_scale = upfirdn2d_ref(x64.detach().abs(), f_abs, **{**kwargs, "gain": abs(gain)})
    assert_close_to_ref(y, y_ref, tol, x.dtype, y_scale)
    dy, dy64 = rounded_like(gaussian_like(y_ref, 1), y.dtype)  # kernel and reference see the same gradient
    (dx,) = torch.autograd.grad(y, x, dy, create_graph=True)
    (dx_ref,) = torch.autograd.grad(y_ref, x64, dy64, create_graph=True)
    assert dx.shape == x.shape
    dx_scale = torch.autograd.functional.vjp(
        lambda t: upfirdn2d_ref(t, f_abs, **{**kwargs, "gain": abs(gain)}), x64.detach(), dy64.abs())[1]
    assert_close_to_ref(dx, dx_ref, tol, x.dtype, dx_scale)
    return y


@pytest.mark.parametrize("h,w,f_shape,up,down,pad", CASES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_upfirdn2d_cpu_matches_ref(h, w, f_shape, up, down, pad, dtype, channels_last):
    x, f = make((2, 3, h, w), f_shape, dtype, channels_last=channels_last, seed=h * w + up)
    y = check_against_ref("cpu", x, f, up, down, pad, flip_filter=h % 2 == 0, gain=1.5, tol=TOL[dtype])
    want = torch.channels_last if channels_last and y.shape[1] > 1 else torch.contiguous_format
    assert y.is_contiguous(memory_format=want)


@pytest.mark.parametrize("h,w,f_shape,up,down,pad", CASES[:3] + CASES[5:7] + CASES[10:11])
def test_upfirdn2d_cpu_gradcheck_and_gradgradcheck(h, w, f_shape, up, down, pad):
    x, f = make((1, 2, h, w), f_shape, torch.float64)
    fn = lambda x: upfirdn2d(x, f, up=up, down=down, pad=pad, gain=2.0, impl="cpu")
    assert torch.autograd.gradcheck(fn, (x,))
    assert torch.autograd.gradgradcheck(fn, (x,))


def test_upfirdn2d_cpu_double_backward_matches_ref():
    """R1's pattern: a penalty on d(sum D(x))/dx, back-propagated into an upstream parameter."""
    f = torch.tensor([1.0, 3.0, 3.0, 1.0]).outer(torch.tensor([1.0, 3.0, 3.0, 1.0])) / 64
    w = torch.randn(3, 3, 1, 1, dtype=torch.float64, requires_grad=True)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    grads = {}
    for impl in ("ref", "cpu"):
        h = upfirdn2d(torch.nn.functional.conv2d(x, w), f, down=2, pad=(1, 1, 1, 1), impl=impl)
        y = upfirdn2d(h.tanh(), f * 4, up=2, pad=(2, 1, 2, 1), impl=impl)
        (dx,) = torch.autograd.grad(y.square().sum(), x, create_graph=True)
        grads[impl] = torch.autograd.grad(dx.square().sum(), w)[0]
    torch.testing.assert_close(grads["cpu"], grads["ref"], atol=1e-12, rtol=1e-10)


def test_upfirdn2d_cpu_odd_sizes_and_batch_of_one():
    x, f = make((1, 1, 1, 13), (1, 4), torch.float32)
    check_against_ref("cpu", x, f, 2, 1, (2, 1, 0, 0), False, 1.0, TOL[torch.float32])
    x, f = make((3, 5, 17, 3), (5, 2), torch.float32)
    check_against_ref("cpu", x, f, 1, 2, (0, 3, 2, 2), True, 0.5, TOL[torch.float32])


def test_upfirdn2d_opcheck():
    x, f = make((2, 3, 6, 5), (4, 4), torch.float32)
    torch.library.opcheck(_upfirdn2d_op, (x, f.float(), [2, 2], [1, 1], [2, 1, 2, 1], False, 4.0))
    x, f = make((1, 2, 7, 8), (1, 3), torch.float64, channels_last=True)
    torch.library.opcheck(_upfirdn2d_op, (x, f, [1, 1], [2, 1], [1, -1, 0, 0], True, 1.0))


def test_upfirdn2d_traced_by_torch_compile(monkeypatch):
    monkeypatch.setattr(_build, "_BUILT", {})  # tracing must not have to trace the (re)load of the kernel
    torch._dynamo.reset()
    x, f = make((2, 3, 8, 8), (4, 4), torch.float32)
    fn = lambda x: upfirdn2d(x, f.float(), up=2, pad=(2, 1, 2, 1), impl="cpu").sin()
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x), fn(x), atol=0, rtol=0)
    (g1,), (g2,) = torch.autograd.grad(compiled(x).sum(), x), torch.autograd.grad(fn(x).sum(), x)
    torch.testing.assert_close(g1, g2, atol=0, rtol=0)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_upfirdn2d_matches_stylegan2_golden_ops(impl):
    """tests/golden/stylegan2_ops.pt: official ada-pytorch upfirdn2d(impl='ref') outputs and input grads."""
    case = torch.load(GOLDEN_DIR / "stylegan2_ops.pt", weights_only=True)
    for args, want in zip(case["upfirdn2d_cases"], case["upfirdn2d_results"], strict=True):
        x = args["x"].clone().requires_grad_(True)
        y = upfirdn2d(x, args["f"], up=args["up"], down=args["down"], pad=tuple(args["padding"]),
                      flip_filter=args["flip_filter"], gain=args["gain"], impl=impl)
        (dx,) = torch.autograd.grad(y, x, args["grad_out"])
        torch.testing.assert_close(y, want["out"], atol=1e-5, rtol=0, msg=lambda m, n=args["name"]: f"{n}: {m}")
        torch.testing.assert_close(dx, want["grad_x"], atol=1e-5, rtol=0, msg=lambda m, n=args["name"]: f"{n}: {m}")


@pytest.mark.cuda
@pytest.mark.parametrize("h,w,f_shape,up,down,pad", CASES)
@pytest.mark.parametrize("dtype", list(TOL), ids=["f64", "f32", "f16", "bf16"])
@pytest.mark.parametrize("channels_last", [False, True], ids=["nchw", "nhwc"])
def test_upfirdn2d_cuda_matches_ref(h, w, f_shape, up, down, pad, dtype, channels_last):
    x, f = make((2, 3, h, w), f_shape, dtype, device="cuda", channels_last=channels_last, seed=h * w + up)
    check_against_ref("cuda", x, f, up, down, pad, flip_filter=h % 2 == 0, gain=1.5, tol=TOL[dtype])


@pytest.mark.cuda
def test_upfirdn2d_cuda_gradgradcheck():
    x, f = make((1, 2, 8, 8), (4, 4), torch.float64, device="cuda")
    fn = lambda x: upfirdn2d(x, f.cuda(), up=2, pad=(2, 1, 2, 1), impl="cuda")
    assert torch.autograd.gradcheck(fn, (x,)) and torch.autograd.gradgradcheck(fn, (x,))
