"""bench.metrics.prdc against prdc 0.2 itself (the slow oracle): values, radii, ties, blocks and every fallback."""

import contextlib
import io

import numpy as np
import prdc as prdc_package
import pytest
import torch

import ddgan_ref.ops
from bench.metrics import distances, neighbours, prdc
from bench.metrics.distances import Points, product
from bench.metrics.neighbours import FirstPass, radii

KEYS = ("precision", "recall", "density", "coverage")
# Every way float32 CPU blocks can be computed: compiled kernel or torch ops, bfloat16 or float32 first pass.
WAYS = [pytest.param(impl, first, id=f"{impl}-{first}") for impl in ("cpu", "ref") for first in ("bfloat16", "float32")]


def oracle(real, fake, k: int = 5) -> dict[str, float]:
    with contextlib.redirect_stdout(io.StringIO()):  # prdc prints "Num real: ..."
        return {key: float(v) for key, v in prdc_package.compute_prdc(real, fake, k).items()}


def assert_same(ours: dict, ref: dict) -> None:
    assert set(ours) == set(KEYS)
    for key in KEYS:
        assert abs(ours[key] - ref[key]) <= 1e-6, (key, ours[key], ref[key])


def gaussian(n: int, d: int, seed: int, shift: float = 0.0, dtype=np.float32) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, d)) + shift).astype(dtype)


@pytest.mark.parametrize(("impl", "first_pass"), WAYS)
@pytest.mark.parametrize(("n", "m", "d", "k"), [(8, 9, 3, 5), (300, 200, 16, 5), (1500, 1700, 64, 5),
                                                 (1200, 900, 512, 3), (2500, 2500, 2048, 5)])
def test_prdc_equals_prdc_package(n, m, d, k, impl, first_pass):
    real, fake = gaussian(n, d, 0), gaussian(m, d, 1, shift=0.05) * 1.1
    assert_same(prdc(real, fake, k, block=512, impl=impl, first_pass=first_pass), oracle(real, fake, k))


@pytest.mark.parametrize(("impl", "first_pass"), WAYS)
def test_prdc_of_nonnegative_features_equals_prdc_package(impl, first_pass):
    """Inception-like features (post-ReLU, norms that vary): the bounds scale with the norms."""
    rng = np.random.default_rng(14)
    real = np.maximum(rng.standard_normal((1800, 256)) * rng.uniform(0.2, 3, (1800, 1)), 0).astype(np.float32)
    fake = np.maximum(rng.standard_normal((1600, 256)) * rng.uniform(0.2, 3, (1600, 1)) + 0.1, 0).astype(np.float32)
    assert_same(prdc(real, fake, 5, block=600, impl=impl, first_pass=first_pass), oracle(real, fake, 5))


def test_prdc_float64_and_mixed_dtypes_equal_prdc_package():
    real, fake = gaussian(700, 32, 2, dtype=np.float64), gaussian(600, 32, 3, 0.1, dtype=np.float64)
    assert_same(prdc(real, fake), oracle(real, fake))
    assert_same(prdc(real.astype(np.float32), fake), oracle(real.astype(np.float32), fake))


@pytest.mark.parametrize(("impl", "first_pass"), WAYS)
def test_radii_equal_prdc_package_exactly(impl, first_pass):
    x = gaussian(3000, 256, 4)
    expected = prdc_package.prdc.compute_nearest_neighbour_distances(x, 5)
    p = Points.of(x)
    got = radii(p, 5, block=700, first=FirstPass.choose(p, p, impl, first_pass))
    np.testing.assert_array_equal(got.numpy(), expected)


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
        for impl, first_pass in (("cpu", "bfloat16"), ("ref", "bfloat16"), ("cpu", "float32"), ("ref", "float32")):
            if dtype == np.float32 or impl == "ref":
                assert_same(prdc(r, f, 5, block=64, impl=impl, first_pass=first_pass), oracle(r, f, 5))


def test_prdc_constant_features_give_zero_as_prdc():
    assert prdc(np.ones((50, 4), np.float32), np.ones((50, 4), np.float32)) == dict.fromkeys(KEYS, 0.0)


def test_prdc_does_not_depend_on_block_size_or_input_type():
    real, fake = gaussian(900, 48, 6), gaussian(800, 48, 7, 0.2)
    results = [prdc(real, fake, block=b) for b in (37, 100, 4096)]
    results.append(prdc(torch.from_numpy(real), torch.from_numpy(fake)))
    assert all(r == results[0] for r in results)


@pytest.mark.parametrize(("impl", "first_pass"), WAYS)
@pytest.mark.parametrize("patch", ["wide-bounds", "whole-block-recount", "few-candidates", "exact-blocks"])
def test_prdc_fallback_paths_equal_prdc_package(monkeypatch, patch, impl, first_pass):
    """Force every slow path: huge error bounds (most entries undecided), whole-block recounts, candidate lists
    too short to prove a radius (whole-row recounts), and float64 blocks throughout (the path CUDA takes)."""
    if patch in ("wide-bounds", "whole-block-recount", "few-candidates"):
        u = 2.0**-16 if patch == "few-candidates" else 2.0**-12
        monkeypatch.setattr(distances, "U32", u)  # every bound grows
        monkeypatch.setattr(neighbours, "U32", u)
    if patch == "whole-block-recount":
        monkeypatch.setattr(neighbours, "REFINE_LIMIT", 0.0)
    if patch == "few-candidates":
        monkeypatch.setattr(neighbours, "EXTRA_CANDIDATES", 0)
        monkeypatch.setattr(neighbours, "BF16_EXTRA_CANDIDATES", 0)
    if patch == "exact-blocks":
        monkeypatch.setattr(Points, "approximate", property(lambda self: False))
        impl = "ref"  # the compiled first pass refuses non-approximate points
    real, fake = gaussian(600, 128, 8), gaussian(500, 128, 9, 0.1)
    assert_same(prdc(real, fake, block=128, impl=impl, first_pass=first_pass), oracle(real, fake))


@pytest.mark.parametrize("bfloat16", [True, False])
@pytest.mark.parametrize("case", ["gaussian-2048", "nonnegative-64", "scaled-1e3"])
def test_first_pass_bound_holds(case, bfloat16):
    """|v' - v| <= pa + qb + kappa |c| on every entry, v the float64 formula: the assumption every shortcut rests on
    (bfloat16: that torch's bfloat16 product sums exact products in float32 and rounds once)."""
    rng = np.random.default_rng(15)
    n, d = (300, 2048) if case == "gaussian-2048" else (500, 64)
    x = rng.standard_normal((2 * n, d))
    x = np.maximum(x, 0) if case == "nonnegative-64" else x * (1e3 if case == "scaled-1e3" else 1)
    p = Points.of(x.astype(np.float32))
    p = p.with_bfloat16() if bfloat16 else p
    a, b = p.part(slice(0, n)), p.part(slice(n, 2 * n))
    prod = product(a, b, bfloat16)
    approx = a.sq[:, None] + b.sq[None, :] - 2 * prod.c.double()
    exact = torch.addmm(a.sq[:, None], a.x.double(), b.x.double().T, alpha=-2) + b.sq[None, :]
    bound = prod.pa[:, None] + prod.qb[None, :] + prod.kappa * prod.c.double().abs()
    assert ((approx - exact).abs() <= bound).all()
    assert ((approx - exact).abs().max() > 0.01 * bound.min()) or not bfloat16  # the bound is not vacuous


def test_first_pass_choice_and_errors():
    p32, p64 = Points.of(gaussian(50, 4, 16)), Points.of(gaussian(50, 4, 16, dtype=np.float64))
    assert FirstPass.choose(p32, p32, "cpu", "float32").describe() == "float32 first pass, cpu kernel"
    assert FirstPass.choose(p32, p32, "ref", "bfloat16").describe() == "bfloat16 first pass, torch"
    assert FirstPass.choose(p32, p64, "ref").describe() == "float64 blocks"
    assert FirstPass.choose(p32, p32, "ref").describe() == "float32 first pass, torch"  # 4 dims: never bfloat16
    with ddgan_ref.ops.using("ref"):
        assert FirstPass.choose(p32, p32).kernel is None
    with pytest.raises(ValueError, match="impl='cpu' .* needs float32 features on the CPU"):
        FirstPass.choose(p64, p64, "cpu")
    with pytest.raises(ValueError, match="first_pass must be one of auto, float32, bfloat16, got 'fp8'"):
        prdc(gaussian(50, 4, 16), gaussian(50, 4, 17), first_pass="fp8")


@pytest.mark.parametrize("impl", ["cpu", "ref", "auto"])
def test_prdc_with_the_using_default_equals_prdc_package(impl):
    """impl=None: the first pass takes the `using()` default through ddgan_ref.ops.neighbours_kernel."""
    real, fake = gaussian(700, 96, 18), gaussian(650, 96, 19, 0.1)
    with ddgan_ref.ops.using(impl):
        first = FirstPass.choose(Points.of(real), Points.of(real))
        got = prdc(real, fake, block=256)
    assert (first.kernel is None) == (impl == "ref")
    assert_same(got, oracle(real, fake))


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
