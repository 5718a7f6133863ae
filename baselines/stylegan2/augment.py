"""Differentiable augmentation for GANs on small datasets (Zhao et al. 2020 "DiffAugment" ops: colour,
translation, cutout), each applied per sample with probability p, and ADA's adaptive-p controller
(Karras et al. 2020: p moves by sign(E[sign D(real)] - target) * batch * interval / (ada_kimg * 1000))."""

from __future__ import annotations

import torch
from torch import Tensor


def _chosen(n: int, p: float, gen: torch.Generator, device: torch.device) -> Tensor:
    return (torch.rand(n, generator=gen) < p).to(device)[:, None, None, None]


def color(x: Tensor, p: float, gen: torch.Generator) -> Tensor:
    """Brightness +U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5) (images in [-1, 1])."""
    n, dev = x.shape[0], x.device
    r = torch.rand(n, 3, generator=gen).to(dev)[:, :, None, None, None]
    y = x + (r[:, 0] - 0.5)
    mean_c = y.mean(dim=1, keepdim=True)
    y = (y - mean_c) * (r[:, 1] * 2) + mean_c
    mean_all = y.mean(dim=[1, 2, 3], keepdim=True)
    y = (y - mean_all) * (r[:, 2] + 0.5) + mean_all
    return torch.where(_chosen(n, p, gen, dev), y, x)


def translation(x: Tensor, p: float, gen: torch.Generator, ratio: float = 0.125) -> Tensor:
    """Shift by up to ratio x size in each direction, zero-filled. A gather, not grid_sample: R1 differentiates
    the augmented D twice, and torch 2.11 has no second derivative of grid_sample."""
    n, c, h, w = x.shape
    shift = torch.randint(-int(h * ratio + 0.5), int(h * ratio + 0.5) + 1, (n, 2), generator=gen).to(x.device)
    rows = torch.arange(h, device=x.device)[None, :, None] - shift[:, 0, None, None]  # [n, h, 1]: source row
    cols = torch.arange(w, device=x.device)[None, None, :] - shift[:, 1, None, None]  # [n, 1, w]: source column
    inside = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)  # [n, h, w]
    index = (rows.clamp(0, h - 1) * w + cols.clamp(0, w - 1)).reshape(n, 1, h * w).expand(n, c, h * w)
    y = torch.where(inside[:, None], x.reshape(n, c, h * w).gather(2, index).view(n, c, h, w), 0.0)
    return torch.where(_chosen(n, p, gen, x.device), y, x)


def cutout(x: Tensor, p: float, gen: torch.Generator, ratio: float = 0.5) -> Tensor:
    """Zero a square of ratio x size at a random position."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + 1 - ch % 2, (n, 1, 1), generator=gen).to(x.device)
    cx = torch.randint(0, w + 1 - cw % 2, (n, 1, 1), generator=gen).to(x.device)
    yy, xx = torch.arange(h, device=x.device)[None, :, None], torch.arange(w, device=x.device)[None, None, :]
    keep = ~(((yy - cy).abs() <= ch // 2) & ((xx - cx).abs() <= cw // 2))
    return torch.where(_chosen(n, p, gen, x.device), x * keep[:, None].to(x.dtype), x)


AUGMENTS = {"color": color, "translation": translation, "cutout": cutout}


def augment(x: Tensor, p: float, ops: tuple[str, ...], gen: torch.Generator) -> Tensor:
    """The listed ops in order, each per sample with probability p; identity for p == 0 or vector data."""
    if p <= 0 or x.ndim != 4:
        return x
    for name in ops:
        x = AUGMENTS[name](x, p, gen)
    return x


def ada_adjust(p: float, real_sign_mean: float, target: float, batch: int, interval: int, ada_kimg: float) -> float:
    """ADA's controller: raise p when D is overconfident on reals (E[sign D(real)] > target), else lower it."""
    step = (1 if real_sign_mean > target else -1) * batch * interval / (ada_kimg * 1000)
    return min(max(p + step, 0.0), 1.0)
