"""DDGAN generator: NCSN++ U-Net with AdaGN z-injection (score_sde/models/ncsnpp_generator_adagn.py, NCSNpp).

x_tp1: the noisy input x_{t+1} in [-1, 1]; t: integer step index in 0..T-1; z ~ N(0, I) [B, nz];
x0_pred: the predicted clean image, tanh-squashed unless not_use_tanh.
"""

from __future__ import annotations

import argparse
import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from ddgan_ref.networks.blocks import SQRT2, AttnBlock, PyramidDownsample, ResBlock
from ddgan_ref.networks.layers import (
    GN_EPS,
    group_count,
    mapping_network,
    ncsn_conv,
    ncsn_linear,
    timestep_embedding,
)

# The only value of each architecture flag that the official configs (train_ddgan.py / README) use.
SUPPORTED_FLAGS: dict[str, Any] = {
    "resamp_with_conv": True,
    "conditional": True,
    "fir": True,
    "fir_kernel": (1, 3, 3, 1),
    "skip_rescale": True,
    "resblock_type": "biggan",
    "progressive": "none",
    "progressive_input": "residual",
    "progressive_combine": "sum",
    "embedding_type": "positional",
}


class _DownLevel(NamedTuple):
    blocks: tuple[tuple[int, int | None], ...]  # (ResBlock index, AttnBlock index or None)
    down: int | None  # ResBlock(down=True) index, None on the last level
    pyramid: int | None  # PyramidDownsample index, None on the last level


class _UpLevel(NamedTuple):
    blocks: tuple[int, ...]  # ResBlock indices, each consuming one skip tensor
    attn: int | None
    up: int | None  # ResBlock(up=True) index, None on level 0


def _check_config(image_size: int, ch_mult: Sequence[int], flags: Mapping[str, Any]) -> None:
    """Raise ValueError for a flag value other than SUPPORTED_FLAGS' (flags: the constructor's arguments by name)
    or an image size the U-Net cannot halve."""
    for name, supported in SUPPORTED_FLAGS.items():
        value = flags[name]
        value = tuple(value) if isinstance(supported, tuple) else value
        value = value.lower() if isinstance(value, str) else value
        if value != supported:
            raise ValueError(
                f"NCSNpp: {name}={flags[name]!r} is not supported; the supported value is {supported!r}"
            )
    if not ch_mult or image_size % 2 ** (len(ch_mult) - 1):
        raise ValueError(f"NCSNpp: image_size={image_size} must be divisible by 2**(len(ch_mult) - 1); "
                         f"got ch_mult={tuple(ch_mult)}")


def _add(modules: list[nn.Module], module: nn.Module) -> int:
    modules.append(module)
    return len(modules) - 1


def _build_down(
    mods: list[nn.Module], block: Callable[..., ResBlock], nf: int, ch_mult: Sequence[int],
    num_res_blocks: int, attn: Sequence[bool], in_channels: int, fir_kernel: Sequence[int],
) -> tuple[tuple[_DownLevel, ...], list[int]]:
    """Append the down path to `mods`; return its plan and the channel count of every skip tensor."""
    ch, pyramid_ch, skip_ch, levels = nf, in_channels, [nf], []
    for i, mult in enumerate(ch_mult):
        blocks = []
        for _ in range(num_res_blocks):
            rb = _add(mods, block(ch, nf * mult))
            ch = nf * mult
            blocks.append((rb, _add(mods, AttnBlock(ch)) if attn[i] else None))
            skip_ch.append(ch)
        down = pyramid = None
        if i != len(ch_mult) - 1:
            down = _add(mods, block(ch, down=True))
            pyramid = _add(mods, PyramidDownsample(pyramid_ch, ch, fir_kernel))
            pyramid_ch = ch
            skip_ch.append(ch)
        levels.append(_DownLevel(tuple(blocks), down, pyramid))
    return tuple(levels), skip_ch


def _build_up(
    mods: list[nn.Module], block: Callable[..., ResBlock], nf: int, ch_mult: Sequence[int],
    num_res_blocks: int, attn: Sequence[bool], skip_ch: list[int],
) -> tuple[tuple[_UpLevel, ...], int]:
    """Append the up path to `mods`; return its plan and the output channel count."""
    ch, skip_ch, levels = skip_ch[-1], list(skip_ch), []
    for i in reversed(range(len(ch_mult))):
        blocks = []
        for _ in range(num_res_blocks + 1):
            blocks.append(_add(mods, block(ch + skip_ch.pop(), nf * ch_mult[i])))
            ch = nf * ch_mult[i]
        level_attn = _add(mods, AttnBlock(ch)) if attn[i] else None
        up = _add(mods, block(ch, up=True)) if i != 0 else None
        levels.append(_UpLevel(tuple(blocks), level_attn, up))
    assert not skip_ch, "every skip tensor must be consumed"
    return tuple(levels), ch


def _build_unet(
    block: Callable[..., ResBlock], nf: int, num_channels: int, ch_mult: Sequence[int], num_res_blocks: int,
    attn: Sequence[bool], fir_kernel: Sequence[int],
) -> tuple[list[nn.Module], tuple[_DownLevel, ...], tuple[int, int, int], tuple[_UpLevel, ...]]:
    """all_modules in upstream's order (time MLP, conv_in, down, middle, up, output head) and the index plans."""
    mods: list[nn.Module] = [ncsn_linear(nf, 4 * nf), ncsn_linear(4 * nf, 4 * nf)]
    mods.append(ncsn_conv(num_channels, nf, 3))
    down, skip_ch = _build_down(mods, block, nf, ch_mult, num_res_blocks, attn, num_channels, fir_kernel)
    ch = skip_ch[-1]
    middle = (_add(mods, block(ch)), _add(mods, AttnBlock(ch)), _add(mods, block(ch)))
    up, ch = _build_up(mods, block, nf, ch_mult, num_res_blocks, attn, skip_ch)
    mods.append(nn.GroupNorm(group_count(ch), ch, eps=GN_EPS))
    mods.append(ncsn_conv(ch, num_channels, 3, init_scale=0.0))
    return mods, down, middle, up


class NCSNpp(nn.Module):
    """NCSN++ generator of DDGAN: forward(x_tp1 [B, C, H, W], t [B] int64, z [B, nz]) -> x0_pred [B, C, H, W].

    Parameters live in one flat `all_modules` ModuleList (registered before `z_transform`), so the
    state-dict keys equal those of the official netG_*.pth files after stripping `module.`. An argument
    marked "official value only" accepts just the value of every official config (SUPPORTED_FLAGS).
    """

    def __init__(
        self,
        *,
        image_size: int = 32,                       # Input and output resolution; halved len(ch_mult) - 1 times.
        num_channels: int = 3,                      # Image channels.
        num_channels_dae: int = 128,                # Base width nf; the time embedding is 4 * nf wide.
        ch_mult: Sequence[int] = (1, 2, 2, 2),      # Width of each resolution level, in multiples of nf.
        num_res_blocks: int = 2,                    # ResBlocks per level on the way down (one more on the way up).
        attn_resolutions: Sequence[int] = (16,),    # Resolutions whose levels add self-attention.
        dropout: float = 0.0,                       # Dropout inside every ResBlock.
        resamp_with_conv: bool = True,              # Official value only: the input pyramid downsamples by a conv.
        conditional: bool = True,                   # Official value only: time-conditioned blocks.
        fir: bool = True,                           # Official value only: FIR up/downsampling.
        fir_kernel: Sequence[int] = (1, 3, 3, 1),   # Official value only: taps of the separable FIR filter.
        skip_rescale: bool = True,                  # Official value only: residual sums divided by sqrt(2).
        resblock_type: str = "biggan",              # Official value only: BigGAN ResBlocks with AdaGN.
        progressive: str = "none",                  # Official value only: no output pyramid.
        progressive_input: str = "residual",        # Official value only: input pyramid added at each downsampling.
        progressive_combine: str = "sum",           # Official value only: pyramid and features summed.
        embedding_type: str = "positional",         # Official value only: sinusoidal time embedding.
        fourier_scale: float = 16.0,                # Unused: only embedding_type="fourier" reads it.
        not_use_tanh: bool = False,                 # Return the raw output instead of tanh of it.
        centered: bool = True,                      # Inputs in [-1, 1]; False maps inputs in [0, 1] by 2x - 1.
        nz: int = 100,                              # Latent z dimensionality.
        z_emb_dim: int = 256,                       # Width of the mapping network and of AdaGN's style input.
        n_mlp: int = 3,                             # Mapping-network dense layers after the first (nz -> z_emb_dim).
    ):
        super().__init__()
        _check_config(image_size, ch_mult, locals())  # the "official value only" arguments, read by name
        nf = num_channels_dae
        self.nf, self.z_dim, self.centered, self.not_use_tanh = nf, nz, centered, not_use_tanh
        attn = [image_size // 2**i in tuple(attn_resolutions) for i in range(len(ch_mult))]
        block = functools.partial(ResBlock, temb_dim=4 * nf, zemb_dim=z_emb_dim, dropout=dropout, fir_kernel=fir_kernel)
        mods, self._down, self._middle, self._up = _build_unet(
            block, nf, num_channels, ch_mult, num_res_blocks, attn, fir_kernel
        )
        self.all_modules = nn.ModuleList(mods)  # registered (and initialised) before z_transform, as upstream
        self.z_transform = mapping_network(nz, z_emb_dim, n_mlp)

    def embed_time(self, t: Tensor) -> Tensor:
        """t [B] int -> temb [B, 4nf]: sinusoidal(t, nf) -> all_modules.0 -> SiLU -> all_modules.1."""
        m = self.all_modules
        sinusoidal = timestep_embedding(t, self.nf).to(m[0].weight.dtype)
        return m[1](F.silu(m[0](sinusoidal)))

    def _encode(self, x: Tensor, temb: Tensor, zemb: Tensor) -> list[Tensor]:
        """Down path; returns the skip stack (conv_in output first, the lowest resolution last)."""
        m = self.all_modules
        pyramid, hs = x, [m[2](x)]
        for level in self._down:
            for rb, attn in level.blocks:
                h = m[rb](hs[-1], temb, zemb)
                hs.append(h if attn is None else m[attn](h))
            if level.down is not None:
                h = m[level.down](hs[-1], temb, zemb)
                pyramid = (m[level.pyramid](pyramid) + h) / SQRT2
                hs.append(pyramid)
        return hs

    def _decode(self, h: Tensor, hs: list[Tensor], temb: Tensor, zemb: Tensor) -> Tensor:
        """Up path; pops one skip tensor per ResBlock."""
        m = self.all_modules
        for level in self._up:
            for rb in level.blocks:
                h = m[rb](torch.cat([h, hs.pop()], dim=1), temb, zemb)
            if level.attn is not None:
                h = m[level.attn](h)
            if level.up is not None:
                h = m[level.up](h, temb, zemb)
        return h

    def forward(self, x: Tensor, t: Tensor, z: Tensor) -> Tensor:
        """x: x_{t+1} [B, C, H, W]; t: [B] int64 step indices; z: [B, nz] -> x0_pred [B, C, H, W]."""
        m = self.all_modules
        zemb = self.z_transform(z)
        temb = self.embed_time(t)
        if not self.centered:
            x = 2 * x - 1.0
        hs = self._encode(x, temb, zemb)
        rb0, attn, rb1 = self._middle
        h = m[rb1](m[attn](m[rb0](hs[-1], temb, zemb)), temb, zemb)
        h = self._decode(h, hs, temb, zemb)
        h = m[-1](F.silu(m[-2](h)))
        return h if self.not_use_tanh else torch.tanh(h)


def ncsnpp_kwargs_from_official(config: Mapping[str, Any] | argparse.Namespace) -> dict[str, Any]:
    """NCSNpp keyword arguments from an official train_ddgan.py config (dict or argparse namespace).

    Keys that are not NCSNpp arguments (num_timesteps, beta_min, ngf, t_emb_dim, ...) are ignored;
    list values become tuples.
    """
    if isinstance(config, argparse.Namespace):
        config = vars(config)
    names = inspect.signature(NCSNpp.__init__).parameters
    return {k: tuple(v) if isinstance(v, list) else v for k, v in config.items() if k in names and k != "self"}
