"""Custom ops of the reference DDGAN and the baselines (upfirdn2d, bias_act), each with a PyTorch reference twin."""

from ddgan_ref.ops._build import KernelBuildError
from ddgan_ref.ops._impl import Impl, using
from ddgan_ref.ops.bias_act import ACTIVATIONS, bias_act, bias_act_ref
from ddgan_ref.ops.upfirdn2d import upfirdn2d, upfirdn2d_ref

__all__ = ["ACTIVATIONS", "Impl", "KernelBuildError", "bias_act", "bias_act_ref", "upfirdn2d", "upfirdn2d_ref", "using"]
