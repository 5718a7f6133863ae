"""Benchmark (pytest-benchmark): seconds per network call of each model at its cifar10 preset, side by side.

Run: pytest bench/test_network_calls.py --benchmark-json out.json. One test times the DDGAN generator, the
DDPM UNet and the StyleGAN2 generator in alternating rounds (so machine drift hits all alike) at a CPU-sized
batch; pytest-benchmark's own stats are those of the DDPM call. extra_info holds every median and the ratios.
"""

from __future__ import annotations

import statistics
import time

import torch

from bench.registry import build_model
from ddgan_ref.ops import current_impl
from ddgan_ref.provenance import describe_device

BATCH = 8
COMPARED = ("ddgan", "ddpm", "stylegan2")  # the paper's three families, whose calls are compared
ROUNDS = 5


def network_call(name: str, model, x: torch.Tensor):
    """One call of model.network (family `name`) on a batch shaped like x (inputs made now, untimed)."""
    n, net = len(x), model.network
    if name == "ddgan":
        z, t = torch.randn(n, net.z_dim), torch.full((n,), model.default_steps - 1)
        return lambda: net(x, t, z)
    if name == "ddpm":
        t = torch.full((n,), 500)
        return lambda: net(x, t)
    if name == "stylegan2":
        z = torch.randn(n, net.z_dim)
        return lambda: net(z, None, noise_mode="const")
    raise KeyError(f"no network call defined for model family {name!r}; add it to network_call()")


def test_seconds_per_network_call_cifar10(benchmark):
    torch.manual_seed(0)
    models = {name: build_model(name, preset_name="cifar10") for name in COMPARED}
    x = torch.randn(BATCH, 3, 32, 32)
    calls = {name: network_call(name, model, x) for name, model in models.items()}
    times: dict[str, list[float]] = {name: [] for name in calls}
    with torch.no_grad():
        for call in calls.values():
            call()  # warm-up
        for _ in range(ROUNDS):
            for name, call in calls.items():
                start = time.perf_counter()
                call()
                times[name].append(time.perf_counter() - start)
        benchmark.pedantic(calls["ddpm"], rounds=ROUNDS, warmup_rounds=1)
    median = {name: statistics.median(t) for name, t in times.items()}
    params = {name: sum(p.numel() for p in model.network.parameters()) for name, model in models.items()}
    benchmark.extra_info.update({
        "batch": BATCH, "device": describe_device("cpu")["name"], "rounds": ROUNDS, "impl": current_impl(), "nfe": 1,
        **{f"{name}_images_per_s": BATCH / s for name, s in median.items()},
        **{f"{name}_call_s": s for name, s in median.items()}, **{f"{name}_params": n for name, n in params.items()},
        "ddpm_over_ddgan_call": median["ddpm"] / median["ddgan"],
        "stylegan2_over_ddgan_call": median["stylegan2"] / median["ddgan"],
        # Network calls per image at the paper's settings: DDGAN T=4, DDPM 1000, StyleGAN2 1.
        "ddpm1000_over_ddgan4_sampling": 1000 * median["ddpm"] / (4 * median["ddgan"]),
        "stylegan2_over_ddgan4_sampling": median["stylegan2"] / (4 * median["ddgan"]),
    })
