"""StyleGAN2 training (stylegan2-ada-pytorch training_loop/loss): non-saturating logistic loss, lazy R1 on reals,
Adam (0, 0.99) rescaled for lazy regularisation, G EMA by half-life with ramp-up, ADA's adaptive augmentation.
The randomness of step k comes from (seed, k), so a killed run resumes exactly; checkpoints are atomic; a
non-finite loss or weight stops the run and keeps the last good checkpoint."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.stylegan2.augment import ada_adjust, augment
from baselines.stylegan2.configs import StyleGAN2Config, TrainConfig
from baselines.stylegan2.model import FORMAT, build_networks, read
from ddgan_ref.io import check_finite, check_resumable, config_to_dict, load_into, write_checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
DIVERGED_ADVICE = "Lower the learning rates (--lr-g, --lr-d)"


@dataclass
class TrainState:
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    step: int = 0
    ada_p: float = 0.0
    ada_signs: list[float] = field(default_factory=list)
    pl_mean: float = 0.0


def new_state(config: StyleGAN2Config, device: torch.device) -> TrainState:
    """Fresh networks from config.train.seed (forked RNG); Adam rescaled for lazy R1 / path length as upstream."""
    cfg = config.train
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G, D = (m.to(device) for m in build_networks(config))
    rg = cfg.pl_interval / (cfg.pl_interval + 1) if cfg.pl_weight > 0 else 1.0
    rd = cfg.r1_interval / (cfg.r1_interval + 1)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g * rg, betas=tuple(b**rg for b in cfg.betas), eps=1e-8)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d * rd, betas=tuple(b**rd for b in cfg.betas), eps=1e-8)
    return TrainState(G.train(), D.train(), copy.deepcopy(G).eval().requires_grad_(False), opt_g, opt_d)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_000_007 + step) % (2**63 - 1))


def generate(state: TrainState, n: int, cfg: TrainConfig, gen: torch.Generator,
             device: torch.device) -> tuple[Tensor, Tensor]:
    """(images, ws) for n fresh z; with probability style_mixing, the ws from a random layer on come from a
    second z (whose mapping does not update w_avg)."""
    z = torch.randn(n, state.G.z_dim, generator=gen).to(device)
    ws = state.G.mapping(z, None)
    if cfg.style_mixing > 0 and float(torch.rand((), generator=gen)) < cfg.style_mixing:
        cutoff = int(torch.randint(1, ws.shape[1], (), generator=gen))
        z2 = torch.randn(n, state.G.z_dim, generator=gen).to(device)
        ws = torch.cat([ws[:, :cutoff], state.G.mapping(z2, None, update_w_avg=False)[:, cutoff:]], dim=1)
    return state.G.synthesis(ws, noise_mode="random", generator=gen), ws


def fake_images(state: TrainState, n: int, gen: torch.Generator, device: torch.device, cfg: TrainConfig) -> Tensor:
    return generate(state, n, cfg, gen, device)[0]


def d_step(state: TrainState, real: Tensor, cfg: TrainConfig, gen: torch.Generator) -> dict[str, float]:
    """softplus(D(aug(fake))) + softplus(-D(aug(real))); every r1_interval steps a second optimiser step on
    gamma/2 |d D(aug(real)) / d real|^2 x interval (lazy R1, upstream's Dreg phase: the interval+1 steps per
    interval minibatches are what new_state's Adam rescaling is for)."""
    with torch.no_grad():
        fake = fake_images(state, real.shape[0], gen, real.device, cfg)
    real_logits = state.D(augment(real, state.ada_p, cfg.augment, gen), None)
    loss = F.softplus(state.D(augment(fake, state.ada_p, cfg.augment, gen), None)).mean() + F.softplus(
        -real_logits).mean()
    state.opt_d.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_d.step()
    state.ada_signs.append(float(real_logits.detach().sign().mean()))
    r1 = r1_step(state, real, cfg, gen) if cfg.r1_gamma > 0 and state.step % cfg.r1_interval == 0 else 0.0
    return {"loss_d": float(loss.detach()), "r1": r1}


def r1_step(state: TrainState, real: Tensor, cfg: TrainConfig, gen: torch.Generator) -> float:
    """One D step on the R1 penalty alone, taken w.r.t. the real images before augmentation (ADA); returns it."""
    real = real.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(state.D(augment(real, state.ada_p, cfg.augment, gen), None).sum(), real,
                                  create_graph=True)
    r1 = grad.square().flatten(1).sum(1).mean()
    state.opt_d.zero_grad(set_to_none=True)
    (r1 * (cfg.r1_gamma / 2) * cfg.r1_interval).backward()
    state.opt_d.step()
    return float(r1.detach())


def g_step(state: TrainState, batch: int, cfg: TrainConfig, gen: torch.Generator, device: torch.device) -> float:
    """softplus(-D(aug(G(z))))."""
    fake = augment(fake_images(state, batch, gen, device, cfg), state.ada_p, cfg.augment, gen)
    loss = F.softplus(-state.D(fake, None)).mean()
    state.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_g.step()
    return float(loss.detach())


def pl_step(state: TrainState, cfg: TrainConfig, gen: torch.Generator, device: torch.device) -> float:
    """Path-length regularisation (lazy): penalise | J_w^T y | (y: image noise / sqrt(H W)) away from its
    running mean, on batch / pl_batch_shrink images, scaled by pl_interval."""
    img, ws = generate(state, max(cfg.batch_size // cfg.pl_batch_shrink, 1), cfg, gen, device)
    scale = math.sqrt(img.shape[2] * img.shape[3]) if img.ndim == 4 else 1.0
    noise = torch.randn(img.shape, generator=gen).to(device) / scale
    (grad,) = torch.autograd.grad((img * noise).sum(), ws, create_graph=True)
    lengths = grad.square().sum(2).mean(1).sqrt()
    state.pl_mean = state.pl_mean + cfg.pl_decay * (float(lengths.mean().detach()) - state.pl_mean)
    loss = (lengths - state.pl_mean).square().mean() * cfg.pl_weight * cfg.pl_interval
    state.opt_g.zero_grad(set_to_none=True)
    loss.backward()
    state.opt_g.step()
    return float(loss.detach())


def ema_update(state: TrainState, cfg: TrainConfig) -> None:
    """G_ema <- lerp(G, G_ema, beta), beta = 0.5^(batch / ema_nimg), ema_nimg ramped up with the images seen."""
    ema_nimg = cfg.ema_kimg * 1000
    if cfg.ema_rampup is not None:
        ema_nimg = min(ema_nimg, (state.step + 1) * cfg.batch_size * cfg.ema_rampup)
    beta = 0.5 ** (cfg.batch_size / max(ema_nimg, 1e-8))
    with torch.no_grad():
        for e, p in zip(state.G_ema.parameters(), state.G.parameters(), strict=True):
            e.copy_(p.lerp(e, beta))
        for e, b in zip(state.G_ema.buffers(), state.G.buffers(), strict=True):
            e.copy_(b)


def train_step(state: TrainState, data: Tensor, cfg: TrainConfig, device: torch.device) -> dict[str, float]:
    """One D step (with lazy R1), one G step, the EMA and every ada_interval steps the ADA update."""
    gen = step_generator(cfg.seed, state.step)
    real = data[torch.randint(0, len(data), (cfg.batch_size,), generator=gen)].to(device)
    stats = d_step(state, real, cfg, gen)
    stats["loss_g"] = g_step(state, cfg.batch_size, cfg, gen, device)
    if cfg.pl_weight > 0 and state.step % cfg.pl_interval == 0:
        stats["pl"] = pl_step(state, cfg, gen, device)
    ema_update(state, cfg)
    state.step += 1
    if cfg.ada_target is not None and state.step % cfg.ada_interval == 0:
        mean = sum(state.ada_signs) / len(state.ada_signs)
        state.ada_p = ada_adjust(state.ada_p, mean, cfg.ada_target, cfg.batch_size, cfg.ada_interval, cfg.ada_kimg)
        state.ada_signs.clear()
    return stats | {"ada_p": state.ada_p}


def save(state: TrainState, config: StyleGAN2Config, path: Path, meta: dict[str, Any]) -> Path:
    """G_ema as the state_dict; G, D, their optimisers, the step and the ADA / path-length state to resume."""
    check_finite(state.step, path, DIVERGED_ADVICE, modules=(state.G, state.D, state.G_ema))
    resume = {"step": state.step, "G": state.G.state_dict(), "D": state.D.state_dict(),
              "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(), "ada_p": state.ada_p,
              "ada_signs": state.ada_signs, "pl_mean": state.pl_mean}
    return write_checkpoint(path, FORMAT, config_to_dict(config), state.G_ema.state_dict(),
                            {**meta, "step": state.step}, train_state=resume)


def restore(path: Path, config: StyleGAN2Config, device: torch.device) -> TrainState:
    """The state saved in `path` (either layout), if it holds a run `config` may continue."""
    ckpt = read(path)
    check_resumable(ckpt.config, config, path)
    state, resume = new_state(config, device), ckpt.extra["train_state"]
    load_into(state.G, resume["G"], f"{path} (G)")
    load_into(state.D, resume["D"], f"{path} (D)")
    load_into(state.G_ema, ckpt.state_dict, f"{path} (G_ema)")
    state.opt_g.load_state_dict(resume["opt_g"])
    state.opt_d.load_state_dict(resume["opt_d"])
    state.step, state.ada_p, state.ada_signs = resume["step"], resume["ada_p"], list(resume["ada_signs"])
    state.pl_mean = resume["pl_mean"]
    return state


def train(config: StyleGAN2Config, data: Tensor, out_dir: str | Path, *, device: str | torch.device = "cpu",
          resume: bool = False, max_steps: int | None = None, meta: dict[str, Any] | None = None,
          progress: Callable[[int, dict[str, float]], None] | None = None, autocast: torch.dtype | None = None,
          channels_last: bool = False) -> TrainState:
    """Train on `data` ([N, *data_shape] in [-1, 1]) into out_dir/checkpoint.pt, up to config.train.steps (or
    max_steps) iterations in all; progress(step, losses) follows every step. Returns the final state.
    autocast: the steps under torch.autocast at this dtype (None: float32); channels_last: images and G
    and D in NHWC. Weights, optimiser state and checkpoints stay float32 either way."""
    device, cfg, ckpt = torch.device(device), config.train, Path(out_dir) / CHECKPOINT_NAME
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{ckpt} exists; pass resume=True (--resume) to continue it, or use a new folder")
    state = restore(ckpt, config, device) if resume and ckpt.exists() else new_state(config, device)
    if channels_last:
        state.G.to(memory_format=torch.channels_last)
        state.D.to(memory_format=torch.channels_last)
        data = data.contiguous(memory_format=torch.channels_last) if data.ndim == 4 else data
    last = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    while state.step < last:
        with torch.autocast(device.type, dtype=autocast, enabled=autocast is not None):
            stats = train_step(state, data, cfg, device)
        check_finite(state.step, ckpt, DIVERGED_ADVICE, losses=stats)
        if progress is not None:
            progress(state.step, stats)
        if state.step % cfg.checkpoint_every == 0 or state.step == last:
            save(state, config, ckpt, meta or {})
    return state
