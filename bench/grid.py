"""Sample pictures: an image grid (PNG, lossless) or, for 2D points, a scatter plot over the data."""

from __future__ import annotations

import io
from pathlib import Path

from torch import Tensor

from bench.plots import write_png
from ddgan_ref.io import write_bytes_atomic


def write_grid(samples: Tensor, path: str | Path, *, reference: Tensor | None = None, nrow: int | None = None) -> Path:
    """[N, C, H, W] in [-1, 1] -> PNG grid; [N, 2] points -> PNG scatter (with `reference` points in grey)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if samples.ndim == 4:
        from torchvision.utils import save_image

        nrow = nrow or max(1, int(samples.shape[0] ** 0.5))
        buf = io.BytesIO()
        save_image(((samples.float().cpu() + 1) / 2).clamp(0, 1), buf, format="png", nrow=nrow, padding=1)
        return write_bytes_atomic(buf.getvalue(), path)
    if samples.ndim == 2 and samples.shape[1] == 2:
        return _scatter(samples.float().cpu(), path, reference)
    raise ValueError(f"cannot draw samples of shape {tuple(samples.shape)}: expected [N, C, H, W] or [N, 2]")


def _scatter(points: Tensor, path: Path, reference: Tensor | None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 5), dpi=100)
    if reference is not None:
        ax.scatter(*reference[:, :2].float().cpu().T, s=2, c="0.75", label="data")
    ax.scatter(*points.T, s=2, c="tab:blue", label="samples")
    ax.set(xlim=(-1.1, 1.1), ylim=(-1.1, 1.1), aspect="equal")
    ax.legend(loc="upper right", markerscale=4)
    return write_png(fig, path, bbox_inches="tight")

