"""One trilemma cell measured: its model under the cell's sampling setting (bench.speed), its samples (sharded
under torchrun), their metrics as stored, the paper's timing, a sample grid, and for a fast setting its cost in
quality against the float32 cell of the same model and steps."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from bench import report, speed, timing
from bench.data import build_dataset, stack_items
from bench.distributed import World
from bench.grid import write_grid
from bench.images import as_stored
from bench.metrics import Reference, evaluate
from bench.metrics.evaluate import DEFAULT_EXTRACTOR
from bench.plan import Cell, RunConfig, samples_of
from bench.protocol import Generator
from bench.registry import build_model
from bench.results import CellRecord
from bench.sample import draw
from ddgan_ref.io import config_to_dict


def load(cell: Cell, checkpoint: Path | str, run: RunConfig) -> Generator:
    """The cell's model, sampling under its setting (the float32 model itself for a reference cell)."""
    return speed.apply(build_model(cell.entry.family, checkpoint=checkpoint, device=run.device), cell.speed)


def draw_shared(model: Generator, steps: int, n: int, run: RunConfig, world: World) -> torch.Tensor:
    """The cell's n samples; under torchrun each rank draws its contiguous shard of whole batches (seeds seed + i)
    and the shards are gathered: the single-process batches, so the single-process samples."""
    part = world.shard(n, run.batch_size)
    quiet = run.quiet or not world.main
    return world.gather(draw(model, part.stop - part.start, steps, run.seed + part.start, run.batch_size, quiet))


def own_weights(run: RunConfig) -> Path | None:
    """The weights of the dataset's own extractor: the Inception file where that is Inception, else the default."""
    return run.inception_weights if DEFAULT_EXTRACTOR[run.dataset] == "inception-v3-compat" else None


def cell_metrics(samples: torch.Tensor, run: RunConfig, shards: World | None) -> dict[str, Any]:
    """The dataset's own metrics of the samples as stored (--sample-format), plus Inception's on the first
    --inception-n of them: {'metrics', 'unavailable', 'protocol'}."""
    stored = as_stored(samples, run.sample_format) if samples.ndim == 4 else samples
    result = evaluate(stored, Reference(run.dataset, root=run.root), weights=own_weights(run), device=run.device,
                      world=shards)
    result["protocol"]["stored_as"] = run.sample_format
    if not run.inception_n:
        return result
    second = evaluate(stored[:run.inception_n], Reference(run.dataset, root=run.root), "inception-v3-compat",
                      weights=run.inception_weights, device=run.device, count_modes=False, world=shards)
    return {"metrics": {**result["metrics"], **second["metrics"]},
            "unavailable": {**result["unavailable"], **second["unavailable"]},
            "protocol": {**result["protocol"], "inception": second["protocol"]}}


def measure(cell: Cell, model: Generator, run: RunConfig, world: World,
            reference: CellRecord | None = None) -> dict[str, Any]:
    """Samples, metrics, timing and a sample grid of one cell (timing, grid and quality cost on rank 0 only), as
    record fields; `reference` is the float32 cell's record where this cell is a fast setting."""
    steps = cell.spec.steps if cell.spec.steps is not None else model.default_steps
    if steps not in model.supported_steps:
        raise ValueError(f"{cell.entry.name} does not support {steps} steps")
    samples = draw_shared(model, steps, samples_of(run, cell), run, world)
    result = cell_metrics(samples, run, world if world.size > 1 else None)
    out = {"steps": steps, "label": cell.spec.label.format(steps=steps), "metrics": result["metrics"],
           "protocol": result["protocol"], "unavailable": result["unavailable"],
           "world_size": world.size, "model_config": config_to_dict(model.config),
           "speed": speed.describe(cell.speed, run.device)}
    error = None
    if world.main:
        try:
            out.update(timed_and_drawn(cell, model, steps, samples, run))
            if not cell.speed.reference:
                out["quality_cost"] = cost(cell, model, steps, samples, result["metrics"], reference, run.seed)
        except Exception as e:  # raised after the barrier, so the other ranks do not wait forever
            error = e
    world.barrier()
    if error is not None:
        raise error
    return out


def timed_and_drawn(cell: Cell, model: Generator, steps: int, samples: torch.Tensor, run: RunConfig) -> dict:
    """The paper's timing (and throughput) and the cell's sample grid."""
    reference = stack_items(build_dataset(run.dataset, size=2000, seed=0)) if samples.ndim == 2 else None
    grid = write_grid(samples[:2000] if samples.ndim == 2 else samples[:64], run.out / f"samples_{cell.id}.png",
                      reference=reference)
    timed = timing.paper_time(model, steps, run.device, batch=100, rounds=run.rounds, seed=run.seed)
    if run.throughput:
        timed = timed.with_throughput(timing.throughput(model, steps, run.device, seed=run.seed))
    return {"timing": timed, "grid": grid.name}


def cost(cell: Cell, model: speed.FastModel, steps: int, samples: torch.Tensor, metrics: dict[str, Any],
         reference: CellRecord | None, seed: int) -> dict[str, Any]:
    """A fast cell's quality cost (bench.speed.quality_cost): its first images against the float32 model's on the
    same seeds (drawn again here, one batch), its metrics against the float32 cell's (when that cell succeeded)."""
    n = min(len(samples), speed.PIXEL_N)
    float32 = model.original.sample(n, steps, seed=seed).cpu()
    quality = next((k for k in report.QUALITY if k in metrics), None)
    ok = reference is not None and reference.ok
    return speed.quality_cost(samples[:n], float32, metrics, reference.metrics if ok else None, quality,
                              cell.base_id)
