"""Custom ops of the reference DDGAN, the baselines (upfirdn2d, bias_act, the toy nets' fourier_features),
bench.metrics.prdc (neighbours) and ddgan_ref.rng (draw_rows)."""

from ddgan_ref.ops._build import KernelBuildError
from ddgan_ref.ops._impl import Impl, current_impl, using
from ddgan_ref.ops.bias_act import ACTIVATIONS, bias_act, bias_act_ref
from ddgan_ref.ops.draw_rows import draw_rows, draw_rows_ref
from ddgan_ref.ops.fourier import fourier_features
from ddgan_ref.ops.neighbours import neighbours_kernel
from ddgan_ref.ops.upfirdn2d import upfirdn2d, upfirdn2d_ref

__all__ = [
    "ACTIVATIONS", "Impl", "KernelBuildError", "bias_act", "bias_act_ref", "current_impl", "draw_rows", "draw_rows_ref",
    "fourier_features", "neighbours_kernel", "upfirdn2d", "upfirdn2d_ref", "using",
]
