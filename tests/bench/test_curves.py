"""bench.curves: segment ends, the plateau rule, training in segments that survives a kill, and the files."""

import json

import pytest

from bench import curves
from bench.curves import Curve, CurvePoint


def test_segments_end_at_the_total():
    assert curves.segments(100, 4) == [25, 50, 75, 100]
    assert curves.segments(2, 5) == [1, 2]
    with pytest.raises(ValueError, match="total >= 1"):
        curves.segments(0, 3)


@pytest.mark.parametrize(("values", "expected"), [((0.5, 0.9), False), ((0.88, 0.9), True), ((40.0, 39.0), True),
                                                  ((60.0, 40.0), False), ((0.9, 0.5), False), ((0.9,), None)])
def test_plateau_is_a_small_change_over_the_last_segment(values, expected):
    curve = Curve("m", "hq_fraction", True, tuple(CurvePoint(i + 1, i, v) for i, v in enumerate(values)))
    assert curve.plateaued() is expected


def test_train_with_curve_goes_on_from_its_last_measured_point(tmp_path):
    trained, measured = [], []

    def train_to(steps):
        trained.append(steps)
        return tmp_path / f"ckpt-{steps}"

    def measure(checkpoint):
        measured.append(checkpoint.name)
        if checkpoint.name == "ckpt-50":
            raise KeyboardInterrupt  # killed while measuring the second point
        return float(checkpoint.name.split("-")[1]) / 100

    start = Curve("m", "hq_fraction", True, ())
    with pytest.raises(KeyboardInterrupt):
        curves.train_with_curve(train_to, measure, 100, 4, start, tmp_path / "curve.json")
    assert [p.iterations for p in curves.read_one(tmp_path / "curve.json").points] == [25]
    measure_again = lambda c: float(c.name.split("-")[1]) / 100
    checkpoint, curve = curves.train_with_curve(train_to, measure_again, 100, 4, start, tmp_path / "curve.json")
    assert trained == [25, 50, 50, 75, 100] and checkpoint.name == "ckpt-100"
    assert [p.value for p in curve.points] == [0.25, 0.5, 0.75, 1.0] and curve.plateaued() is False
    assert all(a.seconds <= b.seconds for a, b in zip(curve.points[:-1], curve.points[1:], strict=True))


def test_write_beside_gathers_one_curve_per_model(tmp_path):
    curve = Curve("ddpm", "hq_fraction", True, (CurvePoint(10, 1.0, 0.2), CurvePoint(20, 2.0, 0.205)))
    trainings = [{"curve": curves.to_json(curve)}, {"curve": curves.to_json(curve)}, None, {}]
    written = curves.write_beside(tmp_path, trainings, "gaussians25")
    assert [p.name for p in written] == ["learning_curves.json", "learning_curves.png"]
    data = json.loads((tmp_path / "learning_curves.json").read_text())
    assert len(data["curves"]) == 1 and data["curves"][0]["plateaued"] is True
    assert curves.read(tmp_path / "learning_curves.json") == [curve]
    assert curves.write_beside(tmp_path / "none", [None], "gaussians25") == []

