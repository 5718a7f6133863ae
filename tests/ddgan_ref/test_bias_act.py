"""bias_act: the reference against a numpy/scipy oracle, float64 gradcheck, the C++ CPU kernel (and the CUDA
kernel, marker `cuda`) against the reference to second order, opcheck, torch.compile, and the golden cases."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import special

from ddgan_ref import ops
from ddgan_ref.ops import ACTIVATIONS, _build, bias_act, bias_act_ref
from ddgan_ref.ops.bias_act import _bias_act_grad_op, _bias_act_op
from tests.clones import NARROWER, isa_error, run_tests_with_isa
from tests.ddgan_ref.closeness import assert_close_to_ref, gaussian_like, rounded_like

GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", Path(__file__).resolve().parents[1] / "golden"))
ORACLE = {  # textbook definitions, independent of torch
    "linear": lambda s, a: s,
    "relu": lambda s, a: np.maximum(s, 0),
    "lrelu": lambda s, a: np.where(s > 0, s, a * s),
    "tanh": lambda s, a: np.tanh(s),
    "sigmoid": lambda s, a: special.expit(s),
    "elu": lambda s, a: np.where(s > 0, s, np.expm1(s)),
    "selu": lambda s, a: 1.0507009873554805 * np.where(s > 0, s, 1.6732632423543772 * np.expm1(s)),
    "softplus": lambda s, a: np.logaddexp(0, s),
    "silu": lambda s, a: s * special.expit(s),
    "swish": lambda s, a: s * special.expit(s),
}
DEFAULT_GAIN = {"relu": math.sqrt(2), "lrelu": math.sqrt(2), "silu": math.sqrt(2), "swish": math.sqrt(2)}
TOL = {
    torch.float64: dict(atol=1e-12, rtol=1e-12),
    torch.float32: dict(atol=1e-5, rtol=1e-5),
    torch.float16: dict(atol=2e-3, rtol=2e-3),
    torch.bfloat16: dict(atol=2e-2, rtol=2e-2),
}
LAYOUTS = {  # (shape, dim, channels_last)
    "nchw": ((2, 5, 3, 4), 1, False),
    "nhwc": ((2, 5, 3, 4), 1, True),
    "fc": ((3, 7), 1, False),
    "dim0": ((6, 2, 3), 0, False),
    "dim-last": ((2, 3, 4), 2, False),
}


def make(layout, dtype=torch.float64, device="cpu", seed=0, bias=True):
    shape, dim, channels_last = LAYOUTS[layout]
    g = torch.Generator().manual_seed(seed)
    x = (2 * torch.randn(shape, generator=g, dtype=torch.float64)).to(device=device, dtype=dtype)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    b = torch.randn(shape[dim], generator=g, dtype=torch.float64).to(device=device, dtype=dtype) if bias else None
    return x.requires_grad_(True), (b.requires_grad_(True) if bias else None), dim


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("clamp", [None, 0.7])
def test_bias_act_ref_matches_oracle(act, clamp):
    x, b, dim = make("nchw")
    y = bias_act_ref(x, b, dim, act, clamp=clamp)
    s = (x + b.reshape(1, -1, 1, 1)).detach().numpy()
    want = ORACLE[act](s, 0.2) * DEFAULT_GAIN.get(act, 1.0)
    if clamp is not None:
        want = np.clip(want, -clamp, clamp)
    np.testing.assert_allclose(y.detach().numpy(), want, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_ref_gradcheck(act):
    x, b, dim = make("fc")
    fn = lambda x, b: bias_act_ref(x, b, dim, act, alpha=0.3, gain=1.3, clamp=2.5)
    assert torch.autograd.gradcheck(fn, (x, b)) and torch.autograd.gradgradcheck(fn, (x, b))


def check_against_ref(impl, x, b, dim, act, tol, **kwargs):
    """Value, first and second derivatives (the latter through a penalty on the first) against the ref."""
    y = bias_act(x, b, dim, act, impl=impl, **kwargs)
    x64 = x.detach().double().requires_grad_(True)
    b64 = None if b is None else b.detach().double().requires_grad_(True)
    y_ref = bias_act_ref(x64, b64, dim, act, **kwargs)
    torch.testing.assert_close(y.double(), y_ref, **tol)
    dense = x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last))
    assert y.dtype == x.dtype and (y.stride() == x.stride() if dense else y.is_contiguous())
    dy, dy64 = rounded_like(gaussian_like(y_ref, 1), y.dtype)  # kernel and reference see the same gradient
    inputs, inputs64 = [t for t in (x, b) if t is not None], [t for t in (x64, b64) if t is not None]
    d1 = torch.autograd.grad(y, inputs, dy, create_graph=True)
    d1_ref = torch.autograd.grad(y_ref, inputs64, dy64, create_graph=True)
    check_grads(d1, d1_ref, dim, tol, x.dtype)
    if d1_ref[0].requires_grad:  # second order: d/d(x, b) of sum(dx * w) + sum(db * v)
        ws = [rounded_like(gaussian_like(d, 2 + i), x.dtype) for i, d in enumerate(d1_ref)]
        loss = sum((d * w).sum() for d, (w, _) in zip(d1, ws, strict=True))
        loss_ref = sum((d * w64).sum() for d, (_, w64) in zip(d1_ref, ws, strict=True))
        d2 = torch.autograd.grad(loss, inputs, allow_unused=True)
        d2_ref = torch.autograd.grad(loss_ref, inputs64, allow_unused=True)
        zeros = [torch.zeros_like(t) for t in inputs64]
        check_grads([z if g is None else g for g, z in zip(d2, zeros, strict=True)],
                    [z if g is None else g for g, z in zip(d2_ref, zeros, strict=True)], dim, tol, x.dtype)


def check_grads(got, want, dim, tol, dtype):
    """(dx, db) against the reference; db sums dx over every dim but `dim`, so its rounding bound is sum |dx|."""
    assert_close_to_ref(got[0], want[0], tol, dtype)
    if len(got) == 2:
        others = [i for i in range(want[0].ndim) if i != dim]
        assert_close_to_ref(got[1], want[1], tol, dtype, want[0].abs().sum(others))


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_bias_act_cpu_matches_ref(act, layout, dtype):
    x, b, dim = make(layout, dtype, seed=len(act))
    check_against_ref("cpu", x, b, dim, act, TOL[dtype])


@pytest.mark.parametrize("kwargs", [dict(clamp=0.5), dict(gain=0.7, clamp=1.0), dict(alpha=0.05, gain=3.0)])
@pytest.mark.parametrize("act", ["linear", "lrelu", "tanh", "silu"])
def test_bias_act_cpu_gain_alpha_clamp_and_no_bias(act, kwargs):
    x, b, dim = make("nchw", seed=3)
    check_against_ref("cpu", x, b, dim, act, TOL[torch.float64], **kwargs)
    x, _, dim = make("nhwc", seed=4, bias=False)
    check_against_ref("cpu", x, None, dim, act, TOL[torch.float64], **kwargs)


@pytest.mark.parametrize("act", ["lrelu", "tanh", "softplus", "silu"])
def test_bias_act_cpu_gradcheck_and_gradgradcheck(act):
    x, b, dim = make("nchw", seed=5)
    fn = lambda x, b: bias_act(x, b, dim, act, clamp=1.5, impl="cpu")
    assert torch.autograd.gradcheck(fn, (x, b)) and torch.autograd.gradgradcheck(fn, (x, b))


def test_bias_act_cpu_third_order_is_refused():
    x, b, dim = make("fc")
    (dx,) = torch.autograd.grad(bias_act(x, b, dim, "tanh", impl="cpu").sum(), x, create_graph=True)
    (ddx,) = torch.autograd.grad(dx.sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="up to second order"):
        torch.autograd.grad(ddx.sum(), x)


EXTREMES = [-math.inf, -200, -103.95, -103.8, -90, -88.8, -88.7, -30, -10, -0.7, -0.3, -1e-20, 0.0, 1e-20, 0.3, 0.7,
            10, 30, 88.7, 88.8, 90, 103.8, 200, math.inf, math.nan]  # the edges of float32 exp, signed zero, inf, NaN


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_bias_act_cpu_extreme_float32_values(act):
    """Values at exp's overflow/underflow edges, +-inf and NaN as the reference gives them (the kernel's vectorised
    float32 exp handles those ranges with selects; NaN stays NaN), and first derivatives at all but NaN (where
    torch's own elu backward gives NaN in its vector loop and 1 in its tail)."""
    x = torch.tensor(EXTREMES * 3, dtype=torch.float32)  # 75 values: full 16-wide vectors and a tail
    xs = [x.clone().requires_grad_(True), x.double().requires_grad_(True)]
    ys = [bias_act(xs[0], None, 0, act, impl="cpu"), bias_act_ref(xs[1], None, 0, act)]
    torch.testing.assert_close(ys[0].detach(), ys[1].detach().float(), rtol=1e-5, atol=1e-5, equal_nan=True)
    grads = [torch.autograd.grad(y.sum(), t)[0][~x.isnan()] for y, t in zip(ys, xs, strict=True)]
    torch.testing.assert_close(grads[0], grads[1].float(), rtol=1e-5, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("isa", NARROWER)
def test_bias_act_cpu_narrower_clones_match_ref(isa):
    """The AVX2 and baseline clones of the kernel (hidden on an AVX-512 machine: DDGAN_CPU_ISA lowers the choice in
    a child process) pass the same value, derivative and extreme-value tests against the reference."""
    run_tests_with_isa(isa, __file__, "(cpu_matches_ref or extreme or gain_alpha or gradcheck) and not clones")


def test_bias_act_cpu_isa_setting_is_checked():
    assert "DDGAN_CPU_ISA must be avx512, avx2 or baseline" in isa_error("avx3")
    assert isa_error("baseline") == ""


def test_bias_act_non_contiguous_input():
    x = torch.randn(4, 6, 5, dtype=torch.float64).transpose(1, 2)[:, ::2].requires_grad_(True)  # not dense
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    check_against_ref("cpu", x, b, 1, "silu", TOL[torch.float64])


def test_bias_act_opcheck():
    x, b, dim = make("nchw", torch.float32)
    for args in [(x, b, dim, 2, 0.2, 1.4, -1.0), (x, x.new_empty(0), dim, 8, 0.0, 1.0, 0.5)]:
        torch.library.opcheck(_bias_act_op, args)
    g = torch.randn_like(x).requires_grad_(True)
    torch.library.opcheck(_bias_act_grad_op, (g, x, b, dim, 3, 0.0, 1.0, -1.0, 1, True))
    torch.library.opcheck(_bias_act_grad_op, (g, x, b, dim, 2, 0.2, 1.4, 0.5, 1, False))


def test_bias_act_traced_by_torch_compile(monkeypatch):
    monkeypatch.setattr(_build, "_BUILT", {})  # tracing must not have to trace the (re)load of the kernel
    torch._dynamo.reset()
    x, b, dim = make("nhwc", torch.float32)
    fn = lambda x, b: bias_act(x, b, dim, "lrelu", clamp=2.0) * 2  # "auto": resolved while tracing
    compiled = torch.compile(fn, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, b), fn(x, b), atol=0, rtol=0)


def test_compiled_code_keeps_the_using_default_it_was_traced_under():
    """On every torch (dynamo in 2.11 cannot trace the ContextVar behind using(): it broke the graph at every op
    call, and fullgraph failed): one graph, traced under using("ref"), serves calls outside the block too."""
    import torch._dynamo.testing  # the compile counter; torch._dynamo is imported by torch.compile anyway

    torch._dynamo.reset()
    x, b, dim = make("nhwc", torch.float32)
    counter = torch._dynamo.testing.CompileCounter()
    compiled = torch.compile(lambda x, b: bias_act(x, b, dim, "lrelu") * 2, backend=counter, fullgraph=True)
    with ops.using("ref"):
        want = compiled(x, b)
    torch.testing.assert_close(compiled(x, b), want, atol=1e-6, rtol=0)
    assert counter.frame_count == 1


@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_bias_act_matches_stylegan2_golden_ops(impl):
    """tests/golden/stylegan2_ops.pt: official ada-pytorch bias_act(impl='ref') outputs and grads."""
    case = torch.load(GOLDEN_DIR / "stylegan2_ops.pt", weights_only=True)
    for args, want in zip(case["bias_act_cases"], case["bias_act_results"], strict=True):
        x, b = args["x"].clone().requires_grad_(True), args["b"].clone().requires_grad_(True)
        y = bias_act(x, b, args["dim"], args["act"], args["alpha"], args["gain"], args["clamp"], impl=impl)
        dx, db = torch.autograd.grad(y, (x, b), args["grad_out"])
        for key, got in {"out": y, "grad_x": dx, "grad_b": db}.items():
            msg = lambda m, n=args["name"], k=key: f"{n} {k}: {m}"
            torch.testing.assert_close(got, want[key], atol=1e-5, rtol=0, msg=msg)


@pytest.mark.parametrize("bad,match", [
    (dict(act="gelu"), "unknown activation"), (dict(dim=4), "dim must be"), (dict(clamp=-1.0), "clamp must be"),
    (dict(b=torch.zeros(3)), "b must be 1-D"),
])
def test_bias_act_rejects_bad_arguments(bad, match):
    kwargs = dict(b=torch.zeros(5), dim=1, act="lrelu") | bad
    for impl in ("ref", "cpu"):
        with pytest.raises(ValueError, match=match):
            bias_act(torch.randn(2, 5, 3, 3), impl=impl, **kwargs)


@pytest.mark.cuda
@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
@pytest.mark.parametrize("layout", sorted(LAYOUTS))
@pytest.mark.parametrize("dtype", list(TOL), ids=["f64", "f32", "f16", "bf16"])
def test_bias_act_cuda_matches_ref(act, layout, dtype):
    x, b, dim = make(layout, dtype, device="cuda", seed=len(act))
    check_against_ref("cuda", x, b, dim, act, TOL[dtype], clamp=3.0)


def test_bias_act_size_one_dim_with_any_stride():
    """A dense tensor may give a size-1 dim stride 0; the kernel must not divide by it."""
    x = torch.as_strided(torch.randn(12, dtype=torch.float64), (3, 1, 4), (4, 0, 1)).requires_grad_(True)
    check_against_ref("cpu", x, torch.randn(1, dtype=torch.float64, requires_grad=True), 1, "lrelu",
                      TOL[torch.float64])
