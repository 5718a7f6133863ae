"""Sampling cost: the paper's protocol (wall-clock of one batch of 100, CUDA synchronised, warm-up, median of
rounds), throughput (images/s at the best batch size), network calls counted by a hook, peak memory, and the
device it ran on (CPU model; GPU name, driver and energy per image through nvidia-ml-py when present)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.protocol import Generator


def network(model: Generator) -> nn.Module:
    """The network a sampler calls once per step (DDGAN and StyleGAN2: G; DDPM: its denoiser)."""
    for name in ("G", "net"):
        if isinstance(getattr(model, name, None), nn.Module):
            return getattr(model, name)
    raise TypeError(f"{type(model).__name__} exposes no network as .G or .net; NFE cannot be counted")


def count_calls(model: Generator, fn: Callable[[], object]) -> int:
    """Network forward calls made while fn() runs, counted by a forward hook (not declared by the model)."""
    calls = [0]
    handle = network(model).register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
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


def paper_time(model: Generator, steps: int, device: torch.device, *, batch: int = 100, rounds: int = 5,
               seed: int = 0) -> dict:
    """The paper's time column: one batch of `batch` samples, median of `rounds` after one warm-up, with the
    network calls of one batch (NFE) and the peak memory of the timed rounds."""
    nfe = count_calls(model, lambda: model.sample(batch, steps, seed=seed))
    reset_peak_memory(device)
    before = energy_millijoules(device)
    times = median_seconds(lambda: model.sample(batch, steps, seed=seed), device, rounds=rounds, warmup=1)
    after = energy_millijoules(device)  # includes the warm-up round
    joules = (after - before) / 1000 / ((rounds + 1) * batch) if before is not None and after is not None else None
    return {"batch": batch, "rounds": rounds, "seconds": statistics.median(times), "seconds_all": times,
            "nfe": nfe, "peak_memory_bytes": peak_memory_bytes(device), "joules_per_image": joules}


def throughput(model: Generator, steps: int, device: torch.device, *, batches: tuple[int, ...] = (100, 250, 500),
               rounds: int = 3, seed: int = 0) -> dict:
    """Images per second at the best of `batches` (median of rounds each)."""
    per_batch = {b: b / statistics.median(median_seconds(lambda b=b: model.sample(b, steps, seed=seed), device,
                                                         rounds=rounds, warmup=1)) for b in batches}
    best = max(per_batch, key=per_batch.get)
    return {"images_per_s": per_batch[best], "best_batch": best, "images_per_s_by_batch": per_batch}


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    import platform

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvml_handle(pynvml, device: torch.device):
    """The NVML handle of a torch CUDA device, matched by UUID (NVML and CUDA may order GPUs differently)."""
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        if uuid in pynvml.nvmlDeviceGetUUID(handle):
            return handle
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def device_info(device: torch.device) -> dict:
    """CPU model and threads; on CUDA also the GPU's name, driver, memory and power limit via nvidia-ml-py, or
    the reason they are missing."""
    info = {"cpu": cpu_model(), "threads": torch.get_num_threads(), "device": str(device)}
    if device.type != "cuda":
        reason = "ran on the CPU" + ("" if torch.cuda.is_available() else "; no CUDA device is visible")
        return {**info, "gpu": {"available": False, "reason": reason}}
    info["gpu_name"] = torch.cuda.get_device_name(device)
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # no library or no driver: recorded, not raised
        return {**info, "gpu": {"available": False, "reason": f"{type(e).__name__}: {e}"}}
    try:
        handle = _nvml_handle(pynvml, device)
        gpu = {"available": True, "name": pynvml.nvmlDeviceGetName(handle),
               "driver": pynvml.nvmlSystemGetDriverVersion(),
               "memory_total_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).total}
        try:
            gpu["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000
        except pynvml.NVMLError as e:
            gpu["power_limit_w"] = f"unavailable: {e}"
        return {**info, "gpu": gpu}
    finally:
        pynvml.nvmlShutdown()


def energy_millijoules(device: torch.device) -> int | None:
    """The GPU's energy counter (mJ since driver load; Volta and newer), or None on CPU or without NVML."""
    if device.type != "cuda":
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        try:
            return pynvml.nvmlDeviceGetTotalEnergyConsumption(_nvml_handle(pynvml, device))
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # unsupported board, no driver or no library: no energy figure
        return None
