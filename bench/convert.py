"""python -m bench.convert: an official checkpoint written as one of ours (ddgan_ref.io's shared form), which
bench.sample, bench.metrics and bench.trilemma --checkpoints read.

Sources, told apart by their layout and keys (KINDS):
  ddgan-netg       NVlabs/denoising-diffusion-gan netG_*.pth (EMA weights; T from --preset, or the one preset the
                   shapes fit)
  ddgan-content    its content.pth (config from its args, EMA weights from its optimizer state)
  ddpm-diffusers   a diffusers UNet2DModel folder (google/ddpm-cifar10-32) or a DDPMPipeline folder, with its
                   scheduler_config.json
  ddpm-pesser      a pesser/pytorch_diffusion .ckpt (the ema_ files; UNet from --preset, default cifar10's)
  stylegan2        a stylegan2-ada-pytorch training pickle (G_ema and the networks' kwargs; read by an allow-list
                   unpickler, nothing in it runs)
Every read is weights-only. The file is written only once it reads back as the family's model, and records its
source (the resolved path, the SHA-256 of each of its files) and the command.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from torch import Tensor

from baselines.ddpm import official as ddpm_official
from baselines.stylegan2 import official as sg2_official
from bench import registry
from bench.preflight import Preflight, PreflightError, message, report, writable_folder
from ddgan_ref import checkpoints as ddgan_checkpoints
from ddgan_ref.io import DIFFUSERS_MARKERS, CheckpointError, config_to_dict, load_file, write_checkpoint
from ddgan_ref.provenance import file_sha256, provenance

KINDS = {"ddgan-netg": "ddgan", "ddgan-content": "ddgan", "ddpm-diffusers": "ddpm", "ddpm-pesser": "ddpm",
         "stylegan2": "stylegan2"}  # -> family
PRESET_KINDS = ("ddgan-netg", "ddpm-pesser")  # the sources that do not carry their config
OURS = {f.checkpoint_format for f in registry.FAMILIES.values()}


def kind_of(source: Path) -> str:
    """Which official form `source` is (a key of KINDS); CheckpointError naming what it is otherwise."""
    if source.is_dir():
        if any((source / m).is_file() for m in DIFFUSERS_MARKERS):
            return "ddpm-diffusers"
        raise CheckpointError(f"{source} is a folder without a diffusers config.json (or unet/config.json); pass "
                              f"a diffusers model folder or a checkpoint file")
    if source.parent.joinpath("config.json").is_file() and (source.name == "config.json"
                                                            or source.name in ddpm_official.WEIGHT_FILES):
        raise CheckpointError(f"{source} is one file of a diffusers model folder; pass the folder, {source.parent}")
    if source.suffix.lower() == ".pkl":
        return "stylegan2"
    obj = load_file(source, safe_globals=ddgan_checkpoints.OFFICIAL_GLOBALS, mmap=True)
    if isinstance(obj, dict) and obj.get("format") in OURS:
        raise CheckpointError(f"{source} is already a DDGAN-Bench checkpoint (format {obj['format']!r}); the "
                              f"commands read it as it is")
    if ddgan_checkpoints.looks_official(obj):
        return "ddgan-content" if "netG_dict" in obj else "ddgan-netg"
    if isinstance(obj, dict) and "temb.dense.0.weight" in obj:
        return "ddpm-pesser"
    raise CheckpointError(f"{source}: not an official checkpoint this command knows ({', '.join(KINDS)}); "
                          f"see python -m bench.convert --help")


def preset_config(kind: str, preset: str | None) -> Any:
    """The family preset `--preset` names for a source that does not carry its config (None where not given); a
    preset for a source that does, or one that cannot supply what the source lacks, is a ValueError."""
    if preset is None:
        return None
    if kind not in PRESET_KINDS:
        raise ValueError(f"--preset: a {kind} source carries its own config; drop --preset")
    config = registry.family(KINDS[kind]).preset(preset)
    if kind == "ddpm-pesser" and getattr(config, "unet", None) is None:
        raise ValueError(f"--preset {preset}: a pesser checkpoint is a UNet, and this ddpm preset has none; pass a "
                         f"UNet preset such as cifar10")
    return config


def convert(source: Path, kind: str, config: Any) -> tuple[Any, dict[str, Tensor]]:
    """(our config, sampling state_dict) of an official checkpoint of `kind`; `config` (preset_config) supplies
    what the file does not store (DDGAN's T, pesser's UNet)."""
    if kind.startswith("ddgan"):
        return ddgan_checkpoints.from_official_ddgan(source, config)
    if kind == "stylegan2":
        return sg2_official.from_official_pkl(source)
    if kind == "ddpm-pesser":
        model = ddpm_official.load_pesser(source, unet=config.unet if config is not None else None)
    else:
        model = ddpm_official.load_diffusers(source)
    return model.config, model.network.state_dict()


def source_record(source: Path, kind: str) -> dict[str, Any]:
    """What meta records of the source: its resolved path, kind, and the SHA-256 of the file or of each file in
    the folder."""
    root = source.resolve()
    files = ([p for p in sorted(root.rglob("*")) if p.is_file() and not any(part.startswith(".") for part in
              p.relative_to(root).parts)] if root.is_dir() else [root])  # not a download tool's hidden caches
    digests = {p.relative_to(root).as_posix() if root.is_dir() else p.name: file_sha256(p) for p in files}
    return {"source": str(root), "source_kind": kind, "source_sha256": digests}


def write_checked(out: Path, family: registry.Family, config: Any, state_dict: dict[str, Tensor],
                  meta: dict[str, Any]) -> Any:
    """Write the checkpoint beside `out`, read it back as the family's model, and only then move it to `out`; a
    file that does not read back is removed, and an earlier `out` is left as it was."""
    staged = out.with_name(f".{out.name}.converting")
    try:
        write_checkpoint(staged, family.checkpoint_format, config_to_dict(config), state_dict, meta)
        model = family.load(staged, "cpu")
        os.replace(staged, out)
    finally:
        staged.unlink(missing_ok=True)
    return model


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="the official checkpoint: a .pth / .ckpt / .pkl file or a diffusers "
                                             "folder")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint file to write (.pt)")
    p.add_argument("--preset", default=None,
                   help="for sources that do not carry their config: netG_*.pth's T (a ddgan preset: cifar10 T=4, "
                        "celebahq256 T=2, lsun_church256 T=4; default: the one preset the shapes fit) and pesser's "
                        "UNet (a ddpm preset; default cifar10's); refused for the others")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def preflight(args: argparse.Namespace) -> tuple[str, Any]:
    """(kind, preset config) once the source, the preset and --out check out; PreflightError listing every problem
    otherwise."""
    check = Preflight()
    kind = check.check(lambda: kind_of(args.source))
    config = check.check(lambda: preset_config(kind, args.preset)) if kind is not None else None
    if args.out.is_dir():
        check.add(f"--out {args.out} is a folder; pass the path of the .pt file to write")
    elif args.out.exists() and not args.overwrite:
        check.add(f"--out {args.out} exists; pass --overwrite to replace it, or another --out")
    else:
        check.check(lambda: writable_folder(args.out.parent))  # created on the write where it does not exist yet
    check.raise_if_any()
    return kind, config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        kind, supplied = preflight(args)
        print(f"converting {args.source} ({kind}) -> {args.out}", file=sys.stderr)
        config, state_dict = convert(args.source, kind, supplied)
        family = registry.family(KINDS[kind])
        meta = {**source_record(args.source, kind), **provenance("cpu"),
                "command": ["python", "-m", "bench.convert", *(argv if argv is not None else sys.argv[1:])]}
        model = write_checked(args.out, family, config, state_dict, meta)
    except PreflightError as e:
        return report(e)
    except (ValueError, KeyError) as e:  # CheckpointError is a ValueError: shapes, kwargs, unsupported settings
        print(f"error: {args.source}: {message(e)}" if str(args.source) not in str(e) else f"error: {message(e)}",
              file=sys.stderr)
        return 2
    except OSError as e:  # a write failure (disk full): one line
        return report(e)
    params = sum(v.numel() for v in model.network.state_dict().values())
    print(f"wrote {args.out}: {family.name} ({getattr(config, 'name', None) or config.preset}), {params:,} "
          f"weights, {model.default_steps} steps by default", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
