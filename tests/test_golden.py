"""Golden tests: every tests/golden/ddgan_*.pt case (official NVlabs code, see tests/golden/README.md) vs ddgan_ref.

Each case file stores the official constructor config, the state dict, the inputs and the outputs.
Models are built only from the stored config, so another golden set (other sizes, seeds, T) can
be checked by pointing GOLDEN_DIR at it. Every ddgan_* case needs a handler in CASES; a case
without one fails. A handler returns the outputs it recomputed; `compare` then checks that every
stored output was recomputed and matches.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from ddgan_ref import diffusion, ops, sampling
from ddgan_ref.networks.discriminator import discriminator_from_official
from ddgan_ref.networks.ncsnpp import NCSNpp, ncsnpp_kwargs_from_official
from ddgan_ref.networks.state_dicts import load_official_state_dict

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", REPO_ROOT / "tests" / "golden")).resolve()
ATOL = 1e-5  # tests/golden/README.md: model outputs are O(1), so max-abs 1e-5 is meaningful
NOT_OUTPUTS = {"config", "state_dict"}

Case = Mapping[str, Any]


def load_case(path: Path) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def compare(case: Case, actual: Mapping[str, Tensor], *, inputs: set[str], atol: float = ATOL) -> None:
    """Every stored tensor except `inputs`, config and state_dict must be in `actual` and match it."""
    expected = {k for k in case if k not in NOT_OUTPUTS | inputs}
    assert not expected - set(actual), f"stored outputs not recomputed: {sorted(expected - set(actual))}"
    for key in sorted(expected):
        torch.testing.assert_close(actual[key], case[key], atol=atol, rtol=0, msg=lambda m, k=key: f"{k}: {m}")


@contextmanager
def capture(module: nn.Module, *, inputs: bool = False) -> Iterator[list[Tensor]]:
    """Record the output (or the first positional input) of every call of `module` in the block."""
    seen: list[Tensor] = []
    if inputs:
        handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    else:
        handle = module.register_forward_hook(lambda m, args, out: seen.append(out.detach().clone()))
    try:
        yield seen
    finally:
        handle.remove()


def check_generator(case: Case, folder: Path) -> None:
    """NCSNpp: out = G(x, t, z), out2 = G(x, t2, z) (eval, no_grad) plus z / time-embedding intermediates."""
    G = NCSNpp(**ncsnpp_kwargs_from_official(case["config"]))
    load_official_state_dict(G, case["state_dict"]).eval()
    time_mlp_in, time_mlp_out = G.all_modules[0], G.all_modules[1]  # Linear(nf, 4nf), Linear(4nf, 4nf)
    with torch.no_grad(), capture(time_mlp_in, inputs=True) as sinusoidal, \
            capture(time_mlp_out) as temb, capture(G.z_transform) as zemb:
        out = G(case["x"], case["t"], case["z"])
        out2 = G(case["x"], case["t2"], case["z"])
    actual = {
        "out": out, "out2": out2, "debug_zemb": zemb[0],
        "debug_temb_sinusoidal": sinusoidal[0], "debug_temb": temb[0],
        "debug_temb_sinusoidal_t2": sinusoidal[1], "debug_temb_t2": temb[1],
    }
    compare(case, actual, inputs={"x", "t", "z", "t2"})


def check_discriminator(case: Case, folder: Path) -> None:
    """Discriminator_small (train mode): logits and d(sum logits)/dx for the batch-4 and batch-8 inputs."""
    D = discriminator_from_official(case["config"])
    load_official_state_dict(D, case["state_dict"]).train()
    actual: dict[str, Tensor] = {}
    for suffix in ("", "_b8"):
        x = case[f"x{suffix}"].clone().requires_grad_(True)
        with capture(D.t_embed) as t_embed:
            logits = D(x, case[f"t{suffix}"], case[f"x_cond{suffix}"])
        (grad_x,) = torch.autograd.grad(logits.sum(), x)
        actual |= {f"logits{suffix}": logits.detach(), f"grad_x{suffix}": grad_x}
        if suffix == "":
            actual["debug_t_embed"] = t_embed[0]
    compare(case, actual, inputs={"x", "t", "x_cond", "x_b8", "t_b8", "x_cond_b8"})


def close(actual: Tensor, expected: Tensor, what: str, *, rtol: float = 0.0) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=rtol, msg=lambda m: f"{what}: {m}")


# Arrays that reach ~150 (float32 spacing 1.5e-5 there) get a relative tolerance, as tests/golden/README.md says.
LARGE_VALUED = {"sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"}


def check_schedule(s: Case, i: int) -> None:
    """One num_timesteps entry: schedules, coefficient arrays, q_sample, q_sample_pairs, sample_posterior."""
    T, args = s["num_timesteps"], (s["beta_min"], s["beta_max"], s["use_geometric"])
    close(diffusion.time_grid(T), s["time_schedule"], f"[{i}].time_schedule")
    for name, got in zip(("sigmas", "a_s", "betas"), diffusion.sigma_schedule(T, *args), strict=True):
        close(got, s["get_sigma_schedule"][name], f"[{i}].get_sigma_schedule.{name}")
    fwd, pos = diffusion.diffusion_coefficients(T, *args), diffusion.posterior_coefficients(T, *args)
    for name, want in s["diffusion_coefficients"].items():
        close(getattr(fwd, name), want, f"[{i}].diffusion_coefficients.{name}")
    for name, want in s["posterior_coefficients"].items():
        rtol = 1e-6 if name in LARGE_VALUED else 0.0
        close(getattr(pos, name), want, f"[{i}].posterior_coefficients.{name}", rtol=rtol)
    x0, t = s["x0"], s["t"]
    close(diffusion.q_sample(fwd, x0, t, s["q_sample_noise"]), s["q_sample_out"], f"[{i}].q_sample_out")
    # Upstream draws the x_{t+1} noise first (call 0), then the x_t noise inside q_sample (call 1).
    x_t, x_tp1 = diffusion.q_sample_pairs(fwd, x0, t, s["q_sample_pairs_randn_like_call1"],
                                          s["q_sample_pairs_randn_like_call0"])
    close(x_t, s["q_sample_pairs_x_t"], f"[{i}].q_sample_pairs_x_t")
    close(x_tp1, s["q_sample_pairs_x_tp1"], f"[{i}].q_sample_pairs_x_tp1")
    out = diffusion.posterior_sample(pos, s["sample_posterior_x0"], s["sample_posterior_x_t"], t,
                                     s["sample_posterior_noise"])
    close(out, s["sample_posterior_out"], f"[{i}].sample_posterior_out")


def check_coefficients(case: Case, folder: Path) -> None:
    """train_ddgan.py's schedule helpers for every T in the file."""
    assert case["schedules"], "the case holds no schedules"
    for i, schedule in enumerate(case["schedules"]):
        check_schedule(schedule, i)


class Replay:
    """Hands out the official run's recorded draws in call order, checking each draw's shape."""

    def __init__(self, draws: list[Case]):
        self.draws = iter(draws)

    def randn(self, *shape: int) -> Tensor:
        tensor = next(self.draws)["tensor"]
        assert tuple(tensor.shape[1:]) == shape, f"recorded draw {tuple(tensor.shape)} vs requested {shape}"
        return tensor


def check_sampling(case: Case, folder: Path) -> None:
    """sample_from_model: a full T-step run with the recorded noise and the generator of its generator_file."""
    cfg = case["generator_config"]
    G = NCSNpp(**ncsnpp_kwargs_from_official(cfg))
    load_official_state_dict(G, load_case(folder / case["generator_file"])["state_dict"]).eval()
    pos = diffusion.posterior_coefficients(case["num_timesteps"], cfg["beta_min"], cfg["beta_max"],
                                           cfg["use_geometric"])
    calls: list[tuple[Tensor, Tensor, Tensor]] = []
    handle = G.register_forward_hook(lambda m, args, out: calls.append((args[0], args[1], out)))
    try:
        out = sampling.sample(G, case["x_init"], pos, Replay(case["random_draws"]))
    finally:
        handle.remove()
    assert len(calls) == len(case["generator_calls"]) == case["num_timesteps"]
    for k, ((x_in, t, x0_pred), want) in enumerate(zip(calls, case["generator_calls"], strict=True)):
        close(x_in, want["x_in"], f"generator_calls[{k}].x_in")
        assert torch.equal(t, want["t"]), f"generator_calls[{k}].t: {t} vs {want['t']}"
        close(x0_pred, want["x0_pred"], f"generator_calls[{k}].x0_pred")
    close(out, case["out"], "out")


CASES: dict[str, Callable[[Case, Path], None]] = {
    "ddgan_generator": check_generator,
    "ddgan_discriminator": check_discriminator,
    "ddgan_coefficients": check_coefficients,
    "ddgan_sampling": check_sampling,
}

CASE_FILES = sorted(GOLDEN_DIR.glob("ddgan_*.pt"))


def test_golden_dir_has_ddgan_cases():
    assert CASE_FILES, f"no ddgan_*.pt golden cases found in {GOLDEN_DIR}"


@pytest.mark.parametrize("impl", ["ref", "cpu"])  # FIR up/down through the reference and the C++ CPU kernel
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_golden_case(path: Path, impl: str):
    handler = CASES.get(path.stem)
    if handler is None:
        pytest.fail(f"no handler for golden case {path.stem!r} ({path}); add one to CASES in {__file__}")
    with ops.using(impl):
        handler(load_case(path), path.parent)
