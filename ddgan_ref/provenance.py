"""What a checkpoint or result records about where it came from: versions, device, git commit."""

from __future__ import annotations

import datetime
import functools
import hashlib
import platform
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@functools.cache
def git_commit(root: Path = REPO_ROOT) -> str | None:
    """HEAD of the checkout this package runs from (with '+dirty' for local changes), or None.

    Read once per process: the code a process runs is what it imported when it started, so an hour's training
    names that commit in every checkpoint, not one made while it ran. Long runs call this as they start.
    """
    try:
        head = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "")


def file_sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes (weights, checkpoints), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def cpu_model() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else platform.processor()."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def nvml_handle(pynvml: ModuleType, device: torch.device):
    """The NVML handle of a torch CUDA device, matched by UUID (NVML and CUDA may order GPUs differently)."""
    uuid = str(torch.cuda.get_device_properties(device).uuid)
    for i in range(pynvml.nvmlDeviceGetCount()):
        handle = pynvml.nvmlDeviceGetHandleByIndex(i)
        if uuid in pynvml.nvmlDeviceGetUUID(handle):
            return handle
    return pynvml.nvmlDeviceGetHandleByIndex(device.index or 0)


def describe_device(device: torch.device | str) -> dict[str, Any]:
    """The machine a run used, the one description every record carries: `name` (the GPU's name on CUDA, else
    the CPU model), the torch device, CPU model and threads, and `gpu`: name, driver, memory and power limit via
    nvidia-ml-py, or why they are missing."""
    device = torch.device(device)
    info = {"name": cpu_model(), "device": str(device), "cpu": cpu_model(), "threads": torch.get_num_threads()}
    if device.type != "cuda":
        reason = "ran on the CPU" + ("" if torch.cuda.is_available() else "; no CUDA device is visible")
        return {**info, "gpu": {"available": False, "reason": reason}}
    info["name"] = torch.cuda.get_device_name(device)
    return {**info, "gpu": _nvml_facts(device)}


def _nvml_facts(device: torch.device) -> dict[str, Any]:
    try:
        import pynvml

        pynvml.nvmlInit()
    except Exception as e:  # no library or no driver: recorded, not raised
        return {"available": False, "reason": f"{type(e).__name__}: {e}"}
    try:
        handle = nvml_handle(pynvml, device)
        gpu = {"available": True, "name": pynvml.nvmlDeviceGetName(handle),
               "driver": pynvml.nvmlSystemGetDriverVersion(),
               "memory_total_bytes": pynvml.nvmlDeviceGetMemoryInfo(handle).total}
        try:
            gpu["power_limit_w"] = pynvml.nvmlDeviceGetPowerManagementLimit(handle) / 1000
        except pynvml.NVMLError as e:
            gpu["power_limit_w"] = f"unavailable: {e}"
        return gpu
    finally:
        pynvml.nvmlShutdown()


def provenance(device: torch.device | str) -> dict[str, Any]:
    """Versions, the device (describe_device), git commit and time, for `meta` of checkpoints and results."""
    return {
        "python": sys.version.split()[0],
        "torch": str(torch.__version__),
        "platform": platform.platform(),
        "device": describe_device(device),
        "git_commit": git_commit(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
