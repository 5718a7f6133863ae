"""Benchmarks (pytest-benchmark): sampling time of every registered model at each step count, at the paper's batch.

Run: pytest bench/test_sampling_speed.py --benchmark-json out.json (part of `pytest bench/`). The cases come
from bench.registry.FAMILIES and STEPS; the preset is gaussians25 on a CPU and cifar10 on a GPU or with
--bench-full (bench/conftest.py). Models are built before timing (freshly initialised weights: the cost of a
sample call does not depend on them), one batch of 100 is drawn per round after a warm-up, CUDA is
synchronised, and extra_info carries the NFE (network calls per batch, counted by a forward hook), images/s,
seconds per image, the kernel impl, the device and the batch.
"""

from __future__ import annotations

import pytest
import torch

from bench import timing
from bench.registry import FAMILIES, build_model
from ddgan_ref.ops import current_impl
from ddgan_ref.provenance import describe_device

BATCH = 100  # the paper's time column: one batch of 100 images
STEPS = {"ddpm": ("T", 100, 10), "stylegan2": (1,)}  # "T": the model's default step count, the others' only case
CASES = [(name, steps) for name in FAMILIES for steps in STEPS.get(name, ("T",))]
LONG_ROUND_S = 2.0  # rounds longer than this (DDPM's 1000 steps on a GPU) are repeated 3 times


def rounds_for(first_s: float) -> int:
    """3 long rounds; otherwise 5 to 50 rounds, about a second of them, so fast cases are not all noise."""
    return 3 if first_s > LONG_ROUND_S else min(50, max(5, round(1.0 / max(first_s, 1e-3))))


@pytest.fixture(scope="module")
def models(preset: str, device: torch.device):
    """Each registered model at the preset, built once on first use (freshly initialised weights)."""
    built: dict[str, object] = {}

    def get(name: str):
        if name not in built:
            torch.manual_seed(0)
            built[name] = build_model(name, preset_name=preset, device=device)
        return built[name]
    return get


@pytest.mark.parametrize("name,steps", CASES, ids=[f"{name}-{steps}" for name, steps in CASES])
def test_sampling_speed(benchmark, benchmark_median, models, name, steps, preset, device):
    model = models(name)
    n_steps = model.default_steps if steps == "T" else steps
    if n_steps not in model.supported_steps:
        pytest.skip(f"{name} at {preset} does not sample with {n_steps} steps")
    benchmark.group = f"sampling {preset}"

    def once():
        model.sample(BATCH, n_steps, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    first = timing.median_seconds(once, device, rounds=1, warmup=0)[0]  # also the warm-up
    nfe = timing.count_calls(model, once)
    benchmark.pedantic(once, rounds=rounds_for(first), warmup_rounds=0)
    seconds = benchmark_median()
    benchmark.extra_info.update({
        "model": name, "preset": preset, "steps": n_steps, "nfe": nfe, "batch": BATCH,
        "images_per_s": BATCH / seconds, "seconds_per_image": seconds / BATCH, "impl": current_impl(),
        "device": str(device), "device_name": describe_device(device)["name"],
    })
