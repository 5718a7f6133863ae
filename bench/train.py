"""python -m bench.train: train a model family on a dataset, with progress, resume and a sample grid at the end.

Examples:
  python -m bench.train --model ddgan --preset gaussians25 --out runs/gaussians25
  python -m bench.train --model ddgan --preset cifar10 --data-root ~/data --out runs/cifar10 --resume
  torchrun --nproc_per_node 2 -m bench.train --model ddgan --preset tiny --out runs/tiny-ddp
  python -m bench.train --model ddpm --preset gaussians25 --out runs/ddpm-gaussians25
  python -m bench.train --model stylegan2 --preset gaussians25 --out runs/sg2-gaussians25
  python -m bench.train --model ddgan --preset cifar10 --data-root ~/data --out runs/cifar10-bf16 --speed bf16+cl
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from bench import preflight, speed
from bench.data import DATASETS, build_dataset, stack_items
from bench.devices import device_arg, resolve_device
from bench.grid import write_grid
from bench.lock import FolderLock, FolderLocked
from bench.preflight import Preflight, PreflightError, nonnegative_int, positive_int, writable_folder
from bench.registry import (
    FAMILIES,
    Family,
    Progress,
    TrainOverrides,
    TrainRun,
    check_resume,
    family,
    trained_speed,
)
from bench.speed import SpeedConfig
from ddgan_ref.io import CheckpointError, TrainingDiverged, config_to_dict, load_file, write_json_atomic
from ddgan_ref.provenance import describe_device

CHECKPOINT_NAME = "checkpoint.pt"  # every family's run folder holds its checkpoint under this name


@dataclass(frozen=True)
class TrainJob:
    """One training, as the CLI and the trilemma harness ask for it: a family's resolved config, where it goes,
    and how it runs."""

    family: str
    preset: str
    config: Any
    out: Path
    device: torch.device
    resume: bool = False
    max_steps: int | None = None  # an absolute iteration count, for every family
    data_root: Path | None = None
    download: bool = False
    num_workers: int = 0
    single_process: bool = False
    grid_n: int = 64
    grid: bool = True  # write out/samples.png at the end (the harness skips it between curve segments)
    quiet: bool = False
    speed: SpeedConfig = SpeedConfig()  # the iterations' precision and memory format


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(FAMILIES), default="ddgan", help="model family to train (default ddgan)")
    p.add_argument("--preset", required=True, help="config preset; " + "; ".join(
        f"{name}: {', '.join(sorted(f.presets))}" for name, f in FAMILIES.items()))
    p.add_argument("--dataset", help=f"dataset (default: the preset's): {', '.join(sorted(DATASETS))}")
    p.add_argument("--data-root", "--root", dest="data_root", type=Path,
                   help="folder with the dataset files (cifar10, mnist, stacked-mnist, image-folder); --root, as the "
                        "other commands call it, is the same")
    p.add_argument("--download", action="store_true", help="download the dataset into --data-root if missing")
    p.add_argument("--out", type=Path, required=True, help="run folder: config.json, checkpoint.pt, samples.png")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out from its checkpoint.pt (an error if there is none, unless "
                        "--fresh-ok)")
    p.add_argument("--fresh-ok", action="store_true", help="with --resume: start a fresh run when --out holds no "
                                                           "checkpoint (for restart loops)")
    p.add_argument("--max-steps", type=positive_int,
                   help="stop once this many iterations are done in all (a checkpoint is written); a resumed "
                        "run counts the iterations before it")
    preset_overrides(p)
    p.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--speed", default="fp32", metavar="SETTING",
                   help="precision and memory format of the training iterations, in bench.speed's notation: "
                        "fp32 (default) | bf16 | tf32 (CUDA), each optionally +cl (channels-last), e.g. bf16+cl. "
                        "bf16 runs the steps under autocast; weights, optimiser state and checkpoints stay "
                        "float32, and the checkpoint's meta records the setting as train_speed. On a CPU bf16 pays "
                        "off where it multiplies bfloat16 natively (AVX512-BF16, AMX)")
    p.add_argument("--single-process", action="store_true",
                   help="train in this process alone even under torchrun (the trilemma harness trains on rank 0)")
    p.add_argument("--num-workers", type=nonnegative_int, default=0,
                   help="data-loading worker processes (default 0; DDGAN only: the baselines draw batches in memory)")
    p.add_argument("--grid-n", type=positive_int, default=64,
                   help="samples in the final grid (default 64; 2D data: 2000 points)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def preset_overrides(parser: argparse.ArgumentParser) -> None:
    """The preset's training settings a run may override (TrainOverrides), as a group of their own in --help."""
    p = parser.add_argument_group("overrides of the preset's settings")
    p.add_argument("--epochs", type=positive_int, help="override the preset's number of epochs (ddgan)")
    p.add_argument("--timesteps", type=positive_int, help="override the preset's number of denoising steps T (ddgan)")
    p.add_argument("--steps", type=positive_int,
                   help="override the preset's number of training steps (ddpm, stylegan2)")
    p.add_argument("--lr", type=float, help="override the learning rate (ddpm)")
    p.add_argument("--batch-size", type=positive_int, help="override the per-process batch size")
    p.add_argument("--lr-g", type=float, help="override the generator learning rate (ddgan, stylegan2)")
    p.add_argument("--lr-d", type=float, help="override the discriminator learning rate (ddgan, stylegan2)")
    p.add_argument("--seed", type=int, help="override the training seed (default: the preset's)")
    p.add_argument("--checkpoint-every", type=positive_int,
                   help="iterations between checkpoints (default: the preset's)")


def job_from_args(args: argparse.Namespace, setting: speed.SpeedConfig) -> TrainJob:
    """The TrainJob the command line asks for under `setting` (--speed, parsed by the caller); unknown presets
    (KeyError) and overrides the family has no field for (ValueError) are refused here, before any work."""
    f = family(args.model)
    overrides = TrainOverrides(dataset=args.dataset, timesteps=args.timesteps, epochs=args.epochs, steps=args.steps,
                               batch_size=args.batch_size, lr=args.lr, lr_g=args.lr_g, lr_d=args.lr_d, seed=args.seed,
                               checkpoint_every=args.checkpoint_every)
    return TrainJob(args.model, args.preset, f.configure(f.preset(args.preset), overrides), args.out,
                    resolve_device(args.device), resume=args.resume, max_steps=args.max_steps, data_root=args.data_root,
                    download=args.download, num_workers=args.num_workers, single_process=args.single_process,
                    grid_n=args.grid_n, quiet=args.quiet, speed=setting)


def training_data(f: Family, config: Any, job: TrainJob):
    """The config's dataset, checked against the shape the config models."""
    shape = f.data_shape(config)
    data = build_dataset(config.dataset, root=job.data_root, train=True, download=job.download,
                         image_size=shape[-1] if len(shape) == 3 else None, seed=config.train.seed)
    if tuple(data.shape) != shape:
        raise ValueError(f"dataset {config.dataset!r} gives items of shape {tuple(data.shape)} but preset "
                         f"{job.preset!r} models {shape}; pick a matching preset")
    return data


def progress_bar(total: int, enabled: bool) -> tuple[Progress, tqdm]:
    bar = tqdm(total=total, desc="training", unit="it", disable=not enabled, file=sys.stderr)

    def update(step: int, stats: dict[str, float]) -> None:
        bar.n = step
        bar.set_postfix({k: f"{v:.4g}" for k, v in stats.items()}, refresh=False)
        bar.refresh()

    return update, bar


def train_model(job: TrainJob) -> Path:
    """Train the job's family, then (rank 0) write out/samples.png from the checkpoint's sampling network;
    returns the checkpoint path."""
    f = family(job.family)
    data = training_data(f, job.config, job)
    rank, world_size = (0, 1) if job.single_process else (_env_int("RANK", 0), _env_int("WORLD_SIZE", 1))
    total = f.total_steps(job.config, data, world_size)
    total = total if job.max_steps is None else min(total, job.max_steps)
    if rank == 0:
        print(f"training {job.family} preset={job.preset} dataset={job.config.dataset} ({len(data)} items) on "
              f"{job.device} under {job.speed.label}, {total} iterations -> {job.out}", file=sys.stderr)
        print(resume_message(job, total), file=sys.stderr)
        if job.device.type == "cpu" and job.speed.precision == "bf16" and not speed.native_bf16_cpu():
            print("note: this CPU has no native bfloat16 (AVX512-BF16 or AMX): oneDNN emulates it, and bf16 is likely "
                  "slower than fp32 here", file=sys.stderr)
    update, bar = progress_bar(total, rank == 0 and not job.quiet)
    run = TrainRun(job.device, resume=job.resume, max_steps=job.max_steps, progress=update,
                   num_workers=job.num_workers, single_process=job.single_process, speed=job.speed)
    try:
        checkpoint = f.train(job.config, data, job.out, run)
    finally:
        bar.close()
    if rank == 0:  # after training: a refused resume leaves the folder's config.json as it was
        write_json_atomic(config_to_dict(job.config), job.out / "config.json")
    if rank == 0 and job.grid:
        grid = sample_grid(f, checkpoint, data, job)
        print(f"done: checkpoint {checkpoint}, samples {grid}", file=sys.stderr)
    return checkpoint


def resume_message(job: TrainJob, total: int) -> str:
    """What a run does with its folder: resumes from step N of M, or starts fresh (and why)."""
    checkpoint = job.out / CHECKPOINT_NAME
    if not job.resume:
        return "starting a fresh run"
    if not checkpoint.is_file():
        return f"no checkpoint in {job.out}: starting fresh"
    step = (load_file(checkpoint, mmap=True).get("meta") or {}).get("step")
    if step is not None and step >= total:
        return f"{checkpoint} is at step {step}, the end of this run's {total}: nothing to train (raise --max-steps " \
               f"or the preset's budget to go on)"
    return f"resuming from step {step} of {total}" if step is not None else f"resuming from {checkpoint}"


def preflight_job(args: argparse.Namespace) -> TrainJob:
    """The job, after the checks that need no training: its config, the data, the output folder, the resume."""
    check = Preflight()
    setting = check.check(lambda: speed.parse(args.speed))  # apart from the job: a bad one hides no other problem
    job = check.check(lambda: job_from_args(args, setting or speed.SpeedConfig()))
    if job is not None and setting is not None:
        check.check(lambda: speed.check_training(setting, job.device))
    if job is not None:
        check.check(lambda: training_data(family(job.family), job.config, job))
    if job is not None and args.num_workers and not family(job.family).data_workers:
        check.add(f"--num-workers does not apply to --model {job.family}: it draws its batches from the data in "
                  f"memory; drop it")
    check.check(lambda: writable_folder(args.out))
    if job is not None and setting is not None and args.resume:
        check.check(lambda: check_resume(family(job.family), args.out / CHECKPOINT_NAME, job.config, job.speed))
    if args.fresh_ok and not args.resume:
        check.add("--fresh-ok only applies with --resume (it lets a restart loop's first run start fresh); add "
                  "--resume or drop --fresh-ok")
    if args.resume and not (args.out / CHECKPOINT_NAME).is_file() and not args.fresh_ok:
        check.add(f"--resume: {args.out} holds no {CHECKPOINT_NAME}; check the folder, or add --fresh-ok to start a "
                  f"fresh run there")
    if not args.resume and (args.out / CHECKPOINT_NAME).is_file():
        check.add(f"{args.out / CHECKPOINT_NAME} exists: pass --resume to continue that run, or choose another --out")
    check.raise_if_any()
    return job


def training_budget(checkpoint: Path, config: Any, device: torch.device, seconds: float, resumed: bool) -> dict:
    """What a training cost: iterations (the checkpoint's step), images seen, wall-clock seconds of this run
    (only the part after the restart when it resumed), the device and the speed setting it trained under."""
    meta = load_file(checkpoint, mmap=True).get("meta") or {}
    step, batch = meta.get("step"), getattr(getattr(config, "train", None), "batch_size", None)
    return {"iterations": step, "batch_size": batch, "images_seen": step * batch if step and batch else None,
            "seconds": round(seconds, 1), "resumed": resumed, "device": describe_device(device)["name"],
            "speed": trained_speed(meta)}


def sample_grid(f: Family, checkpoint: Path, data, job: TrainJob) -> Path:
    """out/samples.png from the checkpoint: an image grid, or 2000 points over the data's."""
    model = f.load(checkpoint, job.device)
    points = len(f.data_shape(job.config)) == 1
    samples = model.sample(2000 if points else job.grid_n, model.default_steps, seed=0)
    reference = stack_items(torch.utils.data.Subset(data, range(min(len(data), 2000)))) if points else None
    return write_grid(samples, job.out / "samples.png", reference=reference)


def _env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, str(default)))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        job = preflight_job(args)
        with FolderLock(job.out) if _env_int("RANK", 0) == 0 or job.single_process else contextlib.nullcontext():
            train_model(job)
    except PreflightError as e:
        return preflight.report(e)
    except TrainingDiverged as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except (CheckpointError, FolderLocked, FileExistsError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {preflight.message(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # a write failure after the checks (disk full, folder removed): one line, not a trace
        return preflight.report(e)
    return 0


if __name__ == "__main__":
    sys.exit(main())
