"""Checkpoint files: our {config, state_dict, meta} format, and the official netG_*.pth / content.pth.

Nothing here executes code from a file: every load is torch.load(weights_only=True); the only extra
global admitted is argparse.Namespace (the `args` of upstream's content.pth). Writes go to a
temporary file in the same folder and are renamed into place, so a kill never leaves half a file.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

import torch
from torch import Tensor, nn

from ddgan_ref.configs import DDGANConfig, config_from_dict, config_to_dict
from ddgan_ref.networks.state_dicts import strip_module_prefix

FORMAT = "ddgan-bench/checkpoint"
FORMAT_VERSION = 1
SAFE_GLOBALS = [argparse.Namespace]  # the allow-list for official content.pth files


class CheckpointError(ValueError):
    """A file that is not a readable checkpoint of the expected kind."""


class CheckpointMismatchError(CheckpointError):
    """A checkpoint whose tensors do not fit the architecture it is loaded into."""


def _replace_atomically(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """write() into a temporary file beside `path`, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save `obj` to `path` atomically (temporary file, fsync, rename)."""
    return _replace_atomically(path, lambda f: torch.save(obj, f))


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write `obj` as indented JSON to `path` atomically, for configs and result records."""
    return _replace_atomically(path, lambda f: f.write(json.dumps(obj, indent=1).encode()))


def load_file(path: str | Path) -> Any:
    """torch.load(weights_only=True) on CPU, with a clear CheckpointError for missing or broken files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; pass the path of a .pt/.pth file")
    try:
        with torch.serialization.safe_globals(SAFE_GLOBALS):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if "Weights only load failed" in str(e):
            raise CheckpointError(
                f"{path}: refusing to load: the file holds Python objects outside the allow-list "
                f"(loading them could execute code). Re-save it as a plain state dict.") from None
        raise CheckpointError(_broken(path)) from e
    except Exception as e:  # torch.load reports a broken file as any of several types
        raise CheckpointError(_broken(path)) from e


def _broken(path: Path) -> str:
    return (f"{path}: cannot read this checkpoint: the file is truncated, corrupt or not a PyTorch checkpoint "
            f"({path.stat().st_size} bytes). Re-download or re-create it.")


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def check_fits(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> None:
    """Raise CheckpointMismatchError naming missing, unexpected and mis-shaped keys, if any."""
    want = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    have = {k: tuple(v.shape) for k, v in state_dict.items()}
    missing = [k for k in want if k not in have]
    unexpected = [k for k in have if k not in want]
    shaped = [f"{k} (checkpoint {list(have[k])}, model {list(want[k])})"
              for k in want if k in have and have[k] != want[k]]
    if not (missing or unexpected or shaped):
        return
    lines = [f"{what} does not fit the {type(module).__name__} architecture it is loaded into:"]
    for label, keys in (("missing keys", missing), ("unexpected keys", unexpected), ("mis-shaped keys", shaped)):
        if keys:
            lines.append(f"  {label} ({len(keys)}): {_listing(keys)}")
    lines.append("Build the model with the config the checkpoint was trained with (its preset), or convert it.")
    raise CheckpointMismatchError("\n".join(lines))


def load_into(module: nn.Module, state_dict: Mapping[str, Tensor], what: str) -> nn.Module:
    """check_fits, then load_state_dict(strict=True)."""
    check_fits(module, state_dict, what)
    module.load_state_dict(state_dict, strict=True)
    return module


def write_checkpoint(path: str | Path, config: DDGANConfig, state_dict: Mapping[str, Tensor],
                     meta: Mapping[str, Any], **extra: Any) -> Path:
    """Write {format, config, state_dict, meta, **extra} atomically; state_dict is the sampling generator's."""
    payload = {"format": FORMAT, "format_version": FORMAT_VERSION, "config": config_to_dict(config),
               "state_dict": dict(state_dict), "meta": dict(meta), **extra}
    return save_atomic(payload, path)


def read_checkpoint(path: str | Path) -> tuple[DDGANConfig, dict[str, Tensor], dict[str, Any], dict[str, Any]]:
    """(config, generator state_dict, meta, the other entries) of one of our checkpoints."""
    obj = load_file(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        kind = type(obj).__name__ if not isinstance(obj, dict) else f"a dict with keys {sorted(obj)[:6]}"
        hint = (" It looks like an official DDGAN file: convert it with "
                "ddgan_ref.checkpoints.from_official_ddgan.") if _looks_official(obj) else ""
        raise CheckpointError(
            f"{path}: not a DDGAN-Bench checkpoint (expected a dict with format={FORMAT!r} and keys "
            f"config, state_dict, meta; found {kind}).{hint}")
    if obj.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {obj.get('format_version')} is not "
                              f"supported by this build (it reads {FORMAT_VERSION})")
    rest = {k: v for k, v in obj.items() if k not in ("format", "format_version", "config", "state_dict", "meta")}
    return config_from_dict(obj["config"]), obj["state_dict"], obj["meta"], rest


def _looks_official(obj: Any) -> bool:
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
    obj = load_file(path)
    if isinstance(obj, dict) and "netG_dict" in obj:
        args = vars(obj["args"]) if isinstance(obj.get("args"), argparse.Namespace) else obj.get("args")
        state = obj.get("optimizerG", {}).get("state", {})
        ema = [state[i]["ema"] for i in sorted(state)] if state and all("ema" in s for s in state.values()) else None
        return strip_module_prefix(obj["netG_dict"]), args, ema
    if isinstance(obj, dict) and obj and all(isinstance(v, Tensor) for v in obj.values()):
        return strip_module_prefix(obj), None, None
    raise CheckpointError(f"{path}: neither an official netG_*.pth state dict nor a content.pth dict "
                          f"(found {type(obj).__name__})")


def config_from_official_args(args: Mapping[str, Any]) -> DDGANConfig:
    """Our config from the argparse namespace (as a dict) of an official content.pth."""
    from ddgan_ref.configs import DiffusionConfig, DiscriminatorConfig, NCSNppConfig, TrainConfig
    from ddgan_ref.networks.discriminator import SMALL_D_DATASETS, discriminator_kwargs_from_official
    from ddgan_ref.networks.ncsnpp import ncsnpp_kwargs_from_official

    def pick(cls: type) -> dict[str, Any]:
        return {k: v for k, v in args.items() if k in cls.__dataclass_fields__}

    dataset = str(args.get("dataset", "cifar10"))
    d_arch = "small" if dataset in SMALL_D_DATASETS else "large"
    return DDGANConfig(
        preset=f"official:{dataset}", dataset=dataset,
        generator=NCSNppConfig(**ncsnpp_kwargs_from_official(args)),
        discriminator=DiscriminatorConfig(d_arch, **discriminator_kwargs_from_official(args)),
        diffusion=DiffusionConfig(**pick(DiffusionConfig)),
        train=TrainConfig(**pick(TrainConfig) | {"lr_decay": not args.get("no_lr_decay", False)}))


def _fitting_presets(state_dict: Mapping[str, Tensor]) -> list[str]:
    from ddgan_ref.configs import PRESETS, NCSNppConfig
    from ddgan_ref.networks.build import build_generator

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
    from ddgan_ref.networks.build import build_generator

    state_dict, args, ema = read_official_ddgan(path)
    if config is None and args is not None:
        config = config_from_official_args(args)
    if config is None:
        fits = _fitting_presets(state_dict)
        if len(fits) != 1:
            raise CheckpointError(
                f"{path}: cannot tell the config from the weights alone (presets that fit: {fits or 'none'}); "
                f"pass config=ddgan_ref.configs.preset(NAME) with the T the model was trained with")
        from ddgan_ref.configs import preset
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
