"""The StyleGAN2 adapter to the suite's Generator contract: sample(n, steps=1, *, seed) -> [n, *shape] in [-1, 1]."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from baselines.checkpoints import load_into, read_payload
from baselines.stylegan2.configs import StyleGAN2Config, config_from_dict, preset
from baselines.stylegan2.networks import Discriminator, Generator
from baselines.stylegan2.toy import ToyDiscriminator, ToyGenerator
from ddgan_ref.rng import SeedStream

FORMAT = "ddgan-bench/stylegan2-checkpoint"


def build_networks(config: StyleGAN2Config) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a config: the official classes, or the toy MLP variants for vector data."""
    if config.toy:
        return ToyGenerator(data_dim=config.data_shape[0], **config.G), ToyDiscriminator(config.data_shape[0],
                                                                                         **config.D)
    return Generator(**config.G), Discriminator(**config.D)


class StyleGAN2:
    name = "stylegan2"
    default_steps = 1
    supported_steps = (1,)

    def __init__(self, G: nn.Module, shape: tuple[int, ...], device: torch.device | str = "cpu", *,
                 truncation_psi: float = 1.0):
        self.device = torch.device(device)
        self.G, self.shape, self.truncation_psi = G.to(self.device).eval(), tuple(shape), truncation_psi
        self.calls = 0
        self.G.register_forward_hook(self._count)

    def _count(self, module, args, output) -> None:
        self.calls += 1

    @torch.no_grad()
    def sample(self, n: int, steps: int = 1, *, seed: int = 0) -> Tensor:
        """[n, *shape] float32 in [-1, 1]; z, labels and noise inputs of image i come from seed + i."""
        if steps not in self.supported_steps:
            raise ValueError(f"StyleGAN2 generates in one network call; steps must be 1, got {steps}")
        rng = SeedStream(seed, n, self.device)
        z = rng.randn(self.G.z_dim)
        c = None
        if self.G.c_dim > 0:  # a uniformly drawn class per image
            c = torch.nn.functional.one_hot(rng.randint(self.G.c_dim).reshape(n), self.G.c_dim).float()
        noise = None
        if isinstance(self.G, Generator):
            noise = [rng.randn(*shape[1:]) for shape in self.G.synthesis.noise_shapes(n)]
        x = self.G(z, c, self.truncation_psi, noise_mode="random", noise=noise) if noise is not None else self.G(
            z, c, self.truncation_psi)
        return x.clamp(-1, 1).float()


def load(checkpoint: str | Path, device: torch.device | str = "cpu", **kwargs) -> StyleGAN2:
    """A StyleGAN2 (G_ema) from our checkpoint format, built from the config stored in it."""
    payload = read_payload(checkpoint, FORMAT, "StyleGAN2")
    config = config_from_dict(payload["config"])
    G, _ = build_networks(config)
    load_into(G, payload["G_ema"], f"StyleGAN2 checkpoint {checkpoint} (G_ema)")
    return StyleGAN2(G, config.data_shape, device, **kwargs)


def build(preset_name: str = "tiny", *, checkpoint: str | Path | None = None,
          device: torch.device | str = "cpu", **kwargs) -> StyleGAN2:
    """The registry entry: a checkpoint if given, else the preset with freshly initialised weights."""
    if checkpoint is not None:
        return load(checkpoint, device, **kwargs)
    config = preset(preset_name)
    return StyleGAN2(build_networks(config)[0], config.data_shape, device, **kwargs)
