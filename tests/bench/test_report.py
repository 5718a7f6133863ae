"""bench.report: the columns of its table, and the labels of its plot."""

from __future__ import annotations

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from bench.report import CORE, label_points, table
from bench.results import CellKey, CellRecord
from bench.timing import PaperTime


def record(cell: str, noisy: str | None) -> CellRecord:
    timing = PaperTime(batch=100, rounds=3, seconds=0.5, seconds_all=[0.4, 0.5, 0.6], nfe=4, peak_memory_bytes=None,
                       joules_per_image=None, iqr_seconds=0.1, noisy=noisy)
    return CellRecord(cell, cell, "ddgan", 4, CellKey(cell, "gaussians25", 200, 0, 3, None), metrics={"modes": 25.0},
                      timing=timing)


def test_a_column_no_cell_fills_is_left_out_and_the_core_ones_stay():
    calm = table([record("a", None), record("b", None)])
    assert set(CORE) <= set(calm.columns) and {"modes", "seconds_iqr"} <= set(calm.columns)
    # Nothing flagged, no memory measured, no training recorded: those columns would be empty.
    assert not {"timing_noisy", "peak_memory_mib", "train_iterations", "plateau"} & set(calm.columns)
    noisy = table([record("a", None), record("b", "load 3.1 > 1.5 x 2 CPUs")])
    assert noisy["timing_noisy"].isna().tolist() == [True, False]
    failed = table([CellRecord("c", "c", "ddgan", 4, CellKey("c", "gaussians25", 200, 0, 3, None), status="failed",
                               reason="boom")])
    assert list(failed.columns) == ["cell", "model", "steps", "nfe", "seconds_per_batch", "images_per_s", "status"]


def test_labels_of_points_at_the_edges_stay_inside_the_axes():
    # The 24 px Stacked MNIST table's layout: the slowest model at the right edge, the worst at the top.
    points = [("DDGAN (T=4)", 1.07, 45.9), ("DDPM (1000 steps)", 156.0, 38.9), ("DDIM (10 steps)", 1.43, 29.1),
              ("DDIM (100 steps)", 15.0, 26.8), ("DDIM (50 steps)", 7.0, 25.1)]
    fig = Figure(figsize=(7, 4.5))
    canvas, ax = FigureCanvasAgg(fig), fig.add_subplot()
    ax.scatter([p[1] for p in points], [p[2] for p in points], s=400)
    ax.set_xscale("log")
    label_points(ax, points)
    canvas.draw()
    inside = ax.get_window_extent()
    assert [t.get_text() for t in ax.texts] == [p[0] for p in points]
    for text in ax.texts:
        box = text.get_window_extent()
        assert inside.x0 <= box.x0 and box.x1 <= inside.x1, text.get_text()
        assert inside.y0 <= box.y0 and box.y1 <= inside.y1, text.get_text()
