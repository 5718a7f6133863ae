"""Golden tests: every ddpm_* case in GOLDEN_DIR (diffusers 0.42.1 UNet2DModel / DDPMScheduler / DDIMScheduler,
see tests/golden/README.md) against baselines.ddpm, built only from the config stored in the case.

Every size, step count and timestep comes from the file, so another golden set can be checked by pointing
GOLDEN_DIR at it. A ddpm_* case without a handler fails.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from baselines.ddpm import schedule
from baselines.ddpm.configs import unet_config_from_diffusers
from baselines.ddpm.model import build_unet

GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", Path(__file__).resolve().parents[1] / "golden")).resolve()
ATOL = 1e-5  # tests/golden/README.md: outputs are O(1)


def close(actual, expected, name: str) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0, msg=lambda m: f"{name}: {m}")


def check_unet(case: dict[str, Any]) -> None:
    model = build_unet(unet_config_from_diffusers(case["config"]))
    model.load_state_dict(case["state_dict"])
    model.eval()
    with torch.no_grad():
        close(model(case["x"], case["t"]), case["out"], "out")
        close(model(case["x"], case["t_scalar"]), case["out_scalar_t"], "out_scalar_t")
        proj, emb = model.time_features(case["t"], case["x"].shape[0])
    close(proj, case["debug_time_proj"], "debug_time_proj")
    close(emb, case["debug_time_embedding"], "debug_time_embedding")


def alpha_bar_of(config: dict[str, Any]) -> torch.Tensor:
    assert config["beta_schedule"] == "linear" and config["prediction_type"] == "epsilon", config
    assert not config.get("thresholding", False), "dynamic thresholding is not implemented"
    betas = schedule.linear_betas(config["num_train_timesteps"], config["beta_start"], config["beta_end"])
    return schedule.alphas_cumprod(betas)


def check_grid(config: dict[str, Any], steps: int, stored: torch.Tensor) -> list[int]:
    """The stored sampling grid; for diffusers' default "leading" spacing it must equal ours (+ steps_offset)."""
    grid = stored.tolist()
    if config.get("timestep_spacing", "leading") == "leading":
        ours = schedule.timesteps(config["num_train_timesteps"], steps, "uniform")
        assert grid == [t + config.get("steps_offset", 0) for t in ours]
    return grid


def check_schedulers(case: dict[str, Any]) -> None:
    cfg = case["ddpm_config"]
    ab = alpha_bar_of(cfg)
    close(schedule.linear_betas(cfg["num_train_timesteps"], cfg["beta_start"], cfg["beta_end"]), case["ddpm_betas"],
          "ddpm_betas")
    close(ab, case["ddpm_alphas_cumprod"], "ddpm_alphas_cumprod")
    grid = check_grid(cfg, case["ddpm_num_inference_steps"], case["ddpm_timesteps"])
    for i, (c, want) in enumerate(zip(case["ddpm_cases"], case["ddpm_results"], strict=True)):
        k = grid.index(c["t"])  # DDPMScheduler: prev is the next grid entry, alpha_bar 1 after the last
        a_t, a_prev = schedule.alpha_bar_at(ab, c["t"]), schedule.alpha_bar_at(ab, grid[k + 1] if k + 1 < len(grid)
                                                                                  else -1)
        noise = c["noise"] if c["t"] > 0 else None
        assert want["noise_was_drawn"] == (noise is not None)
        x_prev, x0 = schedule.ddpm_step(c["x_t"], c["model_output"], a_t, a_prev, noise, variance=cfg["variance_type"],
                                        clip=cfg["clip_sample"], clip_range=cfg.get("clip_sample_range", 1.0))
        close(x_prev, want["prev_sample"], f"ddpm_results[{i}].prev_sample")
        close(x0, want["pred_original_sample"], f"ddpm_results[{i}].pred_original_sample")
    check_ddim(case)
    out = schedule.add_noise(ab, case["add_noise_x0"], case["add_noise_noise"], case["add_noise_t"])
    close(out, case["add_noise_out"], "add_noise_out")


def check_ddim(case: dict[str, Any]) -> None:
    cfg, steps = case["ddim_config"], case["ddim_num_inference_steps"]
    ab = alpha_bar_of(cfg)
    close(ab, case["ddim_alphas_cumprod"], "ddim_alphas_cumprod")
    final = torch.ones(()) if cfg["set_alpha_to_one"] else ab[0]  # alpha_bar after the last step
    close(final, case["ddim_final_alpha_cumprod"], "ddim_final_alpha_cumprod")
    check_grid(cfg, steps, case["ddim_timesteps"])
    stride = cfg["num_train_timesteps"] // steps  # DDIMScheduler: prev = t - T // S
    for i, (c, want) in enumerate(zip(case["ddim_cases"], case["ddim_results"], strict=True)):
        prev = c["t"] - stride
        a_t, a_prev = schedule.alpha_bar_at(ab, c["t"]), (ab[prev] if prev >= 0 else final)
        args = (c["x_t"], c["model_output"], a_t, a_prev)
        clip = dict(clip=cfg["clip_sample"], clip_range=cfg.get("clip_sample_range", 1.0))
        x_prev, x0 = schedule.ddim_step(*args, **clip)
        close(x_prev, want["eta0_prev_sample"], f"ddim_results[{i}].eta0_prev_sample")
        close(x0, want["eta0_pred_original_sample"], f"ddim_results[{i}].eta0_pred_original_sample")
        x_prev, _ = schedule.ddim_step(*args, **clip, use_clipped_eps=True)
        close(x_prev, want["eta0_clipped_eps_prev_sample"], f"ddim_results[{i}].eta0_clipped_eps_prev_sample")
        x_prev, x0 = schedule.ddim_step(*args, **clip, eta=1.0, noise=c["noise"])
        close(x_prev, want["eta1_prev_sample"], f"ddim_results[{i}].eta1_prev_sample")
        close(x0, want["eta1_pred_original_sample"], f"ddim_results[{i}].eta1_pred_original_sample")


CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "ddpm_unet": check_unet,
    "ddpm_schedulers": check_schedulers,
}
CASE_FILES = sorted(GOLDEN_DIR.glob("ddpm_*.pt"))


def test_golden_dir_has_ddpm_cases():
    assert CASE_FILES, f"no ddpm_*.pt golden cases found in {GOLDEN_DIR}"


@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_golden_ddpm_case(path: Path):
    handler = CASES.get(path.stem)
    if handler is None:
        pytest.fail(f"no handler for golden case {path.stem!r} ({path}); add one to CASES in {__file__}")
    handler(torch.load(path, map_location="cpu", weights_only=True))
