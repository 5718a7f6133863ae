"""The Generator contract every model of the suite meets (structurally): DDGAN, DDPM/DDIM and StyleGAN2."""

from __future__ import annotations

from collections.abc import Container
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor, nn


@runtime_checkable
class Generator(Protocol):
    name: str
    default_steps: int
    supported_steps: Container[int]  # the harness filters on this; it never try/excepts
    device: torch.device  # where it samples
    config: Any  # the frozen config the model was built from; results record it
    network: nn.Module  # the module a sampler calls once per step: the harness times it and counts its calls (NFE)

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        """[n, C, H, W] (or [n, 2] points) float32 in [-1, 1], eval mode, no grad, no I/O. Sample i depends only
        on (weights, steps, seed + i). Raises ValueError if `steps` is not in `supported_steps`."""
