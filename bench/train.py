"""python -m bench.train: train a model family on a dataset, with progress, resume and a sample grid at the end.

Examples:
  python -m bench.train --model ddgan --preset gaussians25 --out runs/gaussians25
  python -m bench.train --model ddgan --preset cifar10 --data-root ~/data --out runs/cifar10 --resume
  torchrun --nproc_per_node 2 -m bench.train --model ddgan --preset tiny --out runs/tiny-ddp
  python -m bench.train --model ddpm --preset gaussians25 --out runs/ddpm-gaussians25
  python -m bench.train --model stylegan2 --preset gaussians25 --out runs/sg2-gaussians25
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path

import torch

from baselines.ddpm import configs as ddpm_configs
from baselines.ddpm import model as ddpm_model
from baselines.ddpm import train as ddpm_train
from baselines.stylegan2 import configs as sg2_configs
from baselines.stylegan2 import model as sg2_model
from baselines.stylegan2 import train as sg2_train
from bench.data import DATASETS, build_dataset
from bench.devices import resolve_device
from bench.grid import write_grid
from ddgan_ref import configs as ddgan_configs
from ddgan_ref import model as ddgan_model
from ddgan_ref import train as ddgan_train
from ddgan_ref.io import TrainingDiverged
from ddgan_ref.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(TRAINERS), default="ddgan", help="model family to train")
    p.add_argument("--preset", required=True,
                   help=f"config preset; ddgan: {', '.join(sorted(ddgan_configs.PRESETS))}; "
                        f"ddpm: {', '.join(sorted(ddpm_configs.PRESETS))}; "
                        f"stylegan2: {', '.join(sorted(sg2_configs.PRESETS))}")
    p.add_argument("--dataset", help=f"dataset (default: the preset's): {', '.join(sorted(DATASETS))}")
    p.add_argument("--data-root", type=Path, help="folder with the dataset files (cifar10, mnist, image-folder)")
    p.add_argument("--download", action="store_true", help="download the dataset into --data-root if missing")
    p.add_argument("--out", type=Path, required=True, help="run folder: config.json, checkpoint.pt, samples.png")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs (ddgan)")
    p.add_argument("--timesteps", type=int, help="override the preset's number of denoising steps T (ddgan)")
    p.add_argument("--steps", type=int, help="override the preset's number of training steps (ddpm, stylegan2)")
    p.add_argument("--lr", type=float, help="override the learning rate (ddpm)")
    p.add_argument("--max-steps", type=int, help="stop after this many iterations (a checkpoint is written)")
    p.add_argument("--batch-size", type=int, help="override the per-process batch size")
    p.add_argument("--lr-g", type=float, help="override the generator learning rate (ddgan, stylegan2)")
    p.add_argument("--lr-d", type=float, help="override the discriminator learning rate (ddgan, stylegan2)")
    p.add_argument("--seed", type=int, help="override the training seed")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--single-process", action="store_true",
                   help="train in this process alone even under torchrun (the trilemma harness trains on rank 0)")
    p.add_argument("--num-workers", type=int, default=0, help="data-loading worker processes (default 0)")
    p.add_argument("--grid-n", type=int, default=64, help="samples in the final grid (2D data: 2000 points)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def ddgan_config(args: argparse.Namespace) -> ddgan_configs.DDGANConfig:
    """The preset with the command-line overrides applied."""
    config = ddgan_configs.preset(args.preset)
    overrides = {"num_epoch": args.epochs, "batch_size": args.batch_size, "lr_g": args.lr_g, "lr_d": args.lr_d,
                 "seed": args.seed, "checkpoint_every": args.checkpoint_every}
    train_cfg = replace(config.train, **{k: v for k, v in overrides.items() if v is not None})
    diffusion = config.diffusion if args.timesteps is None else replace(config.diffusion, num_timesteps=args.timesteps)
    return replace(config, train=train_cfg, dataset=args.dataset or config.dataset, diffusion=diffusion)


def progress_bar(total: int, enabled: bool) -> Callable:
    from tqdm import tqdm

    bar = tqdm(total=total, desc="training", unit="it", disable=not enabled, file=sys.stderr)

    def update(step: int, stats: dict[str, float]) -> None:
        bar.n = step
        bar.set_postfix({k: f"{v:.3f}" for k, v in stats.items()}, refresh=False)
        bar.refresh()

    return update


def train_ddgan(args: argparse.Namespace) -> Path:
    """Train DDGAN, then write samples.png from the checkpoint's (EMA) generator."""
    config = ddgan_config(args)
    device = resolve_device(args.device)
    image_size = getattr(config.generator, "image_size", None)
    data = build_dataset(config.dataset, root=args.data_root, train=True, download=args.download,
                         image_size=image_size, seed=config.train.seed)
    if tuple(data.shape) != tuple(config.generator.data_shape):
        raise SystemExit(f"dataset {config.dataset!r} gives items of shape {tuple(data.shape)} but preset "
                         f"{args.preset!r} models {tuple(config.generator.data_shape)}; pick a matching preset")
    world = ddgan_train.World() if args.single_process else ddgan_train.World(_rank(), _world_size())
    total = ddgan_train.iters_per_epoch(data, config.train, world) * config.train.num_epoch
    total = total if args.max_steps is None else min(total, args.max_steps)
    rank0 = world.rank == 0
    if rank0:
        print(f"training ddgan preset={config.preset} dataset={config.dataset} ({len(data)} items) on {device}, "
              f"{total} iterations -> {args.out}", file=sys.stderr)
    state = ddgan_train.train(config, data, args.out, device=device, resume=args.resume, max_steps=args.max_steps,
                              num_workers=args.num_workers, progress=progress_bar(total, rank0 and not args.quiet),
                              world=ddgan_train.World() if args.single_process else None)
    ckpt = args.out / ddgan_train.CHECKPOINT_NAME
    if rank0:
        n = 2000 if len(config.generator.data_shape) == 1 else args.grid_n
        samples = ddgan_model.load(ckpt, device).sample(n, config.diffusion.num_timesteps, seed=0)
        reference = torch.stack([data[i][0] for i in range(min(len(data), 2000))]) if samples.ndim == 2 else None
        grid = write_grid(samples, args.out / "samples.png", reference=reference)
        print(f"done: step {state.step}, checkpoint {ckpt}, samples {grid}", file=sys.stderr)
    return ckpt


BASELINES = {  # family: (configs, train, model) modules of baselines/
    "ddpm": (ddpm_configs, ddpm_train, ddpm_model),
    "stylegan2": (sg2_configs, sg2_train, sg2_model),
}


def baseline_config(args: argparse.Namespace, configs_module):
    """The preset with the command-line overrides that its training config has; others are an error."""
    base = configs_module.preset(args.preset)
    if args.timesteps is not None or args.epochs is not None:
        raise ValueError(f"--timesteps and --epochs apply to --model ddgan, not {args.model}")
    wanted = {"steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "lr_g": args.lr_g,
              "lr_d": args.lr_d, "seed": args.seed, "checkpoint_every": args.checkpoint_every}
    names = {f.name for f in fields(base.train)}
    given = {k: v for k, v in wanted.items() if v is not None}
    if set(given) - names:
        raise ValueError(f"--{sorted(set(given) - names)[0].replace('_', '-')} does not apply to --model {args.model}")
    return replace(base, dataset=args.dataset or base.dataset, train=replace(base.train, **given))


def train_baseline(args: argparse.Namespace) -> Path:
    """Train a baseline (single process), then write samples.png from its EMA network at its default steps."""
    configs_module, train_module, model_module = BASELINES[args.model]
    config = baseline_config(args, configs_module)
    device = resolve_device(args.device)
    data = build_dataset(config.dataset, root=args.data_root, train=True, download=args.download,
                         image_size=config.data_shape[-1] if len(config.data_shape) == 3 else None,
                         seed=config.train.seed)
    if tuple(data.shape) != tuple(config.data_shape):
        raise SystemExit(f"dataset {config.dataset!r} gives items of shape {tuple(data.shape)} but preset "
                         f"{args.preset!r} models {tuple(config.data_shape)}; pick a matching preset")
    total = config.train.steps if args.max_steps is None else min(config.train.steps, args.max_steps)
    print(f"training {args.model} preset={config.name} dataset={config.dataset} ({len(data)} items) on {device}, "
          f"{total} steps -> {args.out}", file=sys.stderr)
    from tqdm import tqdm

    bar = tqdm(total=total, desc="training", unit="it", disable=args.quiet, file=sys.stderr)

    def update(step: int, stats: dict[str, float]) -> None:
        bar.update(step - bar.n)
        bar.set_postfix({k: f"{v:.4f}" for k, v in stats.items()}, refresh=False)

    state = train_module.train(config, ddpm_train.dataset_tensor(data), args.out, device=device, resume=args.resume,
                               max_steps=args.max_steps, meta=provenance(device), progress=update)
    bar.close()
    ckpt = args.out / train_module.CHECKPOINT_NAME
    model = model_module.load(ckpt, device)
    samples = model.sample(2000 if len(config.data_shape) == 1 else args.grid_n, model.default_steps, seed=0)
    reference = torch.stack([data[i][0] for i in range(min(len(data), 2000))]) if samples.ndim == 2 else None
    grid = write_grid(samples, args.out / "samples.png", reference=reference)
    print(f"done: step {state.step}, checkpoint {ckpt}, samples {grid}", file=sys.stderr)
    return ckpt


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


TRAINERS: dict[str, Callable[[argparse.Namespace], Path]] = {
    "ddgan": train_ddgan, "ddpm": train_baseline, "stylegan2": train_baseline,
}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        TRAINERS[args.model](args)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (FileExistsError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
