"""DDGAN training as a library: d_step, g_step and train (the loop of train_ddgan.py @ 6818ded).

Per iteration: a discriminator step on a fresh (t, x_t, x_{t+1}) with R1 on the real x_t (every
`lazy_reg` steps, not rescaled, as upstream), then a generator step on a fresh t, pair and z, with the
non-saturating softplus losses; EMA of G after each G step; cosine LR per epoch. Randomness of step k
on rank r comes from its own generator seeded with (seed, r, k) and the data order from (seed, epoch),
so a run resumed from a checkpoint continues exactly as the uninterrupted run would have. Several
processes (torchrun) average their gradients with all_reduce (gloo on CPU, nccl on GPU). Optionally the
iterations run under autocast (e.g. bfloat16) with G, D and the batches channels-last; the weights, the
optimiser state and the checkpoints stay float32.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from ddgan_ref import losses
from ddgan_ref.checkpoints import read_checkpoint, write_checkpoint
from ddgan_ref.configs import DDGANConfig, TrainConfig
from ddgan_ref.diffusion import (
    DiffusionCoefficients,
    PosteriorCoefficients,
    diffusion_coefficients,
    posterior_coefficients,
    posterior_sample,
    q_sample_pairs,
)
from ddgan_ref.io import CheckpointError, check_finite, check_resumable, config_to_dict, write_json_atomic
from ddgan_ref.networks.build import build_discriminator, build_generator
from ddgan_ref.provenance import git_commit, provenance

CHECKPOINT_NAME = "checkpoint.pt"
HISTORY_EVERY = 10  # iterations between the loss records kept in the checkpoint
DIVERGED_ADVICE = "Lower the learning rates (--lr-g, --lr-d) or raise r1_gamma"


class EMA:
    """Exponential moving average of parameters, started from the weights after the first step (EMA.py)."""

    def __init__(self, decay: float):
        self.decay, self.shadow = decay, None

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        params = [p.detach() for p in module.parameters()]
        if self.shadow is None:
            self.shadow = [p.clone() for p in params]
            return
        torch._foreach_mul_(self.shadow, self.decay)
        torch._foreach_add_(self.shadow, params, alpha=1 - self.decay)

    def state_dict_of(self, module: nn.Module) -> dict[str, Tensor]:
        """module.state_dict() with the averaged parameters in place of the current ones."""
        sd = {k: v.detach().clone() for k, v in module.state_dict().items()}
        if self.shadow is not None:
            for (name, _), avg in zip(module.named_parameters(), self.shadow, strict=True):
                sd[name] = avg.clone()
        return sd


@dataclass
class TrainState:
    """Everything a resume needs."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    sched_g: torch.optim.lr_scheduler.LRScheduler
    sched_d: torch.optim.lr_scheduler.LRScheduler
    ema: EMA | None
    step: int = 0
    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1

    def average(self, t: Tensor) -> Tensor:
        if self.size > 1:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
            t /= self.size
        return t


@dataclass(frozen=True)
class Run:
    """What every iteration of one training run reads besides the state."""

    config: DDGANConfig
    coeffs: DiffusionCoefficients
    pos: PosteriorCoefficients
    world: World
    device: torch.device
    ckpt: Path
    meta: dict[str, Any] = field(default_factory=dict)
    progress: Callable[[int, dict[str, float]], None] | None = None
    autocast: torch.dtype | None = None  # the D and G steps under torch.autocast at this dtype; None: float32
    channels_last: bool = False  # image batches (and, set by train, G and D) in NHWC


def step_generator(seed: int, rank: int, step: int, device: torch.device) -> torch.Generator:
    """The random stream of iteration `step` on `rank`: a pure function of (seed, rank, step)."""
    mixed = (seed * 1_000_000_007 + rank * 1_000_003 + step) % (2**63 - 1)
    return torch.Generator(device).manual_seed(mixed)


def draw_pair(x0: Tensor, coeffs: DiffusionCoefficients, gen: torch.Generator) -> tuple[Tensor, Tensor, Tensor]:
    """t ~ U{0..T-1} per sample and (x_t, x_{t+1}) ~ q; noise for x_{t+1} is drawn first, as upstream."""
    t = torch.randint(0, coeffs.T, (x0.shape[0],), generator=gen, device=x0.device)
    noise_tp1 = torch.randn(x0.shape, generator=gen, device=x0.device)
    noise_t = torch.randn(x0.shape, generator=gen, device=x0.device)
    x_t, x_tp1 = q_sample_pairs(coeffs, x0, t, noise_t, noise_tp1)
    return t, x_t, x_tp1


def fake_pair(G: nn.Module, x_tp1: Tensor, t: Tensor, pos: PosteriorCoefficients, gen: torch.Generator) -> Tensor:
    """x_pos ~ q(x_t | x_{t+1}, G(x_{t+1}, t, z)) with a fresh z and posterior noise."""
    z = torch.randn((x_tp1.shape[0], G.z_dim), generator=gen, device=x_tp1.device)
    noise = torch.randn(x_tp1.shape, generator=gen, device=x_tp1.device)
    return posterior_sample(pos, G(x_tp1, t, z), x_tp1, t, noise)


def sync_grads(module: nn.Module, world: World) -> None:
    """Average gradients over processes (what DistributedDataParallel does, double-backward safe)."""
    if world.size > 1:
        for p in module.parameters():
            if p.grad is not None:
                world.average(p.grad)


def d_step(state: TrainState, x0: Tensor, coeffs: DiffusionCoefficients, pos: PosteriorCoefficients,
           cfg: TrainConfig, gen: torch.Generator, world: World) -> dict[str, Tensor]:
    """One discriminator update: real loss (+ R1 on lazy steps) and fake loss."""
    G, D = state.G, state.D
    D.requires_grad_(True)
    state.opt_d.zero_grad(set_to_none=True)
    t, x_t, x_tp1 = draw_pair(x0, coeffs, gen)
    x_t.requires_grad_(True)
    logits_real = D(x_t, t, x_tp1.detach())
    loss_real = losses.d_loss_real(logits_real)
    r1 = torch.zeros((), device=x0.device)
    if cfg.lazy_reg is None or state.step % cfg.lazy_reg == 0:
        r1 = losses.r1_penalty(logits_real, x_t, cfg.r1_gamma)
    (loss_real + r1).backward()
    with torch.no_grad():
        x_pos = fake_pair(G, x_tp1, t, pos, gen)
    loss_fake = losses.d_loss_fake(D(x_pos, t, x_tp1.detach()))
    loss_fake.backward()
    sync_grads(D, world)
    state.opt_d.step()
    return {"d_real": loss_real.detach(), "d_fake": loss_fake.detach(), "r1": r1.detach()}


def g_step(state: TrainState, x0: Tensor, coeffs: DiffusionCoefficients, pos: PosteriorCoefficients,
           gen: torch.Generator, world: World) -> dict[str, Tensor]:
    """One generator update on a fresh t, pair and z; then the EMA update."""
    G, D = state.G, state.D
    D.requires_grad_(False)
    state.opt_g.zero_grad(set_to_none=True)
    t, _, x_tp1 = draw_pair(x0, coeffs, gen)
    loss = losses.g_loss(D(fake_pair(G, x_tp1, t, pos, gen), t, x_tp1.detach()))
    loss.backward()
    sync_grads(G, world)
    state.opt_g.step()
    if state.ema is not None:
        state.ema.update(G)
    return {"g": loss.detach()}


def new_state(config: DDGANConfig, device: torch.device, world: World) -> TrainState:
    """Fresh networks drawn from cfg.seed (rank 0's broadcast to all), Adam and cosine schedules as upstream."""
    cfg = config.train
    with torch.random.fork_rng(devices=[]):  # initial weights from the config's seed, global RNG untouched
        torch.manual_seed(cfg.seed)
        G = build_generator(config.generator).to(device)
        D = build_discriminator(config.discriminator).to(device)
    if world.size > 1:
        for p in [*G.parameters(), *D.parameters()]:
            dist.broadcast(p.data, src=0)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=(cfg.beta1, cfg.beta2))
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=(cfg.beta1, cfg.beta2))
    sched = [torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=cfg.num_epoch, eta_min=cfg.lr_min)
             for o in (opt_g, opt_d)]
    ema = EMA(cfg.ema_decay) if cfg.use_ema else None
    return TrainState(G, D, opt_g, opt_d, sched[0], sched[1], ema)


def state_payload(state: TrainState) -> dict[str, Any]:
    """The resume part of a checkpoint."""
    return {"step": state.step, "epoch": state.epoch, "G": state.G.state_dict(), "D": state.D.state_dict(),
            "opt_g": state.opt_g.state_dict(), "opt_d": state.opt_d.state_dict(),
            "sched_g": state.sched_g.state_dict(), "sched_d": state.sched_d.state_dict(),
            "ema": None if state.ema is None or state.ema.shadow is None else state.ema.shadow,
            "history": state.history}


def restore(state: TrainState, payload: dict[str, Any], device: torch.device) -> None:
    """Load a resume payload into a fresh state."""
    state.G.load_state_dict(payload["G"])
    state.D.load_state_dict(payload["D"])
    state.opt_g.load_state_dict(payload["opt_g"])
    state.opt_d.load_state_dict(payload["opt_d"])
    state.sched_g.load_state_dict(payload["sched_g"])
    state.sched_d.load_state_dict(payload["sched_d"])
    if state.ema is not None and payload["ema"] is not None:
        state.ema.shadow = [t.to(device) for t in payload["ema"]]
    state.step, state.epoch, state.history = payload["step"], payload["epoch"], list(payload["history"])


def save(state: TrainState, run: Run) -> None:
    """Rank 0 writes {config, state_dict (EMA G if any), meta, train_state} atomically to run.ckpt."""
    check_finite(state.step, run.ckpt, DIVERGED_ADVICE, modules=(state.G, state.D))
    if run.world.rank == 0:
        sd = state.ema.state_dict_of(state.G) if state.ema is not None else state.G.state_dict()
        meta = {**provenance(run.device), **run.meta, "step": state.step, "epoch": state.epoch,
                "world_size": run.world.size, "weights": "ema" if state.ema is not None else "raw"}
        write_checkpoint(run.ckpt, run.config, sd, meta, train_state=state_payload(state))
    if run.world.size > 1:
        dist.barrier()


def epoch_batches(dataset: Dataset, cfg: TrainConfig, epoch: int, skip: int, world: World,
                  num_workers: int = 0) -> DataLoader:
    """This rank's batches of `epoch` (shuffled from (seed, epoch), last partial batch dropped), from batch `skip`."""
    sampler = DistributedSampler(dataset, num_replicas=world.size, rank=world.rank, shuffle=True,
                                 seed=cfg.seed, drop_last=True)
    sampler.set_epoch(epoch)
    idx = list(sampler)
    batches = [idx[i:i + cfg.batch_size] for i in range(0, len(idx) - cfg.batch_size + 1, cfg.batch_size)]
    return DataLoader(dataset, batch_sampler=batches[skip:], num_workers=num_workers)


def iters_per_epoch(dataset: Dataset, cfg: TrainConfig, world: World) -> int:
    n = len(dataset) // world.size // cfg.batch_size
    if n == 0:
        raise ValueError(f"the dataset has {len(dataset)} items: too few for batch_size {cfg.batch_size} on "
                         f"{world.size} process(es); lower --batch-size or use more data")
    return n


def prepare_batch(batch: Any, cfg: TrainConfig, device: torch.device, gen: torch.Generator) -> Tensor:
    """Images (or points) of a batch on `device`, randomly flipped left-right when cfg.hflip."""
    x0 = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device, torch.float32)
    if cfg.hflip and x0.ndim == 4:
        flip = torch.rand(x0.shape[0], generator=gen, device=device) < 0.5
        x0 = torch.where(flip[:, None, None, None], x0.flip(3), x0)
    return x0


def world_from_env(device: torch.device) -> World:
    """Join the torchrun process group when WORLD_SIZE > 1 (gloo on CPU, nccl on CUDA)."""
    if not dist.is_available() or not dist.is_initialized():
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return World()
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return World(dist.get_rank(), dist.get_world_size())


def start(config: DDGANConfig, out_dir: Path, device: torch.device, world: World, resume: bool) -> TrainState:
    """A fresh state, or the one in out_dir/checkpoint.pt when resuming; refuses to overwrite a run.

    Rank 0 writes the resolved config to out_dir/config.json.
    """
    state = new_state(config, device, world)
    ckpt = out_dir / CHECKPOINT_NAME
    if ckpt.exists() and not resume:
        raise FileExistsError(f"{ckpt} exists: pass resume=True (--resume) to continue that run, or choose "
                              f"another output folder")
    if ckpt.exists():
        saved = read_checkpoint(ckpt)
        check_resumable(saved.config, config, ckpt)
        if saved.meta.get("world_size", world.size) != world.size:  # each rank's data and noise follow the count
            raise CheckpointError(f"{ckpt} was trained by {saved.meta['world_size']} process(es), this run has "
                                  f"{world.size}; resume it with torchrun --nproc-per-node "
                                  f"{saved.meta['world_size']} so it continues exactly, or start a new folder")
        restore(state, saved.extra["train_state"], device)
    if world.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(config_to_dict(config), out_dir / "config.json")
    return state


def use_channels_last(state: TrainState) -> None:
    """G and D weights in NHWC. Only layouts change: Adam's fresh state takes each parameter's, and a resumed state
    keeps the checkpoint's contiguous one, which changes no value."""
    state.G.to(memory_format=torch.channels_last)
    state.D.to(memory_format=torch.channels_last)


def train_step(state: TrainState, batch: Any, run: Run) -> dict[str, float]:
    """One iteration (D step, G step) on a batch; returns the losses averaged over processes."""
    cfg = run.config.train
    gen = step_generator(cfg.seed, run.world.rank, state.step, run.device)
    x0 = prepare_batch(batch, cfg, run.device, gen)
    if run.channels_last and x0.ndim == 4:
        x0 = x0.contiguous(memory_format=torch.channels_last)
    with torch.autocast(run.device.type, dtype=run.autocast, enabled=run.autocast is not None):
        out = d_step(state, x0, run.coeffs, run.pos, cfg, gen, run.world)
        out |= g_step(state, x0, run.coeffs, run.pos, gen, run.world)
    stats = dict(zip(out, run.world.average(torch.stack(list(out.values()))).tolist(), strict=True))
    check_finite(state.step, run.ckpt, DIVERGED_ADVICE, losses=stats)
    state.step += 1
    if state.step % HISTORY_EVERY == 0:
        state.history.append({"step": state.step, **stats})
    return stats


def train_epoch(state: TrainState, batches: Iterable[Any], stop: int, run: Run) -> bool:
    """The given batches of the current epoch, until `stop` iterations in all; True if the epoch ran to its end."""
    for batch in batches:
        if state.step >= stop:
            return False
        stats = train_step(state, batch, run)
        if run.progress is not None:
            run.progress(state.step, stats)
        if state.step % run.config.train.checkpoint_every == 0:
            save(state, run)
    return True


def end_epoch(state: TrainState, cfg: TrainConfig) -> None:
    """Count the finished epoch and step the cosine learning rates (once per epoch, as upstream)."""
    state.epoch += 1
    if cfg.lr_decay:
        state.sched_g.step()
        state.sched_d.step()


def train(config: DDGANConfig, dataset: Dataset, out_dir: str | Path, *, device: str | torch.device = "cpu",
          resume: bool = False, max_steps: int | None = None, meta: dict[str, Any] | None = None,
          progress: Callable[[int, dict[str, float]], None] | None = None, num_workers: int = 0,
          world: World | None = None, autocast: torch.dtype | None = None, channels_last: bool = False) -> TrainState:
    """Train to config.train.num_epoch epochs (or max_steps iterations in all), checkpointing to out_dir.

    progress(step, losses) follows every iteration; meta joins the checkpoint's meta. world: the processes
    training together; default from the torchrun environment (World() trains alone). autocast, channels_last:
    the iterations' precision and memory format (Run).
    """
    # Set-up: the commit the checkpoints name, processes, diffusion coefficients, the state, the iteration to stop at.
    git_commit()
    device, out_dir, cfg, d = torch.device(device), Path(out_dir), config.train, config.diffusion
    world = world or world_from_env(device)
    run = Run(config, diffusion_coefficients(d.num_timesteps, d.beta_min, d.beta_max, d.use_geometric).to(device),
              posterior_coefficients(d.num_timesteps, d.beta_min, d.beta_max, d.use_geometric).to(device),
              world, device, out_dir / CHECKPOINT_NAME, dict(meta or {}), progress, autocast, channels_last)
    state = start(config, out_dir, device, world, resume)
    if channels_last:
        use_channels_last(state)
    per_epoch = iters_per_epoch(dataset, cfg, world)
    stop = per_epoch * cfg.num_epoch if max_steps is None else min(max_steps, per_epoch * cfg.num_epoch)
    first = state.step
    # Epochs; a resumed one skips the batches it had done, the last may stop part-way.
    while state.step < stop:
        skip = state.step - state.epoch * per_epoch
        if train_epoch(state, epoch_batches(dataset, cfg, state.epoch, skip, world, num_workers), stop, run):
            end_epoch(state, cfg)
    # A final checkpoint, unless the last iteration wrote one.
    if (state.step != first and state.step % cfg.checkpoint_every != 0) or not run.ckpt.exists():
        save(state, run)
    return state
