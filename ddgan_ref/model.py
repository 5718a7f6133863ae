"""The DDGAN adapter to the suite's Generator contract: sample(n, steps, *, seed) -> [n, *shape] in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from ddgan_ref import sampling
from ddgan_ref.checkpoints import read_checkpoint
from ddgan_ref.configs import DDGANConfig, preset
from ddgan_ref.diffusion import posterior_coefficients
from ddgan_ref.io import load_into
from ddgan_ref.networks.build import build_generator
from ddgan_ref.rng import SeedStream


class DDGAN:
    """A trained generator plus its diffusion; image i depends only on (weights, seed + i)."""

    name = "ddgan"

    def __init__(self, G: nn.Module, config: DDGANConfig, device: torch.device | str = "cpu"):
        self.device = torch.device(device)
        self.G = G.to(self.device).eval()
        self.config = config
        d = config.diffusion
        self.coeffs = posterior_coefficients(d.num_timesteps, d.beta_min, d.beta_max, d.use_geometric).to(self.device)
        self.shape = tuple(config.generator.data_shape)
        self.default_steps = d.num_timesteps
        self.supported_steps = (d.num_timesteps,)  # DDGAN samples with exactly the T it was trained with

    @property
    def network(self) -> nn.Module:
        """The generator, called once per denoising step."""
        return self.G

    @network.setter
    def network(self, module: nn.Module) -> None:
        self.G = module

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        """[n, *shape] float32 in [-1, 1]; raises ValueError unless steps is the trained T."""
        if steps not in self.supported_steps:
            raise ValueError(f"DDGAN was trained with T={self.default_steps}; got steps={steps}")
        return self.generate(SeedStream(seed, n, self.device), steps)

    def generate(self, rng: sampling.NoiseSource, steps: int) -> Tensor:
        """sample()'s computation with every random number drawn from rng (one row per image)."""
        return sampling.sample(self.G, rng.randn(*self.shape), self.coeffs, rng).clamp(-1, 1).float()


def load(checkpoint: str | Path, device: torch.device | str = "cpu") -> DDGAN:
    """A DDGAN from one of our checkpoints ({config, state_dict, meta}); the state_dict is the sampling G."""
    config, state_dict, _, _ = read_checkpoint(checkpoint)
    G = load_into(build_generator(config.generator), state_dict, f"checkpoint {checkpoint}")
    return DDGAN(G, config, device)


def build(preset_name: str = "tiny", *, device: torch.device | str = "cpu") -> DDGAN:
    """An untrained model of the preset (weights from torch's global RNG); `load` reads a checkpoint."""
    config = preset(preset_name)
    return DDGAN(build_generator(config.generator), config, device)
