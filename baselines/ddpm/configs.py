"""DDPM UNet configurations: diffusers `UNet2DModel` arguments as a frozen dataclass, and presets."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
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
}


def unet_config_from_diffusers(config: dict[str, Any]) -> UNetConfig:
    """UNetConfig from a diffusers `UNet2DModel` config.json dict; unsupported settings are an error."""
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


PRESETS: dict[str, UNetConfig] = {
    # google/ddpm-cifar10-32 (Ho et al. unet2d16b2): 35,746,307 parameters.
    "cifar10": UNetConfig(),
    # A few-thousand-parameter UNet for tests.
    "tiny": UNetConfig(sample_size=8, layers_per_block=1, block_out_channels=(16, 32),
                       down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                       up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8, dropout=0.0),
}
