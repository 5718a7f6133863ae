"""StyleGAN2 configurations: official constructor kwargs (stylegan2-ada-pytorch `--cfg=cifar`), small CPU
presets, and the training recipe, as frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

AUGMENTS = ("color", "translation", "cutout")


@dataclass(frozen=True)
class TrainConfig:
    """Non-saturating loss, lazy R1, Adam (0, 0.99), G EMA by half-life in kimg with ramp-up, ADA."""

    batch_size: int = 64
    lr_g: float = 0.0025
    lr_d: float = 0.0025
    betas: tuple[float, float] = (0.0, 0.99)
    r1_gamma: float = 0.01
    r1_interval: int = 16
    ema_kimg: float = 500.0
    ema_rampup: float | None = 0.05
    style_mixing: float = 0.0  # probability that a batch's ws switch to a second z's at a random layer
    pl_weight: float = 0.0  # path-length regularisation (0: off, as in --cfg=cifar)
    pl_interval: int = 4
    pl_decay: float = 0.01
    pl_batch_shrink: int = 2
    ada_target: float | None = 0.6  # None: no augmentation
    ada_interval: int = 4
    ada_kimg: float = 500.0
    augment: tuple[str, ...] = AUGMENTS
    steps: int = 1_562_500  # 100,000 kimg at batch 64
    seed: int = 0
    checkpoint_every: int = 1000


@dataclass(frozen=True)
class StyleGAN2Config:
    """A run: generator / discriminator constructor kwargs (official names), `toy` MLP nets for vectors."""

    name: str
    dataset: str
    data_shape: tuple[int, ...]
    G: dict[str, Any] = field(default_factory=dict)
    D: dict[str, Any] = field(default_factory=dict)
    toy: bool = False
    train: TrainConfig = TrainConfig()


def _small(name: str, dataset: str, channels: int, resolution: int, z_dim: int, channel_base: int,
           channel_max: int, train: TrainConfig) -> StyleGAN2Config:
    """A small image preset: z = w = z_dim, a 2-layer mapping, min(channel_base / res, channel_max) channels."""
    syn = {"channel_base": channel_base, "channel_max": channel_max}
    return StyleGAN2Config(
        name, dataset, (channels, resolution, resolution),
        G={"z_dim": z_dim, "c_dim": 0, "w_dim": z_dim, "img_resolution": resolution, "img_channels": channels,
           "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": syn},
        D={"c_dim": 0, "img_resolution": resolution, "img_channels": channels, **syn,
           "epilogue_kwargs": {"mbstd_group_size": 4}},
        train=train)


_DIGITS_TRAIN = TrainConfig(r1_gamma=0.05, ema_kimg=10.0, ada_kimg=100.0, steps=10_000)
_CIFAR_SYN = {"channel_base": 32768, "channel_max": 512, "num_fp16_res": 4, "conv_clamp": 256}
_TOY_TRAIN = TrainConfig(batch_size=256, lr_g=2e-3, lr_d=2e-3, r1_gamma=0.05, r1_interval=4, ema_kimg=10.0,
                         ema_rampup=None, ada_target=None, steps=3000, checkpoint_every=500)
PRESETS: dict[str, StyleGAN2Config] = {
    # stylegan2-ada-pytorch --cfg=cifar (unconditional): map 2, D 'orig', mbstd 32, gamma 0.01, ema 500, ramp 0.05.
    "cifar10": StyleGAN2Config(
        "cifar10", "cifar10", (3, 32, 32),
        G={"z_dim": 512, "c_dim": 0, "w_dim": 512, "img_resolution": 32, "img_channels": 3,
           "mapping_kwargs": {"num_layers": 2}, "synthesis_kwargs": _CIFAR_SYN},
        D={"c_dim": 0, "img_resolution": 32, "img_channels": 3, "architecture": "orig",
           "epilogue_kwargs": {"mbstd_group_size": 32}, **_CIFAR_SYN}),
    "gaussians25": StyleGAN2Config("gaussians25", "gaussians25", (2,), G={"z_dim": 16, "w_dim": 64, "hidden": 128},
                                   D={"hidden": 128}, toy=True, train=_TOY_TRAIN),
    # Small CPU presets for the embedded 16 px digits (the resolution of the DDGAN digits presets).
    "digits": _small("digits", "digits", 1, 16, 64, 1024, 64, _DIGITS_TRAIN),
    "stacked-digits": _small("stacked-digits", "stacked-digits", 3, 16, 64, 1024, 64, _DIGITS_TRAIN),
    # Real Stacked MNIST on a 2-core CPU, 16 px; 120,000 images need no ADA (it is for small data).
    "stacked-mnist": _small("stacked-mnist", "stacked-mnist", 3, 16, 64, 1024, 64,
                            replace(_DIGITS_TRAIN, ada_target=None, steps=2000, checkpoint_every=500)),
    "tiny": _small("tiny", "digits", 1, 8, 8, 64, 16, TrainConfig(batch_size=8, ema_kimg=0.1, r1_interval=2,
                                                                  ada_interval=2, ada_kimg=1.0, steps=6,
                                                                  checkpoint_every=3)),
}


def preset(name: str) -> StyleGAN2Config:
    if name not in PRESETS:
        raise KeyError(f"unknown StyleGAN2 preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
