"""Checkpoint files: our format, official netG/content.pth, and the errors for files that do not fit."""

import argparse
from collections import OrderedDict

import pytest
import torch

from ddgan_ref import checkpoints as ck
from ddgan_ref import configs, io, model
from ddgan_ref.networks.build import build_generator


@pytest.fixture(scope="module")
def tiny_cfg():
    return configs.preset("tiny")


@pytest.fixture(scope="module")
def tiny_G(tiny_cfg):
    torch.manual_seed(0)
    return build_generator(tiny_cfg.generator).eval()


def test_checkpoint_round_trip_gives_same_samples(tmp_path, tiny_cfg, tiny_G):
    path = ck.write_checkpoint(tmp_path / "c.pt", tiny_cfg, tiny_G.state_dict(), {"note": "test"})
    loaded = model.load(path)
    ref = model.DDGAN(tiny_G, tiny_cfg)
    torch.testing.assert_close(loaded.sample(3, 4, seed=5), ref.sample(3, 4, seed=5), atol=0, rtol=0)
    config, _, meta, rest = ck.read_checkpoint(path)
    assert config == tiny_cfg and meta == {"note": "test"} and rest == {}


def test_checkpoint_write_leaves_no_temporary_file(tmp_path, tiny_cfg, tiny_G):
    ck.write_checkpoint(tmp_path / "c.pt", tiny_cfg, tiny_G.state_dict(), {})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt"]


def test_truncated_checkpoint_error_is_exact(tmp_path, tiny_cfg, tiny_G):
    path = ck.write_checkpoint(tmp_path / "c.pt", tiny_cfg, tiny_G.state_dict(), {})
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(io.CheckpointError) as err:
        ck.read_checkpoint(path)
    assert str(err.value) == (
        f"{path}: cannot read this checkpoint: the file is truncated, corrupt or not a PyTorch checkpoint "
        f"({path.stat().st_size} bytes). Re-download or re-create it.")


def test_text_file_is_not_a_checkpoint(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(io.CheckpointError, match="truncated, corrupt or not a PyTorch checkpoint"):
        model.load(path)


def test_other_pickle_is_not_our_checkpoint(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(io.CheckpointError, match=r"not a DDGAN-Bench checkpoint .* found list"):
        ck.read_checkpoint(path)


def test_missing_checkpoint_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        model.load(tmp_path / "nope.pt")


class Payload:
    """A class outside the allow-list: loading must refuse it, never construct it."""


def test_arbitrary_objects_are_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"x": Payload()}, path)
    with pytest.raises(io.CheckpointError, match="refusing to load: the file holds Python objects outside"):
        io.load_file(path)


def test_wrong_architecture_error_is_exact(tiny_G):
    sd = dict(tiny_G.state_dict())
    del sd["z_transform.1.bias"]
    sd["extra.weight"] = torch.zeros(1)
    sd["all_modules.0.weight"] = torch.zeros(3, 3)
    want = list(tiny_G.state_dict()["all_modules.0.weight"].shape)
    with pytest.raises(io.CheckpointMismatchError) as err:
        io.load_into(tiny_G, sd, "checkpoint x.pt")
    assert str(err.value) == "\n".join([
        "checkpoint x.pt does not fit the NCSNpp architecture it is loaded into:",
        "  missing keys (1): z_transform.1.bias",
        "  unexpected keys (1): extra.weight",
        f"  mis-shaped keys (1): all_modules.0.weight (checkpoint [3, 3], model {want})",
        "Build the model with the config the checkpoint was trained with (its preset), or convert it.",
    ])


def test_checkpoint_of_other_preset_is_refused_by_loader(tmp_path, tiny_cfg, tiny_G):
    other = configs.preset("stacked-digits")
    path = ck.write_checkpoint(tmp_path / "c.pt", other, tiny_G.state_dict(), {})
    with pytest.raises(io.CheckpointMismatchError, match=r"does not fit the NCSNpp architecture"):
        model.load(path)


def test_strip_module_prefix_only_where_present():
    sd = {"module.a": torch.zeros(1), "b.module.c": torch.ones(1), "modulex": torch.ones(2)}
    assert list(ck.strip_module_prefix(sd)) == ["a", "b.module.c", "modulex"]


def test_official_netG_round_trip(tmp_path, tiny_cfg, tiny_G):
    path = tmp_path / "netG_1200.pth"
    torch.save(OrderedDict((f"module.{k}", v) for k, v in tiny_G.state_dict().items()), path)
    config, sd = ck.from_official_ddgan(path, tiny_cfg)
    G = io.load_into(build_generator(config.generator), sd, "official").eval()
    x, t, z = torch.randn(4, 3, 16, 16), torch.tensor([0, 1, 2, 3]), torch.randn(4, 8)
    with torch.no_grad():
        torch.testing.assert_close(G(x, t, z), tiny_G(x, t, z), atol=0, rtol=0)


def test_official_content_pth_takes_ema_weights_and_args(tmp_path, tiny_cfg, tiny_G):
    g = tiny_cfg.generator
    args = argparse.Namespace(dataset="cifar10", image_size=16, num_channels=3, num_channels_dae=16, ch_mult=[1, 2],
                              num_res_blocks=1, attn_resolutions=(8,), nz=8, z_emb_dim=16, n_mlp=2, num_timesteps=4,
                              beta_min=0.1, beta_max=20.0, use_geometric=False, ngf=8, t_emb_dim=16, lr_g=2e-4,
                              no_lr_decay=False, centered=True, not_use_tanh=False)
    params = list(tiny_G.parameters())
    ema = {i: {"ema": p.detach() + 1.0, "exp_avg": torch.zeros_like(p)} for i, p in enumerate(params)}
    content = {"epoch": 3, "global_step": 9, "args": args,
               "netG_dict": {f"module.{k}": v for k, v in tiny_G.state_dict().items()},
               "optimizerG": {"state": ema, "param_groups": []}}
    torch.save(content, tmp_path / "content.pth")
    config, sd = ck.from_official_ddgan(tmp_path / "content.pth")
    assert config.generator == g and config.diffusion.num_timesteps == 4 and config.discriminator.arch == "small"
    assert config.train.hflip  # upstream flips every dataset but stackmnist
    names = [n for n, _ in tiny_G.named_parameters()]
    torch.testing.assert_close(sd[names[0]], params[0].detach() + 1.0)
    torch.save(content | {"args": argparse.Namespace(**vars(args) | {"dataset": "stackmnist"}), "optimizerG": None},
               tmp_path / "content.pth")
    config, sd = ck.from_official_ddgan(tmp_path / "content.pth")  # no optimiser state: the raw weights
    assert not config.train.hflip and config.discriminator.arch == "small"
    assert config.dataset == "stacked-mnist"  # the suite's name for upstream's stackmnist, which the harness matches
    torch.testing.assert_close(sd[names[0]], params[0].detach())


def test_official_preset_inferred_from_shapes_or_refused():
    for name, expected in [("cifar10", ["cifar10"]), ("celebahq256", ["celebahq256", "lsun_church256"])]:
        with torch.device("meta"):
            sd = build_generator(configs.preset(name).generator).state_dict()
        assert ck._fitting_presets(sd) == expected
