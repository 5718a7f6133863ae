"""bench.figures: the exact 1D diffusion marginals and denoising posteriors against numerical integration, the
paper's claim (a small step's posterior is unimodal, a large step's is not), and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bench import figures as F

REPO = Path(__file__).resolve().parents[2]
GRID = np.linspace(-6, 6, 24001)


def gauss(x, mean, var):
    return np.exp(-0.5 * (x - mean) ** 2 / var) / np.sqrt(2 * np.pi * var)


def test_diffused_marginal_equals_the_integral_over_the_data():
    abar = F.alpha_bar(0.3)
    x0, dx = GRID, GRID[1] - GRID[0]
    for x in (-1.0, 0.1, 0.8):
        integral = (gauss(x, np.sqrt(abar) * x0, 1 - abar) * F.DATA.density(x0)).sum() * dx
        assert F.DATA.diffused(abar).density(np.array([x]))[0] == pytest.approx(integral, rel=1e-6)


def test_denoising_posterior_equals_bayes_on_a_grid():
    prior, alpha, x_t = F.DATA.diffused(F.alpha_bar(0.01)), 0.6, 0.35
    unnormalised = prior.density(GRID) * gauss(x_t, np.sqrt(alpha) * GRID, 1 - alpha)
    bayes = unnormalised / (unnormalised.sum() * (GRID[1] - GRID[0]))
    exact = F.denoising_posterior(prior, alpha, x_t)
    assert exact.weights.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(exact.density(GRID), bayes, atol=1e-6 * bayes.max())


def test_small_step_posterior_is_unimodal_and_the_large_step_one_is_not():
    grid = np.linspace(-3.5, 3.5, 4001)
    small = F.step_posteriors(0.25, 1000, [-0.5, 0.4, 1.2])["posteriors"]
    large = F.step_posteriors(0.25, 4, [-0.5, 0.4, 1.2])["posteriors"]
    assert [F.count_modes(p.density(grid)) for p in small.values()] == [1, 1, 1]
    assert all(F.count_modes(p.density(grid)) >= 2 for p in large.values())


def test_cli_exact_part_and_a_clear_error_without_checkpoints(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, "-m", "bench.figures", "denoising", "--out", str(tmp_path), *a],
                                    cwd=REPO, capture_output=True, text=True, timeout=300)
    done = run("--exact-only")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "denoising_1d.png").stat().st_size > 10_000
    record = json.loads((tmp_path / "denoising.json").read_text())
    assert record["exact_1d"]["T=4"]["modes_by_x_s"] == {"-0.5": 3, "0.4": 3, "1.2": 2}
    missing = run("--ddgan", str(tmp_path / "none.pt"))
    assert missing.returncode == 2 and "run `python -m bench.trilemma` first" in missing.stderr
