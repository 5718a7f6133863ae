"""python -m bench.trilemma: quality, coverage and sampling speed of DDGAN, DDPM/DDIM and StyleGAN2 on one dataset.

For each model x steps (a cell): load its checkpoint, or on an embedded dataset or real Stacked MNIST (--root)
train it with the small CPU preset when none is given; draw --n samples by seed; evaluate them (bench.metrics);
time one batch of 100 (the paper's protocol: warm-up, median of rounds, CUDA synchronised, network calls counted
by a hook); write cells/<cell>.json, then trilemma.csv/.md/.tex, trilemma.png and a sample grid per cell. A
model the harness trains is trained in segments with its quality measured after each (learning_curves.json/.png);
the table states its budget (iterations, images seen, minutes) and whether the last segment still moved it
(`plateau`). A finished cell is not run again (delete its JSON to redo it; --retime times it again); a failed
cell is reported with its reason and the others go on. Every input is checked before any work (all problems at
once, exit 2) and the output folder is locked while the run writes to it. The families and their cells come
from bench.registry.FAMILIES.
Examples:
  python -m bench.trilemma                                  # embedded gaussians25, every model, trains them
  python -m bench.trilemma --quick                          # shorter training, fewer samples and DDIM steps
  python -m bench.trilemma --dataset stacked-digits --out runs/trilemma-sd
  python -m bench.trilemma --dataset stacked-mnist --root ../shared/data --cell-n ddpm=100 ddpm-10=2000 \\
      --inception-weights default_1.pt --inception-n 500 --paper   # real Stacked MNIST, trains every model
  python -m bench.trilemma --dataset stacked-mnist --root ../shared/data --models ddgan \\
      --presets ddgan=stacked-mnist-24 --train-speed bf16   # DDGAN's 24 px preset, trained under bfloat16 autocast
  python -m bench.trilemma --dataset cifar10 --root ~/data --checkpoints ddgan=ddgan.pt ddpm=ddpm.pt \\
      stylegan2=sg2.pt --inception-weights weights-inception-2015-12-05-6726825d.pth --device cuda --paper
  (--paper: also measured vs the paper's Table 1 / ablation / Stacked-MNIST numbers, paper.md and paper.csv)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
import traceback
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from bench import curves, preflight, report, results, speed, timing
from bench.data import FILE_BACKED
from bench.devices import resolve_device
from bench.distributed import World, setup, teardown
from bench.lock import FolderLock, FolderLocked
from bench.measure import load, measure, own_weights
from bench.metrics import Reference, evaluate
from bench.metrics.evaluate import DEFAULT_EXTRACTOR, Knobs, check_reference_size, check_sample_count, table_metric
from bench.metrics.inception import inception_weights, read_weights
from bench.plan import (
    Cell,
    Entry,
    RunConfig,
    cells,
    check_checkpoint,
    default_n,
    entries,
    parse_cell_n,
    parse_preset,
    parser,
    samples_of,
)
from bench.preflight import Preflight, PreflightError, writable_folder
from bench.registry import build_model, check_resume, family, given_training, training_of
from bench.results import CellKey, CellRecord
from bench.sample import draw
from bench.train import CHECKPOINT_NAME, TrainJob, train_model, training_budget, training_data
from ddgan_ref.io import config_to_dict, write_json_atomic
from ddgan_ref.provenance import file_sha256, git_commit, provenance


@dataclass(frozen=True)
class Trained:
    """An entry's checkpoint, or why there is none (its cells are then reported as failed)."""

    checkpoint: Path | None
    failure: str | None = None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    return parser(__doc__).parse_args(argv)


def run_config(args: argparse.Namespace, command: list[str]) -> RunConfig:
    """The run's settings with their defaults, after every input is opened: the data, the Inception file, each
    checkpoint's header and the output folder; all problems are raised at once (PreflightError), before any work
    and before any file is written."""
    check = Preflight()
    if DEFAULT_EXTRACTOR[args.dataset] == "inception-v3-compat" or args.inception_n:
        check.check(lambda: read_weights(inception_weights(args.inception_weights)))
    if args.dataset in FILE_BACKED:  # a missing or empty data folder
        check.check(lambda: check_reference_size(args.dataset, args.root, True, Knobs()))
    cell_n = [check.check(lambda spec=spec: parse_cell_n(spec)) for spec in args.cell_n]
    for option, n in [("--n", args.n), ("--inception-n", args.inception_n), *(("--cell-n", c[1]) for c in cell_n if c)]:
        check.check(lambda option=option, n=n: check_sample_count(n, option, Knobs()))
    presets = [check.check(lambda spec=spec: parse_preset(spec)) for spec in args.presets]
    device = resolve_device(args.device)
    speeds = check.check(lambda: speed.expand(args.speed, device)) or ()
    for setting in speeds:
        check.check(lambda setting=setting: speed.check(setting, device))
    train_speed = check.check(lambda: speed.parse(args.train_speed))
    if train_speed is not None:
        check.check(lambda: speed.check_training(train_speed, device))
    run = RunConfig(
        dataset=args.dataset, models=tuple(args.models), checkpoints=tuple(args.checkpoints),
        n=args.n or default_n(args.dataset, args.quick), cell_n=tuple(c for c in cell_n if c is not None),
        seed=args.seed, quick=args.quick,
        train_steps=args.train_steps, root=args.root, inception_weights=args.inception_weights,
        inception_n=args.inception_n, sample_format=args.sample_format, rounds=args.rounds,
        curve_points=args.curve_points if args.curve_points is not None else 3 if args.quick else 5,
        throughput=args.throughput, retime=args.retime, batch_size=args.batch_size, device=device,
        out=args.out or Path("runs") / f"trilemma-{args.dataset}", quiet=args.quiet, paper=args.paper,
        command=("python", "-m", "bench.trilemma", *command), speeds=speeds,
        train_speed=train_speed or speed.SpeedConfig(), presets=tuple(p for p in presets if p is not None))
    check_models(run, check)
    check.check(lambda: writable_folder(run.out))
    if run.retime and not any((run.out / "cells").glob("*.json")):
        check.add(f"--retime times the finished cells of {run.out} again, and it holds none; run without --retime "
                  f"first (or pass the folder of a finished run as --out)")
    check.raise_if_any()
    return run


def check_models(run: RunConfig, check: Preflight) -> None:
    """The models' problems, kept in `check`: each given checkpoint's header, each training folder's setting, and
    --cell-n names that are not cells of the run."""
    models = check.check(lambda: entries(run)) or []
    for entry in models:
        if entry.checkpoint is not None:
            check.check(lambda entry=entry: check_checkpoint(entry, run.dataset))
        else:
            check.check(lambda entry=entry: check_training_folder(entry, run))
    plan = [cell.id for entry in models for cell in cells(entry, run.quick)]  # --cell-n names reference cells
    unknown = sorted({name for name, _ in run.cell_n} - set(plan))
    if models and unknown:
        check.add(f"--cell-n names {', '.join(unknown)}, which this run does not measure; its cells are "
                  f"{', '.join(plan)}")


def train_entry(entry: Entry, run: RunConfig) -> Path:
    """The entry's checkpoint: the given one, or one trained under out/train/<entry> (an interrupted training
    resumes; a finished one, recorded in trained.json with its config, is reused)."""
    if entry.checkpoint is not None:
        return entry.checkpoint
    f, folder = family(entry.family), run.out / "train" / entry.name
    marker = training_marker(entry, run)
    if trained_before(folder, marker):
        return folder / CHECKPOINT_NAME
    config, max_steps = f.configure(f.preset(entry.preset), entry.overrides), marker["max_steps"]
    root = Path(run.root) if run.root else None
    command = f"python -m bench.train --model {entry.family} --preset {entry.preset} --out {folder}" + (
        f" --data-root {root}" if root else "") + "".join(
        f" --{k.replace('_', '-')} {v}" for k, v in asdict(entry.overrides).items() if v is not None) + (
        f" --max-steps {max_steps}" if max_steps else "") + (
        f" --speed {run.train_speed.label}" if run.train_speed.label != "fp32" else "")
    print(f"training {entry.name}: {command}", file=sys.stderr)
    with FolderLock(folder):  # what bench.train takes, so the printed command cannot write here at the same time
        return train_in_folder(entry, run, folder, config, marker, command)


def train_in_folder(entry: Entry, run: RunConfig, folder: Path, config: object, marker: dict, command: str) -> Path:
    """train_entry's training itself (under the folder's lock), with its learning curve, and trained.json."""
    f, max_steps, root = family(entry.family), marker["max_steps"], Path(run.root) if run.root else None
    job = lambda steps, grid=True: TrainJob(entry.family, entry.preset, config, folder, run.device, grid=grid,
                                            resume=(folder / CHECKPOINT_NAME).is_file(), max_steps=steps,
                                            data_root=root, single_process=True, quiet=run.quiet, speed=run.train_speed)
    resume, start, curve = (folder / CHECKPOINT_NAME).is_file(), time.perf_counter(), None  # rank 0 trains alone
    if run.curve_points:
        total = max_steps or f.total_steps(config, training_data(f, config, job(None)), 1)
        metric = table_metric(run.dataset)
        checkpoint, curve = curves.train_with_curve(
            lambda steps: train_model(job(steps, steps == total)), lambda c: curve_value(entry.family, c, run, metric),
            total, run.curve_points,
            curves.Curve(entry.name, metric, report.QUALITY[metric] == "higher", (), f.curve_steps),
            folder / "curve.json")
    else:
        checkpoint = train_model(job(max_steps))
    seconds = curve.points[-1].seconds if curve else time.perf_counter() - start  # training only, not measuring
    record = {**marker, "command": command, "checkpoint": str(checkpoint), "budget": training_budget(
        checkpoint, config, run.device, seconds, resume)}
    write_json_atomic({**record, "curve": curves.to_json(curve)} if curve else record, folder / "trained.json")
    return checkpoint


def training_marker(entry: Entry, run: RunConfig) -> dict:
    """What a finished training of the entry is recorded with in trained.json, and reused by: family, preset,
    config, iterations, curve points and the setting it trained under."""
    f = family(entry.family)
    marker = {"family": entry.family, "preset": entry.preset,
              "config": config_to_dict(f.configure(f.preset(entry.preset), entry.overrides)),
              "max_steps": run.train_steps or (f.quick_train_steps if run.quick else None),
              "curve_points": run.curve_points, "train_speed": run.train_speed.label}
    return json.loads(json.dumps(marker))  # tuples as lists, as read back


def trained_before(folder: Path, marker: dict) -> bool:
    """Whether a training folder holds a finished training of `marker` (training_marker; a trained.json from before
    --train-speed existed trained in float32)."""
    done = folder / "trained.json"
    if not done.is_file():
        return False
    recorded = {"train_speed": "fp32", **json.loads(done.read_text())}
    return {k: v for k, v in recorded.items() if k in marker} == marker


def check_training_folder(entry: Entry, run: RunConfig) -> None:
    """CheckpointError where the entry's training would resume a checkpoint of another config (--presets changed
    since the folder's run) or setting; ValueError where it trained past the iterations now asked for."""
    f, folder, marker = family(entry.family), run.out / "train" / entry.name, training_marker(entry, run)
    if trained_before(folder, marker):
        return
    meta = check_resume(f, folder / CHECKPOINT_NAME, f.configure(f.preset(entry.preset), entry.overrides),
                        run.train_speed)
    done = (training_of(meta) or {}).get("iterations") if meta is not None else None
    if marker["max_steps"] is not None and done is not None and done > marker["max_steps"]:
        raise ValueError(f"{folder} holds {entry.name} trained for {done} iterations, past the {marker['max_steps']} "
                         f"this run asks for (--train-steps, or --quick's budget): pass --train-steps {done} or more, "
                         f"or another --out")


def curve_value(family_name: str, checkpoint: Path, run: RunConfig, metric: str) -> float:
    """`metric` of a checkpoint's samples at the family's curve steps (at most 1000 points or 500 images, by
    seed)."""
    f, model = family(family_name), build_model(family_name, checkpoint=checkpoint, device=run.device)
    n = min(run.n, 1000 if len(f.data_shape(model.config)) == 1 else 500)
    samples = draw(model, n, f.curve_steps or model.default_steps, run.seed, run.batch_size, True)
    return evaluate(samples, Reference(run.dataset, root=run.root), weights=own_weights(run),
                    device=run.device)["metrics"][metric]


def trained(entry: Entry, run: RunConfig, world: World) -> Trained:
    """Rank 0 trains (or finds) the entry's checkpoint; every rank gets its answer."""
    answer = None
    if world.main:
        try:
            answer = Trained(train_entry(entry, run))
        except Exception as e:  # training failed or diverged: its cells are reported as failed
            answer = Trained(None, f"training failed: {type(e).__name__}: {e}")
    return world.broadcast(answer)


def run_cell(cell: Cell, source: Trained, run: RunConfig, world: World,
             reference: CellRecord | None = None) -> CellRecord:
    """Measure a cell (or record why it cannot be measured) and write its JSON; `reference` is the float32 cell's
    record where the cell is a --speed setting."""
    checkpoint = source.checkpoint
    key = CellKey(cell.id, run.dataset, samples_of(run, cell), run.seed, run.rounds,
                  file_sha256(checkpoint) if checkpoint else None, run.sample_format, run.inception_n)
    earlier = results.read(run.out, cell.id) if run.retime else None
    if earlier is not None and earlier.ok and replace(earlier.key, rounds=run.rounds) == key:  # --rounds may change
        return retime(cell, earlier, run, world)
    previous = results.done(run.out, key)
    if previous is not None:
        if world.main:
            print(f"{cell.id}: done before, kept ({results.cell_path(run.out, cell.id)})", file=sys.stderr)
        return previous
    steps = cell.spec.steps or cell.entry.overrides.timesteps or "?"  # DDGAN's T: the variant's, else the model's
    record = CellRecord(cell.id, cell.spec.label.format(steps=steps), cell.entry.family,
                        cell.spec.steps, key, checkpoint=str(checkpoint) if checkpoint else None,
                        training=_training_record(checkpoint), command=run.command, **provenance(run.device))
    try:
        if source.failure is not None:
            raise RuntimeError(source.failure)
        if world.main:
            print(f"{cell.id}: sampling {key.n}, evaluating, timing", file=sys.stderr)
        record = replace(record, **measure(cell, load(cell, checkpoint, run), run, world, reference))
    except Exception as e:  # a failed cell is reported in the table; the others still run
        record = replace(record, status="failed", reason=f"{type(e).__name__}: {e}",
                         traceback=traceback.format_exc(limit=4))
        print(f"{cell.id}: FAILED: {record.reason}", file=sys.stderr)
    if world.main:
        results.write(run.out, record)
    return record


def retime(cell: Cell, previous: CellRecord, run: RunConfig, world: World) -> CellRecord:
    """A finished cell with its timing measured again (rank 0); its samples and metrics are kept (they depend on
    the checkpoint and seeds only), its provenance becomes the retiming run's (where the time was measured)."""
    if not world.main:
        return previous
    model = load(cell, previous.checkpoint, run)
    timed = timing.paper_time(model, previous.steps, run.device, batch=100, rounds=run.rounds, seed=run.seed)
    if run.throughput:
        timed = timed.with_throughput(timing.throughput(model, previous.steps, run.device, seed=run.seed))
    was = previous.timing.seconds if previous.timing else None
    print(f"{cell.id}: retimed, {was} -> {timed.seconds:.4g} s per batch" + (f" (noisy: {timed.noisy})" if timed.noisy
                                                                             else ""), file=sys.stderr)
    record = replace(previous, key=replace(previous.key, rounds=run.rounds), timing=timed, **provenance(run.device))
    results.write(run.out, record)
    return record


def _training_record(checkpoint: Path | None) -> dict | None:
    """How the checkpoint trained: the harness's trained.json (family, preset, config, command, budget) where the
    harness trained it; else what a given checkpoint's meta says (bench.registry.given_training)."""
    if checkpoint is None:
        return None
    marker = checkpoint.parent / "trained.json"
    return json.loads(marker.read_text()) if marker.is_file() else given_training(checkpoint)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    git_commit()  # the commit every record of the run names: the code it starts with, whatever is committed later
    try:
        run = run_config(args, sys.argv[1:] if argv is None else argv)
    except PreflightError as e:
        return preflight.report(e)
    world = setup(run.device)
    try:
        with FolderLock(run.out) if world.main else contextlib.nullcontext():
            code = measure_all(run, world)
    except FolderLocked as e:
        print(f"error: {e}", file=sys.stderr)
        code = preflight.EXIT_CODE
    except PreflightError as e:  # a checkpoint removed after the checks: the plan names it again
        code = preflight.report(e)
    except OSError as e:  # a write failure after the checks (disk full, folder removed): one line, not a trace
        code = preflight.report(e)
    teardown(world)
    return code


def measure_all(run: RunConfig, world: World) -> int:
    """Train or find each model, measure every cell, write the tables; 0 if every cell succeeded, else 1."""
    plan = [cell for entry in entries(run) for cell in cells(entry, run.quick, run.speeds)]
    if world.main:
        settings = f", sampling fp32 and {', '.join(s.label for s in run.speeds)}" if run.speeds else ""
        print(f"trilemma on {run.dataset}: {len(plan)} cells, n={run.n}{settings}, {world.size} process(es) -> "
              f"{run.out}", file=sys.stderr)
        if run.quick:
            print(report.QUICK_NOTE, file=sys.stderr)
    sources: dict[str, Trained] = {}
    records = []
    for cell in plan:
        if cell.entry.name not in sources:
            sources[cell.entry.name] = trained(cell.entry, run, world)
        float32 = next((r for r in records if r.cell == cell.base_id), None)
        records.append(run_cell(cell, sources[cell.entry.name], run, world, float32))
    if world.main:
        report.write_folder(run.out, records, run.dataset, quick=run.quick, with_paper=run.paper)
        if run.quick:
            print(report.QUICK_NOTE, file=sys.stderr)
    return 0 if all(r.ok for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
