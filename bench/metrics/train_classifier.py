"""python -m bench.metrics.train_classifier: train the digit classifier used as a feature extractor and mode counter.

Trains DigitsCNN on a split's train images with random affine augmentation, reports the accuracy on the test
split, and writes the weights (format ddgan-bench/digits-cnn/1: config, state_dict, meta with this command,
the accuracy and provenance) plus a JSON of the meta beside them. The committed
bench/metrics/weights/digits-cnn.pt was made by:
  python -m bench.metrics.train_classifier --dataset digits --out bench/metrics/weights/digits-cnn.pt
For Stacked MNIST, train one on MNIST (needs the MNIST files; see bench.data) and pass it as the mnist-cnn weights:
  python -m bench.metrics.train_classifier --dataset mnist --root DATA --image-size 32 --out mnist-cnn.pt
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import asdict
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm import tqdm

from bench.data.digits import load_digit_images
from bench.data.memory import resize_square, to_unit_range
from bench.data.mnist import load_mnist
from bench.metrics.digits_cnn import FORMAT, ClassifierConfig, DigitsCNN, build
from ddgan_ref.io import save_atomic, write_json_atomic
from ddgan_ref.provenance import provenance


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.metrics.train_classifier", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", choices=("digits", "mnist"), default="digits",
                   help="digits: scikit-learn's bundled 8x8 digits (offline); mnist: needs --root (default digits)")
    p.add_argument("--root", type=Path, help="folder holding MNIST/raw/ (mnist only)")
    p.add_argument("--image-size", type=int, default=16, help="input side the classifier resizes to (default 16)")
    p.add_argument("--epochs", type=int, default=60, help="passes over the train split (default 60)")
    p.add_argument("--batch-size", type=int, default=64, help="default 64")
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate, cosine-decayed (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="initialisation, batches and augmentation (default 0)")
    p.add_argument("--out", type=Path, required=True, help="weights file to write (.pt); a .json of its meta too")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def load_split(dataset: str, train: bool, image_size: int, root: Path | None) -> tuple[Tensor, Tensor]:
    """Images [n, 1, S, S] in [-1, 1] and labels [n]."""
    if dataset == "digits":
        return load_digit_images(train, image_size)
    if root is None:
        raise SystemExit("--dataset mnist reads files: pass --root <folder holding MNIST/raw/>")
    images, labels = load_mnist(root, train)
    return resize_square(to_unit_range(images), image_size), labels


def augment(x: Tensor, generator: torch.Generator) -> Tensor:
    """Random affine per image: rotation +-12 degrees, scale 0.9..1.1, shift +-10 % of the side."""
    n = len(x)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(12)
    scale = 0.9 + 0.2 * torch.rand(n, generator=generator)
    shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * 0.2
    cos, sin = angle.cos() / scale, angle.sin() / scale
    theta = torch.stack([torch.stack([cos, -sin, shift[:, 0]], 1), torch.stack([sin, cos, shift[:, 1]], 1)], 1)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x + 1, grid, align_corners=False, padding_mode="zeros") - 1  # background stays -1


@torch.no_grad()
def accuracy(net: DigitsCNN, images: Tensor, labels: Tensor) -> float:
    net.eval()
    predicted = torch.cat([net(images[s:s + 512])[1].argmax(1) for s in range(0, len(images), 512)])
    return (predicted == labels).double().mean().item()


def train(net: DigitsCNN, images: Tensor, labels: Tensor, args: argparse.Namespace) -> None:
    generator = torch.Generator().manual_seed(args.seed)
    steps = args.epochs * math.ceil(len(images) / args.batch_size)
    opt = torch.optim.Adam(net.parameters(), lr=args.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    net.train()
    with tqdm(total=steps, desc="training classifier", disable=args.quiet, file=sys.stderr) as bar:
        for _ in range(args.epochs):
            for idx in torch.randperm(len(images), generator=generator).split(args.batch_size):
                loss = F.cross_entropy(net(augment(images[idx], generator))[1], labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                schedule.step()
                bar.update(1)
                bar.set_postfix(loss=f"{loss.item():.3f}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    train_x, train_y = load_split(args.dataset, True, args.image_size, args.root)
    test_x, test_y = load_split(args.dataset, False, args.image_size, args.root)
    config = ClassifierConfig(image_size=args.image_size)
    with torch.random.fork_rng():  # seeded layer initialisation, global RNG state left as it was
        torch.manual_seed(args.seed)
        net = build(config)
    print(f"training {config} on {args.dataset} ({len(train_x)} train, {len(test_x)} test)", file=sys.stderr)
    train(net, train_x, train_y, args)
    acc = accuracy(net, test_x, test_y)
    meta = {"dataset": args.dataset, "train_size": len(train_x), "test_size": len(test_x), "test_accuracy": acc,
            "epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed,
            "command": "python -m bench.metrics.train_classifier " + " ".join(sys.argv[1:] if argv is None else argv),
            **provenance("cpu")}
    payload = {"format": FORMAT, "config": asdict(config), "state_dict": net.state_dict(), "meta": meta}
    save_atomic(payload, args.out)
    write_json_atomic({"format": FORMAT, "config": asdict(config), "meta": meta}, args.out.with_suffix(".json"))
    print(f"test accuracy {acc:.4f} on {len(test_x)} {args.dataset} test images; wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
