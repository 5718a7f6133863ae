"""MNIST via torchvision, padded to 32x32, and Stacked MNIST as DDGAN's datasets_prep/stackmnist_data.py."""

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.data.errors import DatasetNotFoundError
from bench.data.memory import InMemoryDataset, pick_size
from bench.data.stacked import StackedDataset, stack_indices

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
               "t10k-labels-idx1-ubyte")
MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"


def _missing_message(raw: Path, missing: list[str]) -> str:
    gz = ", ".join(f"{f}.gz" for f in MNIST_FILES)
    return (f"MNIST not found: missing {', '.join(missing)} in {raw}. "
            f"Fix: download {gz} from {MIRROR} into {raw}/ and pass --download (download=True), which checks "
            f"and extracts them without network access; or extract them there yourself; "
            f"or pass --download on a machine with internet access.")


def _open(root: Path, train: bool, download: bool):
    from torchvision.datasets import MNIST

    raw = root / "MNIST" / "raw"
    if download:
        try:
            return MNIST(root, train=train, download=True)
        except RuntimeError as e:
            missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
            raise DatasetNotFoundError(f"MNIST download into {raw} failed (no internet access?). "
                                       + _missing_message(raw, missing)) from e
    missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
    if missing and all((root / f).is_file() for f in MNIST_FILES):
        up = root.parent.parent if root.name == "raw" and root.parent.name == "MNIST" else None
        raise DatasetNotFoundError(f"MNIST's files are in {root} itself, but the root is the folder above "
                                   f"MNIST/raw/: " + (f"pass {up}" if up else f"move them into {raw}/"))
    if missing:
        raise DatasetNotFoundError(_missing_message(raw, missing))
    return MNIST(root, train=train, download=False)


def load_mnist(root: str | Path, train: bool, download: bool = False) -> tuple[Tensor, Tensor]:
    """One split: images [n, 1, 32, 32] uint8 (28x28 zero-padded, as DDGAN's Pad(2)), labels [n] int64.

    torchvision reads the extracted idx files root/MNIST/raw/{train,t10k}-{images-idx3,labels-idx1}-ubyte
    (all four must exist). With download=True it checks the MD5 of the .gz files it downloads, or of .gz
    files already in that folder, which works offline.
    """
    ds = _open(Path(root), train, download)
    return F.pad(ds.data, (2, 2, 2, 2))[:, None], ds.targets.long()


def _root(name: str, root: str | Path | None) -> Path:
    if root is None:
        raise ValueError(f"{name} reads files: pass root=<folder holding MNIST/raw/> (--root)")
    return Path(root)


def build_mnist(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                size: int | None = None, seed: int = 0, image_size: int | None = None) -> InMemoryDataset:
    """MNIST digits [1, 32, 32] (resized if image_size is not 32), label = class; `size` keeps the first.

    seed is unused.
    """
    images, labels = load_mnist(_root("mnist", root), train, download)
    n = pick_size("mnist", size, len(images), len(images))
    size_arg = None if image_size in (None, 32) else image_size
    return InMemoryDataset("mnist", images[:n], labels[:n], num_modes=10, image_size=size_arg)


def build_stacked_mnist(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                        size: int | None = None, seed: int = 0,
                        image_size: int | None = None) -> StackedDataset:
    """`size` seeded triples of a split's digits as RGB [3, 32, 32], mode 100 r + 10 g + b (1000 modes).

    Default size 2 x len(split) (120,000 for train), two permutations per channel as upstream; no flips.
    """
    images, labels = load_mnist(_root("stacked-mnist", root), train, download)
    n = pick_size("stacked-mnist", size, 2 * len(images))
    index = stack_indices(len(images), n, torch.Generator().manual_seed(seed))
    size_arg = None if image_size in (None, 32) else image_size
    return StackedDataset("stacked-mnist", images, labels, index, image_size=size_arg)
