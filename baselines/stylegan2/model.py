"""The StyleGAN2 adapter to the suite's Generator contract: sample(n, steps=1, *, seed) -> [n, *shape] in [-1, 1]."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from baselines.stylegan2.configs import StyleGAN2Config, preset
from baselines.stylegan2.networks import Discriminator, Generator
from baselines.stylegan2.toy import ToyDiscriminator, ToyGenerator
from ddgan_ref.io import FORMAT_VERSION, Checkpoint, CheckpointError, load_into, read_checkpoint
from ddgan_ref.rng import SeedStream

FORMAT = "ddgan-bench/stylegan2-checkpoint"
RESUME_KEYS = ("G", "D", "opt_g", "opt_d", "ada_p", "ada_signs", "pl_mean")  # of the first layout


def build_generator(config: StyleGAN2Config) -> nn.Module:
    """G of a config, all that sampling needs (an official pickle's D may use an architecture we do not build)."""
    return ToyGenerator(data_dim=config.data_shape[0], **config.G) if config.toy else Generator(**config.G)


def build_networks(config: StyleGAN2Config) -> tuple[nn.Module, nn.Module]:
    """(G, D) of a config: the official classes, or the toy MLP variants for vector data."""
    G = build_generator(config)  # G first: the initial weights come from torch's global RNG in this order
    return G, ToyDiscriminator(config.data_shape[0], **config.D) if config.toy else Discriminator(**config.D)


def upgrade_layout_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the first StyleGAN2 layout ({format, version: 1, config, step, G, D, G_ema, opt_g, opt_d,
    ada_p, ada_signs, pl_mean, meta}) in the shared form: G_ema samples; the rest is the resume state."""
    if old.get("version") != 1:
        raise CheckpointError(f"StyleGAN2 checkpoint layout version {old.get('version')!r} is unknown; this build "
                              f"reads 1 and the shared form")
    return {"format": old["format"], "format_version": FORMAT_VERSION, "config": old["config"],
            "state_dict": old["G_ema"], "meta": {**old["meta"], "step": old["step"]},
            "train_state": {"step": old["step"], **{k: old[k] for k in RESUME_KEYS}}}


def read(checkpoint: str | Path, *, mmap: bool = False) -> Checkpoint:
    """A StyleGAN2 checkpoint (either layout) with its config decoded (with mmap the tensors stay on disk until
    read)."""
    return read_checkpoint(checkpoint, FORMAT, upgrade=upgrade_layout_v1, config_cls=StyleGAN2Config, mmap=mmap)


class StyleGAN2:
    name = "stylegan2"
    default_steps = 1
    supported_steps = (1,)

    def __init__(self, G: nn.Module, config: StyleGAN2Config, device: torch.device | str = "cpu", *,
                 truncation_psi: float = 1.0):
        self.device = torch.device(device)
        self.G, self.config, self.truncation_psi = G.to(self.device).eval(), config, truncation_psi
        self.shape = tuple(config.data_shape)
        self.noise_inputs = isinstance(G, Generator)  # the conv generator takes per-layer noise; the toy MLP none

    @property
    def network(self) -> nn.Module:
        """The generator, called once per sample batch."""
        return self.G

    @network.setter
    def network(self, module: nn.Module) -> None:
        self.G = module

    def sample(self, n: int, steps: int = 1, *, seed: int = 0) -> Tensor:
        """[n, *shape] float32 in [-1, 1]; z, labels and noise inputs of image i come from seed + i."""
        if steps not in self.supported_steps:
            raise ValueError(f"StyleGAN2 generates in one network call; steps must be 1, got {steps}")
        return self.generate(SeedStream(seed, n, self.device), steps)

    @torch.no_grad()
    def generate(self, rng: SeedStream, steps: int = 1) -> Tensor:
        """sample()'s computation with every random number drawn from rng (one row per image)."""
        n = rng.n
        z = rng.randn(self.G.z_dim)
        c = None
        if self.G.c_dim > 0:  # a uniformly drawn class per image, one-hot by indexing (no device sync: capturable)
            c = torch.eye(self.G.c_dim, device=self.device)[rng.randint(self.G.c_dim).reshape(n)]
        noise = None
        if self.noise_inputs:
            noise = [rng.randn(*shape[1:]) for shape in self.G.synthesis.noise_shapes(n)]
        x = self.G(z, c, self.truncation_psi, noise_mode="random", noise=noise) if noise is not None else self.G(
            z, c, self.truncation_psi)
        return x.clamp(-1, 1).float()


def load(checkpoint: str | Path, device: torch.device | str = "cpu", **kwargs) -> StyleGAN2:
    """A StyleGAN2 (G_ema) from our checkpoint format, built from the config stored in it."""
    ckpt = read(checkpoint)
    G = load_into(build_generator(ckpt.config), ckpt.state_dict, f"StyleGAN2 checkpoint {checkpoint} (G_ema)")
    return StyleGAN2(G, ckpt.config, device, **kwargs)


def build(preset_name: str = "tiny", *, device: torch.device | str = "cpu", **kwargs) -> StyleGAN2:
    """The preset with freshly initialised weights (torch's global RNG); `load` reads a checkpoint."""
    config = preset(preset_name)
    return StyleGAN2(build_generator(config), config, device, **kwargs)
