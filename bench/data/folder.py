"""A folder of images (CelebA-HQ, LSUN exports) read lazily: RGB, Resize + CenterCrop as DDGAN's LSUN."""

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from bench.data.errors import DatasetCorruptError, DatasetNotFoundError
from bench.data.memory import pick_size
from bench.images import eight_bit

EXTENSIONS = (".bmp", ".jpeg", ".jpg", ".png", ".webp")
SIXTEEN_BIT = ("I;16", "I;16L", "I;16B", "I;16N")  # Pillow's modes of a 16-bit greyscale PNG
DEFAULT_IMAGE_SIZE = 256
FIX = ("Fix: pass --root (root=...) pointing to a folder that holds the images, in subfolders or not, "
       "e.g. an export of CelebA-HQ or LSUN.")


def list_images(root: str | Path) -> list[Path]:
    """Files under root, recursively, ending in one of EXTENSIONS (any case), sorted by relative path; hidden
    files and folders (macOS's ._x.png resource forks, __MACOSX) are not images and are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetNotFoundError(f"image folder not found: {root} is not a directory. {FIX}")
    found = (p for p in root.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
             and not any(part.startswith(".") or part == "__MACOSX" for part in p.relative_to(root).parts))
    files = sorted(p.relative_to(root) for p in found)
    if not files:
        raise DatasetNotFoundError(
            f"image folder {root} holds no images (searched recursively for {', '.join(EXTENSIONS)}). {FIX}")
    return [root / f for f in files]


def load_image(path: Path, image_size: int) -> Tensor:
    """[3, image_size, image_size] float32 in [-1, 1]: RGB, shorter side resized, centre cropped."""
    from PIL import Image
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional as TF

    try:
        with Image.open(path) as img:
            img = _eight_bit(img, path).convert("RGB")
    except OSError as e:  # PIL's UnidentifiedImageError and "image file is truncated" are OSErrors
        raise DatasetCorruptError(f"{path}: not a readable image ({e}); export it again or remove it from the "
                                  f"folder") from e
    img = TF.resize(img, image_size, interpolation=InterpolationMode.BILINEAR, antialias=True)
    img = TF.center_crop(img, [image_size, image_size])
    return TF.pil_to_tensor(img).float() / 127.5 - 1


def _eight_bit(img: Any, path: Path) -> Any:
    """img with 8 bits per channel: 16-bit greyscale scaled down (Image.convert would clip it to white); 32-bit
    integer and float images are refused."""
    import numpy as np
    from PIL import Image

    if img.mode in SIXTEEN_BIT or (img.mode == "I" and img.format == "PNG"):  # older Pillow opens 16-bit PNGs as I
        return Image.fromarray(eight_bit(torch.from_numpy(np.asarray(img, dtype=np.int32))).numpy())  # mode L
    if img.mode in ("I", "F"):
        raise DatasetCorruptError(f"{path}: a 32-bit {'float' if img.mode == 'F' else 'integer'} image; convert it "
                                  f"to 8 or 16 bits per channel (PNG or JPEG)")
    return img


class ImageFolder(Dataset):
    """Items (x [3, S, S] in [-1, 1], label -1), read from `files` one at a time."""

    def __init__(self, files: list[Path], image_size: int, name: str = "image-folder"):
        self.name, self.files, self.image_size = name, files, image_size
        self.shape, self.num_modes, self.hflip = (3, image_size, image_size), None, True
        self.labels = torch.full((len(files),), -1, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        return load_image(self.files[i], self.image_size), self.labels[i]


def build_image_folder(*, root: str | Path | None = None, train: bool = True, download: bool = False,
                       size: int | None = None, seed: int = 0, image_size: int | None = None) -> ImageFolder:
    """All images under root, or the first `size` (DDGAN's LSUN Church uses the first 120,000).

    x is [3, S, S] with S = image_size (default 256); label is -1. train, download and seed are unused.
    `hflip` is True: upstream trains CelebA-HQ and LSUN with random horizontal flips (bench.data.augment).
    """
    if root is None:
        raise ValueError(f"image-folder reads files: pass root=<folder of images> (--root). {FIX}")
    files = list_images(root)
    n = pick_size("image-folder", size, len(files), len(files))
    return ImageFolder(files[:n], image_size or DEFAULT_IMAGE_SIZE)
