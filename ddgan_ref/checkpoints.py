"""DDGAN checkpoint files: our format (ddgan_ref.io's shared form) and the official netG_*.pth / content.pth.

Every load is torch.load(weights_only=True); the only extra global admitted is argparse.Namespace, and only
for the `args` of upstream's content.pth.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ddgan_ref import io
from ddgan_ref.configs import (
    PRESETS,
    DDGANConfig,
    DiffusionConfig,
    DiscriminatorConfig,
    NCSNppConfig,
    TrainConfig,
    preset,
)
from ddgan_ref.io import Checkpoint, CheckpointError, CheckpointMismatchError, check_fits, load_file
from ddgan_ref.networks.build import build_generator
from ddgan_ref.networks.discriminator import SMALL_D_DATASETS, discriminator_kwargs_from_official
from ddgan_ref.networks.ncsnpp import ncsnpp_kwargs_from_official
from ddgan_ref.networks.state_dicts import strip_module_prefix

FORMAT = "ddgan-bench/checkpoint"
OFFICIAL_GLOBALS = (argparse.Namespace,)  # the allow-list for official content.pth files
# Upstream's --dataset names -> the suite's dataset names (bench.data), which results and checkpoints record.
OFFICIAL_DATASETS = {"stackmnist": "stacked-mnist", "celeba_256": "image-folder", "lsun": "image-folder"}
OFFICIAL_HINT = (" It looks like an official DDGAN file: convert it with python -m bench.convert (or "
                 "ddgan_ref.checkpoints.from_official_ddgan).")


def write_checkpoint(path: str | Path, config: DDGANConfig, state_dict: Mapping[str, Tensor],
                     meta: Mapping[str, Any], **extra: Any) -> Path:
    """Write {format, config, state_dict, meta, **extra} atomically; state_dict is the sampling generator's."""
    return io.write_checkpoint(path, FORMAT, io.config_to_dict(config), state_dict, meta, **extra)


def read_checkpoint(path: str | Path, *, mmap: bool = False) -> Checkpoint:
    """(config, generator state_dict, meta, the other entries) of one of our DDGAN checkpoints (with mmap the
    tensors stay on disk until read)."""
    obj = load_file(path, mmap=mmap)
    return io.parse_checkpoint(obj, path, FORMAT, config_cls=DDGANConfig, hint=OFFICIAL_HINT if looks_official(obj)
                               else "")


def looks_official(obj: Any) -> bool:
    """Whether a loaded file is an official NVlabs DDGAN one: content.pth's netG_dict, or netG_*.pth's keys."""
    if not isinstance(obj, dict):
        return False
    return "netG_dict" in obj or any(str(k).removeprefix("module.").startswith("all_modules.") for k in obj)


# Official NVlabs/denoising-diffusion-gan files (spec ddgan.md §8, §12).


def read_official_ddgan(path: str | Path) -> tuple[dict[str, Tensor], dict[str, Any] | None, list[Tensor] | None]:
    """(generator state_dict without 'module.', content.pth args or None, EMA tensors or None).

    netG_*.pth is a bare state dict (EMA weights when the run used --use_ema). content.pth holds the
    non-EMA `netG_dict`, `args` (an argparse.Namespace) and the EMA tensors in optimizerG's state, in
    netG.parameters() order.
    """
    obj = load_file(path, safe_globals=OFFICIAL_GLOBALS)
    if isinstance(obj, dict) and "netG_dict" in obj:
        args = vars(obj["args"]) if isinstance(obj.get("args"), argparse.Namespace) else obj.get("args")
        state = (obj.get("optimizerG") or {}).get("state") or {}
        ema = [state[i]["ema"] for i in sorted(state)] if state and all("ema" in s for s in state.values()) else None
        return strip_module_prefix(obj["netG_dict"]), args, ema
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return strip_module_prefix(obj), None, None
    raise CheckpointError(f"{path}: neither an official netG_*.pth state dict nor a content.pth dict "
                          f"(found {type(obj).__name__})")


def config_from_official_args(args: Mapping[str, Any]) -> DDGANConfig:
    """Our config from the argparse namespace (as a dict) of an official content.pth."""

    def pick(cls: type) -> dict[str, Any]:
        return {k: v for k, v in args.items() if k in cls.__dataclass_fields__}

    dataset = str(args.get("dataset", "cifar10"))
    d_arch = "small" if dataset in SMALL_D_DATASETS else "large"
    return DDGANConfig(
        preset=f"official:{dataset}", dataset=OFFICIAL_DATASETS.get(dataset, dataset),
        generator=NCSNppConfig(**ncsnpp_kwargs_from_official(args)),
        discriminator=DiscriminatorConfig(d_arch, **discriminator_kwargs_from_official(args)),
        diffusion=DiffusionConfig(**pick(DiffusionConfig)),
        train=TrainConfig(**pick(TrainConfig) | {"lr_decay": not args.get("no_lr_decay", False),
                                                 "hflip": dataset != "stackmnist"}))  # upstream flips all but it


def _fitting_presets(state_dict: Mapping[str, Tensor]) -> list[str]:
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    fits = []
    for name, cfg in PRESETS.items():
        if isinstance(cfg.generator, NCSNppConfig):
            with torch.device("meta"):
                want = {k: tuple(v.shape) for k, v in build_generator(cfg.generator).state_dict().items()}
            fits += [name] if want == have else []
    return fits


def from_official_ddgan(path: str | Path, config: DDGANConfig | None = None) -> tuple[DDGANConfig, dict[str, Tensor]]:
    """Convert an official netG_*.pth or content.pth into (config, EMA generator state_dict).

    The diffusion T is not stored in netG_*.pth: pass `config` (e.g. configs.preset("celebahq256")) or
    let the shapes pick the one preset they fit; content.pth carries its own config.
    """
    state_dict, args, ema = read_official_ddgan(path)
    if config is None and args is not None:
        config = config_from_official_args(args)
    if config is None:
        fits = _fitting_presets(state_dict)
        if len(fits) != 1:
            raise CheckpointError(
                f"{path}: cannot tell the config from the weights alone (presets that fit: {fits or 'none'}); "
                f"pass config=ddgan_ref.configs.preset(NAME) (bench.convert: --preset NAME) with the T the model "
                f"was trained with")
        config = preset(fits[0])
    with torch.device("meta"):
        G = build_generator(config.generator)
    check_fits(G, state_dict, f"official generator {path}")
    if ema is not None:
        names = [n for n, _ in G.named_parameters()]
        if len(names) != len(ema):
            raise CheckpointMismatchError(f"{path}: optimizerG holds {len(ema)} EMA tensors, the generator has "
                                          f"{len(names)} parameters")
        state_dict = dict(zip(names, ema, strict=True))
        check_fits(G, state_dict, f"EMA weights of {path}")
    return config, state_dict
