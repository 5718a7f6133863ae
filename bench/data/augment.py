"""Training-time augmentation: DDGAN's RandomHorizontalFlip, applied per batch with an explicit generator."""

import torch
from torch import Tensor


def random_hflip(x: Tensor, generator: torch.Generator, p: float = 0.5) -> Tensor:
    """Flip each image of x [N, C, H, W] left-right with probability p; draws N uniforms from generator."""
    flip = torch.rand(x.shape[0], generator=generator, device=generator.device) < p
    return torch.where(flip.to(x.device)[:, None, None, None], x.flip(-1), x)
