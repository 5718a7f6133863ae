"""Sampling cost: the paper's protocol (wall-clock of one batch of 100, CUDA synchronised, warm-up, median of
rounds), throughput (images/s at the best batch size), network calls counted by a hook, peak memory, and energy
per image through nvidia-ml-py on a GPU that reports it. The device itself is described by
ddgan_ref.provenance.describe_device."""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from bench.protocol import Generator
from ddgan_ref.provenance import nvml_handle


def count_calls(model: Generator, fn: Callable[[], object]) -> int:
    """Calls of model.network made while fn() runs (NFE), counted by a forward hook (not declared by the model)."""
    calls = [0]
    handle = model.network.register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    try:
        fn()
    finally:
        handle.remove()
    return calls[0]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_seconds(fn: Callable[[], object], device: torch.device, rounds: int = 5, warmup: int = 1) -> list[float]:
    """Seconds of each of `rounds` timed calls of fn() after `warmup` untimed ones, CUDA synchronised."""
    for _ in range(warmup):
        fn()
    _sync(device)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:
        try:  # Linux: writing 5 to clear_refs resets the peak RSS (VmHWM) of this process
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            pass


def peak_memory_bytes(device: torch.device) -> int | None:
    """CUDA: the allocator's peak since the last reset; CPU: the process's peak RSS (VmHWM), or None."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


@dataclass(frozen=True)
class Throughput:
    """Images per second at the best of the batch sizes tried."""

    images_per_s: float
    best_batch: int
    images_per_s_by_batch: dict[int, float]


@dataclass(frozen=True)
class PaperTime:
    """The paper's time column for one cell: seconds for one batch (median of rounds), and what went with it."""

    batch: int
    rounds: int
    seconds: float
    seconds_all: list[float]
    nfe: int
    peak_memory_bytes: int | None
    joules_per_image: float | None
    throughput: Throughput | None = None
    iqr_seconds: float | None = None  # interquartile range of the rounds (absent in records before it existed)
    min_seconds: float | None = None
    load: dict[str, float | int | None] | None = None  # machine_load() over the timed rounds
    noisy: str | None = None  # why the rounds cannot be trusted, or None

    def with_throughput(self, throughput: Throughput) -> PaperTime:
        return replace(self, throughput=throughput)


def paper_time(model: Generator, steps: int, device: torch.device, *, batch: int = 100, rounds: int = 5,
               seed: int = 0) -> PaperTime:
    """The paper's time column: one batch of `batch` samples, median of `rounds` after one warm-up, with the
    network calls of one batch (NFE) and the peak memory of the timed rounds."""
    model.sample(batch, steps, seed=seed)  # first use of this batch builds a setting's graphs or compiled code,
    nfe = count_calls(model, lambda: model.sample(batch, steps, seed=seed))  # whose passes are not one batch's calls
    reset_peak_memory(device)
    before = energy_millijoules(device)
    ticks = cpu_ticks()
    times = median_seconds(lambda: model.sample(batch, steps, seed=seed), device, rounds=rounds, warmup=1)
    load = machine_load(ticks, cpu_ticks())
    after = energy_millijoules(device)  # includes the warm-up round
    joules = (after - before) / 1000 / ((rounds + 1) * batch) if before is not None and after is not None else None
    median, iqr = statistics.median(times), interquartile_range(times)
    return PaperTime(batch, rounds, median, times, nfe, peak_memory_bytes(device), joules, iqr_seconds=iqr,
                     min_seconds=min(times), load=load, noisy=noise(median, iqr, load))


# Timing noise: a busy machine makes rounds spread and medians wrong; such cells are flagged, not silently kept.
NOISE_IQR = 0.25  # rounds whose interquartile range exceeds this fraction of their median are flagged
NOISE_STEAL = 0.05  # as is a virtual machine whose hypervisor took more than 5 % of the CPU time


def interquartile_range(times: list[float]) -> float:
    """q75 - q25 of the rounds (linear interpolation; 0 for a single round)."""
    if len(times) < 2:
        return 0.0
    q = statistics.quantiles(times, n=4, method="inclusive")
    return q[2] - q[0]


def cpu_ticks() -> tuple[int, int] | None:
    """(all, steal) CPU ticks since boot from /proc/stat, or None where it is not readable (not Linux)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    return sum(fields[:8]), fields[7] if len(fields) > 7 else 0


def machine_load(before: tuple[int, int] | None, after: tuple[int, int] | None) -> dict[str, float | int | None]:
    """The 1-minute load average at the end, the CPUs this process may use, and the fraction of CPU time the
    hypervisor stole between two cpu_ticks() readings (None where unreadable)."""
    try:
        load1 = round(os.getloadavg()[0], 2)
    except OSError:
        load1 = None
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    steal = None
    if before is not None and after is not None and after[0] > before[0]:
        steal = round((after[1] - before[1]) / (after[0] - before[0]), 4)
    return {"loadavg_1m": load1, "cpus": cpus, "steal_fraction": steal}


def noise(median: float, iqr: float, load: dict) -> str | None:
    """Why a cell's timing is not to be trusted: its rounds spread beyond NOISE_IQR, other work kept the machine
    busy (1-minute load above 1.5 x the CPUs, this run's own threads being at most one per CPU), or stolen
    time above NOISE_STEAL; None when none holds."""
    reasons = []
    if median > 0 and iqr / median > NOISE_IQR:
        reasons.append(f"rounds spread: IQR {iqr / median:.0%} of the median (bound {NOISE_IQR:.0%})")
    cpus, load1 = load.get("cpus"), load.get("loadavg_1m")
    if cpus and load1 is not None and load1 > 1.5 * cpus:
        reasons.append(f"busy machine: load {load1} on {cpus} CPUs")
    if (load.get("steal_fraction") or 0) > NOISE_STEAL:
        reasons.append(f"CPU steal {load['steal_fraction']:.0%}")
    return "; ".join(reasons) or None


def throughput(model: Generator, steps: int, device: torch.device, *, batches: tuple[int, ...] = (100, 250, 500),
               rounds: int = 3, seed: int = 0) -> Throughput:
    """Images per second at the best of `batches` (median of rounds each)."""
    per_batch = {b: b / statistics.median(median_seconds(lambda b=b: model.sample(b, steps, seed=seed), device,
                                                         rounds=rounds, warmup=1)) for b in batches}
    best = max(per_batch, key=per_batch.get)
    return Throughput(per_batch[best], best, per_batch)


def energy_millijoules(device: torch.device) -> int | None:
    """The GPU's energy counter (mJ since driver load; Volta and newer), or None on CPU or without NVML."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetTotalEnergyConsumption(nvml_handle(pynvml, device))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # unsupported board, no driver or no library: no energy figure
        return None
