"""Tests for bench.data: the registry, embedded datasets, image folders, sizes and augmentation."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import DATASETS, DatasetCorruptError, DatasetNotFoundError, DatasetTooSmallError, build_dataset
from bench.data.augment import random_hflip
from bench.data.folder import EXTENSIONS
from bench.data.memory import resize_square
from bench.data.stacked import StackedDataset, stack_indices
from bench.data.toy import grid_centers, ring_centers

EMBEDDED = {  # name -> (small size for fast tests, item shape, num_modes)
    "gaussians25": (2_000, (2,), 25),
    "ring8": (2_000, (2,), 8),
    "digits": (300, (1, 32, 32), 10),
    "stacked-digits": (300, (3, 32, 32), 1000),
}


def items(ds, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n items stacked: x [n, *shape], labels [n]."""
    xs, ys = zip(*(ds[i] for i in range(min(n, len(ds)))), strict=True)
    return torch.stack(xs), torch.stack(ys)


def check_contract(ds, shape: tuple[int, ...], num_modes: int | None) -> None:
    x, y = items(ds)
    assert ds.shape == shape and x.shape[1:] == shape and ds.num_modes == num_modes
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.isfinite().all() and x.abs().max() <= 1
    assert len(ds.labels) == len(ds) and ds.labels.dtype == torch.int64
    torch.testing.assert_close(y, ds.labels[: len(y)], atol=0, rtol=0)
    assert isinstance(ds.name, str) and isinstance(ds.hflip, bool)


# Registry.

def test_datasets_registry_names():
    assert set(DATASETS) == {"gaussians25", "ring8", "digits", "stacked-digits", "mnist", "stacked-mnist",
                             "cifar10", "image-folder"}


def test_build_dataset_unknown_name_lists_choices():
    with pytest.raises(KeyError, match="unknown dataset 'cifar100'; choose from .*'cifar10'.*'stacked-mnist'"):
        build_dataset("cifar100")


@pytest.mark.parametrize("name", ["mnist", "stacked-mnist", "cifar10", "image-folder"])
def test_build_dataset_file_backed_needs_root(name):
    with pytest.raises(ValueError, match=f"^{name} reads files: pass root="):
        build_dataset(name)


# Embedded datasets.

@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_contract(name):
    size, shape, num_modes = EMBEDDED[name]
    ds = build_dataset(name, size=size)
    assert len(ds) == size and ds.name == name and not ds.hflip
    check_contract(ds, shape, num_modes)
    assert ds.labels.min() >= 0 and ds.labels.max() < num_modes


@pytest.mark.parametrize("name", sorted(EMBEDDED))
def test_embedded_deterministic_by_seed(name):
    size = EMBEDDED[name][0]
    a, b = build_dataset(name, size=size, seed=3), build_dataset(name, size=size, seed=3)
    torch.testing.assert_close(items(a, 64), items(b, 64), atol=0, rtol=0)
    c = build_dataset(name, size=size, seed=4)
    differs = not torch.equal(items(a, 64)[0], items(c, 64)[0])
    assert differs == (name != "digits")  # the digits split is fixed; only sampled data depends on the seed


@pytest.mark.parametrize("name", ["gaussians25", "ring8"])
def test_toy_train_and_test_streams_differ(name):
    train, test = build_dataset(name, size=100), build_dataset(name, size=100, train=False)
    assert not torch.equal(train.data, test.data)


@pytest.mark.parametrize("name,centers,std", [("gaussians25", grid_centers(), 0.01), ("ring8", ring_centers(), 0.008)])
def test_toy_samples_near_their_centres(name, centers, std):
    ds = build_dataset(name)
    assert len(ds) == 100_000 and ds.std == std
    torch.testing.assert_close(ds.centers, centers, atol=0, rtol=0)
    dist = (ds.data - ds.centers[ds.labels]).norm(dim=1)
    assert dist.max() < 6 * std  # a 2D Gaussian radius beyond 6 sigma has probability exp(-18) per point
    assert (dist < 3 * std).float().mean() > 0.98  # chi(2) mass within 3 sigma: 1 - exp(-4.5) = 0.989
    nearest = torch.cdist(ds.data, ds.centers).argmin(dim=1)
    torch.testing.assert_close(nearest, ds.labels, atol=0, rtol=0)
    counts = ds.labels.bincount(minlength=len(centers))
    assert counts.max() - counts.min() <= 1


def test_toy_centres_geometry():
    assert grid_centers().shape == (25, 2) and grid_centers().abs().max() == pytest.approx(0.8)
    torch.testing.assert_close(ring_centers().norm(dim=1), torch.full((8,), 0.8), atol=1e-6, rtol=0)


def test_toy_rejects_image_size():
    with pytest.raises(ValueError, match="gaussians25 holds 2D points; image_size=32 does not apply"):
        build_dataset("gaussians25", image_size=32)


def test_digits_split_is_fixed_and_disjoint():
    train, test = build_dataset("digits"), build_dataset("digits", train=False)
    assert (len(train), len(test)) == (1438, 359)
    flat = torch.cat([train.data, test.data]).flatten(1)
    assert len(flat.unique(dim=0)) >= len(flat) - 10  # sklearn's digits hold a handful of duplicate images
    assert set(test.labels.tolist()) == set(range(10)) == set(train.labels.tolist())


def test_digits_image_size_and_pixel_scale():
    small = build_dataset("digits", image_size=8, train=False)
    from sklearn.datasets import load_digits

    pixels = torch.from_numpy(load_digits().images).float() / 8 - 1
    matches = (small.data[:5, 0, None] == pixels[None]).flatten(2).all(dim=2).any(dim=1)
    assert small.shape == (1, 8, 8) and matches.all()  # image_size 8 is the untouched 8x8 data in [-1, 1]


def test_stacked_digits_default_size_covers_all_modes():
    ds = build_dataset("stacked-digits")
    assert len(ds) == 26_000 and ds.num_modes == 1000
    # 26,000 near-uniform draws over 1000 modes miss one with probability about 1000 * exp(-26).
    assert ds.labels.unique().numel() == 1000
    test = build_dataset("stacked-digits", train=False)
    assert test.labels.unique().numel() == 1000


def test_stacked_digits_channels_are_base_digits():
    ds, digits = build_dataset("stacked-digits", size=50), build_dataset("digits")
    for i in range(5):
        x, y = ds[i]
        idx = ds.index[i]
        torch.testing.assert_close(x, digits.data[idx, 0], atol=0, rtol=0)
        r, g, b = digits.labels[idx].tolist()
        assert int(y) == 100 * r + 10 * g + b


def test_stacked_resized_once_equals_each_triple_resized():
    gen = torch.Generator().manual_seed(0)
    base = torch.randint(0, 256, (7, 1, 32, 32), dtype=torch.uint8, generator=gen)
    index = stack_indices(7, 14, gen)
    full = StackedDataset("s", base, torch.arange(7), index)
    small = StackedDataset("s", base, torch.arange(7), index, image_size=16)
    assert small.shape == (3, 16, 16)
    for i in range(len(small)):
        torch.testing.assert_close(small[i][0], resize_square(full[i][0], 16), atol=0, rtol=0)


# Image folders.

def write_png(path: Path, size: tuple[int, int], color: tuple[int, int, int]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path)


def test_image_folder_reads_recursively_resizes_and_crops(tmp_path):
    write_png(tmp_path / "img0.png", (16, 16), (0, 0, 255))
    write_png(tmp_path / "a" / "b" / "wide.PNG", (40, 20), (255, 0, 0))
    Image.new("L", (10, 30), 255).save(tmp_path / "a" / "grey.bmp")
    (tmp_path / "notes.txt").write_text("not an image")
    ds = build_dataset("image-folder", root=tmp_path, image_size=8)
    assert [f.relative_to(tmp_path).as_posix() for f in ds.files] == ["a/b/wide.PNG", "a/grey.bmp", "img0.png"]
    assert ds.hflip and ds.num_modes is None
    check_contract(ds, (3, 8, 8), None)
    expected = [(1.0, -1.0, -1.0), (1.0, 1.0, 1.0), (-1.0, -1.0, 1.0)]  # red, grey 255 as RGB, blue
    for i, rgb in enumerate(expected):
        x, y = ds[i]
        torch.testing.assert_close(x, torch.tensor(rgb)[:, None, None].expand(3, 8, 8), atol=1e-6, rtol=0)
        assert int(y) == -1
    assert len(build_dataset("image-folder", root=tmp_path, size=2)) == 2


def test_image_folder_centre_crop(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 0))
    img.paste((255, 255, 255), (10, 0, 20, 10))  # a white middle third
    img.save(tmp_path / "x.png")
    x, _ = build_dataset("image-folder", root=tmp_path, image_size=10)[0]
    assert (x == 1).all()  # the 10x10 centre crop of the 30x10 image is all white


def test_image_folder_errors(tmp_path):
    fix = ("Fix: pass --root (root=...) pointing to a folder that holds the images, in subfolders or not, "
           "e.g. an export of CelebA-HQ or LSUN.")
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("image-folder", root=tmp_path / "missing")
    assert str(err.value) == f"image folder not found: {tmp_path / 'missing'} is not a directory. {fix}"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "readme.md").write_text("no images here")
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("image-folder", root=tmp_path)
    assert str(err.value) == (f"image folder {tmp_path} holds no images (searched recursively for "
                              f"{', '.join(EXTENSIONS)}). {fix}")


def test_image_folder_scales_16_bit_skips_hidden_files_and_names_a_broken_image(tmp_path):
    """A 16-bit greyscale PNG is scaled to 8 bits (Image.convert would clip mid-grey to white); macOS's ._x.png
    and __MACOSX entries are not images; a truncated image is a DatasetCorruptError naming the file."""
    Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)).save(tmp_path / "grey16.png")  # 128 * 257
    write_png(tmp_path / "__MACOSX" / "x.png", (4, 4), (0, 0, 0))
    (tmp_path / "._grey16.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    ds = build_dataset("image-folder", root=tmp_path, image_size=4)
    assert [f.name for f in ds.files] == ["grey16.png"]
    torch.testing.assert_close(ds[0][0], torch.full((3, 4, 4), 128 / 127.5 - 1), atol=1e-6, rtol=0)
    write_png(tmp_path / "broken.png", (64, 64), (10, 200, 30))
    (tmp_path / "broken.png").write_bytes((tmp_path / "broken.png").read_bytes()[:60])
    ds = build_dataset("image-folder", root=tmp_path, image_size=4)
    with pytest.raises(DatasetCorruptError, match=r"broken\.png: not a readable image .*remove it from the folder"):
        ds[0]


# Sizes and augmentation.

def test_size_out_of_range_raises(tmp_path):
    with pytest.raises(DatasetTooSmallError, match="digits: holds 359 items, 400 asked for") as info:
        build_dataset("digits", train=False, size=400)
    assert (info.value.available, info.value.asked) == (359, 400)
    with pytest.raises(ValueError, match="ring8: size must be >= 1, got 0"):
        build_dataset("ring8", size=0)


def test_random_hflip_flips_chosen_images():
    x = torch.arange(4 * 2 * 3 * 5, dtype=torch.float32).reshape(4, 2, 3, 5)
    y = random_hflip(x, torch.Generator().manual_seed(0), p=0.5)
    flip = torch.rand(4, generator=torch.Generator().manual_seed(0)) < 0.5
    for i in range(4):
        torch.testing.assert_close(y[i], x[i].flip(-1) if flip[i] else x[i], atol=0, rtol=0)
    torch.testing.assert_close(random_hflip(x, torch.Generator(), p=1.0), x.flip(-1), atol=0, rtol=0)
    torch.testing.assert_close(random_hflip(x, torch.Generator(), p=0.0), x, atol=0, rtol=0)
