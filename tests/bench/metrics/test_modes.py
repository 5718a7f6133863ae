"""Mode coverage: KL to uniform, Stacked Digits (1000 modes) and the 2D mixtures, perfect and collapsed."""

import math

import pytest
import torch

from bench.data import build_dataset
from bench.data.toy import GRID_STD, grid_centers
from bench.metrics import Reference, evaluate, modes
from bench.metrics import extractors as fe
from bench.metrics.evaluate import mode_labels
from bench.metrics.features import extract


def stack(ds) -> torch.Tensor:
    return torch.stack([ds[i][0] for i in range(len(ds))])


def test_kl_to_uniform_limits():
    assert modes.kl_to_uniform(torch.full((1000,), 26)) == pytest.approx(0.0, abs=1e-12)
    assert modes.kl_to_uniform(torch.tensor([5, 0, 0, 0])) == pytest.approx(math.log(4))
    kl = 2 / 3 * math.log(2 / 3 * 10) + 1 / 3 * math.log(1 / 3 * 10)  # p = (2/3, 1/3) over 10 modes; -1 ignored
    assert modes.coverage(torch.tensor([3, 3, 7, -1]), 10) == {"modes": 2, "mode_kl": pytest.approx(kl)}


def test_stacked_modes_reads_channels_as_digits():
    assert modes.stacked_modes(torch.tensor([[1, 2, 3], [0, 0, 9]])).tolist() == [123, 9]


def test_channel_readings_tell_dropped_digits_from_unreadable_ones():
    """Confident uniform readings: KL 0, all confident. One digit read with confidence in every channel (dropped
    digits): KL log 10, all confident. Flat logits (unreadable): top probability 0.1, none confident."""
    uniform = torch.nn.functional.one_hot(torch.arange(30).reshape(10, 3) % 10, 10).double() * 20
    assert modes.channel_readings(uniform) == {"digit_kl": pytest.approx(0.0, abs=1e-12), "confident_share": 1.0}
    dropped = torch.zeros(10, 3, 10)
    dropped[..., 8] = 20
    assert modes.channel_readings(dropped) == {"digit_kl": pytest.approx(math.log(10)), "confident_share": 1.0}
    mixed = torch.cat([dropped[:5], torch.zeros(5, 3, 10)])  # half confident 8s, half flat (argmax reads 0)
    assert modes.channel_readings(mixed) == {"digit_kl": pytest.approx(math.log(5)), "confident_share": 0.5}


def test_stacked_digits_real_samples_cover_all_1000_modes():
    """26,000 held-out triples (the protocol's N) through the classifier: every mode, low KL; and the classifier
    reads a reference's true modes."""
    ds = build_dataset("stacked-digits", train=False, size=26_000, seed=1, image_size=16)
    logits = extract(stack(ds), fe.build("digits-cnn"), "digits-cnn", batch_size=2000)["logits"]
    predicted = mode_labels("stacked-digits", logits)
    assert modes.coverage(predicted, 1000)["modes"] == 1000
    assert modes.coverage(predicted, 1000)["mode_kl"] < 0.1
    assert (predicted == ds.labels).double().mean() > 0.97
    m = evaluate(stack(ds)[:2000], Reference("stacked-digits", n=2000), use_cache=False)["metrics"]
    assert m["classifier_accuracy_ref"] > 0.97 and m["coverage_digits"] > 0.9
    assert m["digit_kl"] < 0.02 and m["confident_share"] > 0.95  # read as held-out digits are
    assert m["ref_digit_kl"] < 0.02 and m["ref_confident_share"] > 0.95


def test_stacked_digits_collapsed_samples_have_few_modes_and_low_coverage():
    x = stack(build_dataset("stacked-digits", train=False, size=30, seed=1, image_size=16))
    m = evaluate(x.repeat(100, 1, 1, 1), "stacked-digits", use_cache=False)["metrics"]
    assert m["modes"] <= 30 and m["mode_kl"] > 3
    assert m["digit_kl"] < 0.3  # each channel still shows every digit: the triples collapsed, not the digits
    assert m["coverage_digits"] < 0.1 and m["recall_digits"] < 0.05
    assert m["ref_modes"] > 900  # the reference itself is fine


def test_mixture_coverage_perfect_collapsed_and_off_mode():
    centres = grid_centers()
    perfect = stack(build_dataset("gaussians25", train=False, size=2500, seed=2))
    out = modes.mixture_coverage(perfect, centres, GRID_STD)
    assert out["modes"] == 25 and out["hq_fraction"] > 0.97 and out["mode_kl"] < 0.01
    collapsed = centres[[0, 7, 7, 12]].repeat(100, 1)
    assert modes.mixture_coverage(collapsed, centres, GRID_STD)["modes"] == 3
    off = centres + 0.1  # 10 std from every centre
    assert modes.mixture_coverage(off, centres, GRID_STD) == {"modes": 0, "hq_fraction": 0.0, "mode_kl": None}


def test_evaluate_2d_reports_mixture_modes_and_identity_metrics():
    pts = stack(build_dataset("gaussians25", train=False, size=2500, seed=3))
    m = evaluate(pts, "gaussians25", use_cache=False)["metrics"]
    assert m["modes"] == 25 and m["ref_modes"] == 25
    assert m["fd_identity"] < 1e-3 and m["coverage_identity"] > 0.9
    half = pts[(pts[:, 0] < -0.2)]  # only the two left columns of the grid
    m = evaluate(half, "gaussians25", use_cache=False)["metrics"]
    assert m["modes"] == 10 and m["coverage_identity"] < 0.6
