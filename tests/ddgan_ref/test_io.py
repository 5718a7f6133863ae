"""ddgan_ref.io: atomic writes, weights-only loads, the shared checkpoint form, the config codec and the resume rule."""

import argparse
import errno
import json
import zipfile
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from baselines.ddpm import configs as ddpm_configs
from baselines.stylegan2 import configs as sg2_configs
from ddgan_ref import configs as ddgan_configs
from ddgan_ref import io

FAMILIES = [  # (top-level config class, presets)
    (ddgan_configs.DDGANConfig, ddgan_configs.PRESETS),
    (ddpm_configs.DDPMConfig, ddpm_configs.PRESETS),
    (sg2_configs.StyleGAN2Config, sg2_configs.PRESETS),
]
PRESETS = [(cls, name, config) for cls, presets in FAMILIES for name, config in presets.items()]
FMT = "ddgan-bench/test-checkpoint"


def test_save_atomic_leaves_no_temporary_file(tmp_path):
    io.save_atomic({"x": torch.ones(2)}, tmp_path / "a.pt")
    io.write_json_atomic({"y": [1, 2]}, tmp_path / "b.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.json"]
    assert json.loads((tmp_path / "b.json").read_text()) == {"y": [1, 2]}


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch):
    path = io.save_atomic({"x": torch.ones(2)}, tmp_path / "a.pt")
    before = path.read_bytes()

    def dies_half_way(obj, f):
        f.write(b"PK\x03\x04 half a file")
        raise KeyboardInterrupt  # a kill during the write

    monkeypatch.setattr(torch, "save", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        io.save_atomic({"x": torch.zeros(2)}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["a.pt"]


def test_read_only_folder_is_one_clear_error(tmp_path, monkeypatch):
    """A read-only file system (EROFS) refuses the temporary file and even the unlink of a missing one."""
    refused = []

    def refuse(self, *args, **kwargs):
        refused.append(self.name)
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "open", refuse)
    monkeypatch.setattr(Path, "unlink", refuse)
    with pytest.raises(OSError, match=r"cannot write .*results.json: Read-only file system; choose a writable "
                                      r"folder") as err:
        io.write_json_atomic({"a": 1}, tmp_path / "results.json")
    assert err.value.errno == errno.EROFS and len(refused) == 2  # the open, then the clean-up's unlink


def test_truncated_and_missing_files_are_checkpoint_errors(tmp_path):
    path = io.save_atomic({"x": torch.ones(100)}, tmp_path / "a.pt")
    path.write_bytes(path.read_bytes()[:200])
    for read in (io.load_file, io.peek_format):
        with pytest.raises(io.CheckpointError, match="truncated, corrupt or not a PyTorch checkpoint"):
            read(path)
        with pytest.raises(io.MissingCheckpointError, match="does not exist") as err:
            read(tmp_path / "nope.pt")
        assert isinstance(err.value, FileNotFoundError)
        with pytest.raises(io.CheckpointError, match=r"is a folder; pass the .pt/.pth file in it \(it holds a.pt\)"):
            read(tmp_path)


def test_legacy_format_files_peek_and_newer_format_files_say_so(tmp_path):
    """A pre-1.6 (non-zip) file cannot be memory-mapped and is read whole; a file from a newer torch is named as
    such, not as corrupt."""
    legacy = tmp_path / "netG_1200.pth"
    torch.save({"format": "x", "w": torch.ones(2)}, legacy, _use_new_zipfile_serialization=False)
    assert io.peek_format(legacy) == "x"
    newer = io.save_atomic({"w": torch.ones(2)}, tmp_path / "a.pt")
    with zipfile.ZipFile(newer) as z:
        records = {item.filename: z.read(item.filename) for item in z.infolist()}
    with zipfile.ZipFile(newer, "w", zipfile.ZIP_STORED) as z:
        for name, data in records.items():
            z.writestr(name, b"99\n" if name.endswith("/version") else data)
    with pytest.raises(io.CheckpointError, match="written by a newer PyTorch .*version 99.*upgrade torch"):
        io.peek_format(newer)


def test_load_file_admits_only_the_allow_list(tmp_path):
    path = tmp_path / "content.pth"
    torch.save({"args": argparse.Namespace(dataset="cifar10")}, path)
    with pytest.raises(io.CheckpointError, match="refusing to load: the file holds Python objects outside"):
        io.load_file(path)
    assert vars(io.load_file(path, safe_globals=[argparse.Namespace])["args"]) == {"dataset": "cifar10"}


def test_checkpoint_form_round_trip_and_peek(tmp_path):
    config = io.config_to_dict(ddgan_configs.preset("tiny"))
    sd = {"w": torch.arange(3.0)}
    path = io.write_checkpoint(tmp_path / "c.pt", FMT, config, sd, {"note": 1}, train_state={"step": 7})
    ckpt = io.read_checkpoint(path, FMT)
    assert ckpt.config == config and ckpt.meta == {"note": 1} and ckpt.extra == {"train_state": {"step": 7}}
    torch.testing.assert_close(ckpt.state_dict["w"], sd["w"], atol=0, rtol=0)
    assert io.peek_format(path) == FMT
    torch.save({"w": torch.ones(1)}, tmp_path / "bare.pt")
    assert io.peek_format(tmp_path / "bare.pt") is None


def test_checkpoint_of_another_format_or_version_is_refused(tmp_path):
    path = io.write_checkpoint(tmp_path / "c.pt", "ddgan-bench/other", {}, {}, {})
    with pytest.raises(io.CheckpointError, match=r"not a DDGAN-Bench checkpoint \(expected a dict with format="
                                                 r"'ddgan-bench/test-checkpoint' .* found a 'ddgan-bench/other' "
                                                 r"checkpoint\)"):
        io.read_checkpoint(path, FMT)
    io.save_atomic({"format": FMT, "format_version": 2}, path)
    with pytest.raises(io.CheckpointError, match="format version 2 is not supported by this build"):
        io.read_checkpoint(path, FMT)


def test_file_without_format_version_goes_through_the_upgrade(tmp_path):
    path = io.save_atomic({"format": FMT, "version": 1, "config": {}, "net": {}, "meta": {}}, tmp_path / "old.pt")
    with pytest.raises(io.CheckpointError, match="format version None is not supported"):
        io.read_checkpoint(path, FMT)

    def upgrade(old):
        return {"format": FMT, "format_version": io.FORMAT_VERSION, "config": old["config"],
                "state_dict": old["net"], "meta": old["meta"], "train_state": {}}

    assert io.read_checkpoint(path, FMT, upgrade=upgrade).extra == {"train_state": {}}


@pytest.mark.parametrize("cls,name,config", PRESETS, ids=[f"{c.__name__}-{n}" for c, n, _ in PRESETS])
def test_codec_round_trips_every_preset_through_json(cls, name, config):
    d = io.config_to_dict(config)
    assert d["config_version"] == io.CONFIG_VERSION
    assert io.config_from_dict(cls, json.loads(json.dumps(d))) == config
    assert io.config_to_dict(io.config_from_dict(cls, d)) == d


def test_codec_reads_configs_written_before_it():
    """DDGAN dicts kept tuples (asdict) and a config_version; DDPM and StyleGAN2 dicts had no version."""
    ddgan = ddgan_configs.preset("cifar10")
    assert io.config_from_dict(ddgan_configs.DDGANConfig, {"config_version": 1, **asdict(ddgan)}) == ddgan
    for cls, config in ((ddpm_configs.DDPMConfig, ddpm_configs.preset("tiny")),
                        (sg2_configs.StyleGAN2Config, sg2_configs.preset("tiny"))):
        old = json.loads(json.dumps(asdict(config)))
        assert io.config_from_dict(cls, old) == config


def test_codec_picks_ddgan_network_configs_by_arch():
    d = io.config_to_dict(ddgan_configs.preset("celebahq256"))
    config = io.config_from_dict(ddgan_configs.DDGANConfig, d)
    assert type(config.generator) is ddgan_configs.NCSNppConfig and config.discriminator.arch == "large"
    toy = io.config_from_dict(ddgan_configs.DDGANConfig, io.config_to_dict(ddgan_configs.preset("ring8")))
    assert type(toy.discriminator) is ddgan_configs.MLPDiscriminatorConfig
    d["discriminator"]["arch"] = "huge"
    with pytest.raises(ValueError, match=r"config.discriminator has arch='huge'; choose from \['large', 'mlp', "
                                         r"'small'\]"):
        io.config_from_dict(ddgan_configs.DDGANConfig, d)


@pytest.mark.parametrize("cls,presets", FAMILIES, ids=[c.__name__ for c, _ in FAMILIES])
def test_codec_names_unknown_keys_and_the_known_ones(cls, presets):
    d = io.config_to_dict(presets["tiny"])
    d["train"]["learning_speed"] = 3
    known = sorted(f for f in asdict(presets["tiny"].train))
    with pytest.raises(ValueError) as err:
        io.config_from_dict(cls, d)
    assert str(err.value) == f"config.train has unknown keys ['learning_speed']; known: {known}"


@pytest.mark.parametrize("cls,presets", FAMILIES, ids=[c.__name__ for c, _ in FAMILIES])
def test_codec_refuses_other_versions_alike(cls, presets):
    d = io.config_to_dict(presets["tiny"]) | {"config_version": 99}
    with pytest.raises(ValueError) as err:
        io.config_from_dict(cls, d)
    assert str(err.value) == (f"{cls.__name__}: config_version 99 is not supported (this build reads 1); use the "
                              f"version of the code that wrote it")


def test_codec_names_missing_required_keys():
    d = io.config_to_dict(ddpm_configs.preset("tiny"))
    del d["data_shape"]
    with pytest.raises(ValueError, match=r"config lacks the keys \['data_shape'\]"):
        io.config_from_dict(ddpm_configs.DDPMConfig, d)


def test_codec_checks_the_type_of_every_scalar():
    """A value of another type is refused where it is read, not where it breaks later (a str T breaks sampling);
    an int is a float (JSON writes 1.0 as 1) but a bool is not an int."""
    d = io.config_to_dict(ddgan_configs.preset("tiny"))
    for key, value, kind in (("num_timesteps", "4", "str"), ("num_timesteps", True, "bool"),
                             ("num_timesteps", 4.0, "float")):
        bad = d | {"diffusion": d["diffusion"] | {key: value}}
        with pytest.raises(ValueError, match=rf"config.diffusion.{key} is {value!r}, a {kind}; it must be of type "
                                             rf"int"):
            io.config_from_dict(ddgan_configs.DDGANConfig, bad)
    lr = d | {"train": d["train"] | {"lr_g": 1}}
    assert io.config_from_dict(ddgan_configs.DDGANConfig, lr).train.lr_g == 1
    with pytest.raises(ValueError, match="config.train.lr_g is 'fast', a str; it must be of type float"):
        io.config_from_dict(ddgan_configs.DDGANConfig, lr | {"train": d["train"] | {"lr_g": "fast"}})


def test_checkpoint_without_its_parts_or_with_a_bad_config_names_the_file(tmp_path):
    path = io.save_atomic({"format": FMT, "format_version": io.FORMAT_VERSION, "config": {}, "meta": {}},
                          tmp_path / "c.pt")
    with pytest.raises(io.CheckpointError, match=r"c.pt: a 'ddgan-bench/test-checkpoint' checkpoint without "
                                                 r"\['state_dict'\]"):
        io.read_checkpoint(path, FMT)
    config = io.config_to_dict(ddpm_configs.preset("tiny"))
    config["train"]["steps"] = "many"
    io.write_checkpoint(path, FMT, config, {}, {})
    with pytest.raises(io.CheckpointError, match="c.pt: its config does not decode: config.train.steps is 'many'"):
        io.read_checkpoint(path, FMT, config_cls=ddpm_configs.DDPMConfig)


def test_resume_ignores_budgets_and_names_every_difference(tmp_path):
    config = ddpm_configs.preset("tiny")
    longer = replace(config, train=replace(config.train, steps=99, checkpoint_every=7))
    io.check_resumable(config, longer, tmp_path)  # a longer budget or another interval do not block a resume
    ddgan = ddgan_configs.preset("tiny")
    io.check_resumable(ddgan, replace(ddgan, train=replace(ddgan.train, checkpoint_every=3)), tmp_path)
    with pytest.raises(io.CheckpointError, match="train.num_epoch = 1 there, 5 now"):  # the LR schedule's length
        io.check_resumable(ddgan, replace(ddgan, train=replace(ddgan.train, num_epoch=5)), tmp_path)
    other = replace(longer, train=replace(longer.train, lr=0.5), schedule=replace(config.schedule, T=7))
    with pytest.raises(io.CheckpointError) as err:
        io.check_resumable(config, other, tmp_path / "checkpoint.pt")
    assert str(err.value) == (f"{tmp_path / 'checkpoint.pt'} holds another run, its config differs: schedule.T = 100 "
                              f"there, 7 now; train.lr = {config.train.lr!r} there, 0.5 now. Resume with the same "
                              f"preset and options, or use another output folder.")


def test_differences_walks_nested_dicts():
    assert io.differences({"a": {"b": 1, "c": [1, 2]}}, {"a": {"b": 1, "c": [1, 2]}}) == []
    assert io.differences({"a": {"b": 1}, "e": 3}, {"a": {"b": 1, "d": 2}, "e": 4}) == [("a.d", "<absent>", 2),
                                                                                       ("e", 3, 4)]
