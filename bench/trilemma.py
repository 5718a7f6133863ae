"""python -m bench.trilemma: quality, coverage and sampling speed of DDGAN, DDPM/DDIM and StyleGAN2 on one dataset.

For each model x steps (a cell): load its checkpoint, or on an embedded dataset train it with the small preset
when none is given; draw --n samples by seed; evaluate them (bench.metrics); time one batch of 100 (the paper's
protocol: warm-up, median of rounds, CUDA synchronised, network calls counted by a hook); write
cells/<cell>.json, then trilemma.csv/.md/.tex, trilemma.png and a sample grid per cell. A finished cell is not
run again (delete its JSON to redo it); a failed cell is reported with its reason and the others go on.
Examples:
  python -m bench.trilemma                                  # embedded gaussians25, every model, trains them
  python -m bench.trilemma --quick                          # shorter training, fewer samples and DDIM steps
  python -m bench.trilemma --dataset stacked-digits --out runs/trilemma-sd
  python -m bench.trilemma --dataset cifar10 --root ~/data --checkpoints ddgan=ddgan.pt ddpm=ddpm.pt \\
      stylegan2=sg2.pt --inception-weights weights-inception-2015-12-05-6726825d.pth --device cuda --paper
  (--paper: also measured vs the paper's Table 1 / ablation / Stacked-MNIST numbers, paper.md and paper.csv)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import traceback
from dataclasses import asdict, dataclass, is_dataclass
from pathlib import Path

import torch

from bench import paper, report, results, timing
from bench import train as bench_train
from bench.data import DATASETS, build_dataset
from bench.devices import resolve_device
from bench.distributed import World, setup, teardown
from bench.grid import write_grid
from bench.metrics import Reference, evaluate
from bench.metrics.extractors import inception_weights
from bench.registry import build_model
from bench.sample import draw
from ddgan_ref.io import write_json_atomic
from ddgan_ref.provenance import file_sha256, provenance

EMBEDDED = ("gaussians25", "digits", "stacked-digits")  # presets exist for all three families
DDIM_STEPS, QUICK_DDIM_STEPS = (10, 20, 50, 100), (10, 50)
DDGAN_T = (4, 2)  # trained on embedded data: the paper's T and one other
FAMILIES = ("ddgan", "ddpm", "stylegan2")
QUICK_TRAIN = {"ddgan": 600, "ddpm": 1500, "stylegan2": 1500}  # iterations under --quick


@dataclass(frozen=True)
class Entry:
    """A model to measure: family (registry key), training preset, DDGAN's T, and a given checkpoint."""

    name: str
    family: str
    timesteps: int | None = None
    checkpoint: Path | None = None


@dataclass(frozen=True)
class Cell:
    entry: Entry
    steps: int | None  # None: the model's trained T (DDGAN) or its one step (StyleGAN2)
    label: str

    @property
    def id(self) -> str:
        return self.entry.name if self.steps is None else f"{self.entry.name}-{self.steps}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.trilemma", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="gaussians25", choices=sorted(DATASETS), help="default gaussians25")
    p.add_argument("--models", nargs="+", default=list(FAMILIES), choices=FAMILIES,
                   help="model families (default all; ddpm includes its DDIM cells)")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="FAMILY=PATH",
                   help="checkpoints to measure instead of training (ddgan may be given once per T)")
    p.add_argument("--n", "--num-samples", dest="n", type=int,
                   help="samples per cell (default: 2500 for 2D data, as PacGAN; 26,000 for stacked data, as Stacked "
                        "MNIST; 10,000 for digits; 50,000 otherwise); under torchrun write --num-samples, since "
                        "torchrun's parser takes --n for its own options")
    p.add_argument("--seed", type=int, default=0, help="sample i of every cell uses seed + i (default 0)")
    p.add_argument("--quick", action="store_true", help="CI size: shorter training, n <= 1000, DDIM 10 and 50")
    p.add_argument("--train-steps", type=int, help="override the training iterations of every trained model")
    p.add_argument("--root", help="data folder of file-backed datasets (cifar10, mnist, image-folder)")
    p.add_argument("--inception-weights", type=Path, help="Inception-v3 weights for FID/IS (cifar10, folders)")
    p.add_argument("--rounds", type=int, default=5, help="timed rounds of one batch of 100 (median; default 5)")
    p.add_argument("--throughput", action="store_true", help="also measure images/s at the best of batch sizes "
                                                             "100, 250, 500")
    p.add_argument("--batch-size", type=int, default=500, help="batch size for drawing the n samples")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--out", type=Path, help="output folder (default runs/trilemma-<dataset>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--paper", action="store_true", help="also print and write (paper.md, paper.csv) measured vs the "
                   "paper's numbers with deltas and sources (bench/paper.py): cifar10 Table 1 and the T ablation, "
                   "Stacked-MNIST on stacked data; time rows say when the hardware is not the paper's V100")
    return p.parse_args(argv)


def default_n(dataset: str, quick: bool) -> int:
    n = 2500 if dataset in ("gaussians25", "ring8") else 26_000 if dataset.startswith("stacked") else (
        10_000 if dataset in ("digits", "mnist") else 50_000)
    return min(n, 1000) if quick else n


def entries(args: argparse.Namespace) -> list[Entry]:
    """Models to measure: the given checkpoints, else (embedded data) the ones to train."""
    given = [Entry(*_checkpoint_entry(spec)) for spec in args.checkpoints]
    out = [e for e in given if e.family in args.models]
    have = {e.family for e in out}
    missing = [f for f in args.models if f not in have]
    if missing and args.dataset not in EMBEDDED:
        raise SystemExit(f"nothing is trained for --dataset {args.dataset} (small presets for every model exist for "
                         f"{', '.join(EMBEDDED)}): pass --checkpoints for {', '.join(missing)} (FAMILY=PATH; train "
                         f"them with python -m bench.train or convert official ones), or leave them out of --models")
    for family in missing:
        ts = DDGAN_T if family == "ddgan" else (None,)
        out += [Entry(f"{family}-t{t}" if t else family, family, t) for t in ts]
    return out


def _checkpoint_entry(spec: str) -> tuple[str, str, None, Path]:
    family, sep, path = spec.partition("=")
    if not sep or family not in ("ddgan", "ddpm", "stylegan2"):
        raise SystemExit(f"--checkpoints {spec!r}: expected FAMILY=PATH with FAMILY in ddgan, ddpm, stylegan2")
    if not Path(path).is_file():
        raise SystemExit(f"--checkpoints {spec!r}: {path} does not exist")
    digest = hashlib.sha256(Path(path).resolve().as_posix().encode()).hexdigest()[:6]
    return (family if family != "ddgan" else f"ddgan-{digest}"), family, None, Path(path)


def cells(entry: Entry, quick: bool) -> list[Cell]:
    """DDGAN at its T, DDPM at its T (ancestral) and DDIM step counts, StyleGAN2 at 1 step."""
    if entry.family == "ddpm":
        steps = QUICK_DDIM_STEPS if quick else DDIM_STEPS
        return [Cell(entry, None, "DDPM ({steps} steps)")] + [Cell(entry, s, f"DDIM ({s} steps)") for s in steps]
    if entry.family == "ddgan":
        return [Cell(entry, None, "DDGAN (T={steps})")]
    return [Cell(entry, None, "StyleGAN2")]


def train_entry(entry: Entry, args: argparse.Namespace, device: torch.device) -> Path:
    """The entry's checkpoint: the given one, or one trained under out/train/<entry> (an interrupted training
    resumes; a finished one, recorded in trained.json with its command, is reused)."""
    if entry.checkpoint is not None:
        return entry.checkpoint
    run = args.out / "train" / entry.name
    argv = ["--model", entry.family, "--preset", args.dataset, "--out", str(run), "--device", str(device)]
    argv += ["--timesteps", str(entry.timesteps)] if entry.timesteps else []
    steps = args.train_steps or (QUICK_TRAIN[entry.family] if args.quick else None)
    argv += [] if not steps else ["--max-steps" if entry.family == "ddgan" else "--steps", str(steps)]
    marker = run / "trained.json"
    if marker.is_file() and json.loads(marker.read_text()).get("argv") == argv:
        return run / "checkpoint.pt"
    extra = (["--resume"] if (run / "checkpoint.pt").is_file() else []) + (["--quiet"] if args.quiet else [])
    extra += ["--single-process"]  # under torchrun only rank 0 trains, alone
    print(f"training {entry.name}: python -m bench.train {' '.join(argv + extra)}", file=sys.stderr)
    checkpoint = bench_train.TRAINERS[entry.family](bench_train.parse_args(argv + extra))
    write_json_atomic({"argv": argv, "checkpoint": str(checkpoint)}, marker)
    return checkpoint


def draw_shared(model, steps: int, args: argparse.Namespace, world: World) -> torch.Tensor:
    """The cell's n samples; under torchrun each rank draws its contiguous shard of whole batches (seeds seed + i)
    and the shards are gathered: the single-process batches, so the single-process samples."""
    part = world.shard(args.n, args.batch_size)
    quiet = args.quiet or not world.main
    return world.gather(draw(model, part.stop - part.start, steps, args.seed + part.start, args.batch_size, quiet))


def measure(cell: Cell, model, args: argparse.Namespace, device: torch.device, world: World) -> dict:
    """Samples, metrics, timing and a sample grid of one cell (timing and grid on rank 0 only)."""
    steps = cell.steps if cell.steps is not None else model.default_steps
    if steps not in model.supported_steps:
        raise ValueError(f"{cell.entry.name} does not support {steps} steps")
    samples = draw_shared(model, steps, args, world)
    result = evaluate(samples, Reference(args.dataset, root=args.root), weights=args.inception_weights,
                      device=device, world=world if world.size > 1 else None)
    config = getattr(model, "config", None)
    out = {"steps": steps, "label": cell.label.format(steps=steps), "metrics": result["metrics"],
           "protocol": result["protocol"], "world_size": world.size,
           "model_config": asdict(config) if is_dataclass(config) else None}
    error = None
    if world.main:
        try:
            out.update(timed_and_drawn(cell, model, steps, samples, args, device))
        except Exception as e:  # raised after the barrier, so the other ranks do not wait forever
            error = e
    world.barrier()
    if error is not None:
        raise error
    return out


def timed_and_drawn(cell: Cell, model, steps: int, samples: torch.Tensor, args: argparse.Namespace,
                    device: torch.device) -> dict:
    """The paper's timing (and throughput) and the cell's sample grid."""
    reference = None
    if samples.ndim == 2:
        ds = build_dataset(args.dataset, size=2000, seed=0)
        reference = torch.stack([ds[i][0] for i in range(len(ds))])
    grid = write_grid(samples[:2000] if samples.ndim == 2 else samples[:64], args.out / f"samples_{cell.id}.png",
                      reference=reference)
    timed = timing.paper_time(model, steps, device, batch=100, rounds=args.rounds, seed=args.seed)
    if args.throughput:
        timed["throughput"] = timing.throughput(model, steps, device, seed=args.seed)
    return {"timing": timed, "grid": grid.name}


def run_cell(cell: Cell, checkpoint: Path | None, failure: str | None, args: argparse.Namespace,
             device: torch.device, common: dict, world: World) -> dict:
    """Measure a cell (or record why it cannot be measured) and write its JSON."""
    key = {"cell": cell.id, "dataset": args.dataset, "n": args.n, "seed": args.seed, "rounds": args.rounds,
           "checkpoint_sha256": file_sha256(checkpoint) if checkpoint else None}
    previous = results.done(args.out, cell.id, key)
    if previous is not None:
        if world.main:
            print(f"{cell.id}: done before, kept ({results.cell_path(args.out, cell.id)})", file=sys.stderr)
        return previous
    record = {"cell": cell.id, "label": cell.label.format(steps=cell.steps or "?"), "steps": cell.steps,
              "model": cell.entry.family, "checkpoint": str(checkpoint) if checkpoint else None, "key": key,
              "training": _training_record(checkpoint), **common}
    try:
        if failure is not None:
            raise RuntimeError(failure)
        if world.main:
            print(f"{cell.id}: sampling {args.n}, evaluating, timing", file=sys.stderr)
        model = build_model(cell.entry.family, checkpoint=checkpoint, device=device)
        record.update(measure(cell, model, args, device, world), status="ok")
    except Exception as e:  # a failed cell is reported in the table; the others still run
        record.update(status="failed", reason=f"{type(e).__name__}: {e}",
                      traceback=traceback.format_exc(limit=4))
        print(f"{cell.id}: FAILED: {record['reason']}", file=sys.stderr)
    if world.main:
        results.write(args.out, cell.id, record)
    return record


def _training_record(checkpoint: Path | None) -> dict | None:
    """How the harness trained this checkpoint (bench.train arguments), if it did."""
    marker = checkpoint.parent / "trained.json" if checkpoint else None
    return json.loads(marker.read_text()) if marker and marker.is_file() else None


def prepare(args: argparse.Namespace) -> argparse.Namespace:
    """Defaults that depend on other arguments, and the checks that fail before any work."""
    args = replace_ns(args, out=args.out or Path("runs") / f"trilemma-{args.dataset}",
                      n=args.n or default_n(args.dataset, args.quick))
    if args.dataset in ("cifar10", "image-folder"):
        inception_weights(args.inception_weights)  # missing weights: a clear error now, not after sampling
    return args


def replace_ns(ns: argparse.Namespace, **changes) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(ns), **changes})


def trained(entry: Entry, args: argparse.Namespace, device: torch.device, world: World) -> tuple:
    """(checkpoint, None) or (None, why training failed); rank 0 trains, every rank gets its answer."""
    answer = None
    if world.main:
        try:
            answer = (train_entry(entry, args, device), None)
        except Exception as e:  # training failed or diverged: its cells are reported as failed
            answer = (None, f"training failed: {type(e).__name__}: {e}")
    return world.broadcast(answer)


def write_paper(out: Path, records: list[dict], dataset: str) -> list[Path]:
    """Measured vs paper (bench.paper.compare), printed and written as paper.md and paper.csv."""
    df = paper.compare(records, dataset)
    if df.empty:
        print(f"\nthe paper reports no numbers that these cells measure on {dataset} (it has cifar10 Table 1 and "
              f"ablation rows, and Stacked-MNIST)", file=sys.stderr)
        return []
    text = f"## Measured vs the DDGAN paper ({dataset})\n\n" + report.markdown(df)
    print("\n" + text, end="")
    (out / "paper.md").write_text(text)
    df.to_csv(out / "paper.csv", index=False)
    return [out / "paper.md", out / "paper.csv"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        args = prepare(args)
    except FileNotFoundError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    device = resolve_device(args.device)
    world = setup(device)
    args.out.mkdir(parents=True, exist_ok=True)
    common = {"command": ["python", "-m", "bench.trilemma", *(sys.argv[1:] if argv is None else argv)],
              "device_info": timing.device_info(device), **provenance(device)}
    plan = [(e, c) for e in entries(args) for c in cells(e, args.quick)]
    if world.main:
        print(f"trilemma on {args.dataset}: {len(plan)} cells, n={args.n}, {world.size} process(es) -> {args.out}",
              file=sys.stderr)
    checkpoints: dict[str, tuple[Path | None, str | None]] = {}
    records = []
    for entry, cell in plan:
        if entry.name not in checkpoints:
            checkpoints[entry.name] = trained(entry, args, device, world)
        records.append(run_cell(cell, *checkpoints[entry.name], args, device, common, world))
    if world.main:
        written = report.write(args.out, records, f"{args.dataset}: quality vs sampling time")
        print(report.markdown(report.table(records)), end="")
        if args.paper:
            written += write_paper(args.out, records, args.dataset)
        print("wrote " + ", ".join(str(p) for p in written), file=sys.stderr)
    teardown(world)
    return 0 if all(r["status"] == "ok" for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
