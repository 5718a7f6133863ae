"""Benchmark (pytest-benchmark): seconds per network call of each model at its cifar10 preset, side by side.

Run: pytest bench/test_network_calls.py --benchmark-json out.json. One test times the DDGAN generator, the
DDPM UNet and the StyleGAN2 generator in alternating rounds (so machine drift hits all alike) at a CPU-sized
batch; pytest-benchmark's own stats are those of the DDPM call. extra_info holds every median and the ratios.
"""

from __future__ import annotations

import statistics
import time

import torch

from baselines.ddpm import model as ddpm_model
from baselines.stylegan2 import model as sg2_model
from ddgan_ref import model as ddgan_model
from ddgan_ref.provenance import device_description

BATCH = 8
ROUNDS = 5


def test_seconds_per_network_call_cifar10(benchmark):
    torch.manual_seed(0)
    ddgan, ddpm, sg2 = ddgan_model.build("cifar10"), ddpm_model.build("cifar10"), sg2_model.build("cifar10")
    x = torch.randn(BATCH, 3, 32, 32)
    z, t_ddgan = torch.randn(BATCH, ddgan.G.z_dim), torch.full((BATCH,), ddgan.default_steps - 1)
    t_ddpm, z_sg2 = torch.full((BATCH,), 500), torch.randn(BATCH, sg2.G.z_dim)
    calls = {"ddgan": lambda: ddgan.G(x, t_ddgan, z), "ddpm": lambda: ddpm.net(x, t_ddpm),
             "stylegan2": lambda: sg2.G(z_sg2, None, noise_mode="const")}
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
    nets = (("ddgan", ddgan.G), ("ddpm", ddpm.net), ("stylegan2", sg2.G))
    params = {name: sum(p.numel() for p in net.parameters()) for name, net in nets}
    benchmark.extra_info.update({
        "batch": BATCH, "device": device_description("cpu"), "rounds": ROUNDS,
        **{f"{name}_call_s": s for name, s in median.items()}, **{f"{name}_params": n for name, n in params.items()},
        "ddpm_over_ddgan_call": median["ddpm"] / median["ddgan"],
        "stylegan2_over_ddgan_call": median["stylegan2"] / median["ddgan"],
        # Network calls per image at the paper's settings: DDGAN T=4, DDPM 1000, StyleGAN2 1.
        "ddpm1000_over_ddgan4_sampling": 1000 * median["ddpm"] / (4 * median["ddgan"]),
        "stylegan2_over_ddgan4_sampling": median["stylegan2"] / (4 * median["ddgan"]),
    })
