"""python -m bench.sample: draw N samples from a checkpoint into a PNG grid or a folder of images (PNG, or JPEG as
the DDGAN paper's FID protocol wrote them).

Image i is drawn from seed + i, so any batch size gives the same images.
Examples:
  python -m bench.sample --checkpoint runs/tiny/checkpoint.pt --n 64 --out grid.png
  python -m bench.sample --checkpoint runs/cifar10/checkpoint.pt --n 50000 --out samples/ --batch-size 500
  python -m bench.sample --checkpoint runs/cifar10/checkpoint.pt --n 50000 --out samples-jpeg/ --sample-format jpeg
  python -m bench.sample --checkpoint runs/cifar10/checkpoint.pt --n 50000 --out samples/ --speed bf16+cl+graphs
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from bench import preflight, speed
from bench.devices import device_arg, resolve_device
from bench.grid import write_grid
from bench.images import FORMATS, earlier_images, write_folder
from bench.preflight import Preflight, PreflightError, positive_int, writable_folder
from bench.protocol import Generator
from bench.registry import family_of_format
from ddgan_ref.io import CheckpointError, peek_format, save_atomic, write_json_atomic
from ddgan_ref.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.sample", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", type=Path, required=True,
                   help="a checkpoint.pt written by bench.train (any family of bench.registry; told apart by its "
                        "format)")
    p.add_argument("--n", type=positive_int, required=True, help="number of samples")
    p.add_argument("--out", type=Path, required=True,
                   help="a .png path for one grid, or a folder for one PNG per image (000000.png, ...) plus "
                        "samples.pt (the float tensor) and samples.json (what made them)")
    p.add_argument("--sample-format", choices=sorted(FORMATS), default="png",
                   help="files of an --out folder: png (lossless, the default) or jpeg (save_image to .jpg, quality "
                        "75, as the DDGAN paper's FID; bench.metrics reads it only with --allow-jpeg)")
    p.add_argument("--seed", type=int, default=0, help="image i uses seed + i (default 0)")
    p.add_argument("--steps", type=positive_int,
                   help="sampling steps (default: the model's own: DDGAN its trained T, DDPM T = 1000 (fewer: "
                        "DDIM), StyleGAN2 1)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per forward batch (default 100)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--speed", default="fp32", metavar="SETTING",
                   help="sampling setting (bench.speed): fp32 (float32 eager, the default and the reference) or "
                        "tokens joined by +: a precision fp32|tf32|bf16|fp16, cl (channels-last), compile[=MODE], "
                        "graphs (CUDA graphs), e.g. bf16+cl on a CPU, bf16+cl+graphs on a GPU")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the image files an --out folder already holds (without it they are an error: the "
                        "metrics would read them with the new ones)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def draw(model: Generator, n: int, steps: int, seed: int, batch_size: int, quiet: bool) -> torch.Tensor:
    """n samples in batches; batch b covers images [b0, b0 + size) with seeds seed + b0 + i. n may be 0 (a
    torchrun rank whose shard is empty): an empty tensor, which World.gather leaves out."""
    chunks = [torch.empty(0)]
    with tqdm(total=n, desc="sampling", unit="img", disable=quiet, file=sys.stderr) as bar:
        for start in range(0, n, batch_size):
            size = min(batch_size, n - start)
            chunks.append(model.sample(size, steps, seed=seed + start).cpu())
            bar.update(size)
    return torch.cat(chunks[1:]) if n else chunks[0]


def resolve_steps(model: Generator, steps: int | None) -> int:
    """`steps`, or the model's default when None; ValueError if the model does not support it."""
    steps = steps if steps is not None else model.default_steps
    if steps not in model.supported_steps:
        raise ValueError(f"--steps {steps} is not supported by this model; it supports {model.supported_steps}")
    return steps


def load_model(path: Path, device: torch.device) -> Generator:
    """The model of any family's checkpoint, told apart by its `format` entry (bench.registry.FAMILIES)."""
    fmt = peek_format(path)
    try:
        f = family_of_format(fmt)
    except KeyError as error:
        raise CheckpointError(f"{path}: {error.args[0]}") from None
    return f.load(path, device)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check = Preflight()
    model = check.check(lambda: load_model(args.checkpoint, resolve_device(args.device)))
    setting = check.check(lambda: speed.parse(args.speed))
    if model is not None and setting is not None:
        model = check.check(lambda: speed.apply(model, setting))
    steps = check.check(lambda: resolve_steps(model, args.steps)) if model is not None else None
    grid = args.out.suffix.lower() == ".png"
    need = 0 if grid or model is None else output_bytes(model, args.checkpoint, args.n)
    check.check(lambda: writable_folder(args.out.parent if grid else args.out, need_bytes=need))
    check.check(lambda: check_out(args))
    earlier = check.check(lambda: [] if grid else earlier_images(args.out, args.overwrite))
    try:
        check.raise_if_any()
        print(f"sampling {args.n} from {args.checkpoint} ({model.name}, {steps} steps, {setting.label}) -> "
              f"{args.out}", file=sys.stderr)
        samples = draw(model, args.n, steps, args.seed, args.batch_size, args.quiet)
        for f in earlier:  # only once the new samples exist, so a failed run loses nothing
            f.unlink(missing_ok=True)
        write(samples, model, steps, args)
    except (PreflightError, OSError) as e:  # OSError: a write failure after the checks (disk full): one line
        return preflight.report(e)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


def check_out(args: argparse.Namespace) -> None:
    """ValueError for an --out that --sample-format cannot apply to or that looks like an image of another type."""
    suffix = args.out.suffix.lower()
    if suffix == ".png" and args.sample_format != "png":
        raise ValueError(f"--sample-format {args.sample_format} applies to an --out folder; {args.out} is one PNG "
                         f"grid")
    if suffix in (".jpg", ".jpeg", ".webp"):
        raise ValueError(f"--out {args.out}: a grid is written as .png, and a folder's name should not look like an "
                         f"image; pass a .png path or a folder (with --sample-format jpeg for JPEG files)")


def item_shape(model: Generator, checkpoint: Path) -> tuple[int, ...]:
    """The shape of one sample of the checkpoint's model, from its family (told apart by the file's format)."""
    return family_of_format(peek_format(checkpoint)).data_shape(model.config)


def output_bytes(model: Generator, checkpoint: Path, n: int) -> int:
    """About what a folder of n samples takes: samples.pt (float32) plus at most a byte per value in image files."""
    return n * math.prod(item_shape(model, checkpoint)) * 5


def write(samples: torch.Tensor, model: Generator, steps: int, args: argparse.Namespace) -> None:
    """A grid (.png --out), or a folder: samples.pt, samples.json and one image file per sample."""
    if args.out.suffix.lower() == ".png":
        write_grid(samples, args.out)
        return
    args.out.mkdir(parents=True, exist_ok=True)
    save_atomic(samples, args.out / "samples.pt")
    record = {"checkpoint": str(args.checkpoint), "model": model.name, "n": args.n, "seed": args.seed,
              "steps": steps, "batch_size": args.batch_size, "sample_format": args.sample_format,
              "speed": speed.describe(speed.parse(args.speed), model.device),
              "command": sys.argv, **provenance(model.device)}
    write_json_atomic(record, args.out / "samples.json")
    if samples.ndim == 4:
        write_folder(samples, args.out, args.sample_format)


if __name__ == "__main__":
    sys.exit(main())
