"""Properties of the DDGAN discretisation; exact values are checked by tests/test_golden.py."""

import pytest
import torch

from ddgan_ref import diffusion as D

# Printed from the official code for the default VP schedule, T = 4 (spec ddgan.md §4).
UPSTREAM_T4 = {
    "betas": [0.47826, 0.84921, 0.95642, 0.98740],
    "alphas_cumprod": [0.52174, 0.078676, 0.0034289, 4.319e-5],
    "posterior_variance": [0.0, 0.44082, 0.88420, 0.98406],
    "posterior_mean_coef1": [1.0, 0.66578, 0.26919, 0.057822],
    "posterior_mean_coef2": [0.0, 0.20158, 0.19300, 0.11185],
}


@pytest.mark.parametrize("name", sorted(UPSTREAM_T4))
def test_posterior_coefficients_match_upstream_table(name):
    got = getattr(D.posterior_coefficients(4), name)
    torch.testing.assert_close(got, torch.tensor(UPSTREAM_T4[name]), rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("T", [1, 2, 4, 8])
def test_sigma_schedule_shapes_and_dummy_beta(T):
    sigmas, a_s, betas = D.sigma_schedule(T)
    assert sigmas.shape == a_s.shape == betas.shape == (T + 1,)
    assert betas.dtype == torch.float32 and betas[0].item() == pytest.approx(1e-8)
    assert ((betas[1:] > 0) & (betas[1:] < 1)).all()
    torch.testing.assert_close(a_s**2 + sigmas**2, torch.ones(T + 1), atol=1e-6, rtol=0)


def test_time_grid_starts_at_eps_and_ends_at_one():
    s = D.time_grid(4)
    assert s.dtype == torch.float64
    assert s[0].item() == pytest.approx(1e-3) and s[-1].item() == pytest.approx(1.0)


@pytest.mark.parametrize("beta_min,beta_max", [(0.1, 20.0), (0.0, 0.5), (0.5, 0.1), (0.1, 1.0)])
def test_geometric_schedule_rejects_nan_range(beta_min, beta_max):
    with pytest.raises(ValueError, match="0 < beta_min < beta_max < 1"):
        D.sigma_schedule(4, beta_min, beta_max, use_geometric=True)


def test_geometric_schedule_valid_range_is_finite():
    pos = D.posterior_coefficients(4, 0.01, 0.9, use_geometric=True)
    assert all(getattr(pos, n).isfinite().all() for n in ("posterior_mean_coef1", "posterior_variance"))


def test_q_sample_pairs_is_one_forward_step_from_q_sample():
    coeffs = D.diffusion_coefficients(4)
    x0, n1, n2 = torch.randn(3, 6, 2).unbind(0)
    t = torch.tensor([0, 1, 2, 3, 0, 3])
    x_t, x_tp1 = D.q_sample_pairs(coeffs, x0, t, n1, n2)
    torch.testing.assert_close(x_t, D.q_sample(coeffs, x0, t, n1))
    torch.testing.assert_close(x_tp1, coeffs.a_s[t + 1, None] * x_t + coeffs.sigmas[t + 1, None] * n2)
    torch.testing.assert_close(x_t[t == 0], x0[t == 0])  # alpha_bar_0 = 1: the t = 0 pair is (x0, x1)


def test_marginal_of_pairs_matches_q_sample_statistics():
    coeffs = D.diffusion_coefficients(4)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000, 1), 0.5)
    t = torch.full((200_000,), 2)
    _, x_tp1 = D.q_sample_pairs(coeffs, x0, t, torch.randn(x0.shape, generator=g), torch.randn(x0.shape, generator=g))
    assert x_tp1.mean().item() == pytest.approx(0.5 * coeffs.a_s_cum[3].item(), abs=5e-3)
    assert x_tp1.std().item() == pytest.approx(coeffs.sigmas_cum[3].item(), abs=5e-3)


def test_posterior_sample_at_t0_returns_x0_without_noise():
    pos = D.posterior_coefficients(4)
    x0, x1, noise = torch.randn(3, 5, 3, 4, 4).unbind(0)
    out = D.posterior_sample(pos, x0, x1, torch.zeros(5, dtype=torch.long), noise)
    torch.testing.assert_close(out, x0, atol=1e-6, rtol=1e-6)


def test_posterior_mean_is_gaussian_posterior_for_two_steps():
    # q(x_1 | x_2, x_0) for a 2-step chain from the forward marginals, by the Gaussian conditioning formula.
    pos, fwd = D.posterior_coefficients(4), D.diffusion_coefficients(4)
    ab1, ab2 = fwd.a_s_cum[1] ** 2, fwd.a_s_cum[2] ** 2
    a2 = 1 - pos.betas[1]
    c1 = ab1.sqrt() * (1 - a2) / (1 - ab2)
    c2 = a2.sqrt() * (1 - ab1) / (1 - ab2)
    torch.testing.assert_close(pos.posterior_mean_coef1[1], c1, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(pos.posterior_mean_coef2[1], c2, atol=1e-6, rtol=1e-5)
