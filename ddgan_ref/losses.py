"""DDGAN's adversarial losses and R1 penalty (train_ddgan.py @ 6818ded, non-saturating softplus form)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def d_loss_real(logits_real: Tensor) -> Tensor:
    """-log sigmoid(D(x_t)) averaged over the batch."""
    return F.softplus(-logits_real).mean()


def d_loss_fake(logits_fake: Tensor) -> Tensor:
    """-log(1 - sigmoid(D(x_pos))) averaged over the batch."""
    return F.softplus(logits_fake).mean()


def g_loss(logits_fake: Tensor) -> Tensor:
    """Non-saturating generator loss -log sigmoid(D(x_pos))."""
    return F.softplus(-logits_fake).mean()


def r1_penalty(logits_real: Tensor, x_t: Tensor, gamma: float) -> Tensor:
    """gamma/2 * E ||d sum(D) / d x_t||^2 on the real less-noisy sample only, differentiable (create_graph)."""
    (grad,) = torch.autograd.grad(logits_real.sum(), x_t, create_graph=True)
    return gamma / 2 * (grad.reshape(grad.shape[0], -1).norm(2, dim=1) ** 2).mean()
