"""The DDPM epsilon-UNet with diffusers `UNet2DModel` module names (Ho et al. 2020, unet2d16b2).

Names and arithmetic follow diffusers 0.42 (`models/unets/unet_2d.py`, `unet_2d_blocks.py`,
`resnet.py`, `attention_processor.py`, `embeddings.py`), so `google/ddpm-cifar10-32` weights load
directly; the float32 order of the time embedding matches it exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ddgan_ref.ops.fourier import fourier_features


def timestep_embedding(t: Tensor, dim: int, flip_sin_to_cos: bool, freq_shift: float) -> Tensor:
    """[N] integer steps -> [N, dim] sinusoidal embedding (diffusers `get_timestep_embedding`)."""
    half = dim // 2
    exponent = -math.log(10000) * torch.arange(half, dtype=torch.float32, device=t.device) / (half - freq_shift)
    emb = t[:, None].float() * torch.exp(exponent)[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class TimestepEmbedding(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.linear_1, self.linear_2 = nn.Linear(in_dim, dim), nn.Linear(dim, dim)

    def forward(self, emb: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(emb)))


class ResnetBlock2D(nn.Module):
    """GroupNorm, SiLU, conv, + projected time embedding, GroupNorm, SiLU, dropout, conv; 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, temb: int, groups: int, eps: float, dropout: float, scale: float = 1.0):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, c_in, eps=eps)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, c_out)
        self.norm2 = nn.GroupNorm(groups, c_out, eps=eps)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.conv_shortcut = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else None
        self.scale = scale

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        skip = x if self.conv_shortcut is None else self.conv_shortcut(x)
        return (skip + h) / self.scale


class Attention(nn.Module):
    """Self-attention over positions with a residual (diffusers `Attention` + `AttnProcessor2_0`)."""

    def __init__(self, c: int, head_dim: int | None, groups: int, eps: float, scale: float = 1.0):
        super().__init__()
        self.heads = 1 if head_dim is None else c // head_dim
        self.group_norm = nn.GroupNorm(groups, c, eps=eps)
        self.to_q, self.to_k, self.to_v = nn.Linear(c, c), nn.Linear(c, c), nn.Linear(c, c)
        self.to_out = nn.ModuleList([nn.Linear(c, c), nn.Dropout(0.0)])
        self.scale = scale

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        seq = self.group_norm(x).reshape(n, c, h * w).transpose(1, 2)  # [N, HW, C]
        q, k, v = (p(seq).reshape(n, h * w, self.heads, -1).transpose(1, 2) for p in (self.to_q, self.to_k, self.to_v))
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(n, h * w, c)
        out = self.to_out[1](self.to_out[0](out)).transpose(1, 2).reshape(n, c, h, w)
        return (out + x) / self.scale


class Downsample2D(nn.Module):
    """3x3 stride-2 conv; padding 0 means TensorFlow SAME: one zero row/column at the bottom/right."""

    def __init__(self, c: int, padding: int):
        super().__init__()
        self.padding = padding
        self.conv = nn.Conv2d(c, c, 3, stride=2, padding=padding)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1)) if self.padding == 0 else x)


class Upsample2D(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DownBlock(nn.Module):
    """DownBlock2D / AttnDownBlock2D: resnets (each optionally followed by attention), then a downsampler."""

    def __init__(self, c_in: int, c_out: int, temb: int, *, layers: int, groups: int, eps: float, dropout: float,
                 head_dim: int | None, attention: bool, downsample: bool, padding: int):
        super().__init__()
        self.resnets = nn.ModuleList(
            ResnetBlock2D(c_in if i == 0 else c_out, c_out, temb, groups, eps, dropout) for i in range(layers))
        self.attentions = nn.ModuleList(
            Attention(c_out, head_dim, groups, eps) for _ in range(layers)) if attention else None
        self.downsamplers = nn.ModuleList([Downsample2D(c_out, padding)]) if downsample else None

    def forward(self, x: Tensor, temb: Tensor) -> tuple[Tensor, list[Tensor]]:
        skips = []
        for i, resnet in enumerate(self.resnets):
            x = resnet(x, temb)
            x = self.attentions[i](x) if self.attentions is not None else x
            skips.append(x)
        if self.downsamplers is not None:
            x = self.downsamplers[0](x)
            skips.append(x)
        return x, skips


class UpBlock(nn.Module):
    """UpBlock2D / AttnUpBlock2D: layers_per_block + 1 resnets on [x, skip] (each optionally followed by
    attention), then nearest x2 + conv."""

    def __init__(self, c_prev: int, c_out: int, c_skip_last: int, temb: int, *, layers: int, groups: int,
                 eps: float, dropout: float, head_dim: int | None, attention: bool, upsample: bool):
        super().__init__()
        n = layers + 1
        c_ins = [(c_prev if i == 0 else c_out) + (c_skip_last if i == n - 1 else c_out) for i in range(n)]
        self.resnets = nn.ModuleList(ResnetBlock2D(c, c_out, temb, groups, eps, dropout) for c in c_ins)
        self.attentions = nn.ModuleList(
            Attention(c_out, head_dim, groups, eps) for _ in range(n)) if attention else None
        self.upsamplers = nn.ModuleList([Upsample2D(c_out)]) if upsample else None

    def forward(self, x: Tensor, skips: list[Tensor], temb: Tensor) -> Tensor:
        for i, resnet in enumerate(self.resnets):
            x = resnet(torch.cat([x, skips.pop()], dim=1), temb)  # up-path tensor first, then the skip
            x = self.attentions[i](x) if self.attentions is not None else x
        return self.upsamplers[0](x) if self.upsamplers is not None else x


class MidBlock(nn.Module):
    """UNetMidBlock2D: resnet, attention, resnet; outputs divided by mid_block_scale_factor."""

    def __init__(self, c: int, temb: int, *, groups: int, eps: float, dropout: float, head_dim: int | None,
                 scale: float):
        super().__init__()
        self.resnets = nn.ModuleList(ResnetBlock2D(c, c, temb, groups, eps, dropout, scale) for _ in range(2))
        self.attentions = nn.ModuleList([Attention(c, head_dim, groups, eps, scale)])

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        return self.resnets[1](self.attentions[0](self.resnets[0](x, temb)), temb)


class UNet2D(nn.Module):
    """epsilon(x_t, t): x [N, C, H, W], t [N] or a scalar integer step -> [N, C_out, H, W].

    Arguments are diffusers `UNet2DModel`'s, with its defaults for the DDPM CIFAR-10 UNet (unet2d16b2):
    sample_size: the image side (recorded; the network is fully convolutional).
    in_channels, out_channels: channels of x_t and of the predicted noise.
    layers_per_block: resnets per down level (the up levels have one more).
    block_out_channels: channels per level, from the input resolution down.
    down_block_types, up_block_types: "DownBlock2D"/"AttnDownBlock2D" and "UpBlock2D"/"AttnUpBlock2D" per level.
    downsample_padding: 0 pads one zero row/column bottom-right before the stride-2 conv (TensorFlow SAME).
    flip_sin_to_cos, freq_shift: the sinusoidal time embedding's layout and frequency offset.
    norm_eps, norm_num_groups: GroupNorm settings of every block.
    attention_head_dim: channels per attention head (None: one head).
    mid_block_scale_factor: the middle block's outputs are divided by it.
    center_input_sample: map x from [0, 1] to [-1, 1] first.
    dropout: in every resnet, after the second normalisation.
    """

    def __init__(self, *, sample_size: int = 32, in_channels: int = 3, out_channels: int = 3,
                 layers_per_block: int = 2, block_out_channels: Sequence[int] = (128, 256, 256, 256),
                 down_block_types: Sequence[str] = ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                 up_block_types: Sequence[str] = ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                 downsample_padding: int = 0, flip_sin_to_cos: bool = False, freq_shift: int = 1,
                 norm_eps: float = 1e-6, norm_num_groups: int = 32, attention_head_dim: int | None = None,
                 mid_block_scale_factor: float = 1.0, center_input_sample: bool = False, dropout: float = 0.1):
        super().__init__()
        self.sample_size, self.center_input_sample = sample_size, center_input_sample
        self.flip_sin_to_cos, self.freq_shift = flip_sin_to_cos, freq_shift
        chs, temb = tuple(block_out_channels), 4 * block_out_channels[0]
        shared = {"groups": norm_num_groups, "eps": norm_eps, "dropout": dropout, "head_dim": attention_head_dim}
        self.conv_in = nn.Conv2d(in_channels, chs[0], 3, padding=1)
        self.time_embedding = TimestepEmbedding(chs[0], temb)
        self.down_blocks = nn.ModuleList(
            DownBlock(chs[max(i - 1, 0)], c, temb, layers=layers_per_block, attention=kind == "AttnDownBlock2D",
                      downsample=i < len(chs) - 1, padding=downsample_padding, **shared)
            for i, (c, kind) in enumerate(zip(chs, down_block_types, strict=True)))
        self.mid_block = MidBlock(chs[-1], temb, scale=mid_block_scale_factor, **shared)
        rev = list(reversed(chs))
        self.up_blocks = nn.ModuleList(
            UpBlock(rev[max(i - 1, 0)], c, rev[min(i + 1, len(rev) - 1)], temb, layers=layers_per_block,
                    attention=kind == "AttnUpBlock2D", upsample=i < len(rev) - 1, **shared)
            for i, (c, kind) in enumerate(zip(rev, up_block_types, strict=True)))
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, chs[0], eps=norm_eps)
        self.conv_out = nn.Conv2d(chs[0], out_channels, 3, padding=1)

    def time_features(self, t: Tensor, batch: int) -> tuple[Tensor, Tensor]:
        """(sinusoidal projection [N, C0], embedding [N, 4 C0]) of the steps, a scalar broadcast to the batch."""
        t = t.reshape(1) if t.ndim == 0 else t
        t = t * torch.ones(batch, dtype=t.dtype, device=t.device)
        proj = timestep_embedding(t, self.conv_in.out_channels, self.flip_sin_to_cos,
                                  self.freq_shift).to(self.conv_in.weight.dtype)
        return proj, self.time_embedding(proj)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x.device)
        x = 2 * x - 1.0 if self.center_input_sample else x
        _, temb = self.time_features(t, x.shape[0])
        h = self.conv_in(x)
        skips = [h]
        for block in self.down_blocks:
            h, block_skips = block(h, temb)
            skips += block_skips
        h = self.mid_block(h, temb)
        for block in self.up_blocks:
            h = block(h, skips, temb)
        return self.conv_out(F.silu(self.conv_norm_out(h)))


class MLPDenoiser(nn.Module):
    """epsilon(x_t, t) for vector data (the 2D mixtures): [fourier(x), sinusoidal(t)] through a SiLU MLP -> [N, D]
    (fourier_octaves 0: x itself)."""

    def __init__(self, data_dim: int = 2, hidden: int = 256, layers: int = 3, temb_dim: int = 64,
                 fourier_octaves: int = 0):
        super().__init__()
        self.temb_dim, self.fourier_octaves = temb_dim, fourier_octaves
        dims = [data_dim * (1 + 2 * fourier_octaves) + temb_dim] + [hidden] * layers
        self.body = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:], strict=True))
        self.out = nn.Linear(hidden, data_dim)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        temb = timestep_embedding(t, self.temb_dim, flip_sin_to_cos=False, freq_shift=1)
        h = torch.cat([fourier_features(x, self.fourier_octaves), temb], dim=1)
        for layer in self.body:
            h = F.silu(layer(h))
        return self.out(h)
