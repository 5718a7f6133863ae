"""Official DDPM checkpoint formats: diffusers folders (.safetensors, .bin, old attention names, early scheduler
config) and pesser/pytorch_diffusion names, all loaded into the same UNet with identical outputs."""

from __future__ import annotations

import json
import re
import struct

import pytest
import safetensors.torch
import torch

from baselines.ddpm import official
from baselines.ddpm.configs import UNET_PRESETS, unet_config_to_dict
from baselines.ddpm.model import build_unet
from ddgan_ref.io import CheckpointError

CONFIG = UNET_PRESETS["tiny"]
DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64"}


def write_safetensors(path, tensors):
    """The format written by hand (8-byte header length, JSON header, raw little-endian data), independently of
    the safetensors package that reads it."""
    header, chunks, offset = {}, [], 0
    for name, t in tensors.items():
        data = t.contiguous().numpy().tobytes()
        header[name] = {"dtype": DTYPE_NAMES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    blob = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(blob)) + blob + b"".join(chunks))


@pytest.fixture
def reference():
    torch.manual_seed(0)
    net = build_unet(CONFIG).eval()
    x, t = torch.randn(2, 3, 8, 8), torch.tensor([3, 900])
    with torch.no_grad():
        return net, x, t, net(x, t)


def diffusers_folder(tmp_path, state, *, fmt):
    config = unet_config_to_dict(CONFIG) | {"_class_name": "UNet2DModel", "act_fn": "silu",
                                            "time_embedding_type": "positional"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    if fmt == "safetensors":
        write_safetensors(tmp_path / "diffusion_pytorch_model.safetensors", state)
    else:
        torch.save(state, tmp_path / "diffusion_pytorch_model.bin")
    return tmp_path


def outputs_of(ddpm, x, t):
    with torch.no_grad():
        return ddpm.net(x, t)


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_diffusers_folder_loads(tmp_path, reference, fmt):
    net, x, t, want = reference
    ddpm = official.load_diffusers(diffusers_folder(tmp_path, net.state_dict(), fmt=fmt))
    torch.testing.assert_close(outputs_of(ddpm, x, t), want, atol=0, rtol=0)
    assert ddpm.shape == (3, 8, 8) and ddpm.default_steps == 1000


def test_diffusers_folder_written_by_the_safetensors_package_loads(tmp_path, reference):
    net, x, t, want = reference
    folder = diffusers_folder(tmp_path, {}, fmt="bin")
    (folder / "diffusion_pytorch_model.bin").unlink()
    safetensors.torch.save_file(net.state_dict(), folder / "diffusion_pytorch_model.safetensors")
    torch.testing.assert_close(outputs_of(official.load_diffusers(folder), x, t), want, atol=0, rtol=0)


def test_diffusers_old_attention_names_and_early_scheduler_config(tmp_path, reference):
    net, x, t, want = reference
    old = {re.sub(r"\.to_q\.", ".query.", re.sub(r"\.to_k\.", ".key.", re.sub(r"\.to_v\.", ".value.",
           re.sub(r"\.to_out\.0\.", ".proj_attn.", k)))): v for k, v in net.state_dict().items()}
    assert any(".query." in k for k in old)
    folder = diffusers_folder(tmp_path, old, fmt="bin")
    (folder / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "GaussianDDPMScheduler", "timesteps": 500, "beta_start": 1e-4, "beta_end": 0.02,
         "beta_schedule": "linear", "variance_type": "fixed_large"}))
    ddpm = official.load_diffusers(folder)
    torch.testing.assert_close(outputs_of(ddpm, x, t), want, atol=0, rtol=0)
    assert ddpm.default_steps == 500 and ddpm.config.schedule.variance == "fixed_large"


def test_pesser_names_load(tmp_path, reference):
    net, x, t, want = reference
    levels = len(CONFIG.block_out_channels)
    inverse = [("time_embedding.linear_1.", "temb.dense.0."), ("time_embedding.linear_2.", "temb.dense.1."),
               ("conv_norm_out.", "norm_out."), ("mid_block.resnets.0.", "mid.block_1."),
               ("mid_block.resnets.1.", "mid.block_2."), ("mid_block.attentions.0.", "mid.attn_1."),
               (".time_emb_proj.", ".temb_proj."), (".conv_shortcut.", ".nin_shortcut."),
               (".group_norm.", ".norm."), (".to_q.", ".q."), (".to_k.", ".k."), (".to_v.", ".v."),
               (".to_out.0.", ".proj_out."), ("downsamplers.0.", "downsample."), ("upsamplers.0.", "upsample."),
               ("down_blocks.", "down."), (".resnets.", ".block."), (".attentions.", ".attn.")]
    pesser = {}
    for key, value in net.state_dict().items():
        m = re.match(r"up_blocks\.(\d+)\.", key)
        key = f"up.{levels - 1 - int(m[1])}." + key[m.end():] if m else key
        for a, b in inverse:
            key = key.replace(a, b)
        is_attention_weight = re.search(r"\.(q|k|v|proj_out)\.weight$", key)  # pesser: 1x1 convs
        pesser[key] = value[:, :, None, None] if is_attention_weight else value
    assert "temb.dense.0.weight" in pesser and any(k.startswith("up.0.block.") for k in pesser)
    torch.save(pesser, tmp_path / "model-790000.ckpt")
    ddpm = official.load_pesser(tmp_path / "model-790000.ckpt", unet=CONFIG)
    torch.testing.assert_close(outputs_of(ddpm, x, t), want, atol=0, rtol=0)


def test_truncated_or_foreign_files_are_refused(tmp_path, reference):
    net = reference[0]
    folder = diffusers_folder(tmp_path, net.state_dict(), fmt="safetensors")
    weights = folder / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="truncated"):
        official.load_diffusers(folder)
    (folder / "config.json").write_text(json.dumps(unet_config_to_dict(CONFIG) | {"act_fn": "gelu"}))
    with pytest.raises(CheckpointError, match="config.json: unsupported UNet2DModel setting act_fn='gelu'"):
        official.load_diffusers(folder)
    (folder / "config.json").write_text('{"sample_size": 8, "in_ch')
    with pytest.raises(CheckpointError, match=r"config.json: not readable JSON .*save_pretrained"):
        official.load_diffusers(folder)
    torch.save({"format": "ddgan-bench/ddpm", "config": {}, "state_dict": {}}, tmp_path / "ours.pt")
    with pytest.raises(CheckpointError, match="not a pesser/pytorch_diffusion checkpoint"):
        official.load_pesser(tmp_path / "ours.pt", unet=CONFIG)
    with pytest.raises(CheckpointError, match="config.json"):
        official.load_diffusers(tmp_path / "nowhere")


@pytest.mark.parametrize("setting", [{"prediction_type": "v_prediction"}, {"variance_type": "learned_range"},
                                     {"beta_schedule": "squaredcos_cap_v2"}, {"trained_betas": [0.1, 0.2]},
                                     {"thresholding": True}, {"clip_sample_range": 2.0},
                                     {"rescale_betas_zero_snr": True}])
def test_scheduler_settings_the_sampler_does_not_implement_are_refused(tmp_path, reference, setting):
    """A scheduler_config.json asking for other maths than the sampler's is an error naming the file and the key,
    not samples drawn with the wrong formula."""
    folder = diffusers_folder(tmp_path, reference[0].state_dict(), fmt="bin")
    plain = {"num_train_timesteps": 1000, "beta_schedule": "linear", "prediction_type": "epsilon",
             "variance_type": "fixed_small", "trained_betas": None, "thresholding": False, "clip_sample_range": 1.0}
    (folder / "scheduler_config.json").write_text(json.dumps(plain))
    assert official.load_diffusers(folder).config.schedule.variance == "fixed_small"
    (folder / "scheduler_config.json").write_text(json.dumps(plain | setting))
    key = next(iter(setting))
    with pytest.raises(CheckpointError, match=f"scheduler_config.json: {key} .* is not implemented"):
        official.load_diffusers(folder)
    (folder / "scheduler_config.json").write_text("{")
    with pytest.raises(CheckpointError, match="scheduler_config.json: not readable JSON"):
        official.load_diffusers(folder)


def test_a_pipeline_folder_reads_its_scheduler_folder(tmp_path, reference):
    """DDPMPipeline.save_pretrained's layout: model_index.json, unet/, scheduler/scheduler_config.json. The
    pipeline's schedule is read (and checked), and a pipeline without one is refused rather than sampled with the
    defaults."""
    pipe = tmp_path / "pipe"
    (pipe / "unet").mkdir(parents=True)
    diffusers_folder(pipe / "unet", reference[0].state_dict(), fmt="bin")
    (pipe / "model_index.json").write_text(json.dumps({"_class_name": "DDPMPipeline"}))
    with pytest.raises(CheckpointError, match="pipeline .* without scheduler/scheduler_config.json"):
        official.load_diffusers(pipe)
    (pipe / "scheduler").mkdir()
    (pipe / "scheduler" / "scheduler_config.json").write_text(json.dumps({"num_train_timesteps": 400}))
    assert official.load_diffusers(pipe).default_steps == 400
    assert official.load_diffusers(pipe / "unet").default_steps == 400
    (pipe / "scheduler" / "scheduler_config.json").write_text(json.dumps({"beta_schedule": "squaredcos_cap_v2"}))
    with pytest.raises(CheckpointError, match="scheduler/scheduler_config.json: beta_schedule"):
        official.load_diffusers(pipe)
