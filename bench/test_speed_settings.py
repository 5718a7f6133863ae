"""Benchmarks (pytest-benchmark): every family sampling under the float32 eager reference and each fast setting of
bench.speed.FAST for the device, side by side in one run, at the paper's batch of 100.

Run: pytest bench/test_speed_settings.py --benchmark-json out.json, then python -m bench.speedups out.json for the
table. The preset is cifar10 (the paper's networks; freshly initialised weights: the cost of a sample call does
not depend on them) on a CPU as on a GPU, since what a setting gains depends on the network's shapes. Steps: DDGAN
its T = 4, StyleGAN2 1, DDPM 1000 on a GPU and 4 DDIM steps on a CPU (the same network call as each of the 1000;
a 1000-step batch of 100 takes hours on 2 cores). Each round times every setting once, one after the other, so a
setting and the reference meet the same machine state; extra_info's `settings` holds, per setting, the median
seconds, images/s, NFE, the speed-up over float32 (ratio of medians, and the median of per-round ratios:
`paired_speedup`) and the quality cost on the warm-up batch (max and mean absolute difference from float32, same
seeds). The warm-up compiles (torch.compile) and captures (CUDA graphs) before any round is timed.
"""

from __future__ import annotations

import statistics
import time

import pytest
import torch

from bench import speed, timing
from bench.registry import FAMILIES, build_model
from ddgan_ref.provenance import describe_device

BATCH = 100
PRESET = "cifar10"
STEPS = {"cpu": {"ddpm": 4}, "cuda": {}}  # otherwise the model's default: DDGAN T, DDPM 1000, StyleGAN2 1


def rounds_for(first_s: float, device: torch.device) -> int:
    """One round where a batch takes over 10 s on a GPU (DDPM's 1000 steps: each round averages a thousand network
    calls, and a lent GPU's time is short); 3 rounds of other long settings (CPU batches take seconds); otherwise
    about 3 s of rounds, at most 30."""
    if first_s > 10.0 and device.type == "cuda":
        return 1
    return 3 if first_s > 1.0 else min(30, max(5, round(3.0 / max(first_s, 1e-3))))


@pytest.mark.parametrize("name", list(FAMILIES))
def test_speed_settings(benchmark, name, device):
    torch.manual_seed(0)
    model = build_model(name, preset_name=PRESET, device=device)
    steps = STEPS[device.type].get(name, model.default_steps)
    settings = [speed.SpeedConfig(), *speed.expand(["fast"], device)]
    models = {s.label: speed.apply(model, s) for s in settings}
    benchmark.group = f"speed settings {PRESET} {device.type}"

    def once(m):
        x = m.sample(BATCH, steps, seed=0)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return x

    warm = {label: once(m).cpu() for label, m in models.items()}  # compiles, captures, allocates
    nfe, first = {}, 0.0
    for label, m in models.items():  # the second batch: NFE, and how long a round takes
        start = time.perf_counter()
        nfe[label] = timing.count_calls(m, lambda m=m: once(m))
        first = max(first, time.perf_counter() - start)
    times: dict[str, list[float]] = {label: [] for label in models}

    def round_robin():
        for label, m in models.items():
            start = time.perf_counter()
            once(m)
            times[label].append(time.perf_counter() - start)

    benchmark.pedantic(round_robin, rounds=rounds_for(first, device), warmup_rounds=0)
    benchmark.extra_info.update({"model": name, "preset": PRESET, "steps": steps, "batch": BATCH,
                                 "device": str(device), "device_name": describe_device(device)["name"],
                                 "threads": torch.get_num_threads(),
                                 "settings": {s.label: row(s, times, warm, nfe[s.label], device) for s in settings}})
    assert all(n == nfe["fp32"] for n in nfe.values()), nfe  # a setting changes how, not how often, G is called


def row(setting: speed.SpeedConfig, times: dict[str, list[float]], warm: dict[str, torch.Tensor], nfe: int,
        device: torch.device) -> dict:
    """One setting's entry of extra_info["settings"]: its times against float32's (the same rounds) and its
    quality cost on the warm-up batch (the same seeds)."""
    reference, t = times["fp32"], times[setting.label]
    diff, median = (warm[setting.label] - warm["fp32"]).abs(), statistics.median(t)
    return {"median_s": median, "images_per_s": BATCH / median, "nfe": nfe, "rounds": len(t),
            "speedup": statistics.median(reference) / median,
            "paired_speedup": statistics.median(r / f for r, f in zip(reference, t, strict=True)),
            "max_abs_diff": diff.max().item(), "mean_abs_diff": diff.mean().item(), **speed.describe(setting, device)}
