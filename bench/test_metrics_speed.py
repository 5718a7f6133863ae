"""Benchmarks (pytest-benchmark): bench.metrics.prdc vs prdc.compute_prdc side by side, a 50k x 50k run with its
peak memory, and feature-extraction throughput (the real FID Inception: ours and torch-fidelity's own, side by side).

Run: pytest bench/test_metrics_speed.py --benchmark-json out.json, then `python -m bench.speedups out.json`
for the prdc ratios (impl "ref" is prdc 0.2, "blocks" is ours; extra_info "first_pass" says how ours ran: the
compiled neighbours kernel is built before timing). The 50k x 50k case runs in a child process so its peak RSS is
its own; it takes a few minutes on 2 CPU cores.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import prdc as prdc_package
import pytest
import torch
import torch_fidelity

from bench.data import build_dataset
from bench.metrics import extractors as fe
from bench.metrics import prdc
from bench.metrics.distances import Points
from bench.metrics.features import extract, to_uint8
from bench.metrics.inception import port_cache_path, write_fidelity_weights
from bench.metrics.neighbours import FirstPass
from ddgan_ref.provenance import describe_device, file_sha256

PRDC_CASES = {"10k-d64": (10_000, 64), "10k-d384": (10_000, 384), "10k-d2048": (10_000, 2048)}  # N = M, dims
GIB = 2**30
CHILD = """
import json, resource, sys, time
import numpy as np
from bench.metrics import prdc
n, d = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
real = rng.standard_normal((n, d), dtype=np.float32)
fake = rng.standard_normal((n, d), dtype=np.float32) + 0.1
start = time.perf_counter()
out = prdc(real, fake, 5)
seconds = time.perf_counter() - start
try:  # VmHWM: this program's own peak; ru_maxrss also counts the parent's RSS when it forked us (Linux)
    peak = next(int(line.split()[1]) * 1024 for line in open("/proc/self/status") if line.startswith("VmHWM:"))
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "metrics": out, "peak_rss_bytes": peak}))
"""


def features(n: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, d), dtype=np.float32), rng.standard_normal((n, d), dtype=np.float32) + 0.1


def run_prdc_package(real, fake):
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints "Num real: ..."
        return prdc_package.compute_prdc(real, fake, 5)


@pytest.mark.parametrize("impl", ["ref", "blocks"])
@pytest.mark.parametrize("case", sorted(PRDC_CASES))
def test_prdc_speed(benchmark, case, impl):
    n, d = PRDC_CASES[case]
    benchmark.group = f"prdc {case}"
    real, fake = features(n, d)
    points = Points.of(real[:10])
    first_pass = FirstPass.choose(points, points).describe()  # builds the kernel, untimed
    fn = run_prdc_package if impl == "ref" else lambda r, f: prdc(r, f, 5)
    fn(real[:2500], fake[:2500])  # untimed warm-up at a quarter size: oneDNN generates its product code on first use
    out = benchmark.pedantic(fn, args=(real, fake), rounds=2, warmup_rounds=0)
    benchmark.extra_info.update({"op": "prdc", "case": case, "device": "cpu", "impl": impl, "n": n, "d": d,
                                 "first_pass": "prdc 0.2 (scikit-learn)" if impl == "ref" else first_pass,
                                 "device_name": describe_device("cpu")["name"], "threads": torch.get_num_threads(),
                                 "quality": {k: float(v) for k, v in out.items()}})  # compare flags changes


def test_prdc_50k_memory(benchmark):
    """50k x 50k, 2048-d float32 features (Inception's size): time and peak RSS of a fresh process. prdc 0.2 would
    hold three 50k x 50k float32 matrices (30 GB), too much for the CPU test machine."""
    n, d = 50_000, 2048
    benchmark.group = "prdc 50k"
    root = Path(__file__).resolve().parents[1]
    points = Points.of(np.zeros((10, d), np.float32))
    first_pass = FirstPass.choose(points, points).describe()  # builds the kernel (cached on disk for the child)
    run = lambda: subprocess.run([sys.executable, "-c", CHILD, str(n), str(d)], capture_output=True, text=True,
                                 check=True, cwd=root)
    record = json.loads(benchmark.pedantic(run, rounds=1, warmup_rounds=0).stdout)
    benchmark.extra_info.update({"op": "prdc", "case": "50k-d2048", "device": "cpu", "impl": "blocks", "n": n,
                                 "d": d, "first_pass": first_pass, "peak_rss_gib": record["peak_rss_bytes"] / GIB,
                                 "inner_seconds": record["seconds"], "quality": record["metrics"],
                                 "prdc_package_matrices_gib": 3 * n * n * 4 / GIB})
    assert record["peak_rss_bytes"] < 4 * GIB


EXTRACTION = {"digits-cnn": ("stacked-digits", 4000, 16), "identity": ("stacked-digits", 4000, 16)}


@pytest.mark.parametrize("name", sorted(EXTRACTION))
def test_feature_extraction_throughput(benchmark, benchmark_median, name):
    dataset, n, size = EXTRACTION[name]
    benchmark.group = "feature extraction"
    ds = build_dataset(dataset, train=False, size=n, image_size=size)
    images = torch.stack([ds[i][0] for i in range(len(ds))])
    module = fe.build(name)
    benchmark.pedantic(extract, args=(images, module, name), kwargs={"batch_size": 500}, rounds=3,
                       warmup_rounds=1)
    seconds = benchmark_median()
    benchmark.extra_info.update({"extractor": name, "images": n, "image_shape": list(images.shape[1:]),
                                 "images_per_s": n / seconds, "device": "cpu", "threads": torch.get_num_threads()})


def inception_file() -> Path:
    """The FID Inception file of the real-data tests (env DDGAN_BENCH_INCEPTION, default fetch-inception's path)."""
    path = Path(os.environ.get("DDGAN_BENCH_INCEPTION", port_cache_path()))
    if not path.is_file():
        pytest.skip(f"needs the FID Inception file at {path}: run `python -m bench.metrics fetch-inception`")
    return path


def fidelity_extract(module: torch.nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """torch-fidelity's own loop: uint8 batches into its extractor, 2048-d features out."""
    with torch.no_grad():
        return torch.cat([module(to_uint8(images[s:s + batch_size]))[0] for s in range(0, len(images), batch_size)])


@pytest.mark.parametrize("impl", ["torch-fidelity", "ours"])
def test_inception_extraction_throughput(benchmark, benchmark_median, impl, tmp_path):
    """The real FID Inception at 299 px (upsampled from 32 px digits) on CPU: our extractor (the TorchScript port
    read and mapped by bench.metrics.inception, run through bench.metrics.features.extract) side by side with
    torch-fidelity's own extractor loaded by torch-fidelity from the converted .pth, on the same images."""
    path, n = inception_file(), 32
    ds = build_dataset("stacked-digits", train=False, size=n, image_size=32)
    images = torch.stack([ds[i][0] for i in range(n)])
    if impl == "ours":
        module = fe.build("inception-v3-compat", path)
        fn = lambda: extract(images, module, "inception-v3-compat", batch_size=16)["features"]
    else:
        write_fidelity_weights(path, tmp_path / "fidelity.pth")
        cls = torch_fidelity.registry.FEATURE_EXTRACTORS_REGISTRY["inception-v3-compat"]
        module = cls("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(tmp_path / "fidelity.pth"))
        fn = lambda: fidelity_extract(module, images, 16)
    benchmark.group = "inception extraction"
    features = benchmark.pedantic(fn, rounds=2, warmup_rounds=1)
    seconds = benchmark_median()
    benchmark.extra_info.update({"extractor": "inception-v3-compat", "impl": impl, "images": n,
                                 "image_shape": list(images.shape[1:]), "images_per_s": n / seconds,
                                 "weights_sha256": file_sha256(path), "feature_mean": float(features.mean()),
                                 "device": "cpu", "threads": torch.get_num_threads()})
