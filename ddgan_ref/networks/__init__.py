"""DDGAN networks: NCSN++ generator, two discriminators, toy MLPs (denoising-diffusion-gan score_sde/models)."""

from ddgan_ref.networks.discriminator import DiscriminatorLarge, DiscriminatorSmall
from ddgan_ref.networks.mlp import MLPDiscriminator, MLPGenerator
from ddgan_ref.networks.ncsnpp import NCSNpp

__all__ = ["DiscriminatorLarge", "DiscriminatorSmall", "MLPDiscriminator", "MLPGenerator", "NCSNpp"]
