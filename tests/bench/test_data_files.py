"""Tests for bench.data on disk formats: MNIST idx files and CIFAR-10 python batches (fakes), and their errors."""

import gzip
import hashlib
import pickle
import struct
import tarfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch

from bench.data import DatasetCorruptError, DatasetNotFoundError, build_dataset, cifar, mnist
from bench.train import parse_args as train_args
from tests.bench.test_data import check_contract

# MNIST on fake idx files.

def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX format: big-endian magic 0x08 (ubyte) << 8 | ndim, then each dimension as a big-endian uint32."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def fake_mnist(root: Path, n_train: int = 12, n_test: int = 4, gz: bool = False) -> Path:
    """Image i of a split is filled with the value i + 1 and labelled i % 10."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        imgs = np.repeat(np.arange(1, n + 1, dtype=np.uint8)[:, None, None], 28, 1).repeat(28, 2)
        write_idx(raw / f"{prefix}-images-idx3-ubyte", imgs)
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    if gz:
        for f in mnist.MNIST_FILES:
            (raw / f"{f}.gz").write_bytes(gzip.compress((raw / f).read_bytes()))
            (raw / f).unlink()
    return raw


def test_mnist_reads_fake_idx_files(tmp_path):
    fake_mnist(tmp_path)
    ds = build_dataset("mnist", root=tmp_path)
    assert len(ds) == 12 and not ds.hflip
    check_contract(ds, (1, 32, 32), 10)
    x, y = ds[3]
    assert int(y) == 3 and (x[:, 2:30, 2:30] == 4 / 127.5 - 1).all()
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (x[0][border] == -1).all()  # DDGAN's Pad(2) pads with 0, i.e. -1
    test = build_dataset("mnist", root=tmp_path, train=False, size=3, image_size=16)
    assert len(test) == 3 and test.shape == (1, 16, 16) and test[0][0].shape == (1, 16, 16)


def test_damaged_mnist_files_are_named_with_what_is_wrong(tmp_path):
    """A truncated idx file, another kind of idx file in a file's place, and a split whose label file is the
    other split's: DatasetCorruptError naming the file, not torchvision's reshape or index errors."""
    raw = fake_mnist(tmp_path)
    images = raw / "train-images-idx3-ubyte"
    whole = images.read_bytes()
    images.write_bytes(whole[:-5])
    with pytest.raises(DatasetCorruptError, match=r"train-images-idx3-ubyte: \d+ bytes, but its header declares "
                                                  r"\(12, 28, 28\).*truncated"):
        build_dataset("stacked-mnist", root=tmp_path)
    images.write_bytes(whole)
    (raw / "t10k-labels-idx1-ubyte").write_bytes((raw / "t10k-images-idx3-ubyte").read_bytes())
    with pytest.raises(DatasetCorruptError, match=r"t10k-labels-idx1-ubyte: not an idx file of 1-D .*0x803"):
        build_dataset("mnist", root=tmp_path, train=False)
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(4) % 10)
    with pytest.raises(DatasetCorruptError, match="12 images of 28x28 and .* 4 labels.*swapped"):
        build_dataset("stacked-mnist", root=tmp_path)


def test_stacked_mnist_recipe(tmp_path):
    fake_mnist(tmp_path)
    ds = build_dataset("stacked-mnist", root=tmp_path, seed=1)
    assert len(ds) == 24 and ds.num_modes == 1000 and not ds.hflip  # 2 x len(train), as upstream
    check_contract(ds, (3, 32, 32), 1000)
    for c in range(3):  # each channel: two permutations of the 12 base images
        assert ds.index[:, c].bincount(minlength=12).tolist() == [2] * 12
        assert sorted(ds.index[:12, c].tolist()) == list(range(12))
    x, y = ds[5]
    r, g, b = ds.index[5].tolist()
    torch.testing.assert_close(x[:, 16, 16], torch.tensor([r + 1, g + 1, b + 1]) / 127.5 - 1)
    assert int(y) == 100 * (r % 10) + 10 * (g % 10) + b % 10
    again = build_dataset("stacked-mnist", root=tmp_path, seed=1)
    torch.testing.assert_close(ds.index, again.index, atol=0, rtol=0)


def mnist_missing_message(raw: Path, missing: str) -> str:
    return (f"MNIST not found: missing {missing} in {raw}. Fix: download train-images-idx3-ubyte.gz, "
            "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz from "
            f"https://ossci-datasets.s3.amazonaws.com/mnist/ into {raw}/ and pass --download (download=True), "
            "which checks and extracts them without network access; or extract them there yourself; or pass "
            "--download on a machine with internet access.")


def test_mnist_missing_error_message(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("stacked-mnist", root=tmp_path)
    assert str(err.value) == mnist_missing_message(raw, ", ".join(mnist.MNIST_FILES))
    fake_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("mnist", root=tmp_path)
    assert str(err.value) == mnist_missing_message(raw, "t10k-labels-idx1-ubyte")
    assert isinstance(err.value, FileNotFoundError)
    (raw / "t10k-labels-idx1-ubyte").write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=f"MNIST's files are in {raw} itself, but the root is the folder "
                                                   f"above MNIST/raw/: pass {tmp_path}$"):
        build_dataset("mnist", root=raw)  # the raw folder itself given as the root


def test_train_takes_the_data_folder_as_root_too_as_the_data_errors_name_it():
    for flag in ("--data-root", "--root"):
        args = train_args(["--preset", "stacked-mnist", "--out", "o", flag, "../shared/data"])
        assert args.data_root == Path("../shared/data")


def test_mnist_download_offline_error(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", [(tmp_path / "no-mirror").as_uri() + "/"])  # fails like no network
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("mnist", root=tmp_path, download=True)
    raw = tmp_path / "MNIST" / "raw"
    assert str(err.value) == (f"MNIST download into {raw} failed (no internet access?). "
                              + mnist_missing_message(raw, ", ".join(mnist.MNIST_FILES)))
    assert isinstance(err.value.__cause__, RuntimeError)


def test_mnist_download_extracts_local_gz_offline(tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    raw = fake_mnist(tmp_path, gz=True)
    md5 = [(f, hashlib.md5((raw / f).read_bytes()).hexdigest()) for f, _ in MNIST.resources]
    monkeypatch.setattr(MNIST, "resources", md5)  # the fake .gz files stand in for the official ones
    monkeypatch.setattr(MNIST, "mirrors", [(tmp_path / "no-mirror").as_uri() + "/"])
    with pytest.raises(DatasetNotFoundError):
        build_dataset("mnist", root=tmp_path)
    assert len(build_dataset("mnist", root=tmp_path, download=True)) == 12


# CIFAR-10 on fake python batches.

def fake_cifar(root: Path, per_batch: int = 3) -> Path:
    """The official layout with per_batch random images per batch; returns the batches folder."""
    folder = root / cifar.FOLDER
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i, name in enumerate([*cifar.TRAIN_FILES, *cifar.TEST_FILES]):
        entry = {"batch_label": name, "labels": [(i + k) % 10 for k in range(per_batch)],
                 "data": rng.randint(0, 256, size=(per_batch, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(k) for k in range(10)]}))
    return folder


def cifar_missing_message(root: Path, missing: str, found: str = "") -> str:
    return (f"CIFAR-10 not found: missing {missing} in {root / 'cifar-10-batches-py'}. {found}"
            "Fix: download https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz "
            f"(MD5 c58f30108f718f92721af3b95e74349a) and either extract it into {root} "
            f"(tar xzf cifar-10-python.tar.gz -C {root}) so that {root / 'cifar-10-batches-py'}/ holds "
            f"data_batch_1..5 and test_batch, or put the tarball at {root / 'cifar-10-python.tar.gz'} and pass "
            "--download (download=True), which checks and extracts it without network access; or pass "
            "--download on a machine with internet access.")


@pytest.mark.parametrize("train,n,first", [(True, 15, "data_batch_1"), (False, 3, "test_batch")])
def test_cifar10_reads_fake_batches(tmp_path, train, n, first):
    folder = fake_cifar(tmp_path)
    ds = cifar.build_cifar10(root=tmp_path, train=train, verify=False)
    assert len(ds) == n and ds.name == "cifar10" and ds.hflip
    check_contract(ds, (3, 32, 32), 10)
    row = pickle.loads((folder / first).read_bytes())["data"][1]  # rows are R, G, B planes, each row-major
    x, y = ds[1]
    pixels = ((x + 1) * 127.5).round().to(torch.uint8)
    assert pixels[0, 5, 7] == row[5 * 32 + 7] and pixels[2, 3, 1] == row[2048 + 3 * 32 + 1]
    assert int(y) == (0 if train else 5) + 1
    small = cifar.build_cifar10(root=tmp_path, train=train, verify=False, size=2, image_size=16)
    assert len(small) == 2 and small[0][0].shape == (3, 16, 16) and small.shape == (3, 16, 16)


def test_cifar10_md5_check_rejects_fake_batches(tmp_path):
    folder = fake_cifar(tmp_path)
    path = folder / "data_batch_1"
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(DatasetCorruptError) as err:
        build_dataset("cifar10", root=tmp_path)  # the registry always verifies
    assert str(err.value) == (
        f"{path} has MD5 {actual}, expected c99cafc152244af753f735de768cd75f: it is truncated, corrupt or not "
        f"the official CIFAR-10 python batch. Fix: delete {folder} and extract "
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz again, or pass --download.")


def test_cifar10_missing_error_message(tmp_path, monkeypatch):
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar10", root=tmp_path)
    missing = "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5"
    assert str(err.value) == cifar_missing_message(tmp_path, missing)
    tarball = tmp_path / "cifar-10-python.tar.gz"
    tarball.write_bytes(b"not extracted")
    md5 = hashlib.md5(b"not extracted").hexdigest()
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar10", root=tmp_path, train=False)
    found = (f"{tarball} exists but its MD5 is {md5}, not {cifar.TARBALL_MD5}: it is truncated or another file; "
             f"delete it. ")
    assert str(err.value) == cifar_missing_message(tmp_path, "test_batch", found)
    monkeypatch.setattr(cifar, "TARBALL_MD5", md5)  # as if it were the real tarball
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar10", root=tmp_path, train=False)
    assert f"{tarball} exists but is not extracted: pass --download (download=True) to extract it. " in str(err.value)


def test_cifar10_root_at_the_batches_folder_names_the_folder_above(tmp_path):
    folder = fake_cifar(tmp_path)
    with pytest.raises(DatasetNotFoundError, match=f"in {folder} itself.*pass {tmp_path}$"):
        cifar.build_cifar10(root=folder, verify=False)


def test_cifar10_download_offline_error(tmp_path, monkeypatch):
    import torchvision.datasets.utils as tv_utils

    def offline(*args, **kwargs):
        raise URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(tv_utils, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError) as err:
        build_dataset("cifar10", root=tmp_path, download=True)
    missing = "data_batch_1, data_batch_2, data_batch_3, data_batch_4, data_batch_5"
    assert str(err.value) == (f"CIFAR-10 download into {tmp_path} failed (no internet access?). "
                              + cifar_missing_message(tmp_path, missing))
    assert isinstance(err.value.__cause__, URLError)


def test_cifar10_download_extracts_local_tarball_offline(tmp_path, monkeypatch):
    staging = tmp_path / "staging"
    fake_cifar(staging)
    tarball = tmp_path / "data" / cifar.TARBALL
    tarball.parent.mkdir()
    with tarfile.open(tarball, "w:gz") as tar:
        tar.add(staging / cifar.FOLDER, arcname=cifar.FOLDER)
    monkeypatch.setattr(cifar, "TARBALL_MD5", hashlib.md5(tarball.read_bytes()).hexdigest())
    monkeypatch.setattr(cifar, "URL", (tmp_path / "no-server" / cifar.TARBALL).as_uri())
    x, _ = cifar.read_cifar10(tarball.parent, train=False, download=True, verify=False)
    assert x.shape == (3, 3, 32, 32)


class Payload:
    """Unpickling this would call print: the batch reader must refuse it before that happens."""

    def __reduce__(self):
        return (print, ("code ran",))


def test_cifar_batch_with_code_is_refused_even_unverified(tmp_path, capsys):
    folder = fake_cifar(tmp_path)
    (folder / "data_batch_1").write_bytes(pickle.dumps({"data": Payload(), "labels": []}))
    with pytest.raises(DatasetCorruptError, match="refusing to unpickle builtins.print"):
        cifar.read_cifar10(tmp_path, train=True, verify=False)
    assert "code ran" not in capsys.readouterr().out
