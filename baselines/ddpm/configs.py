"""DDPM configurations: the UNet (diffusers `UNet2DModel` arguments), the toy MLP, schedule, training; presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

DOWN_TYPES = ("DownBlock2D", "AttnDownBlock2D")
UP_TYPES = ("UpBlock2D", "AttnUpBlock2D")


@dataclass(frozen=True)
class UNetConfig:
    """The subset of diffusers `UNet2DModel` arguments that the DDPM CIFAR-10 family uses."""

    sample_size: int = 32
    in_channels: int = 3
    out_channels: int = 3
    layers_per_block: int = 2
    block_out_channels: tuple[int, ...] = (128, 256, 256, 256)
    down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D")
    up_block_types: tuple[str, ...] = ("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D")
    downsample_padding: int = 0
    flip_sin_to_cos: bool = False
    freq_shift: int = 1
    norm_eps: float = 1e-6
    norm_num_groups: int = 32
    attention_head_dim: int | None = None
    mid_block_scale_factor: float = 1.0
    center_input_sample: bool = False
    dropout: float = 0.1

    def __post_init__(self):
        n = len(self.block_out_channels)
        if len(self.down_block_types) != n or len(self.up_block_types) != n:
            raise ValueError(f"need one down and one up block type per level ({n}); got {self.down_block_types}, "
                             f"{self.up_block_types}")
        bad = [t for t in self.down_block_types if t not in DOWN_TYPES] + [
            t for t in self.up_block_types if t not in UP_TYPES]
        if bad:
            raise ValueError(f"unsupported block types {bad}; supported: {DOWN_TYPES + UP_TYPES}")


# Arguments of diffusers' UNet2DModel that must keep these values for the architecture above.
FIXED_DIFFUSERS_ARGS: dict[str, Any] = {
    "act_fn": "silu", "time_embedding_type": "positional", "class_embed_type": None, "num_class_embeds": None,
    "add_attention": True, "resnet_time_scale_shift": "default", "attn_norm_num_groups": None,
    "downsample_type": "conv", "upsample_type": "conv",
}


def unet_config_from_diffusers(config: dict[str, Any]) -> UNetConfig:
    """UNetConfig from a diffusers `UNet2DModel` config.json dict; unsupported settings are an error."""
    config = dict(config, act_fn="silu") if config.get("act_fn") == "swish" else config  # diffusers alias
    for key, value in FIXED_DIFFUSERS_ARGS.items():
        if key in config and config[key] != value:
            raise ValueError(f"unsupported UNet2DModel setting {key}={config[key]!r}; only {value!r} is implemented")
    names = {f.name for f in fields(UNetConfig)}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.items() if k in names}
    if kwargs.get("dropout") is None:
        kwargs.pop("dropout", None)
    return UNetConfig(**kwargs)


def unet_config_to_dict(config: UNetConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()}


UNET_PRESETS: dict[str, UNetConfig] = {
    # google/ddpm-cifar10-32 (Ho et al. unet2d16b2): 35,746,307 parameters.
    "cifar10": UNetConfig(),
    # A few-thousand-parameter UNet for tests.
    "tiny": UNetConfig(sample_size=8, layers_per_block=1, block_out_channels=(16, 32),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, dropout=0.0),
}


@dataclass(frozen=True)
class MLPConfig:
    """The epsilon-MLP for vector data (2D mixtures)."""

    data_dim: int = 2
    hidden: int = 256
    layers: int = 3
    temb_dim: int = 64
    fourier_octaves: int = 0  # x's Fourier features as DDGAN's toy nets have them (ddgan_ref.ops.fourier)


@dataclass(frozen=True)
class ScheduleConfig:
    """Linear betas over T training steps; the ancestral sampler's variance and x0 clipping."""

    T: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02
    variance: str = "fixed_large"  # the official CIFAR-10 run
    clip: bool = True


@dataclass(frozen=True)
class TrainConfig:
    """Ho et al.'s recipe: simple loss, Adam with linear warm-up, gradient clipping, EMA, flips."""

    batch_size: int = 128
    lr: float = 2e-4
    warmup: int = 5000
    grad_clip: float = 1.0
    ema: float = 0.9999
    steps: int = 800_000
    seed: int = 0
    checkpoint_every: int = 5000
    hflip: bool = True


@dataclass(frozen=True)
class DDPMConfig:
    """A whole DDPM run: exactly one of `unet` / `mlp`, the data shape, schedule and training."""

    name: str
    dataset: str
    data_shape: tuple[int, ...]
    unet: UNetConfig | None = None
    mlp: MLPConfig | None = None
    schedule: ScheduleConfig = ScheduleConfig()
    train: TrainConfig = TrainConfig()

    def __post_init__(self):
        if (self.unet is None) == (self.mlp is None):
            raise ValueError("a DDPMConfig needs exactly one of unet and mlp")


# The 2D presets: T = 1000 linear betas as for CIFAR-10, a 3 x 128 MLP on x's Fourier features (8 octaves, as
# DDGAN's toy nets: without them spectral bias keeps the MLP from resolving the 0.01-wide modes, and the
# families would differ in input encoding, not in method), Adam 3e-3 (about 30 s on 2 CPU cores).
_TOY_TRAIN = TrainConfig(batch_size=256, lr=3e-3, warmup=100, ema=0.995, steps=8000, checkpoint_every=1000,
                         hflip=False)
_TOY_MLP = MLPConfig(hidden=128, fourier_octaves=8)


def _small_unet(channels: int) -> UNetConfig:
    return UNetConfig(sample_size=16, in_channels=channels, out_channels=channels, layers_per_block=1,
                      block_out_channels=(32, 64), down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                      up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, dropout=0.1)


_STACKED_MNIST_TRAIN = TrainConfig(batch_size=64, lr=5e-4, warmup=200, ema=0.999, steps=2500, checkpoint_every=500,
                                   hflip=False)

PRESETS: dict[str, DDPMConfig] = {
    "cifar10": DDPMConfig("cifar10", "cifar10", (3, 32, 32), unet=UNET_PRESETS["cifar10"]),
    "gaussians25": DDPMConfig("gaussians25", "gaussians25", (2,), mlp=_TOY_MLP, train=_TOY_TRAIN),
    "ring8": DDPMConfig("ring8", "ring8", (2,), mlp=_TOY_MLP, train=_TOY_TRAIN),
    # Small CPU presets for the embedded 16 px digits (the resolution of the DDGAN digits presets).
    "digits": DDPMConfig("digits", "digits", (1, 16, 16), unet=_small_unet(1),
                         train=TrainConfig(batch_size=64, lr=5e-4, warmup=200, ema=0.999, steps=10_000, hflip=False)),
    "stacked-digits": DDPMConfig("stacked-digits", "stacked-digits", (3, 16, 16), unet=_small_unet(3),
                                 train=TrainConfig(batch_size=64, lr=5e-4, warmup=200, ema=0.999, steps=10_000,
                                                   hflip=False)),
    # Real Stacked MNIST on a 2-core CPU, at 16 px like the DDGAN preset, and at 24 px beside DDGAN's
    # stacked-mnist-24 (the same U-Net, attention at 12 px).
    "stacked-mnist": DDPMConfig("stacked-mnist", "stacked-mnist", (3, 16, 16), unet=_small_unet(3),
                                train=_STACKED_MNIST_TRAIN),
    "stacked-mnist-24": DDPMConfig("stacked-mnist-24", "stacked-mnist", (3, 24, 24),
                                   unet=replace(_small_unet(3), sample_size=24), train=_STACKED_MNIST_TRAIN),
    "tiny": DDPMConfig("tiny", "digits", (1, 8, 8), unet=replace(UNET_PRESETS["tiny"], in_channels=1, out_channels=1),
                       schedule=ScheduleConfig(T=100, beta_end=0.2),
                       train=replace(_TOY_TRAIN, batch_size=32, steps=20, checkpoint_every=10)),
}


def preset(name: str) -> DDPMConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown DDPM preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
