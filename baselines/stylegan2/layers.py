"""StyleGAN2 building blocks with stylegan2-ada-pytorch's parameter names and arithmetic (training/networks.py,
torch_utils/ops/conv2d_resample.py): equalised-LR dense and conv layers, resampling convolution, modulated
convolution, minibatch standard deviation. Resampling and activations go through ddgan_ref.ops."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddgan_ref.ops import ACTIVATIONS, bias_act, upfirdn2d

Pad = tuple[int, int, int, int]


def setup_filter(k: tuple[float, ...] = (1, 3, 3, 1)) -> Tensor:
    """The separable low-pass filter outer(k, k), normalised to sum 1: [len(k), len(k)]."""
    k1 = torch.as_tensor(k, dtype=torch.float32)
    f = k1.outer(k1)
    return f / f.sum()


def normalize_2nd_moment(x: Tensor, eps: float = 1e-8) -> Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _conv(x: Tensor, w: Tensor, *, stride: int = 1, padding: int | tuple[int, int] = 0, groups: int = 1,
          transpose: bool = False, flip_weight: bool = True) -> Tensor:
    """conv2d (correlation) or conv_transpose2d; flip_weight=False turns the correlation into a convolution."""
    w = w if flip_weight else w.flip([2, 3])
    op = F.conv_transpose2d if transpose else F.conv2d
    return op(x, w, stride=stride, padding=padding, groups=groups)


def _resample_pads(f: Tensor | None, up: int, down: int, padding: int) -> list[int]:
    if f is None and (up > 1 or down > 1):
        raise ValueError(f"conv2d_resample: up={up}, down={down} needs a resampling filter f, got None")
    fh, fw = f.shape if f is not None else (1, 1)
    p = [padding] * 4  # x0, x1, y0, y1
    if up > 1:
        p = [p[0] + (fw + up - 1) // 2, p[1] + (fw - up) // 2, p[2] + (fh + up - 1) // 2, p[3] + (fh - up) // 2]
    if down > 1:
        p = [p[0] + (fw - down + 1) // 2, p[1] + (fw - down) // 2, p[2] + (fh - down + 1) // 2, p[3] + (fh - down) // 2]
    return p


def conv2d_resample(x: Tensor, w: Tensor, f: Tensor | None, *, up: int = 1, down: int = 1, padding: int = 0,
                    groups: int = 1, flip_weight: bool = True) -> Tensor:
    """Convolution with FIR up/downsampling in one padded pass (only the paths StyleGAN2 uses: up or down); f may
    be None without resampling."""
    c_out, c_in, kh, kw = w.shape
    p = _resample_pads(f, up, down, padding)
    if kh == kw == 1 and down > 1 and up == 1:  # 1x1: downsample first, then convolve
        return _conv(upfirdn2d(x, f, down=down, pad=tuple(p)), w, groups=groups, flip_weight=flip_weight)
    if down > 1 and up == 1:  # filter, then strided convolution
        return _conv(upfirdn2d(x, f, pad=tuple(p)), w, stride=down, groups=groups, flip_weight=flip_weight)
    if up > 1 and down == 1:  # transposed strided convolution, then filter
        if groups == 1:
            w = w.transpose(0, 1)
        else:
            w = w.reshape(groups, c_out // groups, c_in, kh, kw).transpose(1, 2).reshape(groups * c_in, c_out // groups,
                                                                                        kh, kw)
        p = [p[0] - (kw - 1), p[1] - (kw - up), p[2] - (kh - 1), p[3] - (kh - up)]
        pxt, pyt = max(min(-p[0], -p[1]), 0), max(min(-p[2], -p[3]), 0)
        x = _conv(x, w, stride=up, padding=(pyt, pxt), groups=groups, transpose=True, flip_weight=not flip_weight)
        return upfirdn2d(x, f, pad=(p[0] + pxt, p[1] + pxt, p[2] + pyt, p[3] + pyt), gain=up**2)
    if up == 1 and down == 1 and p[0] == p[1] and p[2] == p[3] and p[0] >= 0 and p[2] >= 0:
        return _conv(x, w, padding=(p[2], p[0]), groups=groups, flip_weight=flip_weight)
    raise ValueError(f"conv2d_resample: unsupported combination up={up}, down={down}, padding={padding}")


class FullyConnectedLayer(nn.Module):
    """y = act(x W^T lr_mult / sqrt(in) + b lr_mult); weight stored as N(0, 1) / lr_mult."""

    def __init__(self, in_features: int, out_features: int, *, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain, self.bias_gain = lr_multiplier / math.sqrt(in_features), lr_multiplier

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = None if self.bias is None else self.bias.to(x.dtype) * self.bias_gain if self.bias_gain != 1 else self.bias
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Equalised-LR conv with optional FIR up/downsampling, bias, activation and clamp (D and G skips)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, *, bias: bool = True,
                 activation: str = "linear", up: int = 1, down: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.activation, self.up, self.down, self.conv_clamp = activation, up, down, conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.padding, self.weight_gain = kernel_size // 2, 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].gain
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: Tensor, gain: float = 1.0) -> Tensor:
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w.to(x.dtype), self.resample_filter, up=self.up, down=self.down, padding=self.padding,
                            flip_weight=self.up == 1)
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, self.bias, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


def modulated_conv2d(x: Tensor, weight: Tensor, styles: Tensor, noise: Tensor | None = None, *, up: int = 1,
                     padding: int = 0, resample_filter: Tensor | None = None, demodulate: bool = True,
                     flip_weight: bool = True, fused_modconv: bool = True) -> Tensor:
    """Per-sample weights scaled by styles [N, I], demodulated (rsqrt(sum (s w)^2 + 1e-8)), noise added after.
    fused: one grouped convolution over the batch; else scale activations before and after a shared conv."""
    n = x.shape[0]
    c_out, c_in, kh, kw = weight.shape
    # ToRGB (up 1) passes no filter and needs none: making one here would copy it from the host at every call,
    # which synchronises and cannot be captured in a CUDA graph.
    f = setup_filter().to(x.device) if resample_filter is None and up > 1 else resample_filter
    w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1) if (demodulate or fused_modconv) else None
    dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt() if demodulate else None  # [N, O]
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), f, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate and noise is not None:
            return torch.addcmul(noise.to(x.dtype), x, dcoefs.to(x.dtype).reshape(n, -1, 1, 1))
        if demodulate:
            return x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x + noise.to(x.dtype) if noise is not None else x
    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = conv2d_resample(x.reshape(1, -1, *x.shape[2:]), w.reshape(-1, c_in, kh, kw).to(x.dtype), f, up=up,
                        padding=padding, groups=n, flip_weight=flip_weight)
    x = x.reshape(n, -1, *x.shape[2:])
    return x + noise if noise is not None else x


class MinibatchStdLayer(nn.Module):
    """Appends the per-group standard deviation of the features (averaged) as extra channels."""

    def __init__(self, group_size: int, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g, f = min(self.group_size, n), self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # a group is {i, i + N/G, ...}
        y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[2, 3, 4])
        return torch.cat([x, y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)], dim=1)
