"""python -m bench.data.export: write the first N images of a dataset split as a folder of PNGs (or JPEGs), the
reference folders that `python -m bench.metrics compare` and pytorch-fid / clean-fid read.

Examples:
  python -m bench.data.export --dataset mnist --root ../shared/data --split train --n 10000 --out runs/mnist-train
  python -m bench.data.export --dataset stacked-mnist --root ../shared/data --n 26000 --out runs/smnist
  python -m bench.data.export --dataset mnist --root ../shared/data --split test --n 500 --format jpeg --out runs/j
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from torch.utils.data import Subset
from tqdm import tqdm

from bench import preflight
from bench.data import DATASETS, DatasetCorruptError, DatasetNotFoundError, build_dataset, stack_items
from bench.images import FORMATS, earlier_images, write_folder
from bench.preflight import Preflight, PreflightError, positive_int, writable_folder
from ddgan_ref.io import write_json_atomic
from ddgan_ref.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.data.export", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="an image dataset of bench.data")
    p.add_argument("--root", help="data folder of file-backed datasets (mnist, stacked-mnist, cifar10, image-folder)")
    p.add_argument("--split", choices=("train", "test"), default="train", help="default train")
    p.add_argument("--n", type=positive_int, help="images to write (default: the whole split)")
    p.add_argument("--seed", type=int, default=0, help="draw of synthetic and stacked datasets (default 0)")
    p.add_argument("--format", choices=sorted(FORMATS), default="png",
                   help="png (lossless, the default) or jpeg (save_image's .jpg, quality 75)")
    p.add_argument("--out", type=Path, required=True, help="folder to write: 000000.png, ... and export.json")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the image files --out already holds (without it they are an error: the metrics "
                        "would read them with the new ones)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    check = Preflight()
    ds = check.check(lambda: build_dataset(args.dataset, root=args.root, train=args.split == "train", size=args.n,
                                           seed=args.seed), (DatasetNotFoundError, DatasetCorruptError, ValueError))
    if ds is not None and len(ds.shape) != 3:
        check.add(f"{args.dataset} holds points of shape {ds.shape}, not images")
    check.check(lambda: writable_folder(args.out))
    earlier = check.check(lambda: earlier_images(args.out, args.overwrite))
    try:
        check.raise_if_any()
    except PreflightError as e:
        return preflight.report(e)
    for f in earlier:
        f.unlink(missing_ok=True)
    print(f"writing {len(ds)} {args.dataset} ({args.split}) images as {args.format} -> {args.out}", file=sys.stderr)
    for start in tqdm(range(0, len(ds), 500), desc="writing", unit="batch of 500", file=sys.stderr,
                      disable=args.quiet):
        write_folder(stack_items(Subset(ds, range(start, min(start + 500, len(ds))))), args.out, args.format, start)
    write_json_atomic({"dataset": args.dataset, "split": args.split, "n": len(ds), "seed": args.seed,
                       "format": args.format, "command": ["python", "-m", "bench.data.export", *(argv or sys.argv[1:])],
                       **provenance("cpu")}, args.out / "export.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
