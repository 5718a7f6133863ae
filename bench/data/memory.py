"""In-memory datasets of points or images: items are (x in [-1, 1] float32, int64 label)."""

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

from bench.data.errors import DatasetTooSmallError


def to_unit_range(x: Tensor) -> Tensor:
    """uint8 pixels 0..255 -> float32 in [-1, 1] (x / 127.5 - 1); float input is returned as float32."""
    if x.dtype == torch.uint8:
        return x.float() / 127.5 - 1
    return x.float()


def pick_size(name: str, size: int | None, default: int, available: int | None = None) -> int:
    """`size` if given (a positive int, at most `available`: DatasetTooSmallError past it), else `default`."""
    if size is None:
        return default
    if size < 1:
        raise ValueError(f"{name}: size must be >= 1, got {size}")
    if available is not None and size > available:
        raise DatasetTooSmallError(name, available, size)
    return size


def resize_square(x: Tensor, size: int) -> Tensor:
    """Bilinear, antialiased resize of [..., C, H, W] floats to [..., C, size, size], clamped to [-1, 1]."""
    if x.shape[-2:] == (size, size):
        return x
    lead = x.shape[:-3]
    y = F.interpolate(x.reshape(-1, *x.shape[-3:]), size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
    return y.reshape(*lead, *y.shape[-3:]).clamp(-1, 1)


class InMemoryDataset(Dataset):
    """Items (x, label) from tensors in memory.

    data: [N, 2] float points, or [N, C, H, W] images (uint8 0..255, or float already in [-1, 1]);
    labels: [N] int64 (-1 where undefined). uint8 images are scaled, and resized to `image_size`, per item.
    """

    def __init__(self, name: str, data: Tensor, labels: Tensor, *, num_modes: int | None,
                 image_size: int | None = None, hflip: bool = False):
        if len(data) != len(labels):
            raise ValueError(f"{name}: {len(data)} items but {len(labels)} labels")
        self.name, self.data, self.labels = name, data, labels.long()
        self.num_modes, self.image_size, self.hflip = num_modes, image_size, hflip
        shape = tuple(data.shape[1:])
        self.shape = shape if image_size is None else (shape[0], image_size, image_size)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> tuple[Tensor, Tensor]:
        x = to_unit_range(self.data[i])
        if self.image_size is not None:
            x = resize_square(x, self.image_size)
        return x, self.labels[i]
