"""python -m bench.metrics: FID/KID/IS (or their digits/identity counterparts), precision/recall/density/coverage
and mode coverage of samples against a dataset split, written as JSON.

Samples come from a samples.pt or a folder of PNGs written by bench.sample, or are drawn from a checkpoint.
Examples:
  python -m bench.metrics --dataset stacked-digits --checkpoint runs/sd/checkpoint.pt --n 26000 --out m.json
  python -m bench.metrics --dataset cifar10 --root DATA --samples samples/ --inception-weights \\
      weights-inception-2015-12-05-6726825d.pth --out metrics.json
Inception weights are never downloaded unless --download-inception is given; reference features are cached
under --cache-dir, keyed by dataset, split, N, extractor and weights hash.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from bench.data import DATASETS, DatasetCorruptError, DatasetNotFoundError
from bench.devices import resolve_device
from bench.metrics import cache
from bench.metrics.digits_cnn import ClassifierWeightsError
from bench.metrics.evaluate import Knobs, Reference, evaluate
from bench.metrics.extractors import EXTRACTORS, InceptionWeightsError
from bench.sample import draw, load_model, resolve_steps
from ddgan_ref.io import CheckpointError, write_json_atomic
from ddgan_ref.provenance import provenance

LOSSY = (".jpg", ".jpeg", ".webp")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", type=Path, help="samples.pt (a float tensor in [-1, 1]) or a folder of PNGs")
    src.add_argument("--checkpoint", type=Path, help="a bench.train checkpoint to draw --n samples from")
    p.add_argument("--n", type=int, help="samples to draw from --checkpoint (required with it)")
    p.add_argument("--steps", type=int, help="sampling steps for --checkpoint (default: the model's own)")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed + i (--checkpoint; default 0)")
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="reference dataset")
    p.add_argument("--split", choices=("train", "test"), default="train", help="reference split (default train)")
    p.add_argument("--n-ref", type=int, help="reference size (default: as many as the samples, capped by the split)")
    p.add_argument("--ref-seed", type=int, default=0, help="draw of synthetic/stacked reference sets (default 0)")
    p.add_argument("--root", help="data folder of file-backed datasets (mnist, cifar10, image-folder)")
    p.add_argument("--extractor", choices=sorted(EXTRACTORS),
                   help="feature extractor (default: identity for 2D, digits-cnn for digits, mnist-cnn for MNIST, "
                        "inception-v3-compat for CIFAR-10 and folders)")
    p.add_argument("--inception-weights", type=Path, help="torch-fidelity's weights-inception-2015-12-05-6726825d"
                                                           ".pth or pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    p.add_argument("--download-inception", action="store_true", help="download the Inception weights if missing")
    p.add_argument("--extractor-weights", type=Path, help="weights of digits-cnn/mnist-cnn (default: committed)")
    p.add_argument("--classifier-weights", type=Path, help="mode classifier weights when it is not the extractor")
    p.add_argument("--nearest-k", type=int, default=5, help="k of precision/recall/density/coverage (default 5)")
    p.add_argument("--kid-subsets", type=int, default=100, help="KID subsets (default 100)")
    p.add_argument("--kid-subset-size", type=int, default=1000, help="KID subset size, capped by N (default 1000)")
    p.add_argument("--batch-size", type=int, default=100, help="images per extractor batch (default 100)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--cache-dir", type=Path, help=f"reference feature cache (default {cache.default_root()})")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the reference cache")
    p.add_argument("--out", type=Path, help="JSON file to write (metrics, protocol, command, provenance)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    return p.parse_args(argv)


def read_samples(path: Path) -> torch.Tensor:
    """A samples.pt tensor, or the PNGs of a folder (sorted by name) as uint8 [N, C, H, W]."""
    from torchvision.io import ImageReadMode, decode_image

    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    if not path.is_dir():
        raise FileNotFoundError(f"--samples {path} does not exist")
    lossy = [f.name for f in path.iterdir() if f.suffix.lower() in LOSSY]
    if lossy:
        raise ValueError(f"{path} holds lossy images ({lossy[0]}, ...): metrics read PNGs only, since JPEG shifts "
                         f"FID. Write PNGs, e.g. with python -m bench.sample --out DIR")
    files = sorted(f for f in path.iterdir() if f.suffix.lower() == ".png")
    if not files:
        raise FileNotFoundError(f"{path} holds no .png files")
    mode = ImageReadMode.UNCHANGED
    return torch.stack([decode_image(str(f), mode=mode) for f in files])


def draw_samples(checkpoint: Path, n: int | None, steps: int | None, seed: int, batch_size: int, quiet: bool,
                 device: torch.device) -> tuple[torch.Tensor, dict]:
    """n samples of a checkpoint's model (any family), and where they came from."""
    if n is None:
        raise ValueError("--checkpoint needs --n (how many samples to draw)")
    model = load_model(checkpoint, device)
    steps = resolve_steps(model, steps)
    samples = draw(model, n, steps, seed, batch_size, quiet)
    return samples, {"checkpoint": str(checkpoint), "model": model.name, "steps": steps, "seed": seed}


def progress_bars(quiet: bool):
    def start(stage: str, total: int):
        bar = tqdm(total=total, desc=stage, unit="img", disable=quiet, file=sys.stderr, leave=False)
        return lambda k: (bar.update(k), bar.n >= total and bar.close())
    return start


def run(args: argparse.Namespace, command: list[str]) -> dict:
    device = resolve_device(args.device)
    samples, source = (draw_samples(args.checkpoint, args.n, args.steps, args.seed, args.batch_size, args.quiet,
                                    device) if args.checkpoint
                       else (read_samples(args.samples), {"samples": str(args.samples)}))
    inception = (args.extractor or "") == "inception-v3-compat" or (
        args.extractor is None and args.dataset in ("cifar10", "image-folder"))
    weights = args.inception_weights if inception else args.extractor_weights
    print(f"evaluating {len(samples)} samples against {args.dataset} ({args.split})", file=sys.stderr)
    result = evaluate(samples, Reference(args.dataset, args.split, args.n_ref, args.ref_seed, args.root),
                      args.extractor, weights=weights, classifier_weights=args.classifier_weights,
                      download_inception=args.download_inception,
                      knobs=Knobs(nearest_k=args.nearest_k, kid_subsets=args.kid_subsets,
                                  kid_subset_size=args.kid_subset_size),
                      batch_size=args.batch_size, device=device, cache_root=args.cache_dir,
                      use_cache=not args.no_cache, progress=progress_bars(args.quiet))
    return {**result, "source": source, "command": ["python", "-m", "bench.metrics", *command],
            **provenance(device)}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        record = run(args, sys.argv[1:] if argv is None else argv)
    except (InceptionWeightsError, ClassifierWeightsError, DatasetNotFoundError, DatasetCorruptError,
            CheckpointError, FileNotFoundError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    for name, value in record["metrics"].items():
        print(f"{name:28s} {value:.6g}" if isinstance(value, float) else f"{name:28s} {value}")
    if args.out:
        write_json_atomic(record, args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
