"""Python face of the compiled draw_rows kernel (csrc/draw_rows.cpp): the per-row random draws of
ddgan_ref.rng.SeedStream, with rows spread over threads instead of a Python loop over generators."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ddgan_ref.ops import _build
from ddgan_ref.ops._impl import Impl, resolve


def draw_rows(buffers: Sequence[Tensor], highs: Sequence[int], generators: Sequence[torch.Generator],
              impl: Impl | None = None) -> None:
    """Fill row i of every buffer from generators[i], buffer after buffer: high 0 draws standard normals into a
    float32 buffer, as torch.randn(row_shape, generator=g) does; high > 0 integers in [0, high) into an int64
    one, as torch.randint(high, row_shape, generator=g) does. Each buffer is a contiguous CPU tensor [n, ...]
    with n = len(generators), and each row has a generator of its own.

    The numbers are the same whichever implementation runs (`draw_rows_ref` is the twin). `impl`: "auto" (the
    kernel when it builds, else the twin, with one warning after a failed build), "cpu" (the kernel, or an error
    saying why it cannot run), "ref", None (the `using()` default; "cuda" there means "auto", as the draws are
    on the CPU whatever the device).
    """
    highs = _check(buffers, highs, generators)
    if resolve(impl, buffers[0], "draw_rows") == "ref":
        _loop(buffers, highs, generators)
    else:
        _build.extension("draw_rows", "cpu").draw_rows_(list(buffers), highs, list(generators))


def draw_rows_ref(buffers: Sequence[Tensor], highs: Sequence[int], generators: Sequence[torch.Generator]) -> None:
    """The twin of `draw_rows`: a Python loop over generators per buffer, one torch.randn / torch.randint call per
    row (the generators are independent, so buffer-major order keeps each one's sequence)."""
    _loop(buffers, _check(buffers, highs, generators), generators)


def _loop(buffers: Sequence[Tensor], highs: list[int], generators: Sequence[torch.Generator]) -> None:
    for buffer, high in zip(buffers, highs, strict=True):
        shape = buffer.shape[1:]
        torch.stack([torch.randint(high, shape, generator=g) if high else
                     torch.randn(shape, generator=g, dtype=torch.float32) for g in generators], out=buffer)


def _check(buffers: Sequence[Tensor], highs: Sequence[int], generators: Sequence[torch.Generator]) -> list[int]:
    """The highs as ints, once every argument is known to fit; ValueError saying what does not."""
    if not buffers or len(buffers) != len(highs):
        raise ValueError(f"draw_rows: one high per buffer and at least one buffer, got {len(buffers)} buffers and "
                         f"{len(highs)} highs")
    n = len(generators)
    if n < 1:
        raise ValueError("draw_rows: needs at least one generator (one per row)")
    if any(g.device.type != "cpu" for g in generators):
        raise ValueError(f"draw_rows: every generator must be a CPU generator, got one on "
                         f"{next(g.device for g in generators if g.device.type != 'cpu')}")
    if len({id(g) for g in generators}) != n:  # rows on threads would take turns on a shared one in no set order
        raise ValueError("draw_rows: each row needs a generator of its own; the same generator is given twice")
    ints = [_as_int(high, b) for b, high in enumerate(highs)]
    for b, (buffer, high) in enumerate(zip(buffers, ints, strict=True)):
        want = torch.int64 if high else torch.float32
        if high < 0 or buffer.dtype != want:
            raise ValueError(f"draw_rows: buffer {b} with high {high} must be {want} and high >= 0 (0: normal "
                             f"draws), got a {buffer.dtype} buffer")
        if buffer.device.type != "cpu" or buffer.ndim < 1 or len(buffer) != n or not buffer.is_contiguous():
            raise ValueError(f"draw_rows: buffer {b} must be a contiguous CPU tensor with {n} rows (one per "
                             f"generator), got {tuple(buffer.shape)} on {buffer.device}")
    return ints


def _as_int(high: Any, b: int) -> int:
    if isinstance(high, bool):
        raise ValueError(f"draw_rows: high {b} must be an integer, got {high!r}")
    try:
        return operator.index(high)
    except TypeError:
        raise ValueError(f"draw_rows: high {b} must be an integer, got {high!r}") from None
