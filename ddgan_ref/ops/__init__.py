"""Custom ops of the reference DDGAN (upfirdn2d), each with a PyTorch reference and an `impl` switch."""

from ddgan_ref.ops._impl import Impl, using
from ddgan_ref.ops.upfirdn2d import upfirdn2d, upfirdn2d_ref

__all__ = ["Impl", "upfirdn2d", "upfirdn2d_ref", "using"]
