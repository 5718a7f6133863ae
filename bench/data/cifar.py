"""CIFAR-10 from the official python batches (torchvision's CIFAR10 layout), MD5-checked by default."""

import hashlib
import pickle
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from bench.data.errors import DatasetCorruptError, DatasetNotFoundError
from bench.data.memory import InMemoryDataset, pick_size

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
TARBALL = "cifar-10-python.tar.gz"
TARBALL_MD5 = "c58f30108f718f92721af3b95e74349a"
FOLDER = "cifar-10-batches-py"
MD5 = {  # torchvision 0.29.1 CIFAR10.train_list / test_list
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
TRAIN_FILES = ("data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5")
TEST_FILES = ("test_batch",)


def _missing_message(root: Path, missing: list[str]) -> str:
    folder, tarball = root / FOLDER, root / TARBALL
    found, md5 = "", _md5(tarball) if tarball.is_file() else None
    if md5 is not None and md5 != TARBALL_MD5:
        found = (f"{tarball} exists but its MD5 is {md5}, not {TARBALL_MD5}: it is truncated or another file; "
                 f"delete it. ")
    elif md5 is not None:
        found = f"{tarball} exists but is not extracted: pass --download (download=True) to extract it. "
    return (f"CIFAR-10 not found: missing {', '.join(missing)} in {folder}. {found}"
            f"Fix: download {URL} (MD5 {TARBALL_MD5}) and either extract it into {root} "
            f"(tar xzf {TARBALL} -C {root}) so that {folder}/ holds data_batch_1..5 and test_batch, "
            f"or put the tarball at {tarball} and pass --download (download=True), which checks and "
            f"extracts it without network access; or pass --download on a machine with internet access.")


def _download(root: Path, missing: list[str]) -> None:
    from torchvision.datasets.utils import download_and_extract_archive

    try:
        download_and_extract_archive(URL, str(root), filename=TARBALL, md5=TARBALL_MD5)
    except (OSError, RuntimeError) as e:
        raise DatasetNotFoundError(f"CIFAR-10 download into {root} failed (no internet access?). "
                                   + _missing_message(root, missing)) from e


def _md5(path: Path) -> str:
    md5 = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            md5.update(chunk)
    return md5.hexdigest()


def _check_md5(path: Path, expected: str) -> None:
    found = _md5(path)
    if found != expected:
        raise DatasetCorruptError(
            f"{path} has MD5 {found}, expected {expected}: it is truncated, corrupt or not the "
            f"official CIFAR-10 python batch. Fix: delete {path.parent} and extract {URL} again, "
            f"or pass --download.")


class _BatchUnpickler(pickle.Unpickler):
    """Unpickles a CIFAR-10 batch (a dict of lists, bytes and numpy arrays) and refuses every other global,
    so a tampered file cannot run code even when the MD5 check is off."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self.ALLOWED:
            raise DatasetCorruptError(f"refusing to unpickle {module}.{name}: a CIFAR-10 batch holds only "
                                      f"lists, bytes and numpy arrays")
        return super().find_class(module, name)


def read_cifar10(root: str | Path, train: bool = True, *, download: bool = False,
                 verify: bool = True) -> tuple[Tensor, Tensor]:
    """One split: images [n, 3, 32, 32] uint8 (50,000 train / 10,000 test) and labels [n] int64.

    Read here rather than by torchvision.datasets.CIFAR10 so that the MD5 check (of the split's files only)
    can be switched off with verify=False for test fixtures. With download=True a missing split is fetched,
    or extracted from root/cifar-10-python.tar.gz when that has the right MD5 (no network needed).
    """
    root = Path(root)
    files = TRAIN_FILES if train else TEST_FILES
    missing = [f for f in files if not (root / FOLDER / f).is_file()]
    if missing and download:
        _download(root, missing)
        missing = [f for f in files if not (root / FOLDER / f).is_file()]
    if missing and all((root / f).is_file() for f in files):
        raise DatasetNotFoundError(f"CIFAR-10's batches are in {root} itself, but the root is the folder above "
                                   f"{FOLDER}/: pass {root.parent if root.name == FOLDER else 'that folder'}")
    if missing:
        raise DatasetNotFoundError(_missing_message(root, missing))
    images, labels = [], []
    for f in files:
        if verify:
            _check_md5(root / FOLDER / f, MD5[f])
        with open(root / FOLDER / f, "rb") as fh:
            entry = _BatchUnpickler(fh, encoding="latin1").load()
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(entry["labels"])
    return torch.from_numpy(np.concatenate(images)), torch.tensor(labels, dtype=torch.long)


def build_cifar10(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                  size: int | None = None, seed: int = 0, image_size: int | None = None,
                  verify: bool = True) -> InMemoryDataset:
    """CIFAR-10 [3, 32, 32] (or image_size), label = class; `size` keeps the first items; seed is unused.

    The dataset never flips; `hflip` is True because upstream DDGAN trains CIFAR-10 with random horizontal
    flips (apply bench.data.augment.random_hflip to training batches).
    """
    if root is None:
        raise ValueError("cifar10 reads files: pass root=<folder holding cifar-10-batches-py/> (--root)")
    images, labels = read_cifar10(root, train, download=download, verify=verify)
    n = pick_size("cifar10", size, len(images), len(images))
    size_arg = None if image_size in (None, 32) else image_size
    return InMemoryDataset("cifar10", images[:n], labels[:n], num_modes=10, image_size=size_arg, hflip=True)
