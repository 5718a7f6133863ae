"""MNIST via torchvision, padded to 32x32, and Stacked MNIST as DDGAN's datasets_prep/stackmnist_data.py."""

import struct
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from bench.data.errors import DatasetCorruptError, DatasetNotFoundError
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
    check_split(raw, train)
    return MNIST(root, train=train, download=False)


def _idx_shape(path: Path, ndim: int, raw: Path) -> tuple[int, ...]:
    """The item count and sizes an idx file of unsigned bytes declares, checked against its length; a wrong
    magic number or length is a DatasetCorruptError naming the file."""
    fix = (f"extract it again from its .gz (with the .gz files in {raw}, --download checks their MD5 and extracts "
           f"them offline), or download it again from {MIRROR}")
    with open(path, "rb") as f:
        header = f.read(4 + 4 * ndim)
    magic = struct.unpack(">I", header[:4])[0] if len(header) >= 4 else None
    if magic != 0x0800 | ndim or len(header) < 4 + 4 * ndim:
        raise DatasetCorruptError(f"{path}: not an idx file of {ndim}-D unsigned bytes (magic number "
                                  f"{magic if magic is None else hex(magic)}, expected {hex(0x0800 | ndim)}); {fix}")
    dims = struct.unpack(f">{ndim}I", header[4:])
    want = len(header) + int(torch.tensor(dims).prod())
    if path.stat().st_size != want:
        raise DatasetCorruptError(f"{path}: {path.stat().st_size} bytes, but its header declares {dims} "
                                  f"({want} bytes): truncated or corrupt; {fix}")
    return dims


def check_split(raw: Path, train: bool) -> None:
    """A split's idx files before torchvision reads them: magic numbers, lengths, 28x28 images, and as many
    labels as images (DatasetCorruptError naming the files otherwise)."""
    prefix = "train" if train else "t10k"
    images, labels = raw / f"{prefix}-images-idx3-ubyte", raw / f"{prefix}-labels-idx1-ubyte"
    n, *hw = _idx_shape(images, 3, raw)
    (m,) = _idx_shape(labels, 1, raw)
    if hw != [28, 28] or n != m:
        raise DatasetCorruptError(f"{images} holds {n} images of {hw[0]}x{hw[1]} and {labels} {m} labels; MNIST's "
                                  f"{prefix} split has as many 28x28 images as labels: are files of the two splits "
                                  f"swapped? Download them again from {MIRROR}")


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
