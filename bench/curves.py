"""Learning curves of the trilemma harness: a model's table quality metric at points along its training, and
whether the last stretch still moved it (a model that has not plateaued is under-trained, not a weaker idea).

A curve is measured by training in segments (each resumes the last: resume is exact) and measuring the table's
quality metric after each on samples drawn by seed, so the curve's last point is the table's model.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench.plots import write_png
from ddgan_ref.io import write_json_atomic

PLATEAU_TOLERANCE = 0.05  # relative change over the last segment below which a curve counts as flat


@dataclass(frozen=True)
class CurvePoint:
    iterations: int
    seconds: float  # wall-clock training time up to this point
    value: float


@dataclass(frozen=True)
class Curve:
    """One model's curve of `metric` (higher_better says its direction), measured on samples of `steps`
    sampling steps (None: the model's default)."""

    model: str
    metric: str
    higher_better: bool
    points: tuple[CurvePoint, ...]
    steps: int | None = None

    def plateaued(self, tolerance: float = PLATEAU_TOLERANCE) -> bool | None:
        """Whether the last segment changed the metric by less than `tolerance` of its size (an improvement
        or a loss); None with fewer than two points."""
        if len(self.points) < 2:
            return None
        before, last = self.points[-2].value, self.points[-1].value
        return abs(last - before) <= tolerance * max(abs(before), abs(last), 1e-12)


def segments(total: int, points: int) -> list[int]:
    """Iteration counts at which to measure: `points` evenly spaced ends of training, the last being `total`."""
    if total < 1 or points < 1:
        raise ValueError(f"a curve needs total >= 1 and points >= 1, got {total} and {points}")
    return sorted({max(1, round(total * k / points)) for k in range(1, points + 1)})


def train_with_curve(train_to: Callable[[int], Path], measure: Callable[[Path], float], total: int, points: int,
                     curve: Curve, saved: Path) -> tuple[Path, Curve]:
    """Train in `points` segments up to `total` iterations (train_to(n) trains, resuming, until n iterations are
    done and returns the checkpoint), measuring after each; the curve so far is kept in `saved`, so a killed run
    goes on from its last measured point. Returns the final checkpoint and the whole curve."""
    done = read_one(saved) if saved.is_file() else curve
    elapsed = done.points[-1].seconds if done.points else 0.0
    checkpoint = None
    for steps in segments(total, points):
        if any(p.iterations == steps for p in done.points):
            continue
        start = time.perf_counter()
        checkpoint = train_to(steps)
        elapsed += time.perf_counter() - start
        done = replace(done, points=(*done.points, CurvePoint(steps, round(elapsed, 2), measure(checkpoint))))
        write_json_atomic(to_json(done), saved)
    return checkpoint or train_to(total), done


def to_json(curve: Curve) -> dict:
    return {**asdict(curve), "plateaued": curve.plateaued(), "tolerance": PLATEAU_TOLERANCE}


def from_json(d: dict) -> Curve:
    return Curve(d["model"], d["metric"], d["higher_better"], tuple(CurvePoint(**p) for p in d["points"]),
                 d.get("steps"))


def read_one(path: Path) -> Curve:
    return from_json(json.loads(Path(path).read_text()))


def write(curves: list[Curve], path: Path) -> Path:
    """All curves as one JSON file (atomically)."""
    return write_json_atomic({"curves": [to_json(c) for c in curves]}, path)


def read(path: Path) -> list[Curve]:
    return [from_json(c) for c in json.loads(Path(path).read_text())["curves"]]


def write_beside(out: Path, trainings: list[dict | None], dataset: str) -> list[Path]:
    """learning_curves.json and .png in `out`: one curve per model the harness trained (the `curve` entry of
    its trained.json, as the cell records carry it)."""
    found = {t["curve"]["model"]: from_json(t["curve"]) for t in trainings if t and t.get("curve")}
    if not found:
        return []
    written = [write(list(found.values()), out / "learning_curves.json")]
    picture = plot(list(found.values()), out / "learning_curves.png", f"{dataset}: learning curves")
    return written + ([picture] if picture else [])


def plot(curves: list[Curve], path: Path, title: str) -> Path | None:
    """One line per model: the metric against iterations, a filled marker where the curve has plateaued."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn = [c for c in curves if c.points]
    if not drawn:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in drawn:
        x, y = [p.iterations for p in c.points], [p.value for p in c.points]
        line, = ax.plot(x, y, marker="o", label=f"{c.model} ({'plateau' if c.plateaued() else 'still moving'})")
        ax.plot(x[-1:], y[-1:], marker="o", markersize=9, color=line.get_color(),
                fillstyle="full" if c.plateaued() else "none")
    ax.set_xscale("log")
    ax.set_xlabel("training iterations")
    ax.set_ylabel(drawn[0].metric)
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return write_png(fig, path, dpi=120)
