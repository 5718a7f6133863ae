"""bench.convert: each official form written as our checkpoint, read back by the family table with the same
weights and config, and the sources it refuses."""

import json

import pytest
import torch

from baselines.ddpm import official as ddpm_official
from baselines.ddpm.model import build_unet
from bench import convert, registry
from ddgan_ref import configs
from ddgan_ref.io import load_file
from ddgan_ref.model import DDGAN
from ddgan_ref.networks.build import build_generator
from ddgan_ref.provenance import file_sha256
from tests.baselines.test_ddpm_official import CONFIG as UNET
from tests.baselines.test_ddpm_official import diffusers_folder
from tests.baselines.test_stylegan2_official import write_official_like_pkl


def converted(source, out, *extra):
    assert convert.main([str(source), "--out", str(out), *extra]) == 0
    return load_file(out)


def test_an_official_ddgan_generator_converts_and_samples_as_the_official_weights(tmp_path):
    torch.manual_seed(0)
    config = configs.preset("tiny")
    G = build_generator(config.generator)
    source = tmp_path / "netG_1200.pth"
    torch.save({f"module.{k}": v for k, v in G.state_dict().items()}, source, _use_new_zipfile_serialization=False)
    ckpt = converted(source, tmp_path / "ddgan.pt", "--preset", "tiny")
    assert ckpt["meta"]["source_kind"] == "ddgan-netg" and ckpt["meta"]["source"] == str(source.resolve())
    assert ckpt["meta"]["source_sha256"] == {"netG_1200.pth": file_sha256(source)}
    assert ckpt["meta"]["command"][:3] == ["python", "-m", "bench.convert"]
    model = registry.family("ddgan").load(tmp_path / "ddgan.pt", torch.device("cpu"))
    want = DDGAN(G.eval(), config, "cpu").sample(3, config.diffusion.num_timesteps, seed=5)
    torch.testing.assert_close(model.sample(3, model.default_steps, seed=5), want, atol=0, rtol=0)


def test_a_diffusers_folder_converts_with_its_schedule(tmp_path):
    torch.manual_seed(0)
    (tmp_path / "model").mkdir()
    folder = diffusers_folder(tmp_path / "model", build_unet(UNET).state_dict(), fmt="bin")
    (folder / "scheduler_config.json").write_text(json.dumps({"num_train_timesteps": 300}))
    ckpt = converted(folder, tmp_path / "ddpm.pt")
    model = registry.family("ddpm").load(tmp_path / "ddpm.pt", torch.device("cpu"))
    original = ddpm_official.load_diffusers(folder)
    assert model.config == original.config and model.default_steps == 300
    assert sorted(ckpt["meta"]["source_sha256"]) == ["config.json", "diffusion_pytorch_model.bin",
                                                      "scheduler_config.json"]
    for k, v in original.network.state_dict().items():
        assert torch.equal(model.network.state_dict()[k], v), k


def test_a_stylegan2_ada_pickle_converts_to_its_g_ema(tmp_path):
    G, _ = write_official_like_pkl(tmp_path / "network-snapshot.pkl")
    ckpt = converted(tmp_path / "network-snapshot.pkl", tmp_path / "new" / "sg2.pt")  # its folder made on the write
    assert ckpt["config"]["G"]["z_dim"] == G.z_dim and ckpt["config"]["D"]["img_resolution"] == G.img_resolution
    model = registry.family("stylegan2").load(tmp_path / "new" / "sg2.pt", torch.device("cpu"))
    for k, v in G.state_dict().items():
        assert torch.equal(model.network.state_dict()[k], v), k
    assert model.sample(2, 1, seed=0).shape == (2, G.img_channels, G.img_resolution, G.img_resolution)


def test_what_is_not_converted_is_refused_and_an_existing_out_kept(tmp_path, capsys):
    G, _ = write_official_like_pkl(tmp_path / "n.pkl")
    out = tmp_path / "sg2.pt"
    converted(tmp_path / "n.pkl", out)
    before = out.read_bytes()
    torch.save({"w": torch.ones(2)}, tmp_path / "other.pt")
    (tmp_path / "empty").mkdir()
    (tmp_path / "diffusers").mkdir()
    (tmp_path / "diffusers" / "config.json").write_text("{}")
    for argv, words in (([out, "--out", tmp_path / "again.pt"], "already a DDGAN-Bench checkpoint"),
                        ([tmp_path / "n.pkl", "--out", tmp_path / "p.pt", "--preset", "cifar10"],
                         "a stylegan2 source carries its own config; drop --preset"),
                        ([tmp_path / "diffusers" / "config.json", "--out", tmp_path / "d.pt"],
                         "one file of a diffusers model folder; pass the folder"),
                        ([tmp_path / "n.pkl", "--out", tmp_path], "is a folder; pass the path of the .pt file"),
                        ([tmp_path / "other.pt", "--out", tmp_path / "o.pt"], "not an official checkpoint"),
                        ([tmp_path / "empty", "--out", tmp_path / "e.pt"], "folder without a diffusers config"),
                        ([tmp_path / "n.pkl", "--out", out], "exists; pass --overwrite")):
        assert convert.main([str(a) for a in argv]) == 2
        assert words in capsys.readouterr().err
    assert out.read_bytes() == before and not (tmp_path / "again.pt").exists()
    assert convert.main([str(tmp_path / "n.pkl"), "--out", str(out), "--overwrite"]) == 0


def test_commands_given_an_official_file_name_the_converter():
    with pytest.raises(KeyError, match="python -m bench.convert SOURCE --out FILE.pt"):
        registry.family_of_format(None)


def test_a_file_that_does_not_read_back_is_not_left_and_the_earlier_out_is_kept(tmp_path):
    out = tmp_path / "model.pt"
    out.write_bytes(b"the earlier file")

    class Unreadable:  # a family whose load fails on what was written
        checkpoint_format = "ddgan-bench/checkpoint"

        @staticmethod
        def load(path, device):
            raise ValueError(f"{path}: cannot be built")

    config = configs.preset("tiny")
    with pytest.raises(ValueError, match="cannot be built"):
        convert.write_checked(out, Unreadable, config, build_generator(config.generator).state_dict(), {})
    assert out.read_bytes() == b"the earlier file" and sorted(p.name for p in tmp_path.iterdir()) == ["model.pt"]


def test_a_pesser_preset_without_a_unet_is_refused():
    with pytest.raises(ValueError, match="this ddpm preset has none; pass a UNet preset"):
        convert.preset_config("ddpm-pesser", "gaussians25")
    with pytest.raises(KeyError, match="unknown ddpm preset 'nope'"):
        convert.preset_config("ddpm-pesser", "nope")
