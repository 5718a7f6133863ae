"""Networks from configs: one dict literal per role, keyed by the config's `arch`."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from torch import nn

from ddgan_ref.networks.discriminator import DiscriminatorLarge, DiscriminatorSmall
from ddgan_ref.networks.mlp import MLPDiscriminator, MLPGenerator
from ddgan_ref.networks.ncsnpp import NCSNpp

GENERATORS: dict[str, type[nn.Module]] = {"ncsnpp": NCSNpp, "mlp": MLPGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {
    "small": DiscriminatorSmall, "large": DiscriminatorLarge, "mlp": MLPDiscriminator,
}


def _kwargs(config: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(config).items() if k != "arch"}


def build_generator(config: Any) -> nn.Module:
    """The generator a GeneratorConfig describes; forward(x, t, z) -> x0_pred."""
    return GENERATORS[config.arch](**_kwargs(config))


def build_discriminator(config: Any) -> nn.Module:
    """The discriminator a discriminator config describes; forward(x, t, x_cond) -> logits [B, 1]."""
    return DISCRIMINATORS[config.arch](**_kwargs(config))
