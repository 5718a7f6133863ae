"""Benchmarks (pytest-benchmark): ddgan_ref.ops kernels vs their PyTorch reference, forward + backward, and the
draw_rows kernel vs its loop on a graphed DDGAN batch's noise.

Run: pytest bench/test_ops_speed.py --benchmark-json out.json, then `python -m bench.speedups out.json`.
Every case runs once per impl in the same session (reference and compiled side by side, each in its own
warmed-up steady state), at the NCSN++ cifar10 shapes (batch 64; 128-256 channels at 32/16/8 px) and
StyleGAN2 cifar shapes (512 channels).
The CUDA rows run only where a GPU is visible.
`test_bias_act_paired_cpu` also times reference and kernel alternately, round by round (extra_info
`paired_speedup`), so that a slow spell of a shared machine slows both sides alike.
"""

from __future__ import annotations

import math
import resource
import statistics
import time

import pytest
import torch

from bench.registry import build_model
from bench.speed import Tape
from ddgan_ref.ops import bias_act, draw_rows, upfirdn2d
from ddgan_ref.provenance import describe_device

K = torch.tensor([1.0, 3.0, 3.0, 1.0])
FIR = K.outer(K) / K.sum() ** 2  # the [1,3,3,1] low-pass of NCSN++ and StyleGAN2
UPFIRDN2D = {  # case: (x shape, up, down, pad, gain)
    "ncsnpp-up-128x32": ((64, 128, 32, 32), 2, 1, (2, 1, 2, 1), 4.0),
    "ncsnpp-up-256x16": ((64, 256, 16, 16), 2, 1, (2, 1, 2, 1), 4.0),
    "ncsnpp-up-256x8": ((64, 256, 8, 8), 2, 1, (2, 1, 2, 1), 4.0),
    "ncsnpp-down-128x32": ((64, 128, 32, 32), 1, 2, (1, 1, 1, 1), 1.0),
    "ncsnpp-down-256x16": ((64, 256, 16, 16), 1, 2, (1, 1, 1, 1), 1.0),
    "ncsnpp-down-256x8": ((64, 256, 8, 8), 1, 2, (1, 1, 1, 1), 1.0),
    "stylegan2-conv0-up-filter-512x17": ((64, 512, 17, 17), 1, 1, (1, 1, 1, 1), 4.0),
    "stylegan2-d-down-filter-512x16": ((64, 512, 16, 16), 1, 1, (2, 2, 2, 2), 1.0),
}
BIAS_ACT = {  # case: (x shape, act)
    "ncsnpp-lrelu-128x32": ((64, 128, 32, 32), "lrelu"),
    "ncsnpp-lrelu-256x16": ((64, 256, 16, 16), "lrelu"),
    "ncsnpp-lrelu-256x8": ((64, 256, 8, 8), "lrelu"),
    "stylegan2-conv-lrelu-512x16": ((64, 512, 16, 16), "lrelu"),
    "stylegan2-fc-lrelu-512": ((64, 512), "lrelu"),
    "silu-256x16": ((64, 256, 16, 16), "silu"),
}
IMPLS = [("cpu", "ref"), ("cpu", "cpu")] + ([("cuda", "ref"), ("cuda", "cuda")] if torch.cuda.is_available() else [])


CUDA_CALLS_PER_ROUND = 20  # CUDA: calls queued back to back, as inside a network; one synchronisation per round
# CPU: each side is timed for at least this long (at most MAX_ROUNDS rounds), so that a slow spell of a shared machine
# falls on a small part of the rounds, not on most of a short run's (results/README.md, "Why two estimators").
MIN_CPU_SECONDS = 1.0
MAX_ROUNDS = 1000


def cpu_calls_per_round(inputs) -> int:
    """CPU calls per timed round (or block): about a million input elements, so a round lasts a millisecond or more."""
    return max(1, 1_000_000 // max(1, sum(t.numel() for t in inputs)))


def run_timed(benchmark, fn, inputs, device: str, rounds: int) -> int:
    """Time fn(*inputs) forward + backward; inputs and the upstream gradient are made once (untimed).

    CPU: small ops repeat inside a round so it lasts about a millisecond or more; at least `rounds` rounds and
    MIN_CPU_SECONDS of them. CUDA: each round queues
    CUDA_CALLS_PER_ROUND calls and synchronises once at its end, so the time per call is what a network pays
    (kernel time, or launch overhead where that is larger), not one host-device round trip per call.
    Records the process's minor page faults per call (extra_info): fresh pages for large outputs are much of
    the time at these shapes, and vary with the allocator's state. Returns the calls per timed round."""
    with torch.no_grad():
        dy = torch.randn_like(fn(*inputs))
    wrt = [t for t in inputs if t.requires_grad]
    calls = CUDA_CALLS_PER_ROUND if device == "cuda" else 1

    def once():
        for _ in range(calls):
            torch.autograd.grad(fn(*inputs), wrt, dy)
        if device == "cuda":
            torch.cuda.synchronize()

    iterations = 1 if device == "cuda" else cpu_calls_per_round(inputs)
    if device == "cpu":
        start = time.perf_counter()
        for _ in range(iterations):
            once()
        rounds = max(rounds, min(MAX_ROUNDS, math.ceil(MIN_CPU_SECONDS / (time.perf_counter() - start))))
    warmup = max(1, rounds // 5)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    benchmark.pedantic(once, rounds=rounds, iterations=iterations, warmup_rounds=warmup)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    benchmark.extra_info["minor_faults_per_call"] = faults / ((rounds + warmup) * iterations * calls)
    return calls


def describe(benchmark, seconds_per_round: float, op: str, case: str, device: str, impl: str, shape,
             calls: int, direction: str = "forward+backward") -> None:
    seconds = seconds_per_round / calls
    benchmark.extra_info.update({
        "op": op, "case": case, "device": device, "device_name": describe_device(torch.device(device))["name"],
        "impl": impl, "shape": list(shape), "direction": direction, "median_s": seconds,
        "calls_per_round": calls, "threads": torch.get_num_threads(),
        "elements_per_s": torch.Size(shape).numel() / seconds,
    })


@pytest.mark.parametrize("device,impl", IMPLS, ids=[f"{d}-{i}" for d, i in IMPLS])
@pytest.mark.parametrize("case", sorted(UPFIRDN2D))
def test_upfirdn2d_speed(benchmark, benchmark_median, case, device, impl):
    shape, up, down, pad, gain = UPFIRDN2D[case]
    benchmark.group = f"upfirdn2d {case} {device}"
    x = torch.randn(shape, device=device, requires_grad=True)
    f = FIR.to(device)
    fn = lambda x: upfirdn2d(x, f, up=up, down=down, pad=pad, gain=gain, impl=impl)
    calls = run_timed(benchmark, fn, (x,), device, rounds=3 if impl == "ref" and device == "cpu" else 5)
    describe(benchmark, benchmark_median(), "upfirdn2d", case, device, impl, shape, calls)


@pytest.mark.parametrize("device,impl", IMPLS, ids=[f"{d}-{i}" for d, i in IMPLS])
@pytest.mark.parametrize("case", sorted(BIAS_ACT))
def test_bias_act_speed(benchmark, benchmark_median, case, device, impl):
    shape, act = BIAS_ACT[case]
    benchmark.group = f"bias_act {case} {device}"
    x = torch.randn(shape, device=device, requires_grad=True)
    b = torch.randn(shape[1], device=device, requires_grad=True)
    fn = lambda x, b: bias_act(x, b, 1, act, impl=impl)
    calls = run_timed(benchmark, fn, (x, b), device, rounds=100 if device == "cpu" else 20)
    describe(benchmark, benchmark_median(), "bias_act", case, device, impl, shape, calls)


def ddgan_draws(preset_name: str) -> list[tuple[int, ...]]:
    """The per-image draws of one DDGAN sample, in order, as the sampler makes them: recorded by the Tape a CUDA
    graph captures with, on a network of the meta device (shapes without numbers)."""
    meta = torch.device("meta")
    with meta:
        model = build_model("ddgan", preset_name, device=meta)
    tape = Tape(1, meta)
    model.generate(tape, model.default_steps)
    return [tuple(buffer.shape[1:]) for _, buffer in tape.draws]


@pytest.mark.parametrize("one_thread", [False, True], ids=["threads", "one-thread"])
@pytest.mark.parametrize("impl", ["ref", "cpu"])
def test_draw_rows_speed(benchmark, benchmark_median, impl, one_thread):
    """The noise of a DDGAN cifar10 batch of 100 at T=4, every buffer in one call, from fresh generators: what a
    CUDA-graph replay draws on the host before each batch (bench.speed.Tape.fill). On one thread too, which
    separates the kernel's two gains: no Python call per image and buffer, and images spread over threads."""
    shapes = ddgan_draws("cifar10")  # T = 4
    threads = 1 if one_thread else torch.get_num_threads()
    benchmark.group = f"draw_rows ddgan-cifar10-T4 cpu, threads={threads}"
    buffers = [torch.empty(100, *shape) for shape in shapes]
    once = lambda: draw_rows(buffers, [0] * len(buffers), [torch.Generator().manual_seed(i) for i in range(100)],
                             impl=impl)
    saved = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        once()
        benchmark.pedantic(once, rounds=50, warmup_rounds=5)
    finally:
        torch.set_num_threads(saved)
    describe(benchmark, benchmark_median(), "draw_rows", f"ddgan-cifar10-T4-batch100, threads={threads}", "cpu",
             impl, (100, sum(torch.Size(s).numel() for s in shapes)), 1, direction="draw")
    benchmark.extra_info["threads"] = threads


def timed_block(fn, inputs, dy, calls: int):
    """A function that runs fn forward + backward once untimed (the allocator settles after the other side's
    calls) and then `calls` times, returning seconds per call of the timed ones."""
    wrt = [t for t in inputs if t.requires_grad]

    def block() -> float:
        torch.autograd.grad(fn(*inputs), wrt, dy)
        start = time.perf_counter()
        for _ in range(calls):
            torch.autograd.grad(fn(*inputs), wrt, dy)
        return (time.perf_counter() - start) / calls

    return block


@pytest.mark.parametrize("case", sorted(BIAS_ACT))
def test_bias_act_paired_cpu(benchmark, case):
    """Reference and C++ kernel alternating: each round times a block of reference calls, then one of kernel calls
    (about a millisecond or more each). The speed-up is the median of the rounds' ratios; a slow spell of the
    machine slows both blocks of a round alike, where the separate benchmarks
    above can catch it on one side only. At least MIN_CPU_SECONDS of each side."""
    shape, act = BIAS_ACT[case]
    benchmark.group = f"bias_act {case} cpu paired"
    x = torch.randn(shape, requires_grad=True)
    b = torch.randn(shape[1], requires_grad=True)
    dy = torch.randn(shape)
    calls = cpu_calls_per_round((x, b))
    blocks = {impl: timed_block(lambda x, b, impl=impl: bias_act(x, b, 1, act, impl=impl), (x, b), dy, calls)
              for impl in ("ref", "cpu")}
    times: dict[str, list[float]] = {"ref": [], "cpu": []}

    def one_round():
        for impl, block in blocks.items():
            times[impl].append(block())

    one_round()  # warm-up, also sizes the run
    rounds = min(MAX_ROUNDS, max(20, math.ceil(MIN_CPU_SECONDS / (calls * min(times["ref"][0], times["cpu"][0])))))
    for side in times.values():
        side.clear()
    benchmark.pedantic(one_round, rounds=rounds, iterations=1, warmup_rounds=0)
    ratios = [r / c for r, c in zip(times["ref"], times["cpu"], strict=True)]
    benchmark.extra_info.update({
        "op": "bias_act", "case": case, "device": "cpu", "device_name": describe_device(torch.device("cpu"))["name"],
        "impl": "cpu", "method": "paired", "shape": list(shape), "direction": "forward+backward",
        "calls_per_block": calls, "rounds": rounds, "threads": torch.get_num_threads(),
        "ref_median_s": statistics.median(times["ref"]), "median_s": statistics.median(times["cpu"]),
        "paired_speedup": statistics.median(ratios),
        "paired_speedup_quartiles": statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [],  # --benchmark-disable
    })
