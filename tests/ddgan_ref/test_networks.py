"""DDGAN networks: official state-dict layouts (tests/reference/*.tsv), flag checks, shapes and autograd."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from ddgan_ref.configs import preset
from ddgan_ref.networks import DiscriminatorLarge, DiscriminatorSmall, MLPDiscriminator, MLPGenerator, NCSNpp
from ddgan_ref.networks.build import build_discriminator, build_generator
from ddgan_ref.networks.discriminator import discriminator_from_official, minibatch_stddev
from ddgan_ref.networks.ncsnpp import SUPPORTED_FLAGS, ncsnpp_kwargs_from_official
from ddgan_ref.networks.state_dicts import load_official_state_dict, strip_module_prefix

REFERENCE = Path(__file__).resolve().parents[1] / "reference"

# Manifests and parameter counts measured on the official modules (spec ddgan.md §2.5, §2.7, §3).
MANIFESTS = {
    "ddgan_cifar10_netG": (
        lambda: NCSNpp(image_size=32, num_channels_dae=128, ch_mult=(1, 2, 2, 2), n_mlp=4), 48_432_515),
    "ddgan_celebahq256_netG": (
        lambda: NCSNpp(image_size=256, num_channels_dae=64, ch_mult=(1, 1, 2, 2, 4, 4), n_mlp=3), 39_726_979),
    "ddgan_cifar10_netD": (lambda: DiscriminatorSmall(num_channels=3, ngf=64, t_emb_dim=256), 12_741_633),
    "ddgan_celebahq256_netD": (lambda: DiscriminatorLarge(num_channels=3, ngf=64, t_emb_dim=256), 27_737_217),
}


def read_manifest(name: str) -> list[tuple[str, tuple[int, ...], int]]:
    lines = (REFERENCE / f"{name}_state_dict.tsv").read_text().splitlines()[1:]
    rows = [line.split("\t") for line in lines if line.strip()]
    return [(key, tuple(int(s) for s in shape.split("x")), int(numel)) for key, shape, numel in rows]


def tiny_ncsnpp(**overrides) -> NCSNpp:
    kwargs = dict(image_size=16, num_channels_dae=16, ch_mult=(1, 2), num_res_blocks=1,
                  attn_resolutions=(8,), nz=4, z_emb_dim=16, n_mlp=1) | overrides
    return NCSNpp(**kwargs)


@pytest.mark.parametrize("name", sorted(MANIFESTS))
def test_state_dict_matches_official_manifest(name):
    build, total = MANIFESTS[name]
    with torch.device("meta"):
        sd = build().state_dict()
    manifest = read_manifest(name)
    assert [k for k, _, _ in manifest] == list(sd)  # same keys, same order
    assert [s for _, s, _ in manifest] == [tuple(v.shape) for v in sd.values()]
    assert sum(n for _, _, n in manifest) == sum(v.numel() for v in sd.values()) == total


def test_ncsnpp_registers_all_modules_before_z_transform():
    G = tiny_ncsnpp()
    names = [n for n, _ in G.named_parameters()]
    first_z = next(i for i, n in enumerate(names) if n.startswith("z_transform"))
    assert all(n.startswith("z_transform") for n in names[first_z:])
    assert G.z_dim == 4


@pytest.mark.parametrize("flag,value", [
    ("resamp_with_conv", False), ("conditional", False), ("fir", False), ("fir_kernel", (1, 1)),
    ("skip_rescale", False), ("resblock_type", "ddpm"), ("progressive", "residual"),
    ("progressive_input", "input_skip"), ("progressive_combine", "cat"), ("embedding_type", "fourier"),
])
def test_ncsnpp_unsupported_flag_raises(flag, value):
    assert flag in SUPPORTED_FLAGS
    with pytest.raises(ValueError, match=flag):
        tiny_ncsnpp(**{flag: value})


def test_ncsnpp_image_size_must_halve_per_level():
    with pytest.raises(ValueError, match="image_size"):
        tiny_ncsnpp(image_size=18, ch_mult=(1, 2, 2))


@pytest.mark.parametrize("overrides", [
    dict(),
    dict(num_res_blocks=2, ch_mult=(1, 2, 2), attn_resolutions=(8, 4)),
    dict(centered=False, not_use_tanh=True),
    dict(dropout=0.1, attn_resolutions=()),
])
def test_ncsnpp_forward_shapes(overrides):
    torch.manual_seed(0)
    G = tiny_ncsnpp(**overrides).train()
    x, t, z = torch.rand(2, 3, 16, 16) * 2 - 1, torch.tensor([0, 3]), torch.randn(2, 4)
    out = G(x, t, z)
    assert out.shape == x.shape and out.isfinite().all()
    if not overrides.get("not_use_tanh", False):
        assert out.abs().max() <= 1


def test_stacked_mnist_24_preset_runs_at_24_px():
    config = preset("stacked-mnist-24")
    torch.manual_seed(0)
    G, D = build_generator(config.generator), build_discriminator(config.discriminator)
    x, t = torch.rand(2, 3, 24, 24) * 2 - 1, torch.tensor([0, 3])
    out = G(x, t, torch.randn(2, config.generator.nz))
    assert out.shape == x.shape and D(out, t, x).shape == (2, 1)


def test_ncsnpp_kwargs_from_official_ignores_non_network_keys():
    config = dict(image_size=16, num_channels_dae=16, ch_mult=[1, 2], num_res_blocks=1, attn_resolutions=[8],
                  nz=4, z_emb_dim=16, n_mlp=1, num_timesteps=4, beta_min=0.1, ngf=64, t_emb_dim=256,
                  use_geometric=False, fir_kernel=[1, 3, 3, 1])
    kwargs = ncsnpp_kwargs_from_official(config)
    assert "num_timesteps" not in kwargs and "ngf" not in kwargs and kwargs["ch_mult"] == (1, 2)
    assert NCSNpp(**kwargs).state_dict().keys() == tiny_ncsnpp().state_dict().keys()


def test_module_prefix_is_stripped_and_loads_strict():
    src, dst = tiny_ncsnpp(), tiny_ncsnpp()
    wrapped = {f"module.{k}": v for k, v in src.state_dict().items()}
    assert strip_module_prefix({"module.a": 1, "b.module.c": 2}) == {"a": 1, "b.module.c": 2}
    load_official_state_dict(dst, wrapped)
    for k, v in src.state_dict().items():
        torch.testing.assert_close(dst.state_dict()[k], v, atol=0, rtol=0)
    with pytest.raises(RuntimeError):
        load_official_state_dict(dst, {k: v for k, v in list(wrapped.items())[1:]})


@pytest.mark.parametrize("cls,size", [(DiscriminatorSmall, 16), (DiscriminatorSmall, 24), (DiscriminatorLarge, 64)])
def test_discriminator_logits_and_double_backward(cls, size):
    D = cls(ngf=2, t_emb_dim=8).double()
    x = torch.randn(4, 3, size, size, dtype=torch.float64, requires_grad=True)
    logits = D(x, torch.tensor([0, 1, 2, 3]), torch.randn(4, 3, size, size, dtype=torch.float64))
    assert logits.shape == (4, 1)
    (grad,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
    grad.square().sum().backward()  # R1 penalty needs the second derivative
    assert D.start_conv.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("batch", [6, 10])
def test_discriminator_batch_not_divisible_by_group_raises(batch):
    D = DiscriminatorSmall(ngf=4, t_emb_dim=8)
    x = torch.randn(batch, 3, 16, 16)
    with pytest.raises(ValueError, match="divisible by 4"):
        D(x, torch.zeros(batch, dtype=torch.long), x)


def test_minibatch_stddev_groups_strided_samples():
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x)
    want = x.view(4, 2, 3, 2, 2).std(0, unbiased=False).add(0).pow(2).add(1e-8).sqrt().mean(dim=(1, 2, 3))
    torch.testing.assert_close(out[:, 3, 0, 0], want.repeat(4), atol=1e-6, rtol=0)
    assert minibatch_stddev(torch.randn(2, 3, 2, 2)).shape == (2, 4, 2, 2)  # group = min(B, 4)


def test_discriminator_from_official_picks_class_by_dataset():
    assert isinstance(discriminator_from_official(dict(ngf=4, t_emb_dim=8)), DiscriminatorSmall)
    assert isinstance(discriminator_from_official(dict(dataset="celeba_256", ngf=4, t_emb_dim=8)),
                      DiscriminatorLarge)


def test_mlp_networks_shapes_and_double_backward():
    G, D = MLPGenerator(), MLPDiscriminator()
    x, t = torch.rand(16, 2) * 2 - 1, torch.randint(0, 4, (16,))
    x0_pred = G(x, t, torch.randn(16, G.z_dim))
    assert x0_pred.shape == (16, 2) and x0_pred.abs().max() <= 1
    x_t = x0_pred.detach().requires_grad_(True)
    logits = D(x_t, t, x)
    assert logits.shape == (16, 1)
    (grad,) = torch.autograd.grad(logits.sum(), x_t, create_graph=True)
    grad.square().sum().backward()
    assert D.input.weight.grad.abs().sum() > 0
    assert MLPGenerator(not_use_tanh=True, data_dim=3)(torch.randn(4, 3), t[:4], torch.randn(4, 8)).shape == (4, 3)


SMALL = dict(image_size=16, num_channels_dae=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(8,))


@pytest.mark.parametrize(("flag", "value"), [("progressive", "output_skip"), ("fir", False), ("skip_rescale", False),
                                             ("resblock_type", "ddpm"), ("fir_kernel", (1, 1))])
def test_ncsnpp_refuses_flags_other_than_the_official_value(flag, value):
    with pytest.raises(ValueError, match=re.escape(f"NCSNpp: {flag}={value!r} is not supported; the supported value")):
        NCSNpp(**SMALL, **{flag: value})


def test_ncsnpp_takes_the_official_values_as_upstream_configs_write_them():
    NCSNpp(**SMALL, fir_kernel=[1, 3, 3, 1], resblock_type="BigGAN", progressive_input="Residual")
    with pytest.raises(ValueError, match=re.escape("image_size=18 must be divisible by 2**(len(ch_mult) - 1)")):
        NCSNpp(**{**SMALL, "image_size": 18, "ch_mult": (1, 2, 2)})
