"""Official DDPM checkpoints: diffusers `UNet2DModel` folders (google/ddpm-cifar10-32; .safetensors or .bin, old
attention names included) and pesser/pytorch_diffusion `.ckpt` files, read without executing code from them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import safetensors.torch
import torch
from safetensors import SafetensorError
from torch import Tensor

from baselines.ddpm.configs import DDPMConfig, ScheduleConfig, UNetConfig, unet_config_from_diffusers
from baselines.ddpm.model import DDPM, build_unet
from ddgan_ref.io import CheckpointError, load_file, load_into, read_json

WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
OLD_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def read_safetensors(path: str | Path) -> dict[str, Tensor]:
    """The tensors of a .safetensors file, read memory-mapped by the `safetensors` package (the file is a JSON
    header and raw data: nothing in it runs)."""
    try:
        return safetensors.torch.load_file(path)
    except SafetensorError as error:
        raise CheckpointError(f"{path}: truncated, corrupt or not a safetensors file ({error})") from error


def rename_old_attention(state_dict: dict[str, Tensor]) -> dict[str, Tensor]:
    """diffusers checkpoints from 2022 name attention weights query/key/value/proj_attn; map them to today's."""
    pattern = re.compile(r"(attentions\.\d+)\.(query|key|value|proj_attn)\.")
    return {pattern.sub(lambda m: f"{m[1]}.{OLD_ATTENTION_NAMES[m[2]]}.", k): v for k, v in state_dict.items()}


PESSER_RENAMES = [  # (regex on pesser names, diffusers replacement); spec baselines.md 1.5 (b), verified mapping
    (r"^temb\.dense\.0\.", "time_embedding.linear_1."), (r"^temb\.dense\.1\.", "time_embedding.linear_2."),
    (r"^norm_out\.", "conv_norm_out."), (r"^mid\.block_1\.", "mid_block.resnets.0."),
    (r"^mid\.block_2\.", "mid_block.resnets.1."), (r"^mid\.attn_1\.", "mid_block.attentions.0."),
    (r"^down\.(\d+)\.block\.", r"down_blocks.\1.resnets."), (r"^down\.(\d+)\.attn\.", r"down_blocks.\1.attentions."),
    (r"^down\.(\d+)\.downsample\.conv\.", r"down_blocks.\1.downsamplers.0.conv."),
    (r"\.temb_proj\.", ".time_emb_proj."), (r"\.nin_shortcut\.", ".conv_shortcut."),
    (r"(attentions\.\d+)\.norm\.", r"\1.group_norm."), (r"(attentions\.\d+)\.q\.", r"\1.to_q."),
    (r"(attentions\.\d+)\.k\.", r"\1.to_k."), (r"(attentions\.\d+)\.v\.", r"\1.to_v."),
    (r"(attentions\.\d+)\.proj_out\.", r"\1.to_out.0."),
]


def from_pesser_state_dict(state_dict: dict[str, Tensor], levels: int) -> dict[str, Tensor]:
    """pesser/pytorch_diffusion names -> ours (diffusers); up.i is level i, i.e. up_blocks.(levels-1-i)."""
    out = {}
    for key, value in state_dict.items():
        m = re.match(r"^up\.(\d+)\.(block|attn|upsample)\.", key)
        if m:
            part = {"block": "resnets.", "attn": "attentions.", "upsample": "upsamplers.0."}[m[2]]
            key = f"up_blocks.{levels - 1 - int(m[1])}.{part}{key[m.end():]}"
        for pattern, repl in PESSER_RENAMES:
            key = re.sub(pattern, repl, key)
        if ".attentions." in key and key.endswith(".weight") and value.ndim == 4:
            value = value[:, :, 0, 0]  # 1x1 conv -> Linear
        out[key] = value
    return out


# scheduler_config.json settings that change the sampler's maths, and the values it implements (a missing key
# counts as the first, as the loader reads it).
SCHEDULER_SETTINGS: dict[str, tuple[Any, ...]] = {
    "beta_schedule": ("linear",), "prediction_type": ("epsilon",), "variance_type": ("fixed_large", "fixed_small"),
    "trained_betas": (None,), "thresholding": (False,), "clip_sample_range": (1.0,),
    "rescale_betas_zero_snr": (False,),
}
JSON_FIX = "pass a diffusers model folder as written by save_pretrained (or downloaded from the Hub)"


def _scheduler_file(unet_dir: Path) -> Path | None:
    """A model's scheduler_config.json: beside its config.json (a flat folder such as google/ddpm-cifar10-32), or,
    for a pipeline's unet/, in the pipeline's scheduler/ (save_pretrained's layout) or beside unet/. None where a
    flat folder has none; a pipeline (model_index.json) without one is an error, not the default schedule."""
    candidates = [unet_dir / "scheduler_config.json"]
    pipeline = unet_dir.parent if unet_dir.name == "unet" else None
    if pipeline is not None:
        candidates += [pipeline / "scheduler" / "scheduler_config.json", pipeline / "scheduler_config.json"]
    found = next((p for p in candidates if p.is_file()), None)
    if found is None and pipeline is not None and (pipeline / "model_index.json").is_file():
        raise CheckpointError(f"{pipeline} is a diffusers pipeline (model_index.json) without "
                              f"scheduler/scheduler_config.json, which sets its noise schedule; download the whole "
                              f"pipeline folder")
    return found


def _schedule_from_diffusers(path: Path | None) -> ScheduleConfig:
    """scheduler_config.json (modern or the early GaussianDDPMScheduler format), or the DDPM defaults where there
    is none; a setting the sampler does not implement is an error, not a silently different sampler."""
    cfg = read_json(path, CheckpointError, JSON_FIX) if path is not None else {}
    for key, allowed in SCHEDULER_SETTINGS.items():
        if cfg.get(key, allowed[0]) not in allowed:
            only = ", ".join(map(repr, allowed))
            raise CheckpointError(f"{path}: {key} {cfg[key]!r} is not implemented (only {only})")
    return ScheduleConfig(T=cfg.get("num_train_timesteps", cfg.get("timesteps", 1000)),
                          beta_start=cfg.get("beta_start", 1e-4), beta_end=cfg.get("beta_end", 0.02),
                          variance=cfg.get("variance_type", "fixed_large"), clip=cfg.get("clip_sample", True))


def load_diffusers(folder: str | Path, device: torch.device | str = "cpu", **sampler_kwargs) -> DDPM:
    """A diffusers UNet2DModel folder (config.json + diffusion_pytorch_model.safetensors or .bin; a `unet/`
    subfolder of a pipeline, or the pipeline folder, also works) as a DDPM; its scheduler_config.json
    (_scheduler_file) sets the schedule."""
    folder = Path(folder)
    folder = folder / "unet" if (folder / "unet" / "config.json").is_file() else folder
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} has no config.json; pass a diffusers UNet2DModel folder")
    weights = next((folder / w for w in WEIGHT_FILES if (folder / w).is_file()), None)
    if weights is None:
        raise CheckpointError(f"{folder} has none of {WEIGHT_FILES}")
    try:
        unet = unet_config_from_diffusers(read_json(folder / "config.json", CheckpointError, JSON_FIX))
    except ValueError as error:
        raise CheckpointError(f"{folder / 'config.json'}: {error}") from error
    state = read_safetensors(weights) if weights.suffix == ".safetensors" else load_file(weights)
    schedule = _schedule_from_diffusers(_scheduler_file(folder))
    return _ddpm(unet, rename_old_attention(state), f"diffusers:{folder}", schedule, str(weights), device,
                 sampler_kwargs)


def load_pesser(path: str | Path, device: torch.device | str = "cpu", *, unet: UNetConfig | None = None,
                **sampler_kwargs) -> DDPM:
    """A pesser/pytorch_diffusion .ckpt (use the ema_ files) as a DDPM with the CIFAR-10 architecture."""
    unet, state = unet or UNetConfig(dropout=0.0), load_file(path)
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: not a pesser/pytorch_diffusion checkpoint (a flat dict of tensors, like "
                              f"ema_diffusion_cifar10_model/model-790000.ckpt); for one of ours use bench's "
                              f"--checkpoint, for a diffusers folder load_diffusers")
    state = from_pesser_state_dict(state, len(unet.block_out_channels))
    return _ddpm(unet, state, f"pesser:{Path(path).name}", ScheduleConfig(), str(path), device, sampler_kwargs)


def _ddpm(unet: UNetConfig, state: dict[str, Tensor], name: str, schedule: ScheduleConfig, what: str, device,
          sampler_kwargs) -> DDPM:
    net = load_into(build_unet(unet), state, what)
    shape = (unet.in_channels, unet.sample_size, unet.sample_size)
    config = DDPMConfig(name, "cifar10" if shape == (3, 32, 32) else "unknown", shape, unet=unet, schedule=schedule)
    return DDPM(net, config, device, **sampler_kwargs)
