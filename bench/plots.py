"""Figures to PNG: rendered in memory, then written atomically where they go to disk, so a killed or failing command
leaves the previous figure (or none), never part of one."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from ddgan_ref.io import write_bytes_atomic


def png_bytes(fig: Any, **savefig: Any) -> bytes:
    """The figure (matplotlib's, or anything with savefig and a `figure`) as PNG bytes; the figure is closed."""
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", **savefig)
    finally:
        plt.close(getattr(fig, "figure", fig))
    return buf.getvalue()


def write_png(fig: Any, path: Path, **savefig: Any) -> Path:
    """The figure written to `path` as PNG, atomically; the figure is closed."""
    return write_bytes_atomic(png_bytes(fig, **savefig), path)
