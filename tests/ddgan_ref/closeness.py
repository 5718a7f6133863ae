"""Comparison of a kernel's result (any dtype) with a float64 reference, shared by the kernel tests."""

from __future__ import annotations

import torch

LOW_PRECISION = (torch.float16, torch.bfloat16)


def assert_close_to_ref(got: torch.Tensor, want: torch.Tensor, tol: dict, dtype: torch.dtype,
                        scale: torch.Tensor | None = None) -> None:
    """|got - want| <= atol + rtol * |want| elementwise, plus eps(dtype) * scale in half/bfloat16.

    `scale` is the sum of the absolute values of the terms that make each element (for a sum over
    half-precision intermediates such as a bias gradient, or a two-pass separable filter): the
    rounding those intermediates may carry, whatever the accumulator. Both sides must see the same
    rounded inputs (the caller rounds upstream gradients to `dtype` before the float64 reference).
    """
    got, want = got.double(), want.double()
    allowed = tol["atol"] + tol["rtol"] * want.abs()
    if scale is not None and dtype in LOW_PRECISION:
        allowed = allowed + torch.finfo(dtype).eps * scale.double()
    excess = (got - want).abs() - allowed
    if bool((excess > 0).any()):
        i = int(excess.flatten().argmax())
        raise AssertionError(
            f"{int((excess > 0).sum())} of {excess.numel()} elements beyond tolerance ({dtype}, {tol}); worst at flat "
            f"index {i}: got {got.flatten()[i].item():.6g}, want {want.flatten()[i].item():.6g}, "
            f"allowed {allowed.flatten()[i].item():.3g}"
        )


def rounded_like(t: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """(t rounded to dtype, the same values in float64): one upstream gradient for the kernel and its reference."""
    low = t.to(dtype)
    return low, low.double()


def gaussian_like(t: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Standard normal float64 values of t's shape on t's device, from a seeded CPU generator (reproducible)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(t.shape, generator=g, dtype=torch.float64).to(t.device)
