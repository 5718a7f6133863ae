"""Sampling cost: the paper's protocol (wall-clock of one batch of 100, CUDA synchronised, warm-up, median of
rounds), throughput (images/s at the best batch size), network calls counted by a hook, peak memory, and energy
per image through nvidia-ml-py on a GPU that reports it. The device itself is described by
ddgan_ref.provenance.describe_device."""

from __future__ import annotations

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

    def with_throughput(self, throughput: Throughput) -> PaperTime:
        return replace(self, throughput=throughput)


def paper_time(model: Generator, steps: int, device: torch.device, *, batch: int = 100, rounds: int = 5,
               seed: int = 0) -> PaperTime:
    """The paper's time column: one batch of `batch` samples, median of `rounds` after one warm-up, with the
    network calls of one batch (NFE) and the peak memory of the timed rounds."""
    nfe = count_calls(model, lambda: model.sample(batch, steps, seed=seed))
    reset_peak_memory(device)
    before = energy_millijoules(device)
    times = median_seconds(lambda: model.sample(batch, steps, seed=seed), device, rounds=rounds, warmup=1)
    after = energy_millijoules(device)  # includes the warm-up round
    joules = (after - before) / 1000 / ((rounds + 1) * batch) if before is not None and after is not None else None
    return PaperTime(batch, rounds, statistics.median(times), times, nfe, peak_memory_bytes(device), joules)


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
