"""bench.metrics.prdc against prdc 0.2 itself (the slow oracle): values, radii, ties, blocks and every fallback."""

import contextlib
import io

import numpy as np
import prdc as prdc_package
import pytest
import torch

from bench.metrics import neighbours, prdc
from bench.metrics.neighbours import Points, radii

KEYS = ("precision", "recall", "density", "coverage")


def oracle(real, fake, k: int = 5) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints "Num real: ..."
        return {key: float(v) for key, v in prdc_package.compute_prdc(real, fake, k).items()}


def assert_same(ours: dict, ref: dict) -> None:
    assert set(ours) == set(KEYS)
    for key in KEYS:
        assert abs(ours[key] - ref[key]) <= 1e-6, (key, ours[key], ref[key])


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) + shift).astype(dtype)


@pytest.mark.parametrize(("n", "m", "d", "k"), [(8, 9, 3, 5), (300, 200, 16, 5), (1500, 1700, 64, 5),
                                                 (1200, 900, 512, 3), (2500, 2500, 2048, 5)])
def test_prdc_equals_prdc_package(n, m, d, k):
    real, fake = gaussian(n, d, 0), gaussian(m, d, 1, shift=0.05) * 1.1
    assert_same(prdc(real, fake, k, block=512), oracle(real, fake, k))


def test_prdc_float64_and_mixed_dtypes_equal_prdc_package():
    real, fake = gaussian(700, 32, 2, dtype=np.float64), gaussian(600, 32, 3, 0.1, dtype=np.float64)
    assert_same(prdc(real, fake), oracle(real, fake))
    assert_same(prdc(real.astype(np.float32), fake), oracle(real.astype(np.float32), fake))


def test_radii_equal_prdc_package_exactly():
    x = gaussian(3000, 256, 4)
    expected = prdc_package.prdc.compute_nearest_neighbour_distances(x, 5)
    np.testing.assert_array_equal(radii(Points.of(x), 5, block=700).numpy(), expected)


@pytest.mark.parametrize("case", ["constant", "integer-grid", "duplicated-integers", "one-hot"])
def test_prdc_ties_as_prdc_package(case):
    rng = np.random.default_rng(5)
    real, fake = {
        "constant": (np.ones((100, 8)), np.ones((80, 8))),
        "integer-grid": (rng.integers(0, 3, (400, 4)), rng.integers(0, 3, (300, 4))),
        "duplicated-integers": (np.repeat(rng.integers(0, 9, (50, 6)), 4, 0), rng.integers(0, 9, (120, 6))),
        "one-hot": (np.eye(10)[rng.integers(0, 10, 200)], np.eye(10)[rng.integers(0, 7, 150)]),
    }[case]
    for dtype in (np.float32, np.float64):
        r, f = real.astype(dtype), fake.astype(dtype)
        assert_same(prdc(r, f, 5, block=64), oracle(r, f, 5))


def test_prdc_constant_features_give_zero_as_prdc():
    assert prdc(np.ones((50, 4), np.float32), np.ones((50, 4), np.float32)) == dict.fromkeys(KEYS, 0.0)


def test_prdc_does_not_depend_on_block_size_or_input_type():
    real, fake = gaussian(900, 48, 6), gaussian(800, 48, 7, 0.2)
    results = [prdc(real, fake, block=b) for b in (7, 100, 4096)]
    results.append(prdc(torch.from_numpy(real), torch.from_numpy(fake)))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize("patch", ["wide-bounds", "whole-block-recount", "few-candidates", "exact-blocks"])
def test_prdc_fallback_paths_equal_prdc_package(monkeypatch, patch):
    """Force every slow path: huge error bounds (most entries undecided), whole-block float64 recounts,
    candidate lists too short to prove a radius (whole-row recounts), and float64 blocks throughout (the path
    CUDA takes)."""
    if patch == "wide-bounds":
        monkeypatch.setattr(neighbours, "U32", 2.0**-12)
    if patch == "whole-block-recount":
        monkeypatch.setattr(neighbours, "U32", 2.0**-12)
        monkeypatch.setattr(neighbours, "REFINE_LIMIT", 0.0)
    if patch == "few-candidates":
        monkeypatch.setattr(neighbours, "EXTRA_CANDIDATES", 0)
        monkeypatch.setattr(neighbours, "U32", 2.0**-16)
    if patch == "exact-blocks":
        monkeypatch.setattr(Points, "approximate", property(lambda self: False))
    real, fake = gaussian(600, 128, 8), gaussian(500, 128, 9, 0.1)
    assert_same(prdc(real, fake, block=128), oracle(real, fake))


def test_prdc_self_is_perfect_and_disjoint_sets_score_zero():
    x = gaussian(400, 8, 10)
    same = prdc(x, x)
    assert same["precision"] == same["recall"] == same["coverage"] == 1.0
    far = prdc(x, x + 100)
    assert far == dict.fromkeys(KEYS, 0.0)


@pytest.mark.parametrize(("real", "fake", "k", "message"), [
    (np.zeros((10, 3)), np.zeros((10, 4)), 5, "real features have 3 dims but fake features 4"),
    (np.zeros((5, 3)), np.zeros((10, 3)), 5, "nearest_k=5 needs more than 5 real and fake samples"),
    (np.zeros((10, 3)), np.zeros((10, 3)), 0, "nearest_k must be a positive int"),
    (np.zeros((10,)), np.zeros((10, 3)), 5, "features must be [N, D]"),
])
def test_prdc_bad_input_is_a_clear_error(real, fake, k, message):
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        prdc(real, fake, k)


def test_threshold_is_the_exact_boundary_of_sqrt():
    r = torch.from_numpy(np.random.default_rng(11).uniform(0.01, 50, 20000).astype(np.float32))
    t = neighbours.threshold(r)
    assert (neighbours.root(t) >= r).all()
    below = torch.nextafter(t, torch.tensor(-float("inf")))
    assert (neighbours.root(below) < r).all()
    assert neighbours.threshold(torch.zeros(3)).eq(0).all()


@pytest.mark.cuda
def test_prdc_on_cuda_equals_prdc_package():
    real, fake = gaussian(3000, 256, 12), gaussian(2500, 256, 13, 0.1)
    assert_same(prdc(real, fake, device="cuda"), oracle(real, fake))
