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
from baselines.ddpm.networks import UNet2D

GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", Path(__file__).resolve().parents[1] / "golden")).resolve()
ATOL = 1e-5  # tests/golden/README.md: outputs are O(1)


def close(actual, expected, name: str) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0, msg=lambda m: f"{name}: {m}")


def check_unet(case: dict[str, Any]) -> None:
    model = UNet2D(unet_config_from_diffusers(case["config"]))
    model.load_state_dict(case["state_dict"])
    model.eval()
    with torch.no_grad():
        close(model(case["x"], case["t"]), case["out"], "out")
        close(model(case["x"], case["t_scalar"]), case["out_scalar_t"], "out_scalar_t")
        proj, emb = model.time_features(case["t"], case["x"].shape[0])
    close(proj, case["debug_time_proj"], "debug_time_proj")
    close(emb, case["debug_time_embedding"], "debug_time_embedding")


def grid_and_alpha_bar(config: dict[str, Any], steps: int) -> tuple[list[int], torch.Tensor]:
    assert config["beta_schedule"] == "linear" and config["prediction_type"] == "epsilon"
    assert config["timestep_spacing"] == "leading", "only diffusers' 'leading' spacing is implemented"
    T, offset = config["num_train_timesteps"], config.get("steps_offset", 0)
    betas = schedule.linear_betas(T, config["beta_start"], config["beta_end"])
    return [t + offset for t in schedule.timesteps(T, steps, "uniform")], schedule.alphas_cumprod(betas)


def prev_of(grid: list[int], t: int) -> int:
    i = grid.index(t)
    return grid[i + 1] if i + 1 < len(grid) else -1


def check_schedulers(case: dict[str, Any]) -> None:
    cfg = case["ddpm_config"]
    grid, ab = grid_and_alpha_bar(cfg, case["ddpm_num_inference_steps"])
    close(schedule.linear_betas(cfg["num_train_timesteps"], cfg["beta_start"], cfg["beta_end"]), case["ddpm_betas"],
          "ddpm_betas")
    close(ab, case["ddpm_alphas_cumprod"], "ddpm_alphas_cumprod")
    assert grid == case["ddpm_timesteps"].tolist()
    for i, (c, want) in enumerate(zip(case["ddpm_cases"], case["ddpm_results"], strict=True)):
        a_t, a_prev = schedule.alpha_bar_at(ab, c["t"]), schedule.alpha_bar_at(ab, prev_of(grid, c["t"]))
        noise = c["noise"] if c["t"] > 0 else None
        assert want["noise_was_drawn"] == (noise is not None)
        x_prev, x0 = schedule.ddpm_step(c["x_t"], c["model_output"], a_t, a_prev, noise,
                                        variance=cfg["variance_type"], clip=cfg["clip_sample"])
        close(x_prev, want["prev_sample"], f"ddpm_results[{i}].prev_sample")
        close(x0, want["pred_original_sample"], f"ddpm_results[{i}].pred_original_sample")
    check_ddim(case)
    out = schedule.add_noise(ab, case["add_noise_x0"], case["add_noise_noise"], case["add_noise_t"])
    close(out, case["add_noise_out"], "add_noise_out")


def check_ddim(case: dict[str, Any]) -> None:
    cfg = case["ddim_config"]
    assert cfg["set_alpha_to_one"]
    grid, ab = grid_and_alpha_bar(cfg, case["ddim_num_inference_steps"])
    close(ab, case["ddim_alphas_cumprod"], "ddim_alphas_cumprod")
    close(schedule.alpha_bar_at(ab, -1), case["ddim_final_alpha_cumprod"], "ddim_final_alpha_cumprod")
    assert grid == case["ddim_timesteps"].tolist()
    for i, (c, want) in enumerate(zip(case["ddim_cases"], case["ddim_results"], strict=True)):
        a_t, a_prev = schedule.alpha_bar_at(ab, c["t"]), schedule.alpha_bar_at(ab, prev_of(grid, c["t"]))
        args, clip = (c["x_t"], c["model_output"], a_t, a_prev), cfg["clip_sample"]
        x_prev, x0 = schedule.ddim_step(*args, clip=clip)
        close(x_prev, want["eta0_prev_sample"], f"ddim_results[{i}].eta0_prev_sample")
        close(x0, want["eta0_pred_original_sample"], f"ddim_results[{i}].eta0_pred_original_sample")
        x_prev, _ = schedule.ddim_step(*args, clip=clip, use_clipped_eps=True)
        close(x_prev, want["eta0_clipped_eps_prev_sample"], f"ddim_results[{i}].eta0_clipped_eps_prev_sample")
        x_prev, x0 = schedule.ddim_step(*args, clip=clip, eta=1.0, noise=c["noise"])
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
