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
    # The module a sampler calls once per step: the harness counts its calls (NFE); assignable, so bench.speed can
    # swap in the same network under a faster setting.
    network: nn.Module

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        """[n, C, H, W] (or [n, 2] points) float32 in [-1, 1], eval mode, no grad, no I/O. Sample i depends only
        on (weights, steps, seed + i). Raises ValueError if `steps` is not in `supported_steps`."""

    def generate(self, rng: Any, steps: int) -> Tensor:
        """sample()'s computation (steps already checked) with every random number drawn from rng, a
        ddgan_ref.rng.SeedStream or anything with its randn(*shape) / randint(high) and n: bench.speed captures
        it as one CUDA graph with the draws as the graph's inputs."""
