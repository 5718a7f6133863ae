"""FD/KID/IS: float64 scipy sqrtm oracle, torch-fidelity end to end, batch-size independence, FD(x, x) = 0."""

import numpy as np
import pytest
import scipy.linalg
import torch
import torch_fidelity
from torch.utils.data import Dataset

from bench.data import build_dataset
from bench.metrics import evaluate
from bench.metrics import extractors as fe
from bench.metrics.features import extract, to_uint8
from bench.metrics.fid import frechet_distance, inception_score, kernel_distance, statistics


def fd_scipy(a: np.ndarray, b: np.ndarray) -> float:
    """The textbook formula in float64 with scipy's sqrtm (pytorch-fid / EDM style): the slow oracle."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s1 @ s2)
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean.real))


class Images(Dataset):
    """uint8 [3, H, W] items, torch-fidelity's dataset contract."""

    def __init__(self, x: torch.Tensor):
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.x[i]


def images(name: str, train: bool, n: int, seed: int) -> torch.Tensor:
    ds = build_dataset(name, train=train, size=n, seed=seed, image_size=16)
    return torch.stack([ds[i][0] for i in range(len(ds))])


@pytest.mark.parametrize(("n", "d"), [(500, 32), (300, 64), (40, 64)])  # the last: rank-deficient Sigma
def test_frechet_distance_equals_scipy_sqrtm_in_float64(n, d):
    rng = np.random.default_rng(d)
    a = rng.standard_normal((n, d)).astype(np.float32)
    b = (rng.standard_normal((n, d)) * 1.2 + 0.3).astype(np.float32)
    ours = frechet_distance(statistics(torch.from_numpy(a)), statistics(torch.from_numpy(b)))
    assert ours == pytest.approx(fd_scipy(a.astype(np.float64), b.astype(np.float64)), rel=1e-6)


def test_frechet_distance_of_a_set_with_itself_is_zero():
    x = torch.randn(400, 48, generator=torch.Generator().manual_seed(0))
    assert abs(frechet_distance(statistics(x), statistics(x))) < 1e-6


def test_metrics_equal_torch_fidelity_end_to_end():
    """torch-fidelity's calculate_metrics with our registered digits-cnn (its dataloader, its statistics) and
    bench.metrics.evaluate give the same FD, KID and precision/recall (input1 = generated)."""
    fake, real = images("stacked-digits", False, 1100, 1), images("stacked-digits", True, 1100, 0)
    fe.register()
    tf = torch_fidelity.calculate_metrics(
        input1=Images(to_uint8(fake)), input2=Images(to_uint8(real)), fid=True, kid=True, prc=True,
        feature_extractor="digits-cnn", cuda=False, cache=False, save_cpu_ram=True, verbose=False,
        prc_neighborhood=5, kid_subset_size=1000)
    ours = evaluate(fake, "stacked-digits", use_cache=False)["metrics"]
    assert ours["fd_digits"] == pytest.approx(tf["frechet_inception_distance"], rel=1e-6)
    assert ours["kd_digits"] == pytest.approx(tf["kernel_inception_distance_mean"], rel=1e-6)
    assert ours["kd_digits_std"] == pytest.approx(tf["kernel_inception_distance_std"], rel=1e-6)
    assert ours["precision_digits"] == pytest.approx(tf["precision"], abs=1e-6)
    assert ours["recall_digits"] == pytest.approx(tf["recall"], abs=1e-6)


def test_features_and_metrics_do_not_depend_on_batch_size():
    x = images("stacked-digits", False, 300, 2)
    module = fe.build("digits-cnn")
    feats = [extract(x, module, "digits-cnn", batch_size=b)["features"] for b in (1, 7, 300)]
    for f in feats[1:]:
        torch.testing.assert_close(f, feats[0], rtol=1e-5, atol=1e-5)
    a, b = (evaluate(x, "stacked-digits", use_cache=False, batch_size=bs)["metrics"] for bs in (13, 128))
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-6), key


def test_kernel_distance_is_near_zero_for_one_distribution_and_large_for_two():
    g = torch.Generator().manual_seed(3)
    x, y, z = torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g), torch.randn(600, 16, generator=g)
    same, _ = kernel_distance(x, y, subsets=20, subset_size=500)
    other, _ = kernel_distance(x, z + 1, subsets=20, subset_size=500)
    assert abs(same) < 0.05 * other


def test_inception_score_bounds():
    """IS is 1 for identical predictions and the number of classes for confident, balanced ones (one split)."""
    uniform = torch.zeros(1000, 1008)
    assert inception_score(uniform)[0] == pytest.approx(1.0)
    confident = torch.full((1000, 10), -1e4)
    confident[torch.arange(1000), torch.arange(1000) % 10] = 0
    assert inception_score(confident, splits=1)[0] == pytest.approx(10.0, rel=1e-6)
