"""Golden tests: every stylegan2_* case in GOLDEN_DIR (NVlabs/stylegan2-ada-pytorch d72cc7d, reference op paths,
see tests/golden/README.md) against baselines.stylegan2, built only from the constructor config in the case.

A stylegan2_* case without a handler fails; sizes, channels and psi values all come from the file.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from baselines.stylegan2 import layers
from baselines.stylegan2.networks import Discriminator, Generator
from ddgan_ref.ops import bias_act, upfirdn2d, using

GOLDEN_DIR = Path(os.environ.get("GOLDEN_DIR", Path(__file__).resolve().parents[1] / "golden")).resolve()
ATOL = 1e-5


def close(actual, expected, name: str) -> None:
    torch.testing.assert_close(actual, expected, atol=ATOL, rtol=0, msg=lambda m: f"{name}: {m}")


def build_generator(case: dict[str, Any]) -> Generator:
    G = Generator(**case["config"])
    G.load_state_dict(case["state_dict"])
    return G.eval()


def check_generator(case: dict[str, Any]) -> None:
    G = build_generator(case)
    with torch.no_grad():
        for suffix, psi in (("", case["truncation_psi"]), ("_psi_b", case["truncation_psi_b"])):
            ws = G.mapping(case["z"], case["c"], truncation_psi=psi)
            close(ws, case[f"ws{suffix}"], f"ws{suffix}")
            close(G.synthesis(ws, noise_mode=case["noise_mode"]), case[f"img{suffix}"], f"img{suffix}")
        ws = G.mapping(case["z"], case["c"], truncation_psi=case["truncation_psi"])
        close(G.synthesis(ws, noise_mode="none"), case["img_noise_none"], "img_noise_none")
    G.train()
    draws = case["train_noise_draws"]
    assert [tuple(d["tensor"].shape) for d in draws] == G.synthesis.noise_shapes(case["z"].shape[0])
    with torch.no_grad():
        img = G(case["z"], case["c"], noise=[d["tensor"] for d in draws])
    close(img, case["img_train_mode"], "img_train_mode")
    close(G.mapping.w_avg, case["w_avg_after_train_call"], "w_avg_after_train_call")


def check_discriminator(case: dict[str, Any]) -> None:
    D = Discriminator(**case["config"])
    D.load_state_dict(case["state_dict"])
    D.train()
    for suffix in ("", "_b4"):
        img = case[f"img{suffix}"].clone().requires_grad_(True)
        logits = D(img, case[f"c{suffix}"])
        close(logits, case[f"logits{suffix}"], f"logits{suffix}")
        close(torch.autograd.grad(logits.sum(), img)[0], case[f"grad_img{suffix}"], f"grad_img{suffix}")


def check_ops(case: dict[str, Any]) -> None:
    for i, (a, want) in enumerate(zip(case["upfirdn2d_cases"], case["upfirdn2d_results"], strict=True)):
        x = a["x"].clone().requires_grad_(True)
        y = upfirdn2d(x, a["f"], up=a["up"], down=a["down"], pad=tuple(a["padding"]), flip_filter=a["flip_filter"],
                      gain=a["gain"])
        close(y, want["out"], f"upfirdn2d_results[{i}].out")
        close(torch.autograd.grad(y, x, a["grad_out"])[0], want["grad_x"], f"upfirdn2d_results[{i}].grad_x")
    for i, (a, want) in enumerate(zip(case["bias_act_cases"], case["bias_act_results"], strict=True)):
        x, b = a["x"].clone().requires_grad_(True), a["b"].clone().requires_grad_(True)
        y = bias_act(x, b, a["dim"], a["act"], a["alpha"], a["gain"], a["clamp"])
        dx, db = torch.autograd.grad(y, (x, b), a["grad_out"])
        for key, got in {"out": y, "grad_x": dx, "grad_b": db}.items():
            close(got, want[key], f"bias_act_results[{i}].{key}")
    for i, (a, want) in enumerate(zip(case["modulated_conv2d_cases"], case["modulated_conv2d_results"], strict=True)):
        y = layers.modulated_conv2d(a["x"], a["weight"], a["styles"], a["noise"], up=a["up"], padding=a["padding"],
                                    resample_filter=a["resample_filter"], demodulate=a["demodulate"],
                                    flip_weight=a["flip_weight"], fused_modconv=a["fused_modconv"])
        close(y, want["out"], f"modulated_conv2d_results[{i}].out")
    for i, (a, want) in enumerate(zip(case["conv2d_resample_cases"], case["conv2d_resample_results"], strict=True)):
        y = layers.conv2d_resample(a["x"], a["w"], a["f"], up=a["up"], down=a["down"], padding=a["padding"],
                                   flip_weight=a["flip_weight"])
        close(y, want["out"], f"conv2d_resample_results[{i}].out")


CASES: dict[str, Callable[[dict[str, Any]], None]] = {
    "stylegan2_generator": check_generator,
    "stylegan2_discriminator": check_discriminator,
    "stylegan2_ops": check_ops,
}
CASE_FILES = sorted(GOLDEN_DIR.glob("stylegan2_*.pt"))


def test_golden_dir_has_stylegan2_cases():
    assert CASE_FILES, f"no stylegan2_*.pt golden cases found in {GOLDEN_DIR}"


@pytest.mark.parametrize("impl", ["ref", "auto"])
@pytest.mark.parametrize("path", CASE_FILES, ids=[p.stem for p in CASE_FILES])
def test_golden_stylegan2_case(path: Path, impl: str):
    handler = CASES.get(path.stem)
    if handler is None:
        pytest.fail(f"no handler for golden case {path.stem!r} ({path}); add one to CASES in {__file__}")
    with using(impl):
        handler(torch.load(path, map_location="cpu", weights_only=True))


def test_cifar_parameter_counts_equal_the_official_ones():
    """spec baselines.md 2.5: unconditional G 19,947,539 / D 20,720,641; conditional 20,215,315 / 23,089,664."""
    def count(m):
        return sum(p.numel() for p in m.parameters())

    syn = dict(channel_base=32768, channel_max=512, num_fp16_res=4, conv_clamp=256)
    for c_dim, g_params, d_params in ((0, 19_947_539, 20_720_641), (10, 20_215_315, 23_089_664)):
        G = Generator(512, c_dim, 512, 32, 3, mapping_kwargs=dict(num_layers=2), synthesis_kwargs=syn)
        D = Discriminator(c_dim, 32, 3, architecture="orig", epilogue_kwargs=dict(mbstd_group_size=32), **syn)
        assert (count(G), count(D)) == (g_params, d_params)
