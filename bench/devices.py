"""Device choice for the CLIs: 'auto' is CUDA when present (this rank's GPU under torchrun), else CPU."""

from __future__ import annotations

import argparse
import os

import torch


def resolve_device(name: str) -> torch.device:
    """'auto' | 'cpu' | 'cuda' | 'cuda:N' -> a torch.device; asking for CUDA without one is an error. A CUDA
    device also gets `exact_float32`, so the commands' float32 is IEEE float32."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {name} was given but no CUDA device is available; use --device cpu")
        if device.index is None:
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        exact_float32()
    return device


def exact_float32() -> None:
    """Turns TF32 off for CUDA matmuls and cuDNN convolutions, process-wide. PyTorch lets cuDNN convolutions use
    TF32 by default, which on Ampere and later GPUs would make the float32 reference a TF32 run and the `tf32`
    speed setting a near copy of it; that setting turns TF32 on inside its own block (bench.speed.tf32)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False


def device_arg(text: str) -> str:
    """argparse type of --device: auto, cpu, cuda or cuda:N; a misspelt device, or CUDA where there is none, is
    refused before the command does anything."""
    if text == "auto":
        return text
    try:
        device = torch.device(text)
    except RuntimeError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a device; give auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise argparse.ArgumentTypeError(f"{text!r}: the commands run on cpu or cuda; give auto, cpu, cuda or cuda:N")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text!r}: no CUDA device is available here; use cpu (or auto)")
    return text
