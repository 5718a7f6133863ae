"""Kernel-implementation selector for ddgan_ref.ops (the `impl` argument and the `using()` context)."""

from __future__ import annotations

import contextlib
import contextvars
import warnings
from collections.abc import Iterator
from typing import Literal, get_args

import torch
from torch import Tensor

from ddgan_ref.ops import _build

Impl = Literal["auto", "ref", "cpu", "cuda"]
IMPLS: tuple[str, ...] = get_args(Impl)
COMPILED: tuple[str, ...] = ("cpu", "cuda")
_CPU_DTYPES = (torch.float32, torch.float64)
_CUDA_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# The compiled kernels of each op and the dtypes each accepts; "auto" sends anything else to the reference (a
# declared capability). The neighbours kernel is CPU-only and takes float32 features (others get float64 blocks);
# draw_rows is CPU-only too (its numbers are drawn there on every device).
KERNELS: dict[str, dict[str, tuple[torch.dtype, ...]]] = {
    "upfirdn2d": {"cpu": _CPU_DTYPES, "cuda": _CUDA_DTYPES},
    "bias_act": {"cpu": _CPU_DTYPES, "cuda": _CUDA_DTYPES},
    "neighbours": {"cpu": (torch.float32,)},
    "draw_rows": {"cpu": (torch.float32, torch.int64)},  # the dtype of its first buffer: normal or integer draws
}

_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("ddgan_ref_ops_impl", default="auto")
_FALLBACK_WARNED: list[bool] = [False]  # "auto" warns about a failed build once per process


def check(impl: str) -> str:
    """Return `impl` unchanged if it names a known implementation, else raise ValueError."""
    if impl not in IMPLS:
        raise ValueError(f"unknown kernel impl {impl!r}; choose one of {list(IMPLS)}")
    return impl


def assume_constant_result(fn):
    """torch.compiler.assume_constant_result without its import of torch._dynamo, which costs every process that
    imports the ops about 1.2 s: the same marker on `fn`, read by dynamo when it traces a call of it. A test
    checks that the marker is the one torch's decorator sets."""
    fn._dynamo_marked_constant = True
    return fn


@assume_constant_result
def current_impl() -> str:
    """The implementation selected by the innermost `using()` block ("auto" outside any). torch.compile reads it
    once while tracing and keeps it, on every torch: dynamo in torch 2.11 cannot trace a ContextVar (a graph break
    at every op call; 2.14 can), so compiled code holds the default it was traced under."""
    return _DEFAULT.get()


def resolve(impl: Impl | None, x: Tensor, op: str) -> str:
    """The implementation ("ref", "cpu" or "cuda") that will run `op` on `x`.

    `impl=None` takes the default set by `using()`; a default naming a kind of kernel the op has none of (the
    CPU-only ops in a using("cuda") block) means "auto". An explicit "cpu"/"cuda" that cannot run (no such
    kernel, wrong device, unsupported dtype, failed build) raises. "auto" picks the compiled kernel of x's device when
    it supports x's dtype and builds; after a failed build it warns once per process and uses "ref".
    """
    chosen = current_impl() if impl is None else impl  # eager calls pay for every step here: kept to a few lookups
    if chosen == "ref":
        return "ref"
    if chosen == "auto":
        return _auto(x, op)
    if chosen not in COMPILED:
        check(chosen)  # raises: an unknown name
    dtypes = KERNELS[op].get(chosen)
    if dtypes is None and impl is None:
        return _auto(x, op)  # the block asks for compiled kernels, and this op has none of that kind
    if dtypes is None:
        raise RuntimeError(f"{op}: there is no {chosen} kernel (compiled: {list(KERNELS[op])}); use 'auto' or 'ref'")
    if device_type(x) != chosen:
        raise RuntimeError(
            f"{op}: impl={chosen!r} runs on {chosen} tensors, but x is on {x.device}; move x, or use "
            f"impl={x.device.type!r} (if compiled kernels exist for it), 'auto' or 'ref'"
        )
    if x.dtype not in dtypes:
        raise RuntimeError(
            f"{op}: the {chosen} kernel supports {[str(d) for d in dtypes]}, got {x.dtype}; use impl='ref'"
        )
    if not _builds(op, chosen):
        _build.extension(op, chosen)  # re-raises the cached KernelBuildError: diagnosis and build log
    return chosen


def device_type(x: Tensor) -> str:
    """x.device.type without building a torch.device (the attribute costs microseconds per call in a graph)."""
    return "cuda" if x.is_cuda else ("cpu" if x.is_cpu else x.device.type)


@assume_constant_result
def _builds(op: str, variant: str) -> bool:
    """Whether the kernel builds (building it on the first call). Constant per process, so torch.compile
    runs it once while tracing instead of tracing the build."""
    try:
        _build.extension(op, variant)
    except _build.KernelBuildError:
        return False
    return True


def _auto(x: Tensor, op: str) -> str:
    variant = device_type(x)
    dtypes = KERNELS[op].get(variant)
    if dtypes is None or x.dtype not in dtypes:
        return "ref"
    if _builds(op, variant):
        return variant
    if not _FALLBACK_WARNED[0]:
        _FALLBACK_WARNED[0] = True
        warnings.warn(
            "ddgan_ref.ops: compiled kernels are unavailable, so impl='auto' runs the PyTorch reference "
            "(slower, same results) for the rest of this process. This warning is shown once.\n"
            f"{_build.failure(op, variant)}",
            RuntimeWarning, stacklevel=4,
        )
    return "ref"


@contextlib.contextmanager
def using(impl: Impl) -> Iterator[None]:
    """Make `impl` the default for every op called inside the block (context-local, nestable). An op with no
    kernel of the kind named runs as "auto" there (neighbours and draw_rows have CPU kernels only). Code that
    torch.compile traced keeps the default of its tracing (current_impl)."""
    token = _DEFAULT.set(check(impl))
    try:
        yield
    finally:
        _DEFAULT.reset(token)


def call(eager: bool, op, function: type[torch.autograd.Function], *args):
    """The custom op (traceable: torch.compile, opcheck, fake tensors), or in eager mode the same kernel and
    backward through a plain autograd.Function, which costs microseconds per call instead of tens (and
    nothing when grad mode is off, as in sampling or a first-order backward pass: then the kernel runs directly)."""
    if not eager:
        return op(*args)
    return function.apply(*args) if torch.is_grad_enabled() else function.kernel(*args)
