"""Checkpoint I/O shared by the baselines: atomic writes, and loads that never execute code from the file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file is missing, truncated, of another format, or does not fit the model."""


def save_atomic(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_file(path: str | Path) -> Any:
    """torch.load(weights_only=True) on CPU; missing or unreadable files get a CheckpointError saying so."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # truncated zip, foreign pickle, ...
        raise CheckpointError(f"cannot read checkpoint {path} (truncated, or not a weights-only torch file): "
                              f"{error}") from error


def load_into(module: torch.nn.Module, state_dict: dict[str, torch.Tensor], what: str) -> None:
    """load_state_dict(strict) with an error that lists the missing, unexpected and mis-shaped keys."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(own))
    shapes = sorted(f"{k}: file {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
                    for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape)
    if missing or unexpected or shapes:
        raise CheckpointError(f"{what} does not fit the architecture: missing {missing[:10]} ({len(missing)}), "
                              f"unexpected {unexpected[:10]} ({len(unexpected)}), shape mismatches {shapes[:10]}")
    module.load_state_dict(state_dict)


def read_payload(path: str | Path, fmt: str, what: str) -> dict[str, Any]:
    """A checkpoint dict of our format `fmt` (a CheckpointError naming `what` otherwise)."""
    payload = load_file(path)
    if not isinstance(payload, dict) or payload.get("format") != fmt:
        raise CheckpointError(f"{path} is not a {what} checkpoint of this suite (format {fmt!r})")
    return payload


def resumable(config: dict[str, Any]) -> dict[str, Any]:
    """The part of a run's config that a resumed run must share: all but the step budget and checkpoint interval."""
    return config | {"train": {k: v for k, v in config["train"].items() if k not in ("steps", "checkpoint_every")}}
