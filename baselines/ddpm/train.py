"""DDPM training (Ho et al. 2020 Algorithm 1): the simple epsilon loss, Adam with linear warm-up, gradient
clipping, EMA. Batches and noise of step k come from (seed, k), so a killed run resumes exactly; checkpoints
are written atomically and a non-finite loss or weight stops the run with the last good checkpoint kept."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from baselines.ddpm import schedule
from baselines.ddpm.configs import DDPMConfig, TrainConfig
from baselines.ddpm.model import FORMAT, build_network, read
from ddgan_ref.io import check_finite, check_resumable, config_to_dict, load_into, write_checkpoint

CHECKPOINT_NAME = "checkpoint.pt"
DIVERGED_ADVICE = "Lower the learning rate (--lr)"


@dataclass
class TrainState:
    net: nn.Module
    ema: nn.Module
    opt: torch.optim.Optimizer
    step: int = 0


def new_state(config: DDPMConfig, device: torch.device) -> TrainState:
    """Fresh weights drawn from config.train.seed (in a forked RNG: the global stream is untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.train.seed)
        net = build_network(config).to(device)
    opt = torch.optim.Adam(net.parameters(), lr=config.train.lr)
    return TrainState(net, copy.deepcopy(net).eval().requires_grad_(False), opt)


def step_generator(seed: int, step: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_000_007 + step) % (2**63 - 1))


@contextlib.contextmanager
def step_dropout(seed: int, step: int, device: torch.device) -> Iterator[None]:
    """torch's global RNG, which nn.Dropout draws its masks from, seeded from (seed, step) inside the block and
    restored after: the masks repeat on --resume as the batch and noise of step_generator do (whose draws this
    leaves as they were; the seed here has its high bit set)."""
    cuda = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        seed = (seed * 1_000_000_007 + step) % (2**62) | 2**62
        torch.default_generator.manual_seed(seed)
        for index in cuda:
            torch.cuda.default_generators[index].manual_seed(seed)
        yield


def draw_batch(data: Tensor, cfg: TrainConfig, gen: torch.Generator) -> Tensor:
    """batch_size items drawn with replacement, images flipped left-right at random when cfg.hflip."""
    x0 = data[torch.randint(0, len(data), (cfg.batch_size,), generator=gen)]
    if cfg.hflip and x0.ndim == 4:
        flip = torch.rand(x0.shape[0], generator=gen) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
    return x0


def loss_fn(net: nn.Module, x0: Tensor, alpha_bar: Tensor, gen: torch.Generator) -> Tensor:
    """E_t,eps ||eps - eps_theta(sqrt(a_t) x0 + sqrt(1 - a_t) eps, t)||^2, t ~ U{0..T-1}."""
    t = torch.randint(0, len(alpha_bar), (x0.shape[0],), generator=gen).to(x0.device)
    noise = torch.randn(x0.shape, generator=gen).to(x0.device)
    return F.mse_loss(net(schedule.add_noise(alpha_bar, x0, noise, t), t), noise)


def train_step(state: TrainState, x0: Tensor, alpha_bar: Tensor, cfg: TrainConfig, gen: torch.Generator) -> float:
    """One Adam step at the warmed-up learning rate, with gradient clipping and the EMA update."""
    for group in state.opt.param_groups:
        group["lr"] = cfg.lr * min(1.0, (state.step + 1) / max(cfg.warmup, 1))
    loss = loss_fn(state.net, x0, alpha_bar, gen)
    if not torch.isfinite(loss):
        return float(loss.detach())
    state.opt.zero_grad(set_to_none=True)
    loss.backward()
    nn.utils.clip_grad_norm_(state.net.parameters(), cfg.grad_clip)
    state.opt.step()
    with torch.no_grad():
        for e, p in zip(state.ema.parameters(), state.net.parameters(), strict=True):
            e.lerp_(p, 1 - cfg.ema)
    state.step += 1
    return float(loss.detach())


def save(state: TrainState, config: DDPMConfig, path: Path, meta: dict[str, Any]) -> Path:
    """The EMA net as the state_dict; the raw net, optimiser and step as the resume state."""
    check_finite(state.step, path, DIVERGED_ADVICE, modules=(state.net, state.ema))
    return write_checkpoint(path, FORMAT, config_to_dict(config), state.ema.state_dict(), {**meta, "step": state.step},
                            train_state={"step": state.step, "net": state.net.state_dict(),
                                         "opt": state.opt.state_dict()})


def restore(path: Path, config: DDPMConfig, device: torch.device) -> TrainState:
    """The state saved in `path` (either layout), if it holds a run `config` may continue."""
    ckpt = read(path)
    check_resumable(ckpt.config, config, path)
    state, resume = new_state(config, device), ckpt.extra["train_state"]
    load_into(state.net, resume["net"], f"{path} (net)")
    load_into(state.ema, ckpt.state_dict, f"{path} (ema)")
    state.opt.load_state_dict(resume["opt"])
    state.step = resume["step"]
    return state


def train(config: DDPMConfig, data: Tensor, out_dir: str | Path, *, device: str | torch.device = "cpu",
          resume: bool = False, max_steps: int | None = None, meta: dict[str, Any] | None = None,
          progress: Callable[[int, dict[str, float]], None] | None = None, autocast: torch.dtype | None = None,
          channels_last: bool = False) -> TrainState:
    """Train on `data` ([N, *data_shape] in [-1, 1]) into out_dir/checkpoint.pt, up to config.train.steps (or
    max_steps) iterations in all; progress(step, losses) follows every step. Returns the final state.
    autocast: the steps under torch.autocast at this dtype (None: float32); channels_last: images and the
    network in NHWC. Weights, optimiser state and checkpoints stay float32 either way."""
    device, cfg, ckpt, meta = torch.device(device), config.train, Path(out_dir) / CHECKPOINT_NAME, meta or {}
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{ckpt} exists; pass resume=True (--resume) to continue it, or use a new folder")
    state = restore(ckpt, config, device) if resume and ckpt.exists() else new_state(config, device)
    if channels_last:
        state.net.to(memory_format=torch.channels_last)
        data = data.contiguous(memory_format=torch.channels_last) if data.ndim == 4 else data
    s = config.schedule
    alpha_bar = schedule.alphas_cumprod(schedule.linear_betas(s.T, s.beta_start, s.beta_end)).to(device)
    last = cfg.steps if max_steps is None else min(cfg.steps, max_steps)
    while state.step < last:
        gen = step_generator(cfg.seed, state.step)
        with step_dropout(cfg.seed, state.step, device), torch.autocast(device.type, dtype=autocast,
                                                                        enabled=autocast is not None):
            loss = train_step(state, draw_batch(data, cfg, gen).to(device), alpha_bar, cfg, gen)
        check_finite(state.step, ckpt, DIVERGED_ADVICE, losses={"loss": loss})
        if progress is not None:
            progress(state.step, {"loss": loss})
        if state.step % cfg.checkpoint_every == 0 or state.step == last:
            save(state, config, ckpt, meta)
    return state

