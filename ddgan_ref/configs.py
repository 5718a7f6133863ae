"""Frozen configs and presets for DDGAN; paper presets copy the README commands of NVlabs/denoising-diffusion-gan.

Network configs hold exactly the keyword arguments of their network (plus `arch`, which picks the
class), named as upstream's train_ddgan.py options. `ddgan_ref.io.config_to_dict` / `config_from_dict`
give the plain-dict form stored in checkpoints and results; the `arch` Literal of each network config
tells the codec which class a stored section is.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal


@dataclass(frozen=True)
class NCSNppConfig:
    """NCSN++ generator with AdaGN z-injection (score_sde/models/ncsnpp_generator_adagn.py)."""

    arch: Literal["ncsnpp"] = "ncsnpp"
    image_size: int = 32
    num_channels: int = 3
    num_channels_dae: int = 128
    ch_mult: tuple[int, ...] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    dropout: float = 0.0
    resamp_with_conv: bool = True
    conditional: bool = True
    fir: bool = True
    fir_kernel: tuple[int, ...] = (1, 3, 3, 1)
    skip_rescale: bool = True
    resblock_type: str = "biggan"
    progressive: str = "none"
    progressive_input: str = "residual"
    progressive_combine: str = "sum"
    embedding_type: str = "positional"
    fourier_scale: float = 16.0
    not_use_tanh: bool = False
    centered: bool = True
    nz: int = 100
    z_emb_dim: int = 256
    n_mlp: int = 3

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.num_channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class MLPGeneratorConfig:
    """Toy generator for 2D data with DDGAN's conditioning (t embedding, mapped z)."""

    arch: Literal["mlp"] = "mlp"
    data_dim: int = 2
    hidden_dim: int = 128
    num_layers: int = 3
    nz: int = 16
    z_emb_dim: int = 64
    n_mlp: int = 2
    t_emb_dim: int = 32
    not_use_tanh: bool = True
    fourier_octaves: int = 8

    @property
    def data_shape(self) -> tuple[int, ...]:
        return (self.data_dim,)


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Time-conditional discriminator: arch "small" (32 px), "large" (256 px) (score_sde/models/discriminator.py)."""

    arch: Literal["small", "large"] = "small"
    num_channels: int = 3
    ngf: int = 64
    t_emb_dim: int = 256


@dataclass(frozen=True)
class MLPDiscriminatorConfig:
    """Toy discriminator for 2D data, conditioned on t and x_{t+1}."""

    arch: Literal["mlp"] = "mlp"
    data_dim: int = 2
    hidden_dim: int = 128
    num_layers: int = 3
    t_emb_dim: int = 32
    fourier_octaves: int = 8


@dataclass(frozen=True)
class DiffusionConfig:
    """The discretised VP (or geometric) SDE of train_ddgan.py."""

    num_timesteps: int = 4
    beta_min: float = 0.1
    beta_max: float = 20.0
    use_geometric: bool = False


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings; batch_size is per process, as upstream's --batch_size is per GPU."""

    batch_size: int = 128
    # Epochs trained, the cosine schedule's length. Upstream's loop, range(init_epoch, num_epoch + 1), trains one
    # more at the schedule's floor (eta_min): 1 epoch in the official runs' 1200-1800, left out here.
    num_epoch: int = 1200
    lr_g: float = 1.5e-4
    lr_d: float = 1e-4
    beta1: float = 0.5
    beta2: float = 0.9
    r1_gamma: float = 0.05
    lazy_reg: int | None = None
    use_ema: bool = False
    ema_decay: float = 0.9999
    lr_decay: bool = True
    lr_min: float = 1e-5
    hflip: bool = False
    seed: int = 1024
    checkpoint_every: int = 500


GeneratorConfig = NCSNppConfig | MLPGeneratorConfig
DiscriminatorAnyConfig = DiscriminatorConfig | MLPDiscriminatorConfig


@dataclass(frozen=True)
class DDGANConfig:
    """Everything that defines a DDGAN run: data, networks, diffusion and training."""

    preset: str
    dataset: str
    generator: GeneratorConfig
    discriminator: DiscriminatorAnyConfig
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


_CIFAR_G = NCSNppConfig(num_channels_dae=128, ch_mult=(1, 2, 2, 2), n_mlp=4, nz=100, z_emb_dim=256)
_HQ_G = NCSNppConfig(image_size=256, num_channels_dae=64, ch_mult=(1, 1, 2, 2, 4, 4), n_mlp=3)
_SMALL_G = NCSNppConfig(image_size=16, num_channels_dae=32, ch_mult=(1, 2), num_res_blocks=1,
                        attn_resolutions=(8,), nz=32, z_emb_dim=64, n_mlp=2)
# Toy training, tuned on gaussians25: R1 is far weaker than upstream's 0.05 because the modes are 0.01 wide
# and R1 penalises exactly the sharp gradients that resolving them needs (with 0.05 D never left chance).
_TOY_TRAIN = TrainConfig(batch_size=256, num_epoch=8, lr_g=5e-4, lr_d=5e-4, r1_gamma=1e-3, lazy_reg=None,
                         use_ema=True, ema_decay=0.99, lr_decay=False, seed=0, checkpoint_every=500)

# Toy diffusion: geometric variances 0.001 -> 0.95 (noise std 0.07, 0.17, 0.41, 0.97 at t = 1..4). With the VP
# defaults (beta_max=20) x_1 already has noise std 0.69 against a mode spacing of 0.4, so the last step alone
# must produce a ~10-mode conditional and the GAN drops modes; here every step's conditional stays simple.
_TOY_DIFFUSION = DiffusionConfig(4, beta_min=0.001, beta_max=0.95, use_geometric=True)

_STACKED_MNIST_D = DiscriminatorConfig("small", 3, 16, 64)
_STACKED_MNIST_TRAIN = TrainConfig(batch_size=64, num_epoch=2, lr_g=2e-4, lr_d=1e-4, r1_gamma=0.02, lazy_reg=15,
                                   use_ema=True, ema_decay=0.999, seed=0, checkpoint_every=500)

PRESETS: dict[str, DDGANConfig] = {
    # README command: 4 GPUs x batch 64, 1800 epochs; netG_1200.pth released.
    "cifar10": DDGANConfig(
        "cifar10", "cifar10", _CIFAR_G, DiscriminatorConfig("small", 3, 64, 256), DiffusionConfig(4),
        TrainConfig(batch_size=64, num_epoch=1800, lr_g=1.6e-4, lr_d=1.25e-4, r1_gamma=0.02, lazy_reg=15,
                    use_ema=True, ema_decay=0.9999, hflip=True)),
    # README command: 8 GPUs x batch 4, T=2, 800 epochs; netG_550.pth released.
    "celebahq256": DDGANConfig(
        "celebahq256", "image-folder", _HQ_G, DiscriminatorConfig("large", 3, 64, 256), DiffusionConfig(2),
        TrainConfig(batch_size=4, num_epoch=800, lr_g=2e-4, lr_d=1e-4, r1_gamma=2.0, lazy_reg=10,
                    use_ema=True, ema_decay=0.9999, hflip=True)),
    # README command: 8 GPUs x batch 8, T=4, 500 epochs; no released checkpoint (upstream issue #3).
    "lsun_church256": DDGANConfig(
        "lsun_church256", "image-folder", _HQ_G, DiscriminatorConfig("large", 3, 64, 256), DiffusionConfig(4),
        TrainConfig(batch_size=8, num_epoch=500, lr_g=1.6e-4, lr_d=1e-4, r1_gamma=1.0, lazy_reg=10,
                    use_ema=True, ema_decay=0.999, hflip=True)),
    # Our choice (upstream has no command): the CIFAR-10 recipe at half width, no flips, 100 epochs, 32 px (for
    # GPUs; named like the dataset, with its resolution, rather than upstream's `stackmnist`).
    "stacked-mnist-32": DDGANConfig(
        "stacked-mnist-32", "stacked-mnist", replace(_CIFAR_G, num_channels_dae=64),
        DiscriminatorConfig("small", 3, 64, 256), DiffusionConfig(4),
        TrainConfig(batch_size=64, num_epoch=100, lr_g=1.6e-4, lr_d=1.25e-4, r1_gamma=0.02, lazy_reg=15,
                    use_ema=True, ema_decay=0.9999)),
    # Small CPU presets for the embedded datasets.
    "gaussians25": DDGANConfig("gaussians25", "gaussians25", MLPGeneratorConfig(), MLPDiscriminatorConfig(),
                               _TOY_DIFFUSION, _TOY_TRAIN),
    "ring8": DDGANConfig("ring8", "ring8", MLPGeneratorConfig(), MLPDiscriminatorConfig(),
                         _TOY_DIFFUSION, _TOY_TRAIN),
    "digits": DDGANConfig(
        "digits", "digits", replace(_SMALL_G, num_channels=1), DiscriminatorConfig("small", 1, 16, 64),
        DiffusionConfig(4), TrainConfig(batch_size=64, num_epoch=40, lr_g=2e-4, lr_d=1e-4, r1_gamma=0.05,
                                        use_ema=True, ema_decay=0.999, seed=0, checkpoint_every=200)),
    "stacked-digits": DDGANConfig(
        "stacked-digits", "stacked-digits", _SMALL_G, DiscriminatorConfig("small", 3, 16, 64),
        DiffusionConfig(4), TrainConfig(batch_size=64, num_epoch=4, lr_g=2e-4, lr_d=1e-4, r1_gamma=0.05,
                                        use_ema=True, ema_decay=0.999, seed=0, checkpoint_every=200)),
    # Real Stacked MNIST on a 2-core CPU: the stacked-digits networks at 16 px with the stacked-mnist-32
    # regularisation (R1 0.02 every 15 steps: lazy R1 makes an iteration ~30 % cheaper), two epochs of 120,000.
    "stacked-mnist": DDGANConfig("stacked-mnist", "stacked-mnist", _SMALL_G, _STACKED_MNIST_D, DiffusionConfig(4),
                                 _STACKED_MNIST_TRAIN),
    # The same at 24 px: there mnist-cnn misreads few real digits (at 16 px, 4 %) and reads more of the trained
    # networks' digits (results/README.md). An iteration costs about twice stacked-mnist's; StyleGAN2 has no
    # 24 px twin (it needs powers of two).
    "stacked-mnist-24": DDGANConfig(
        "stacked-mnist-24", "stacked-mnist", replace(_SMALL_G, image_size=24, attn_resolutions=(12,)),
        _STACKED_MNIST_D, DiffusionConfig(4), _STACKED_MNIST_TRAIN),
    # For tests: the smallest NCSN++ that still has every block type.
    "tiny": DDGANConfig(
        "tiny", "stacked-digits",
        NCSNppConfig(image_size=16, num_channels_dae=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,),
                     nz=8, z_emb_dim=16, n_mlp=2),
        DiscriminatorConfig("small", 3, 8, 16), DiffusionConfig(4),
        TrainConfig(batch_size=8, num_epoch=1, lr_g=2e-4, lr_d=1e-4, use_ema=True, ema_decay=0.9, seed=0,
                    checkpoint_every=5)),
}


def preset(name: str) -> DDGANConfig:
    """The named preset; unknown names list the choices."""
    if name not in PRESETS:
        raise KeyError(f"unknown DDGAN preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name]
