"""One batched pass of a feature extractor over images (or 2D points), shared by every metric.

Images reach the extractor as torch-fidelity expects them, uint8 [B, 3, H, W]: float images in [-1, 1] are
quantised exactly as `torchvision.utils.save_image((x + 1) / 2)` writes a PNG, so a tensor of samples and its
lossless PNGs give the same features; one-channel images are repeated to three. 2D points skip all that: the
identity extractor returns them as they are.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from bench.metrics.extractors import EXTRACTORS


def to_uint8(images: Tensor) -> Tensor:
    """[N, C, H, W] float in [-1, 1] (or uint8) -> uint8 [N, 3, H, W] (C = 1 or 3), rounded as save_image."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be [N, 1 or 3, H, W], got shape {tuple(images.shape)}")
    if images.dtype != torch.uint8:
        images = ((images.float() + 1) / 2).mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images


def is_points(data: Tensor) -> bool:
    return data.ndim == 2


@torch.no_grad()
def extract(data: Tensor, extractor: torch.nn.Module, name: str, *, batch_size: int = 100,
            device: torch.device | str = "cpu", progress: Callable[[int], None] | None = None) -> dict[str, Tensor]:
    """{'features': [N, D] float32, 'logits': [N, ...] or absent} of images [N, C, H, W] (or points [N, 2] for
    the identity extractor), in batches of batch_size on `device`; progress(k) is called after each batch of k.
    Each image's features depend on it alone (the extractors are in eval mode), not on the batch size."""
    spec = EXTRACTORS[name]
    if is_points(data):
        if name != "identity":
            raise ValueError(f"2D points can only use the identity extractor, not {name!r}")
        if progress is not None:
            progress(len(data))
        return {"features": data.float()}
    if len(data) == 0:  # a torchrun rank whose shard is empty; World.gather leaves its parts out
        return {"features": torch.empty(0)} | (
            {"logits": torch.empty(0)} if spec.logits in extractor.features_list else {})
    extractor = extractor.to(device)
    chunks: list[tuple[Tensor, ...]] = []
    for start in range(0, len(data), batch_size):
        batch = to_uint8(data[start:start + batch_size]).to(device)
        chunks.append(tuple(t.float().cpu() for t in extractor(batch)))
        if progress is not None:
            progress(len(batch))
    out = {layer: torch.cat([c[i] for c in chunks]) for i, layer in enumerate(extractor.features_list)}
    result = {"features": out[spec.feature]}
    if spec.logits in out:  # an Inception file without a logits layer gives features only
        result["logits"] = out[spec.logits]
    return result
