"""Images on disk: a folder of one file per image, written as torchvision's save_image writes them and read back in
name order. PNG (lossless) is the default everywhere; JPEG exists to reproduce the DDGAN paper's FID protocol
(save_image to .jpg, PIL's default quality 75; ../shared/spec/metrics.md) and is read only when asked for, since
its artefacts move FID (results/jpeg-vs-png-fid.md measures by how much)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import torch
from torch import Tensor

# torchvision is imported where it is used: importing it costs a command about 1.5 s of start-up (it imports
# torch._dynamo), and most commands that import this module write or read no image.

FORMATS = {"png": ".png", "jpeg": ".jpg"}  # --sample-format -> file suffix
LOSSLESS = (".png",)
LOSSY = (".jpg", ".jpeg", ".webp")


def write_folder(images: Tensor, folder: Path, fmt: str = "png", start: int = 0) -> list[Path]:
    """Images [N, C, H, W] in [-1, 1] (or uint8) as folder/000000.png, ... (or .jpg), numbered from `start`:
    save_image's rounding and, for JPEG, PIL's default quality 75."""
    from torchvision.utils import save_image

    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose from {sorted(FORMATS)}")
    folder.mkdir(parents=True, exist_ok=True)
    unit = images.float() / 255 if images.dtype == torch.uint8 else (images.float() + 1) / 2
    paths = [folder / f"{i:06d}{FORMATS[fmt]}" for i in range(start, start + len(images))]
    for image, path in zip(unit, paths, strict=True):
        try:
            save_image(image, path)
        except OSError:  # a full disk: no truncated image is left behind (the ones before it are whole)
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)
            raise
    return paths


def earlier_images(folder: Path, overwrite: bool) -> list[Path]:
    """The image files already in `folder`, which a command writing a new set there replaces (overwrite=True) or
    refuses to mix with: the metrics read every image of a folder, so a shorter re-run would be measured together
    with the rest of the earlier one."""
    found = sorted(f for f in folder.iterdir() if f.suffix.lower() in LOSSLESS + LOSSY) if folder.is_dir() else []
    if found and not overwrite:
        raise FileExistsError(f"{folder} already holds {len(found)} image files ({found[0].name}, ...) that the new "
                              f"images would mix with; choose a new --out, or pass --overwrite to replace them")
    return found


def as_stored(images: Tensor, fmt: str) -> Tensor:
    """Images [N, C, H, W] in [-1, 1] as a folder of `fmt` files would give them back: unchanged for PNG (lossless;
    the metrics quantise as save_image does), uint8 [N, 3, H, W] after a JPEG round trip at quality 75 for jpeg."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; choose from {sorted(FORMATS)}")
    if fmt == "png":
        return images
    from torchvision.io import ImageReadMode, decode_image
    from torchvision.utils import save_image

    out = []
    for image in images:
        buffer = io.BytesIO()
        save_image((image.float().cpu() + 1) / 2, buffer, format="jpeg")
        out.append(decode_image(torch.frombuffer(bytearray(buffer.getvalue()), dtype=torch.uint8), ImageReadMode.RGB))
    return torch.stack(out)


def image_files(path: Path, allow_lossy: bool = False) -> list[Path]:
    """The folder's image files in name order; lossy files are an error unless allowed."""
    if not path.is_dir():
        raise FileNotFoundError(f"{path} is not a folder of images")
    lossy = sorted(f.name for f in path.iterdir() if f.suffix.lower() in LOSSY)
    if lossy and not allow_lossy:
        raise ValueError(f"{path} holds lossy images ({lossy[0]}, ...): metrics read PNGs unless told otherwise, "
                         f"since JPEG shifts FID. Write PNGs (python -m bench.sample --out DIR), or pass --allow-jpeg "
                         f"to measure JPEG files on purpose (the DDGAN paper's protocol).")
    kinds = LOSSLESS + (LOSSY if allow_lossy else ())
    files = sorted(f for f in path.iterdir() if f.suffix.lower() in kinds)
    if not files:
        raise FileNotFoundError(f"{path} holds no {' or '.join(kinds)} files")
    return files


def read_folder(path: Path, allow_lossy: bool = False, rgb: bool = False) -> Tensor:
    """The folder's images as uint8 [N, C, H, W] (C as stored, or 3 with rgb=True, as torch-fidelity reads them)."""
    from torchvision.io import ImageReadMode

    files = image_files(path, allow_lossy)
    mode = ImageReadMode.RGB if rgb else ImageReadMode.UNCHANGED
    images = [_decode(f, mode) for f in files]
    shapes = {tuple(x.shape) for x in images}
    if len(shapes) > 1:
        raise ValueError(f"{path} holds images of {len(shapes)} different shapes ({sorted(shapes)[:2]}, ...); "
                         f"resize them to one size first")
    return torch.stack(images)


def eight_bit(x: Tensor) -> Tensor:
    """16-bit pixel values (0..65535) as uint8, x / 257 rounded: how a 16-bit PNG is read wherever 8 bits are."""
    return ((x.to(torch.int32) * 255 + 32767) // 65535).to(torch.uint8)


def _decode(path: Path, mode) -> Tensor:
    """One image file as uint8 (a 16-bit PNG scaled down, x / 257 rounded); ValueError naming it when it is
    truncated (a write that was killed) or not an image."""
    from torchvision.io import decode_image

    try:
        x = decode_image(str(path), mode=mode)
    except RuntimeError as e:
        raise ValueError(f"{path}: not a readable image ({str(e).splitlines()[0]}); write it again or remove it") from e
    if x.dtype == torch.uint16:
        return eight_bit(x)
    if x.dtype != torch.uint8:
        raise ValueError(f"{path}: {x.dtype} pixels; the metrics read 8- or 16-bit images (PNG)")
    return x
