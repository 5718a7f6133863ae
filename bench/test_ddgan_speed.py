"""Benchmarks (pytest-benchmark): DDGAN sampling vs T generator calls at the cifar10 preset, training speed.

Run: pytest bench/ --benchmark-json out.json   (not part of the unit-test run)
Sampling and one forward are timed side by side in one test, so their ratio is free of machine drift.
"""

import statistics
import time

import pytest
import torch

from bench.data import build_dataset
from ddgan_ref import configs, diffusion, model
from ddgan_ref import train as tr

CPU_BATCH = 8  # the paper's batch is 100 on a V100; a CPU-sized batch keeps the run short


def median_seconds(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


@pytest.fixture(scope="module")
def cifar10():
    torch.manual_seed(0)
    return model.build("cifar10")


def test_sampling_vs_T_forwards_cifar10(benchmark, cifar10):
    m, T, n = cifar10, cifar10.default_steps, CPU_BATCH
    x, z = torch.randn(n, *m.shape), torch.randn(n, m.G.z_dim)
    t = torch.full((n,), T - 1, dtype=torch.long)

    def forward():
        with torch.no_grad():
            m.G(x, t, z)

    forward()  # warm-up
    result = benchmark.pedantic(lambda: m.sample(n, T, seed=0), rounds=3, warmup_rounds=1)
    one = median_seconds(forward, rounds=5)
    sample_s = benchmark.stats.stats.median
    benchmark.extra_info.update({
        "model": "ddgan", "preset": "cifar10", "batch": n, "nfe": T, "device": "cpu",
        "forward_s": one, "sample_s": sample_s, "sample_over_T_forwards": sample_s / (T * one),
        "images_per_s": n / sample_s,
    })
    assert result.shape == (n, *m.shape)


def test_training_iterations_per_second_gaussians25(benchmark, tmp_path):
    config = configs.preset("gaussians25")
    data = build_dataset("gaussians25", seed=0)
    state = tr.new_state(config, torch.device("cpu"), tr.World())
    d = config.diffusion
    coeffs = diffusion.diffusion_coefficients(d.num_timesteps, d.beta_min, d.beta_max)
    pos = diffusion.posterior_coefficients(d.num_timesteps, d.beta_min, d.beta_max)
    x0 = torch.stack([data[i][0] for i in range(config.train.batch_size)])

    def iteration():
        gen = tr.step_generator(0, 0, state.step, torch.device("cpu"))
        tr.d_step(state, x0, coeffs, pos, config.train, gen, tr.World())
        tr.g_step(state, x0, coeffs, pos, gen, tr.World())
        state.step += 1

    benchmark.pedantic(iteration, rounds=50, warmup_rounds=5)
    benchmark.extra_info.update({"preset": "gaussians25", "batch": config.train.batch_size,
                                 "iterations_per_s": 1 / benchmark.stats.stats.median, "device": "cpu"})
