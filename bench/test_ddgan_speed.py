"""Benchmarks (pytest-benchmark): DDGAN sampling vs T generator calls at the cifar10 preset, training speed, and
the training step under bfloat16 autocast and channels-last against float32 (speed, and a short run's losses).

Run: pytest bench/ --benchmark-json out.json   (not part of the unit-test run)
What is compared is timed side by side in one test (alternating rounds), so the ratio is free of machine drift.
"""

import os
import statistics
import time
from pathlib import Path

import pytest
import torch

from bench import speed
from bench.data import build_dataset, stack_items
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


def test_sampling_vs_T_forwards_cifar10(benchmark, benchmark_median, cifar10):
    m, T, n = cifar10, cifar10.default_steps, CPU_BATCH
    x, z = torch.randn(n, *m.shape), torch.randn(n, m.G.z_dim)
    t = torch.full((n,), T - 1, dtype=torch.long)

    def forward():
        with torch.no_grad():
            m.G(x, t, z)

    forward()  # warm-up
    result = benchmark.pedantic(lambda: m.sample(n, T, seed=0), rounds=3, warmup_rounds=1)
    one = median_seconds(forward, rounds=5)
    sample_s = benchmark_median()
    benchmark.extra_info.update({
        "model": "ddgan", "preset": "cifar10", "batch": n, "nfe": T, "device": "cpu",
        "forward_s": one, "sample_s": sample_s, "sample_over_T_forwards": sample_s / (T * one),
        "images_per_s": n / sample_s,
    })
    assert result.shape == (n, *m.shape)


def test_training_iterations_per_second_gaussians25(benchmark, benchmark_median, tmp_path):
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
                                 "iterations_per_s": 1 / benchmark_median(), "device": "cpu"})


TRAIN_SETTINGS = ("fp32", "bf16+cl")  # training knobs: the autocast precision and the memory format
# The step timings: the cifar10 networks at a CPU-sized batch, and the largest preset trained on a CPU here at its
# own batch, under each precision with and without channels-last.
STEP_PRESETS = (("cifar10", CPU_BATCH), ("stacked-mnist-24", 64))
STEP_SETTINGS = ("fp32", "bf16", "bf16+cl")
SHORT_RUN = 200  # iterations of the loss comparison: the stacked-digits preset, float32 vs bfloat16 from one seed


class Trainer:
    """DDGAN training iterations under a setting, through ddgan_ref.train.train_step as `bench.train --speed` runs
    them (R1 on lazy steps included): bf16 runs the steps under bfloat16 autocast, +cl holds G, D and the batches
    in channels-last; weights, optimiser and losses stay float32."""

    def __init__(self, preset: str, setting: str, batch: int, real_data: bool = False):
        config, cpu = configs.preset(preset), torch.device("cpu")
        self.cfg, self.speed = config.train, speed.parse(setting)
        self.state = tr.new_state(config, cpu, tr.World())
        options = speed.training_options(self.speed, cpu)
        if options["channels_last"]:
            tr.use_channels_last(self.state)
        d = config.diffusion
        self.run = tr.Run(config, diffusion.diffusion_coefficients(d.num_timesteps, d.beta_min, d.beta_max),
                          diffusion.posterior_coefficients(d.num_timesteps, d.beta_min, d.beta_max), tr.World(), cpu,
                          Path(os.devnull), **options)
        g = config.generator  # the timings use random images (cifar10 and MNIST are files; speed ignores pixels)
        self.images = (stack_items(build_dataset(config.dataset, seed=0)) if real_data else
                       torch.rand(batch * 4, g.num_channels, g.image_size, g.image_size) * 2 - 1)
        self.batch = batch

    def step(self) -> dict[str, float]:
        start = self.state.step * self.batch % len(self.images)
        return tr.train_step(self.state, self.images[start:start + self.batch], self.run)


@pytest.mark.parametrize(("preset", "batch"), STEP_PRESETS)
def test_training_step_under_each_setting(benchmark, preset, batch):
    """Seconds per iteration (an R1 step every lazy_reg = 15 iterations timed as often as the others: the rounds
    run whole R1 cycles) for each of STEP_SETTINGS, in alternating rounds."""
    trainers = {s: Trainer(preset, s, batch) for s in STEP_SETTINGS}
    cycle = trainers["fp32"].cfg.lazy_reg or 1
    times = {s: [] for s in STEP_SETTINGS}
    for t in trainers.values():
        t.step()  # warm-up (an R1 step)

    def round_robin():
        for s, t in trainers.items():
            start = time.perf_counter()
            for _ in range(cycle):
                t.step()
            times[s].append((time.perf_counter() - start) / cycle)

    benchmark.pedantic(round_robin, rounds=2, warmup_rounds=0)
    ref = statistics.median(times["fp32"])
    benchmark.extra_info.update({"preset": preset, "batch": batch, "device": "cpu", "lazy_reg": cycle,
                                 "seconds_per_iteration": {s: statistics.median(v) for s, v in times.items()},
                                 "speedup": {s: ref / statistics.median(v) for s, v in times.items()}})


def test_training_losses_bf16_channels_last_vs_fp32_short_run(benchmark):
    """SHORT_RUN iterations of the stacked-digits preset from one seed under each setting: the loss records
    every 10 iterations and their means over the second half, side by side (a report, not a pass mark)."""
    curves = {}

    def runs():
        for s in TRAIN_SETTINGS:
            trainer, history = Trainer("stacked-digits", s, 64, real_data=True), []
            start = time.perf_counter()
            for i in range(SHORT_RUN):
                stats = trainer.step()
                if (i + 1) % 10 == 0:
                    history.append({"step": i + 1, **stats})
            curves[s] = {"seconds": time.perf_counter() - start, "history": history}

    benchmark.pedantic(runs, rounds=1, warmup_rounds=0)
    for c in curves.values():
        late = c["history"][len(c["history"]) // 2:]
        c["mean_second_half"] = {k: statistics.mean(h[k] for h in late) for k in late[0] if k != "step"}
    benchmark.extra_info.update({"preset": "stacked-digits", "batch": 64, "iterations": SHORT_RUN, "device": "cpu",
                                 "curves": curves})
    for c in curves.values():
        assert all(v == v and abs(v) < 1e4 for h in c["history"] for v in h.values())  # finite: no divergence
