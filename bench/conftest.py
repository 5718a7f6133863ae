"""pytest-benchmark set-up shared by bench/: the device and preset selection, and the machine facts.

`pytest bench/ --benchmark-json out.json` benchmarks CPU-sized presets on a machine without a GPU (the
2D gaussians25 models: minutes) and the paper's cifar10 presets where a CUDA device is visible or with
`--bench-full`. Each JSON's machine_info gets a `ddgan_bench` entry: torch version, threads, CPU model and,
through nvidia-ml-py, the GPU's name, driver, memory and power limit (or the reason they are missing).
"""

from __future__ import annotations

import pytest
import torch

from bench.devices import exact_float32
from ddgan_ref.provenance import describe_device

CPU_PRESET, FULL_PRESET = "gaussians25", "cifar10"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-full", action="store_true",
                     help=f"benchmark the {FULL_PRESET} presets even without a GPU (DDPM's 1000 steps take hours on "
                          f"a CPU); the default is {FULL_PRESET} with a CUDA device, {CPU_PRESET} without")


def bench_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@pytest.fixture(scope="session")
def device() -> torch.device:
    """The device every model benchmark runs on: the first CUDA device if visible (float32 there as exact as in
    the CLIs), else the CPU."""
    dev = bench_device()
    if dev.type == "cuda":
        exact_float32()
    return dev


@pytest.fixture(scope="session")
def preset(request: pytest.FixtureRequest, device: torch.device) -> str:
    """The model preset of the sampling benchmarks: cifar10 on a GPU or with --bench-full, else gaussians25."""
    return FULL_PRESET if device.type == "cuda" or request.config.getoption("--bench-full") else CPU_PRESET


@pytest.fixture
def benchmark_median(benchmark):
    """Reads the test's benchmark median (seconds per round) once it has run: NaN under --benchmark-disable, which
    runs each benchmark once as a smoke test of bench/ and keeps no statistics."""
    return lambda: benchmark.stats.stats.median if benchmark.stats else float("nan")


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["ddgan_bench"] = {"torch": torch.__version__, **describe_device(bench_device())}
