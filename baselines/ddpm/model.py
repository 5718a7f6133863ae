"""The DDPM adapter to the suite's Generator contract: sample(n, steps, *, seed) -> [n, *shape] in [-1, 1].

steps == T runs the official ancestral sampler (fixed_large, clipped x0); fewer steps run DDIM (eta 0,
quadratic spacing: the DDIM paper's CIFAR-10 protocol) or, with fast_sampler="ancestral", DDPM with
respaced betas. The harness counts network evaluations (NFE) on `network`.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from baselines.ddpm import sampling, schedule
from baselines.ddpm.configs import DDPMConfig, UNetConfig, preset
from baselines.ddpm.networks import MLPDenoiser, UNet2D
from ddgan_ref.io import FORMAT_VERSION, Checkpoint, CheckpointError, load_into, read_checkpoint
from ddgan_ref.rng import SeedStream

FORMAT = "ddgan-bench/ddpm-checkpoint"


def build_unet(unet: UNetConfig) -> UNet2D:
    """The UNet a UNetConfig describes (its fields are UNet2D's keyword arguments)."""
    return UNet2D(**asdict(unet))


def build_network(config: DDPMConfig) -> nn.Module:
    """The epsilon network of a run: the UNet, or the MLP for vector data."""
    if config.unet is not None:
        return build_unet(config.unet)
    m = config.mlp
    return MLPDenoiser(m.data_dim, m.hidden, m.layers, m.temb_dim, m.fourier_octaves)


def upgrade_layout_v1(old: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of the first DDPM layout ({format, version: 1, config, step, net, ema, opt, meta}) in the
    shared form: the EMA net samples; the raw net, optimiser and step are the resume state."""
    if old.get("version") != 1:
        raise CheckpointError(f"DDPM checkpoint layout version {old.get('version')!r} is unknown; this build reads "
                              f"1 and the shared form")
    return {"format": old["format"], "format_version": FORMAT_VERSION, "config": old["config"],
            "state_dict": old["ema"], "meta": {**old["meta"], "step": old["step"]},
            "train_state": {"step": old["step"], "net": old["net"], "opt": old["opt"]}}


def read(checkpoint: str | Path, *, mmap: bool = False) -> Checkpoint:
    """A DDPM checkpoint (either layout) with its config decoded (with mmap the tensors stay on disk until read)."""
    return read_checkpoint(checkpoint, FORMAT, upgrade=upgrade_layout_v1, config_cls=DDPMConfig, mmap=mmap)


class DDPM:
    name = "ddpm"

    def __init__(self, net: nn.Module, config: DDPMConfig, device: torch.device | str = "cpu", *,
                 fast_sampler: str = "ddim", spacing: str = "quad", eta: float = 0.0):
        if fast_sampler not in ("ddim", "ancestral"):
            raise ValueError(f"fast_sampler must be 'ddim' or 'ancestral'; got {fast_sampler!r}")
        self.device = torch.device(device)
        self.net, self.config = net.to(self.device).eval(), config
        s = config.schedule
        # On the CPU whatever the device: a step reads alpha_bar_t on the host (predict_x0's float roots), which from
        # a GPU tensor would synchronise at every step and forbid capturing the sampler as a CUDA graph.
        self.alpha_bar = schedule.alphas_cumprod(schedule.linear_betas(s.T, s.beta_start, s.beta_end))
        self.shape, self.fast_sampler, self.spacing, self.eta = tuple(config.data_shape), fast_sampler, spacing, eta
        self.default_steps, self.supported_steps = s.T, range(1, s.T + 1)

    @property
    def network(self) -> nn.Module:
        """The denoiser, called once per step."""
        return self.net

    @network.setter
    def network(self, module: nn.Module) -> None:
        self.net = module

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        """[n, *shape] float32 in [-1, 1]. Image i depends only on (weights, steps, seed + i)."""
        if steps not in self.supported_steps:
            raise ValueError(f"DDPM was trained with T={self.config.schedule.T}; steps must be in 1..T, got {steps}")
        return self.generate(SeedStream(seed, n, self.device), steps)

    def generate(self, rng: SeedStream, steps: int) -> Tensor:
        """sample()'s computation with every random number drawn from rng (one row per image)."""
        x_T, s = rng.randn(*self.shape), self.config.schedule
        if steps == s.T or self.fast_sampler == "ancestral":
            grid = schedule.timesteps(s.T, steps, "uniform")
            x = sampling.sample_ancestral(self.net, x_T, self.alpha_bar, grid, rng, variance=s.variance, clip=s.clip)
        else:
            grid = schedule.timesteps(s.T, steps, self.spacing)
            x = sampling.sample_ddim(self.net, x_T, self.alpha_bar, grid, rng, eta=self.eta, clip=s.clip)
        return x.clamp(-1, 1).float()


def load(checkpoint: str | Path, device: torch.device | str = "cpu", **sampler_kwargs) -> DDPM:
    """A DDPM from our checkpoint format (EMA weights), built from the config stored in it."""
    ckpt = read(checkpoint)
    net = load_into(build_network(ckpt.config), ckpt.state_dict, f"DDPM checkpoint {checkpoint}")
    return DDPM(net, ckpt.config, device, **sampler_kwargs)


def build(preset_name: str = "tiny", *, device: torch.device | str = "cpu", **sampler_kwargs) -> DDPM:
    """The preset with freshly initialised weights (torch's global RNG); `load` reads a checkpoint."""
    config = preset(preset_name)
    return DDPM(build_network(config), config, device, **sampler_kwargs)
