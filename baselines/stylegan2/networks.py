"""StyleGAN2 generator and discriminator with stylegan2-ada-pytorch's module names and constructor arguments
(training/networks.py: MappingNetwork, SynthesisNetwork 'skip', Discriminator 'resnet'/'orig'), float32 only.

Randomness is injected: in noise_mode "random" each synthesis layer takes the next tensor of `noise`
([N, 1, res, res] each, in forward order) or draws one from `generator`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import torch
from torch import Tensor, nn

from baselines.stylegan2.layers import (
    Conv2dLayer,
    FullyConnectedLayer,
    MinibatchStdLayer,
    modulated_conv2d,
    normalize_2nd_moment,
    setup_filter,
)
from ddgan_ref.ops import ACTIVATIONS, bias_act, upfirdn2d

NOISE_MODES = ("random", "const", "none")


class MappingNetwork(nn.Module):
    """z [N, z_dim] (+ one-hot c) -> w [N, num_ws, w_dim]; keeps w_avg (training mode) for truncation."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int | None, num_layers: int = 8,
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995):
        super().__init__()
        self.z_dim, self.c_dim, self.num_ws, self.num_layers = z_dim, c_dim, num_ws, num_layers
        self.w_avg_beta = w_avg_beta
        embed = w_dim if c_dim > 0 else 0
        features = [z_dim + embed] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation="lrelu",
                                                         lr_multiplier=lr_multiplier))
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def forward(self, z: Tensor | None, c: Tensor | None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool = True) -> Tensor:
        x = normalize_2nd_moment(z.float()) if self.z_dim > 0 else None
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(c.float()))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x = torch.cat([self.w_avg.lerp(x[:, :cut], truncation_psi), x[:, cut:]], dim=1)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally upsampling x2), per-pixel noise, bias, lrelu with gain sqrt(2), clamp."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, *, up: int = 1,
                 conv_clamp: float | None = None, kernel_size: int = 3):
        super().__init__()
        self.resolution, self.up, self.padding, self.conv_clamp = resolution, up, kernel_size // 2, conv_clamp
        self.register_buffer("resample_filter", setup_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.register_buffer("noise_const", torch.randn([resolution, resolution]))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str, fused_modconv: bool,
                draw: Iterator[Tensor] | None) -> Tensor:
        noise = None
        if noise_mode == "random":
            noise = next(draw) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        x = modulated_conv2d(x, self.weight, self.affine(w), noise, up=self.up, padding=self.padding,
                             resample_filter=self.resample_filter, flip_weight=self.up == 1,
                             fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), act="lrelu", gain=ACTIVATIONS["lrelu"].gain, clamp=self.conv_clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation; styles scaled by 1/sqrt(C_in)."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: Tensor, w: Tensor, fused_modconv: bool) -> Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """'skip' block at one resolution: [const | conv0 (up x2)], conv1, toRGB added to the upsampled image."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 conv_clamp: float | None = None):
        super().__init__()
        self.in_channels = in_channels
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
        self.num_conv, self.num_torgb = (1 if in_channels == 0 else 2), 1

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str,
                draw: Iterator[Tensor] | None) -> tuple[Tensor, Tensor]:
        w_iter = iter(ws.unbind(dim=1))
        fused = not self.training  # ada-pytorch: fused grouped conv in eval (float32), non-fused in training
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w_iter), noise_mode, fused, draw)
        x = self.conv1(x, next(w_iter), noise_mode, fused, draw)
        if img is not None:
            img = upfirdn2d(img, self.resample_filter, up=2, pad=(2, 1, 2, 1), gain=4)
        y = self.torgb(x, next(w_iter), fused).float()
        return x, (img + y if img is not None else y)


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, conv_clamp: float | None = None,
                 architecture: str = "skip"):
        super().__init__()
        if architecture != "skip":
            raise ValueError(f"only the 'skip' generator architecture is implemented; got {architecture!r}")
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.resolutions}
        self.num_ws = 0
        for r in self.resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels, conv_clamp)
            self.num_ws += block.num_conv
            setattr(self, f"b{r}", block)
        self.num_ws += 1  # the last block's toRGB

    def forward(self, ws: Tensor, noise_mode: str = "const", noise: list[Tensor] | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        """ws [N, num_ws, w_dim] -> images [N, C, R, R]; a block's toRGB shares its w with the next conv0."""
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}; got {noise_mode!r}")
        draw = iter(noise) if noise is not None else self._draws(ws.shape[0], ws.device, generator)
        x = img = None
        idx = 0
        for r in self.resolutions:
            block = getattr(self, f"b{r}")
            x, img = block(x, img, ws.narrow(1, idx, block.num_conv + block.num_torgb), noise_mode, draw)
            idx += block.num_conv
        return img

    def _draws(self, n: int, device: torch.device, generator: torch.Generator | None) -> Iterator[Tensor]:
        for r in self.resolutions:
            for _ in range(getattr(self, f"b{r}").num_conv):
                draw_on = generator.device if generator is not None else device  # a CPU generator draws on CPU
                yield torch.randn([n, 1, r, r], generator=generator, device=draw_on).to(device)

    def noise_shapes(self, n: int) -> list[tuple[int, ...]]:
        """Shapes of the noise draws of one forward pass in "random" mode, in order."""
        return [(n, 1, r, r) for r in self.resolutions for _ in range(getattr(self, f"b{r}").num_conv)]


class Generator(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: Tensor, c: Tensor | None, truncation_psi: float = 1.0, truncation_cutoff: int | None = None,
                noise_mode: str = "random", noise: list[Tensor] | None = None,
                generator: torch.Generator | None = None) -> Tensor:
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff)
        return self.synthesis(ws, noise_mode, noise, generator)


class DiscriminatorBlock(nn.Module):
    """fromRGB (top block), conv0, conv1 (down x2); 'resnet' adds a 1x1 down-sampled skip, both scaled by sqrt(.5)."""

    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str = "resnet", conv_clamp: float | None = None):
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        self.register_buffer("resample_filter", setup_filter())
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: Tensor | None, img: Tensor) -> Tensor:
        if self.in_channels == 0:
            x = self.fromrgb(img)
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            return y + self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return self.conv1(self.conv0(x))


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch stddev, 3x3 conv, FC, output FC (projection onto cmap when conditional)."""

    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.cmap_dim = cmap_dim
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: Tensor, cmap: Tensor | None) -> Tensor:
        x = self.conv(self.mbstd(x.float()) if self.mbstd is not None else x.float())
        x = self.out(self.fc(x.flatten(1)))
        return x if self.cmap_dim == 0 else (x * cmap).sum(dim=1, keepdim=True) / math.sqrt(self.cmap_dim)


class Discriminator(nn.Module):
    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None):
        super().__init__()
        if architecture not in ("resnet", "orig") or block_kwargs:
            raise ValueError(f"only the 'resnet' and 'orig' discriminators are implemented; got {architecture!r}, "
                             f"block_kwargs {block_kwargs}")
        self.c_dim, self.img_resolution = c_dim, img_resolution
        self.resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in [*self.resolutions, 4]}
        cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        for r in self.resolutions:
            setattr(self, f"b{r}", DiscriminatorBlock(ch[r] if r < img_resolution else 0, ch[r], ch[r // 2],
                                                      img_channels, architecture, conv_clamp))
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, None, w_avg_beta=None, **(mapping_kwargs or {}))
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, conv_clamp=conv_clamp, **(epilogue_kwargs or {}))

    def forward(self, img: Tensor, c: Tensor | None) -> Tensor:
        """img [N, C, R, R] -> logits [N, 1]. The minibatch-stddev group size must divide N."""
        x = None
        for r in self.resolutions:
            x = getattr(self, f"b{r}")(x, img)
        return self.b4(x, self.mapping(None, c) if self.c_dim > 0 else None)
