"""python -m bench.convert: an official checkpoint written as one of ours (ddgan_ref.io's shared form), which
bench.sample, bench.metrics and bench.trilemma --checkpoints read.

Sources, told apart by their layout and keys (KINDS):
  ddgan            NVlabs/denoising-diffusion-gan netG_*.pth (EMA weights; T from --preset, or the one preset the
                   shapes fit) or content.pth (config from its args, EMA weights from its optimizer state)
  ddpm-diffusers   a diffusers UNet2DModel folder (google/ddpm-cifar10-32) or a DDPMPipeline folder, with its
                   scheduler_config.json
  ddpm-pesser      a pesser/pytorch_diffusion .ckpt (the ema_ files; UNet from --preset, default cifar10)
  stylegan2        a stylegan2-ada-pytorch training pickle (G_ema and the networks' kwargs; read by an allow-list
                   unpickler, nothing in it runs)
Every read is weights-only. The file records its source, the source's SHA-256 and the converting command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from torch import Tensor

from baselines.ddpm import official as ddpm_official
from baselines.stylegan2 import official as sg2_official
from bench import registry
from bench.preflight import Preflight, PreflightError, message, report
from ddgan_ref import checkpoints as ddgan_checkpoints
from ddgan_ref.io import CheckpointError, config_to_dict, load_file, write_checkpoint
from ddgan_ref.provenance import file_sha256, provenance

KINDS = {"ddgan": "ddgan", "ddpm-diffusers": "ddpm", "ddpm-pesser": "ddpm", "stylegan2": "stylegan2"}  # -> family
OURS = {f.checkpoint_format for f in registry.FAMILIES.values()}


def kind_of(source: Path) -> str:
    """Which official form `source` is (a key of KINDS); CheckpointError naming what it is otherwise."""
    if source.is_dir():
        markers = ("config.json", "unet/config.json", "model_index.json")
        if any((source / m).is_file() for m in markers):
            return "ddpm-diffusers"
        raise CheckpointError(f"{source} is a folder without a diffusers config.json (or unet/config.json); pass "
                              f"a diffusers model folder or a checkpoint file")
    if source.suffix.lower() == ".pkl":
        return "stylegan2"
    obj = load_file(source, safe_globals=ddgan_checkpoints.OFFICIAL_GLOBALS, mmap=True)
    if isinstance(obj, dict) and obj.get("format") in OURS:
        raise CheckpointError(f"{source} is already a DDGAN-Bench checkpoint (format {obj['format']!r}); the "
                              f"commands read it as it is")
    if ddgan_checkpoints.looks_official(obj):
        return "ddgan"
    if isinstance(obj, dict) and "temb.dense.0.weight" in obj:
        return "ddpm-pesser"
    raise CheckpointError(f"{source}: not an official checkpoint this command knows ({', '.join(KINDS)}); "
                          f"see python -m bench.convert --help")


def convert(source: Path, kind: str, preset: str | None) -> tuple[Any, dict[str, Tensor]]:
    """(our config, sampling state_dict) of an official checkpoint of `kind`; `preset` names the family preset
    that supplies what the file does not store (DDGAN's T, pesser's UNet)."""
    family = registry.family(KINDS[kind])
    config = family.preset(preset) if preset is not None else None
    if kind == "ddgan":
        return ddgan_checkpoints.from_official_ddgan(source, config)
    if kind == "stylegan2":
        return sg2_official.from_official_pkl(source)
    if kind == "ddpm-pesser":
        model = ddpm_official.load_pesser(source, unet=config.unet if config is not None else None)
    else:
        model = ddpm_official.load_diffusers(source)
    return model.config, model.network.state_dict()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.convert", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("source", type=Path, help="the official checkpoint: a .pth / .ckpt / .pkl file or a diffusers "
                                             "folder")
    p.add_argument("--out", type=Path, required=True, help="the checkpoint file to write (.pt)")
    p.add_argument("--preset", default=None,
                   help="the family preset for what the file does not store: DDGAN netG_*.pth's T (cifar10: T=4, "
                        "celebahq256: T=2; default: the one preset the shapes fit), pesser's UNet (default the "
                        "cifar10 UNet); diffusers folders, content.pth and pickles carry their own")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check = Preflight()
    kind = check.check(lambda: kind_of(args.source))
    if kind is not None and args.preset is not None:
        check.check(lambda: registry.family(KINDS[kind]).preset(args.preset))
    if args.out.exists() and not args.overwrite:
        check.add(f"--out {args.out} exists; pass --overwrite to replace it, or another --out")
    try:
        check.raise_if_any()
        print(f"converting {args.source} ({kind}) -> {args.out}", file=sys.stderr)
        config, state_dict = convert(args.source, kind, args.preset)
        family = registry.family(KINDS[kind])
        sha = file_sha256(args.source) if args.source.is_file() else None
        meta = {"source": str(args.source), "source_kind": kind, "source_sha256": sha,
                "command": ["python", "-m", "bench.convert", *(argv if argv is not None else sys.argv[1:])],
                **provenance("cpu")}
        write_checkpoint(args.out, family.checkpoint_format, config_to_dict(config), state_dict, meta)
        model = family.load(args.out, "cpu")  # the file reads back as the commands will read it
    except PreflightError as e:
        return report(e)
    except (CheckpointError, KeyError) as e:  # a file that parses but does not convert (shapes, conditional, ...)
        print(f"error: {message(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a write failure after the checks (disk full): one line
        return report(e)
    params = sum(v.numel() for v in model.network.state_dict().values())
    print(f"wrote {args.out}: {family.name}, {params:,} weights, {model.default_steps} steps by default",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
