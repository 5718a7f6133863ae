"""python -m bench.figures denoising: the DDGAN paper's Figure 2, computed exactly, and the same effect measured.

Exact part (1D): data = a mixture of three Gaussians; the VP diffusion of ddgan_ref (beta_min 0.1, beta_max 20,
continuous time s in [1e-3, 1]) keeps every marginal q(x_s) a Gaussian mixture, and the true denoising
distribution q(x_{s'} | x_s) of one step s' -> s is then a Gaussian mixture too (Bayes with a Gaussian
likelihood). Plotted: the marginals along the diffusion, and q(x_{s'} | x_s) for a small step (1/1000 of the
time range, as DDPM) and a large one (1/4, as DDGAN's T=4) at the same s (0.25, DDGAN's last step): the small
step's posterior is one Gaussian, the large step's has two or three modes, which a Gaussian denoiser cannot
represent and DDGAN's conditional GAN can.

Measured part (2D): DDPM restricted to 4 ancestral Gaussian steps against DDGAN with T=4, both trained on
gaussians25 by `python -m bench.trilemma` (the README's main job; their checkpoints are read from its output,
or from --ddgan / --ddpm): samples, modes covered and the share of samples within 3 std of a mode.

Writes OUT/denoising_1d.png, OUT/denoising_2d.png and OUT/denoising.json (the numbers and the command).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from baselines.ddpm import model as ddpm_model
from bench import preflight
from bench.data import build_dataset
from bench.metrics.modes import mixture_coverage
from bench.plots import write_png
from bench.preflight import Preflight, PreflightError, positive_int, writable_folder
from bench.registry import family_of_format
from ddgan_ref import model as ddgan_model
from ddgan_ref.diffusion import EPS_SMALL, vp_variance
from ddgan_ref.io import peek_format, write_json_atomic

TRILEMMA = Path("runs/trilemma-gaussians25/train")


@dataclass(frozen=True)
class Mixture:
    """A 1D Gaussian mixture: weights, means and variances, float64 arrays of one length."""

    weights: np.ndarray
    means: np.ndarray
    variances: np.ndarray

    def density(self, x: np.ndarray) -> np.ndarray:
        z = (x[:, None] - self.means) ** 2 / self.variances
        return (self.weights * np.exp(-0.5 * z) / np.sqrt(2 * math.pi * self.variances)).sum(axis=1)

    def diffused(self, alpha_bar: float) -> Mixture:
        """q(x_s) for x_s = sqrt(alpha_bar) x_0 + sqrt(1 - alpha_bar) eps."""
        return Mixture(self.weights, self.means * math.sqrt(alpha_bar),
                       self.variances * alpha_bar + (1 - alpha_bar))


DATA = Mixture(np.array([0.3, 0.4, 0.3]), np.array([-1.5, 0.2, 1.6]), np.array([0.01, 0.01, 0.01]))


def alpha_bar(s: float) -> float:
    """ᾱ(s) of ddgan_ref's VP schedule (beta_min 0.1, beta_max 20), float64."""
    return float(1 - vp_variance(torch.tensor(s, dtype=torch.float64), 0.1, 20.0))


def denoising_posterior(prior: Mixture, alpha: float, x_t: float) -> Mixture:
    """q(x_prev | x_t) for q(x_prev) = prior and x_t = sqrt(alpha) x_prev + sqrt(1 - alpha) eps: each component
    times the Gaussian likelihood, reweighted by how well it explains x_t."""
    beta, a = 1 - alpha, math.sqrt(alpha)
    variances = 1 / (1 / prior.variances + alpha / beta)
    means = variances * (prior.means / prior.variances + a * x_t / beta)
    evidence_var = alpha * prior.variances + beta
    log_w = np.log(prior.weights) - 0.5 * ((x_t - a * prior.means) ** 2 / evidence_var + np.log(evidence_var))
    w = np.exp(log_w - log_w.max())
    return Mixture(w / w.sum(), means, variances)


def count_modes(density: np.ndarray, floor: float = 0.01) -> int:
    """Local maxima of a density on a grid, ignoring those below floor x the highest."""
    inner = (density[1:-1] > density[:-2]) & (density[1:-1] >= density[2:]) & (density[1:-1] > floor * density.max())
    return int(inner.sum())


def step_posteriors(s: float, steps: int, x_values: list[float]) -> dict:
    """q(x_{s - ds} | x_s) at each x_s for ds = (1 - eps) / steps: the prior, alpha of the step, the posteriors."""
    s_prev = max(s - (1 - EPS_SMALL) / steps, EPS_SMALL)
    prior = DATA.diffused(alpha_bar(s_prev))
    alpha = alpha_bar(s) / alpha_bar(s_prev)
    return {"s_prev": s_prev, "alpha": alpha, "posteriors": {x: denoising_posterior(prior, alpha, x) for x in x_values}}


def exact_figure(out: Path, s: float = 0.25) -> dict:
    """denoising_1d.png: marginals along the diffusion, and the small- and large-step posteriors at time s
    (default 0.25: DDGAN's last denoising step for T=4 goes from about 0.25 to 1e-3)."""
    import matplotlib.pyplot as plt

    grid = np.linspace(-3.5, 3.5, 4001)
    x_values = [-0.5, 0.4, 1.2]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    for t in (EPS_SMALL, 0.1, 0.25, 0.5, 0.75, 1.0):
        axes[0].plot(grid, DATA.diffused(alpha_bar(t)).density(grid), label=f"s={t:g}")
    axes[0].set(title="q(x_s): the forward diffusion's marginals", xlabel="x", ylim=(0, 1.6))
    axes[0].legend(fontsize=8)
    stats = {}
    for ax, (name, steps) in zip(axes[1:], [("small step (T=1000)", 1000), ("large step (T=4)", 4)], strict=True):
        step = step_posteriors(s, steps, x_values)
        modes = {}
        for x in x_values:
            density = step["posteriors"][x].density(grid)
            modes[x] = count_modes(density)
            ax.plot(grid, density / density.max(), label=f"x_s={x:g}: {modes[x]} mode(s)")
        ax.set(title=f"q(x_s' | x_s), {name}, s={s:g}", xlabel="x_s'", ylabel="density / max")
        ax.legend(fontsize=8)
        stats[f"T={steps}"] = {"s": s, "s_prev": step["s_prev"], "alpha": step["alpha"],
                               "modes_by_x_s": {str(x): m for x, m in modes.items()}}
    fig.tight_layout()
    write_png(fig, out / "denoising_1d.png", dpi=110)
    return stats


def check_checkpoints(ddgan_ckpt: Path, ddpm_ckpt: Path) -> None:
    """FileNotFoundError for a missing checkpoint, ValueError for one of the other family, KeyError for a file of
    no family of ours (read from its header)."""
    for path, name, what in ((ddgan_ckpt, "ddgan", "DDGAN T=4"), (ddpm_ckpt, "ddpm", "DDPM")):
        if not path.is_file():
            raise FileNotFoundError(f"{what} checkpoint {path} not found: run `python -m bench.trilemma` first (it "
                                    f"trains both on gaussians25), or pass --ddgan / --ddpm")
        found = family_of_format(peek_format(path)).name  # KeyError naming the format where it is none of ours
        if found != name:
            raise ValueError(f"--{name} {path}: a {found} checkpoint, not a {what} one")


def measured_figure(out: Path, ddgan_ckpt: Path, ddpm_ckpt: Path, n: int, seed: int) -> dict:
    """denoising_2d.png: DDGAN (T=4) vs DDPM restricted to 4 ancestral Gaussian steps on gaussians25."""
    import matplotlib.pyplot as plt

    check_checkpoints(ddgan_ckpt, ddpm_ckpt)
    ds = build_dataset("gaussians25", size=n, seed=seed)
    models = {"DDGAN, T=4": (ddgan_model.load(ddgan_ckpt), 4),
              "DDPM, 4 Gaussian steps": (ddpm_model.load(ddpm_ckpt, fast_sampler="ancestral"), 4)}
    ddpm = models["DDPM, 4 Gaussian steps"][0]
    models["DDPM, 1000 steps"] = (ddpm, ddpm.default_steps)
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 5))
    stats = {}
    for ax, (name, (model, steps)) in zip(axes, models.items(), strict=True):
        with torch.no_grad():
            x = model.sample(n, steps, seed=seed)
        stats[name] = {"steps": steps, **mixture_coverage(x, ds.centers, ds.std)}
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.5)
        ax.scatter(ds.centers[:, 0], ds.centers[:, 1], s=12, c="red", marker="x")
        ax.set(title=f"{name}: {stats[name]['modes']}/25 modes, {stats[name]['hq_fraction']:.1%} within 3 std",
               xlim=(-1.2, 1.2), ylim=(-1.2, 1.2), aspect="equal")
        ax.title.set_fontsize(9)
    fig.tight_layout()
    write_png(fig, out / "denoising_2d.png", dpi=110)
    return stats


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.figures", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("figure", choices=["denoising"], help="the figure to make")
    p.add_argument("--out", type=Path, default=Path("runs") / "figures",
                   help="output folder (default runs/figures; the committed figures were written with --out results)")
    p.add_argument("--ddgan", type=Path, default=TRILEMMA / "ddgan-t4" / "checkpoint.pt", help="DDGAN T=4 checkpoint")
    p.add_argument("--ddpm", type=Path, default=TRILEMMA / "ddpm" / "checkpoint.pt", help="DDPM checkpoint")
    p.add_argument("--n", type=positive_int, default=2500,
                   help="samples per model in the 2D part (default 2500, as PacGAN)")
    p.add_argument("--seed", type=int, default=0, help="sample i uses seed + i (default 0)")
    p.add_argument("--exact-only", action="store_true", help="only the exact 1D part (no checkpoints needed)")
    args = p.parse_args(argv)
    check = Preflight()
    if not args.exact_only:
        check.check(lambda: check_checkpoints(args.ddgan, args.ddpm))
    check.check(lambda: writable_folder(args.out))
    try:
        check.raise_if_any()
        return make(args, argv)
    except (PreflightError, OSError) as e:
        return preflight.report(e)


def make(args: argparse.Namespace, argv: list[str] | None) -> int:
    """The figure's files under args.out, and its record printed."""
    args.out.mkdir(parents=True, exist_ok=True)
    record = {"command": ["python", "-m", "bench.figures", *(sys.argv[1:] if argv is None else argv)],
              "exact_1d": exact_figure(args.out)}
    print(f"wrote {args.out / 'denoising_1d.png'}", file=sys.stderr)
    if not args.exact_only:
        record["measured_2d"] = measured_figure(args.out, args.ddgan, args.ddpm, args.n, args.seed)
        print(f"wrote {args.out / 'denoising_2d.png'}", file=sys.stderr)
    write_json_atomic(record, args.out / "denoising.json")
    print(json.dumps(record, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
