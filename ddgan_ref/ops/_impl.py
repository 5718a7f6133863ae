"""Kernel-implementation selector for ddgan_ref.ops (the `impl` argument and the `using()` context)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Literal, get_args

from torch import Tensor

Impl = Literal["auto", "ref", "cpu", "cuda"]
IMPLS: tuple[str, ...] = get_args(Impl)
COMPILED: tuple[str, ...] = ("cpu", "cuda")

_DEFAULT: contextvars.ContextVar[str] = contextvars.ContextVar("ddgan_ref_ops_impl", default="auto")


def check(impl: str) -> str:
    """Return `impl` unchanged if it names a known implementation, else raise ValueError."""
    if impl not in IMPLS:
        raise ValueError(f"unknown kernel impl {impl!r}; choose one of {list(IMPLS)}")
    return impl


def default() -> str:
    """The implementation selected by the innermost `using()` block ("auto" outside any)."""
    return _DEFAULT.get()


def resolve(impl: Impl | None, x: Tensor) -> str:
    """The implementation that will run on `x`: "ref" for now; an explicit "cpu"/"cuda" raises.

    `impl=None` takes the default set by `using()`. "auto" picks the fastest available path,
    which in this build is always the PyTorch reference.
    """
    chosen = check(default() if impl is None else impl)
    if chosen in COMPILED:
        raise RuntimeError(
            f"kernel impl {chosen!r} was requested for a {x.device.type} tensor, but the compiled csrc "
            "kernels are not part of this build yet; use impl='ref' or impl='auto'"
        )
    return "ref"


@contextlib.contextmanager
def using(impl: Impl) -> Iterator[None]:
    """Make `impl` the default for every op called inside the block (context-local, nestable)."""
    token = _DEFAULT.set(check(impl))
    try:
        yield
    finally:
        _DEFAULT.reset(token)
