"""Reference features and statistics on disk, keyed by everything that determines them.

torch-fidelity's own cache names files by input and extractor only, so new weights or another N silently reuse
stale statistics (spec/metrics.md 1.3). Here the key holds dataset, split, N, seed, image size, data root (for
folders, with a digest of their files), extractor, the SHA-256 of its weights and the torch-fidelity version; the
file name carries a digest of the key, the file repeats the key, and a mismatch (or an unreadable file) means
recompute and replace. Files are written atomically and read with weights_only=True.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ddgan_ref.io import save_atomic

VERSION = 1  # bump when the way features are computed changes


def default_root() -> Path:
    """$DDGAN_BENCH_CACHE, else ~/.cache/ddgan-bench/metrics."""
    env = os.environ.get("DDGAN_BENCH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "ddgan-bench" / "metrics"


def path_for(root: Path, key: dict) -> Path:
    digest = hashlib.sha256(json.dumps({**key, "version": VERSION}, sort_keys=True).encode()).hexdigest()[:16]
    return root / f"{key['dataset']}-{key['split']}-{key['extractor']}-n{key['n']}-{digest}.pt"


def load(root: Path, key: dict) -> dict[str, Tensor] | None:
    """The cached tensors for `key`, or None when absent, unreadable or made under another key."""
    path = path_for(root, key)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # a damaged cache entry is recomputed, never trusted
        warnings.warn(f"ignoring unreadable metrics cache entry {path} ({e}); recomputing it", stacklevel=2)
        return None
    if payload.get("key") != {**key, "version": VERSION}:
        return None
    return payload["tensors"]


def store(root: Path, key: dict, tensors: dict[str, Tensor]) -> Path:
    return save_atomic({"key": {**key, "version": VERSION}, "tensors": tensors}, path_for(root, key))
