"""baselines.stylegan2: differentiable augmentation and ADA's controller, training (old checkpoint layout,
style mixing, path length) and the CLI. The Generator contract, exact resume, refusals and divergence of every
family are tests/bench/test_registry.py's."""

from __future__ import annotations

import json
from dataclasses import asdict, replace

import pytest
import torch

from baselines.stylegan2 import augment, configs, model, train

CPU = torch.device("cpu")


def test_stylegan2_sample_shapes_and_refusal():
    """The contract itself (determinism, batch independence, NFE) is tests/bench/test_registry.py's, for every
    family."""
    m = model.build("tiny")
    assert m.sample(4, 1, seed=3).shape == (4, 1, 8, 8)
    with pytest.raises(ValueError, match="steps must be 1"):
        m.sample(1, 4)
    toy = model.build("gaussians25")
    assert toy.sample(5, 1, seed=0).shape == (5, 2)


def test_augment_identity_at_p0_and_differentiable_at_p1():
    x = torch.rand(6, 3, 16, 16, requires_grad=True) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    assert augment.augment(x, 0.0, configs.AUGMENTS, gen) is x
    y = augment.augment(x, 1.0, configs.AUGMENTS, torch.Generator().manual_seed(1))
    assert y.shape == x.shape and not torch.equal(y, x)
    torch.testing.assert_close(y, augment.augment(x, 1.0, configs.AUGMENTS, torch.Generator().manual_seed(1)))
    (g,) = torch.autograd.grad(y.sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    v = torch.randn(5, 2)
    assert augment.augment(v, 1.0, configs.AUGMENTS, gen) is v  # vectors are never augmented


def shifted(image: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """image [c, h, w] moved down dy and right dx, zero-filled: the oracle of augment.translation."""
    out = torch.zeros_like(image)
    h, w = image.shape[1:]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = image[:, max(-dy, 0):h - max(dy, 0),
                                                                          max(-dx, 0):w - max(dx, 0)]
    return out


def test_translation_is_a_zero_filled_integer_shift_differentiable_twice():
    """Each image is itself moved by a whole number of pixels within the ratio, the rest zero; R1 takes the
    gradient of the augmented D's gradient, so it must differentiate twice (grid_sample cannot on torch 2.11)."""
    x = (torch.arange(6 * 2 * 16 * 12, dtype=torch.float64).reshape(6, 2, 16, 12) + 1).requires_grad_(True)
    y = augment.translation(x, 1.0, torch.Generator().manual_seed(4), ratio=0.125)
    reach = range(-2, 3)  # int(16 * 0.125 + 0.5) pixels each way
    moves = [next((dy, dx) for dy in reach for dx in reach if torch.equal(y[i], shifted(x[i], dy, dx)))
             for i in range(6)]  # StopIteration: an image that is no such shift
    assert len(set(moves)) > 1
    (g,) = torch.autograd.grad((y ** 2).sum(), x, create_graph=True)
    (gg,) = torch.autograd.grad(g.sum(), x)  # 2 where a pixel of x lands inside its image, else 0
    used = torch.stack([shifted(torch.ones_like(x[i]), -dy, -dx) for i, (dy, dx) in enumerate(moves)])
    assert torch.equal(gg, 2 * used.detach())


def test_ada_controller_moves_p_towards_the_target():
    up = augment.ada_adjust(0.2, real_sign_mean=0.9, target=0.6, batch=64, interval=4, ada_kimg=500)
    down = augment.ada_adjust(0.2, real_sign_mean=0.1, target=0.6, batch=64, interval=4, ada_kimg=500)
    assert up == pytest.approx(0.2 + 64 * 4 / 500_000) and down == pytest.approx(0.2 - 64 * 4 / 500_000)
    assert augment.ada_adjust(0.0, 0.0, 0.6, 64, 4, 500) == 0.0


def tiny_config(steps: int = 6) -> configs.StyleGAN2Config:
    config = configs.preset("tiny")
    return replace(config, train=replace(config.train, steps=steps, checkpoint_every=3, ada_target=0.0))


def write_first_layout(path, config: configs.StyleGAN2Config, state: train.TrainState) -> None:
    """A checkpoint as StyleGAN2 training wrote it before the shared form: top-level G/D/G_ema and resume
    state, `version: 1`, a config without config_version."""
    old_config = json.loads(json.dumps(asdict(config)))
    torch.save({"format": model.FORMAT, "version": 1, "config": old_config, "step": state.step,
                "G": state.G.state_dict(), "D": state.D.state_dict(), "G_ema": state.G_ema.state_dict(),
                "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(), "ada_p": state.ada_p,
                "ada_signs": state.ada_signs, "pl_mean": state.pl_mean, "meta": {"note": "old"}}, path)


def test_stylegan2_first_layout_checkpoint_samples_and_resumes_exactly(tmp_path):
    data = torch.rand(40, 1, 8, 8) * 2 - 1
    config = tiny_config()
    straight = train.train(config, data, tmp_path / "a", device=CPU)
    half = train.train(config, data, tmp_path / "b", device=CPU, max_steps=3)
    write_first_layout(tmp_path / "b" / train.CHECKPOINT_NAME, config, half)
    old = model.load(tmp_path / "b" / train.CHECKPOINT_NAME)
    expected = model.StyleGAN2(half.G_ema, config).sample(2, 1, seed=1)
    torch.testing.assert_close(old.sample(2, 1, seed=1), expected, atol=0, rtol=0)
    resumed = train.train(config, data, tmp_path / "b", device=CPU, resume=True)
    assert resumed.step == 6 and resumed.ada_p == straight.ada_p
    for name in ("G", "D", "G_ema"):
        for a, b in zip(getattr(straight, name).state_dict().values(), getattr(resumed, name).state_dict().values(),
                        strict=True):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_lazy_r1_is_its_own_discriminator_step_as_the_adam_rescaling_assumes(monkeypatch):
    """Upstream's Dmain and Dreg phases: r1_interval minibatches take r1_interval + 1 D optimiser steps, the extra
    one on the R1 penalty alone, which is why D's Adam lr and betas are rescaled by interval / (interval + 1)."""
    config = tiny_config()
    cfg = replace(config.train, r1_interval=3, r1_gamma=1.0)
    state, data, steps = train.new_state(replace(config, train=cfg), CPU), torch.rand(40, 1, 8, 8) * 2 - 1, []
    assert state.opt_d.param_groups[0]["lr"] == pytest.approx(cfg.lr_d * 3 / 4)
    adam_step = type(state.opt_d).step

    def counted(self, *args, **kwargs):
        steps.append("d" if self is state.opt_d else "g")
        return adam_step(self, *args, **kwargs)

    monkeypatch.setattr(type(state.opt_d), "step", counted)
    r1 = [train.train_step(state, data, cfg, CPU)["r1"] for _ in range(6)]
    assert steps.count("d") == 6 + 2 and steps[:3] == ["d", "d", "g"] and steps[3:5] == ["d", "g"]
    assert r1[0] > 0 and r1[3] > 0 and r1[1] == r1[2] == r1[4] == r1[5] == 0.0


def test_stylegan2_cli_trains_and_samples(tmp_path):
    from bench.train import main

    assert main(["--model", "stylegan2", "--preset", "tiny", "--out", str(tmp_path), "--quiet"]) == 0
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert model.load(tmp_path / train.CHECKPOINT_NAME).shape == (1, 8, 8)


def test_stylegan2_gaussians25_covers_most_modes(tmp_path):
    """The gaussians25 preset trained to the end (3000 steps, about 50 s); PacGAN modes (>= 1 sample within
    3 std of the mode) over 2500 samples. Measured when written: 22 of 25 modes."""
    from bench.data import build_dataset, stack_items
    from tests.ddgan_ref.test_train import mixture_scores

    data = build_dataset("gaussians25", seed=0)
    train.train(configs.preset("gaussians25"), stack_items(data), tmp_path, device=CPU)
    modes, _ = mixture_scores(model.load(tmp_path / train.CHECKPOINT_NAME).sample(2500, 1, seed=0), data.centers,
                              data.std)
    assert modes >= 18, f"only {modes} of 25 modes"


def test_stylegan2_style_mixing_and_path_length_options(tmp_path):
    config = tiny_config(4)
    state = train.new_state(config, CPU)
    mixed_cfg = replace(config.train, style_mixing=1.0)
    _, ws_plain = train.generate(state, 4, config.train, torch.Generator().manual_seed(0), CPU)
    _, ws_mixed = train.generate(state, 4, mixed_cfg, torch.Generator().manual_seed(0), CPU)
    torch.testing.assert_close(ws_mixed[:, 0], ws_plain[:, 0])  # the first layers keep the first z's w
    assert not torch.equal(ws_mixed[:, -1], ws_plain[:, -1])  # the last ones take the second z's
    data = torch.rand(40, 1, 8, 8) * 2 - 1
    options = replace(config, train=replace(config.train, style_mixing=0.5, pl_weight=2.0, pl_interval=2))
    state = train.train(options, data, tmp_path, device=CPU)
    assert state.step == 4 and state.pl_mean > 0
