"""bias_act: y = clamp(act(x + b) * gain, ±clamp), as stylegan2-ada-pytorch `torch_utils/ops/bias_act.py`.

`bias_act_ref` is the readable PyTorch oracle; `bias_act` dispatches to it or to the csrc/ kernels,
registered as the custom ops `ddgan::bias_act` and `ddgan::bias_act_grad` (fake functions and autograd
included; the gradient op is differentiable once more, so second-order gradients such as R1 work). Those
registrations serve torch.compile and opcheck; eager calls use the extension's `bias_act_autograd`, the same
formulas in C++ (csrc/bias_act.cpp: a graph node of its own on torch 2.14, a torch::autograd::Function on other
versions), with no Python frame in the backward pass.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.ops import _build
from ddgan_ref.ops._impl import Impl, current_impl, resolve


@dataclass(frozen=True)
class Activation:
    """One activation: its kernel id (csrc/bias_act.h `Act`), reference function and default alpha/gain."""

    id: int
    fn: Callable[[Tensor, float], Tensor]
    alpha: float = 0.0
    gain: float = 1.0
    piecewise_linear: bool = False  # zero second derivative
    scalar_on_cpu: bool = False  # the C++ CPU kernel calls scalar libm (log1p) for it: "auto" keeps the reference


# Each fn is the twin of its kernel formula (csrc/bias_act.h `Activation`): the reference is the oracle and fallback.
ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(0, lambda x, a: x, piecewise_linear=True),
    "relu": Activation(1, lambda x, a: F.relu(x), gain=math.sqrt(2), piecewise_linear=True),
    "lrelu": Activation(2, lambda x, a: F.leaky_relu(x, a), alpha=0.2, gain=math.sqrt(2), piecewise_linear=True),
    "tanh": Activation(3, lambda x, a: torch.tanh(x)),
    "sigmoid": Activation(4, lambda x, a: torch.sigmoid(x)),
    "elu": Activation(5, lambda x, a: F.elu(x)),
    "selu": Activation(6, lambda x, a: F.selu(x)),
    "softplus": Activation(7, lambda x, a: F.softplus(x), scalar_on_cpu=True),
    "silu": Activation(8, lambda x, a: F.silu(x), gain=math.sqrt(2)),
    "swish": Activation(8, lambda x, a: F.silu(x), gain=math.sqrt(2)),  # StyleGAN2's name for silu
}


def _resolve_args(
    x: Tensor, b: Tensor | None, dim: int, act: str, alpha: float | None, gain: float | None, clamp: float | None
) -> tuple[Activation, float, float, float]:
    """Check the arguments and fill in the activation's defaults; clamp -1 means no clamp."""
    spec = ACTIVATIONS.get(act)  # the checks are written to cost little: eager calls pay them every time
    if spec is None:
        raise ValueError(f"unknown activation {act!r}; choose one of {sorted(ACTIVATIONS)}")
    if not 0 <= dim < x.dim():
        raise ValueError(f"dim must be in [0, {x.ndim}) for x of shape {tuple(x.shape)}; got {dim}")
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"b must be 1-D with x.shape[dim] = {x.shape[dim]} elements; got shape {tuple(b.shape)}")
    if clamp is not None and clamp < 0:
        raise ValueError(f"clamp must be None (no clamp) or >= 0; got {clamp}")
    alpha = spec.alpha if alpha is None else float(alpha)
    gain = spec.gain if gain is None else float(gain)
    return spec, alpha, gain, -1.0 if clamp is None else float(clamp)


def bias_act_ref(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
) -> Tensor:
    """Reference bias_act in plain PyTorch (any float dtype, any-order autograd).

    x: any shape; b: [x.shape[dim]] or None. Adds b along `dim`, applies `act` (alpha: lrelu slope),
    multiplies by `gain` and clamps to [-clamp, clamp]. None takes the activation's default
    (lrelu: alpha 0.2, gain sqrt(2); relu/silu: gain sqrt(2); others gain 1; no clamp).
    """
    spec, alpha, gain, clamp = _resolve_args(x, b, dim, act, alpha, gain, clamp)
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.fn(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


# The signature repeats bias_act_ref's on purpose: the dispatcher is a drop-in for its oracle.
def bias_act(
    x: Tensor,
    b: Tensor | None = None,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    *,
    impl: Impl | None = None,
) -> Tensor:
    """clamp(act(x + b) * gain, ±clamp); arguments and defaults as `bias_act_ref`. Returns x's shape.

    `impl` picks the implementation ("auto", "ref", "cpu", "cuda"); None takes the `using()` default.
    The compiled kernels support gradients up to second order. On CPU, "auto" runs the reference for
    softplus, whose log1p the kernel evaluates with scalar libm calls (slower than ATen's vectorised op);
    the other activations run vectorised in the kernel (see results/README.md).
    """
    spec, alpha, gain, clamp = _resolve_args(x, b, dim, act, alpha, gain, clamp)
    chosen = resolve(impl, x, "bias_act")
    if chosen == "cpu" and spec.scalar_on_cpu and (impl or current_impl()) == "auto":
        chosen = "ref"
    if chosen == "ref":
        return bias_act_ref(x, b, dim, act, alpha, gain, None if clamp < 0 else clamp)
    b = x.new_empty(0) if b is None else (b if b.dtype == x.dtype else b.to(x.dtype))
    if not (x.is_contiguous() or (x.ndim == 4 and x.is_contiguous(memory_format=torch.channels_last))):
        x = x.contiguous()  # the output keeps x's layout, so give the op a standard one
    if type(x) is torch.Tensor and not torch.compiler.is_compiling():  # eager: autograd in C++, microseconds less
        ext = _build.extension("bias_act", chosen)
        eager = ext.bias_act_function if _compiled_autograd_on() else ext.bias_act_autograd
        return eager(x, b, dim, spec.id, alpha, gain, clamp)
    return _bias_act_op(x, b, dim, spec.id, alpha, gain, clamp)


def _compiled_autograd_on() -> bool:
    """Whether torch's compiled autograd is on (its module is imported only once something uses it). Its tracer
    takes torch::autograd::Function nodes but not the extension's own graph node (BiasActNode, torch 2.14)."""
    module = sys.modules.get("torch._dynamo.compiled_autograd")
    return module is not None and bool(module.compiled_autograd_enabled)


def _kernel(x: Tensor):
    return _build.extension("bias_act", "cuda" if x.is_cuda else "cpu")


def _bias_shape(ndim: int, dim: int) -> list[int]:
    return [-1 if i == dim else 1 for i in range(ndim)]


def _bias_act_kernel(x: Tensor, b: Tensor, dim: int, act: int, alpha: float, gain: float, clamp: float) -> Tensor:
    """The compiled kernel: y. b: [x.shape[dim]] or empty; act: an ACTIVATIONS id; clamp < 0: none."""
    return _kernel(x).bias_act(x, b, x, dim, act, alpha, gain, clamp, 0, False)[0]  # g is unused at order 0


_bias_act_op = torch.library.custom_op("ddgan::bias_act", _bias_act_kernel, mutates_args=())


@_bias_act_op.register_fake
def _bias_act_fake(x, b, dim, act, alpha, gain, clamp):
    return torch.empty_like(x)


def _bias_act_setup(ctx, inputs, output):
    x, b, *ctx.args = inputs
    ctx.save_for_backward(x, b)


def _bias_act_backward(ctx, dy):
    """ds = dy * y'(s) (dx = ds), and db = ds summed over all dims but `dim`, fused into the same pass.

    Twin of `first_backward` in csrc/bias_act.cpp (eager calls): torch.compile and opcheck trace this one."""
    x, b = ctx.saved_tensors
    dim, act, alpha, gain, clamp = ctx.args
    want_db = bool(b.numel()) and ctx.needs_input_grad[1]
    if act == ACTIVATIONS["linear"].id and clamp < 0:  # y = (x + b) * gain: no kernel needed
        gs = dy * gain if gain != 1 else dy
        db = gs.sum([i for i in range(gs.ndim) if i != dim]) if want_db else None
    else:
        gs, db = _bias_act_grad_op(dy, x, b, *ctx.args, 1, want_db)
    return (gs if ctx.needs_input_grad[0] else None), (db if want_db else None), None, None, None, None, None


_bias_act_op.register_autograd(_bias_act_backward, setup_context=_bias_act_setup)


def _bias_act_grad_kernel(
    g: Tensor, x: Tensor, b: Tensor, dim: int, act: int, alpha: float, gain: float, clamp: float, order: int,
    reduce_bias: bool,
) -> tuple[Tensor, Tensor]:
    """(r, db): r = g times the first (order 1) or second (order 2) derivative of y w.r.t. s = x + b;
    db = r summed over all dims but `dim` when reduce_bias, else an empty tensor."""
    r, db = _kernel(x).bias_act(x, b, g, dim, act, alpha, gain, clamp, order, reduce_bias)
    return r, db


_bias_act_grad_op = torch.library.custom_op("ddgan::bias_act_grad", _bias_act_grad_kernel, mutates_args=())


@_bias_act_grad_op.register_fake
def _bias_act_grad_fake(g, x, b, dim, act, alpha, gain, clamp, order, reduce_bias):
    return torch.empty_like(x), x.new_empty((x.shape[dim] if reduce_bias else 0,))


def _bias_act_grad_setup(ctx, inputs, output):
    g, x, b, *ctx.args, ctx.order, ctx.reduce_bias = inputs
    ctx.save_for_backward(g, x, b)


def _bias_act_grad_backward(ctx, dr, d_db):
    """r = g * y'(s) (and db = sum r): dr/dg = y'(s), dr/ds = g * y''(s). No third-order gradients.

    Twin of `BiasActGrad::backward` in csrc/bias_act.cpp (eager calls): torch.compile and opcheck trace this one."""
    if ctx.order != 1:
        raise RuntimeError("bias_act: the compiled kernels support gradients up to second order; use impl='ref'")
    g, x, b = ctx.saved_tensors
    dim, act = ctx.args[0], ctx.args[1]
    if ctx.reduce_bias and d_db is not None:  # db = sum(r), so r also receives d_db broadcast along dim
        d_r = d_db.reshape(_bias_shape(x.ndim, dim)).expand_as(x)
        dr = d_r if dr is None else dr + d_r
    if dr is None:
        return (None,) * 10
    dg = _bias_act_grad_op(dr, x, b, *ctx.args, 1, False)[0] if ctx.needs_input_grad[0] else None
    second = not any(s.piecewise_linear for s in ACTIVATIONS.values() if s.id == act)
    want_db = bool(b.numel()) and ctx.needs_input_grad[2]
    ds, db = (None, None)
    if second and any(ctx.needs_input_grad[1:3]):
        ds, db = _bias_act_grad_op(dr * g, x, b, *ctx.args, 2, want_db)
    dx = ds if ctx.needs_input_grad[1] else None
    return dg, dx, (db if want_db else None), None, None, None, None, None, None, None


_bias_act_grad_op.register_autograd(_bias_act_grad_backward, setup_context=_bias_act_grad_setup)
