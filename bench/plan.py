"""The plan of a trilemma run: its command line (parser), its settings (RunConfig), the models it measures (Entry:
a checkpoint given, or a family variant the harness trains) and their cells (Cell: one model at one sampling
setting: its steps and, for --speed, a bench.speed setting besides the float32 reference)."""

from __future__ import annotations

import argparse
import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch

from bench import speed
from bench.data import DATASETS
from bench.devices import device_arg
from bench.images import FORMATS
from bench.preflight import PreflightError, message, nonnegative_int, positive_int
from bench.registry import FAMILIES, CellSpec, TrainOverrides, family_of_format
from bench.speed import SpeedConfig
from ddgan_ref.io import load_file

EMBEDDED = ("gaussians25", "digits", "stacked-digits")  # the embedded datasets the harness trains on
TRAINABLE = (*EMBEDDED, "stacked-mnist")  # and the file-backed ones it has CPU presets for (with --root)


@dataclass(frozen=True)
class RunConfig:
    """The command line, resolved once: what to measure, how, and where the results go."""

    dataset: str
    models: tuple[str, ...]
    checkpoints: tuple[str, ...]  # FAMILY=PATH
    n: int
    cell_n: tuple[tuple[str, int], ...]  # (cell id, n) for cells measured on fewer samples
    seed: int
    quick: bool
    train_steps: int | None
    root: str | None
    inception_weights: Path | None
    inception_n: int | None
    sample_format: str
    curve_points: int
    rounds: int
    throughput: bool
    retime: bool
    batch_size: int
    device: torch.device
    out: Path
    quiet: bool
    paper: bool
    command: tuple[str, ...]
    speeds: tuple[SpeedConfig, ...] = ()  # --speed: settings measured besides the float32 reference
    train_speed: SpeedConfig = SpeedConfig()  # --train-speed: the setting the harness trains its models under
    presets: tuple[tuple[str, str], ...] = ()  # --presets: (family, preset) trained instead of the dataset's own


@dataclass(frozen=True)
class Entry:
    """A model to measure: its name in the results, its family, the preset and overrides it is trained with, or a
    given checkpoint."""

    name: str
    family: str
    overrides: TrainOverrides = TrainOverrides()
    checkpoint: Path | None = None
    preset: str | None = None  # the family preset the harness trains (None for a given checkpoint)


@dataclass(frozen=True)
class Cell:
    entry: Entry
    spec: CellSpec
    speed: SpeedConfig = SpeedConfig()

    @property
    def base_id(self) -> str:
        """The float32 reference cell of the same model and steps (itself for a reference cell)."""
        return self.entry.name if self.spec.steps is None else f"{self.entry.name}-{self.spec.steps}"

    @property
    def id(self) -> str:
        """e.g. ddgan-t4, ddpm-10, ddgan-t4@bf16+cl (a --speed setting)."""
        return self.base_id if self.speed.reference else f"{self.base_id}@{self.speed.label}"


def default_n(dataset: str, quick: bool) -> int:
    n = 2500 if dataset in ("gaussians25", "ring8") else 26_000 if dataset.startswith("stacked") else (
        10_000 if dataset in ("digits", "mnist") else 50_000)
    return min(n, 1000) if quick else n


def parse_cell_n(spec: str) -> tuple[str, int]:
    name, sep, n = spec.partition("=")
    if not sep or not n.isdigit() or int(n) < 2:
        raise ValueError(f"--cell-n {spec!r}: expected CELL=N with N >= 2, e.g. ddpm=500")
    return name, int(n)


def samples_of(run: RunConfig, cell: Cell) -> int:
    """How many samples the cell draws: its reference cell's --cell-n, else --n (a fast cell draws the seeds its
    reference drew, so their quality compares)."""
    return dict(run.cell_n).get(cell.base_id, run.n)


def entries(run: RunConfig) -> list[Entry]:
    """Models to measure: the given checkpoints, else (on data it has presets for) each family's variants to
    train."""
    given, problems = [], []
    for spec in run.checkpoints:  # each bad spec is a problem of its own, so that the user sees them all
        try:
            given.append(_checkpoint_entry(spec, run.checkpoints))
        except (ValueError, OSError) as e:
            problems.append(message(e))
    if problems:
        raise PreflightError(problems)
    if left_out := [f"{e.family}={e.checkpoint}" for e in given if e.family not in run.models]:
        raise ValueError(f"--checkpoints {' '.join(left_out)}: not measured, since --models {' '.join(run.models)} "
                         f"leaves the family out; add it to --models or drop the checkpoint")
    out = [e for e in given if e.family in run.models]
    have = {e.family for e in out}
    untrained = [f for f in run.models if f not in have]
    presets = {f: run.dataset for f in untrained} | _given_presets(run, untrained)
    missing = [f for f in untrained if run.dataset not in TRAINABLE or presets[f] not in FAMILIES[f].presets]
    if missing:
        raise ValueError(f"nothing is trained for --dataset {run.dataset} (the harness trains small presets on "
                         f"{', '.join(TRAINABLE)}): pass --checkpoints for {', '.join(missing)} (FAMILY=PATH; train "
                         f"them with python -m bench.train or convert official ones), or leave them out of --models")
    return out + trained_entries(untrained, presets)


def trained_entries(families: list[str], presets: dict[str, str] | None = None) -> list[Entry]:
    """The models the harness trains for these families, from their presets (family -> preset): one per variant
    (ddgan-t4, ddgan-t2, ddpm, ...)."""
    return [Entry(f"{name}-{v.suffix}" if v.suffix else name, name, v.overrides, preset=(presets or {}).get(name))
            for name in families for v in FAMILIES[name].variants]


def parse_preset(spec: str) -> tuple[str, str]:
    """FAMILY=PRESET of --presets; ValueError naming the family's presets where either is unknown."""
    name, sep, preset = spec.partition("=")
    if not sep or name not in FAMILIES:
        raise ValueError(f"--presets {spec!r}: expected FAMILY=PRESET with FAMILY in {', '.join(FAMILIES)}")
    FAMILIES[name].preset(preset)  # KeyError listing the family's presets
    return name, preset


def _given_presets(run: RunConfig, untrained: list[str]) -> dict[str, str]:
    """--presets of the families this run trains; ValueError for one it does not train, or a preset of other
    data than --dataset."""
    given = dict(run.presets)
    idle = sorted(set(given) - set(untrained))
    if idle:
        raise ValueError(f"--presets names {', '.join(idle)}, which this run does not train (left out of --models, "
                         f"or given by --checkpoints)")
    for name, preset in given.items():
        trains_on = FAMILIES[name].preset(preset).dataset
        if trains_on != run.dataset:
            raise ValueError(f"--presets {name}={preset}: that preset trains on {trains_on}, not {run.dataset}; pick "
                             f"one of {run.dataset}'s presets or run with --dataset {trains_on}")
    return given


def _checkpoint_entry(spec: str, specs: tuple[str, ...]) -> Entry:
    """FAMILY=PATH; a family given several times names each entry FAMILY-<digest of its path>."""
    name, sep, path = spec.partition("=")
    if not sep or name not in FAMILIES:
        raise ValueError(f"--checkpoints {spec!r}: expected FAMILY=PATH with FAMILY in {', '.join(FAMILIES)}")
    if not Path(path).exists():
        raise FileNotFoundError(f"--checkpoints {spec!r}: {path} does not exist")
    if sum(s.partition("=")[0] == name for s in specs) == 1:
        return Entry(name, name, checkpoint=Path(path))
    digest = hashlib.sha256(Path(path).resolve().as_posix().encode()).hexdigest()[:6]
    return Entry(f"{name}-{digest}", name, checkpoint=Path(path))


def check_checkpoint(entry: Entry, dataset: str) -> None:
    """ValueError unless the entry's checkpoint is readable, of the entry's family, and (where it names one)
    trained on `dataset`; reads the header only (memory-mapped, weights_only)."""
    obj = load_file(entry.checkpoint, mmap=True)
    fmt = obj.get("format") if isinstance(obj, dict) else None
    where = f"--checkpoints {entry.family}={entry.checkpoint}"
    try:
        found = family_of_format(fmt)
    except KeyError as e:
        raise ValueError(f"{where}: {e.args[0]}") from None
    if found.name != entry.family:
        raise ValueError(f"{where}: this is a {found.name} checkpoint (format {fmt!r}), not a {entry.family} one; "
                         f"give it as {found.name}=PATH")
    trained_on = (obj.get("config") or {}).get("dataset")
    if trained_on not in (None, "unknown", dataset):  # "unknown": a converted official model of other data shapes
        raise ValueError(f"{where}: the model was trained on {trained_on}, not {dataset}; pass a checkpoint "
                         f"trained on {dataset} or run with --dataset {trained_on}")


def cells(entry: Entry, quick: bool, speeds: tuple[SpeedConfig, ...] = ()) -> list[Cell]:
    """The entry's cells, as its family lists them (bench.registry), each followed by its --speed variants."""
    f = FAMILIES[entry.family]
    return [Cell(entry, spec, speed) for spec in (f.quick_cells if quick else f.cells)
            for speed in (SpeedConfig(), *speeds)]


def parser(description: str) -> argparse.ArgumentParser:
    """python -m bench.trilemma's command line (its module docstring is the description): what to measure, then
    how (measurement_arguments) and where and how fast to run (run_arguments)."""
    p = argparse.ArgumentParser(prog="python -m bench.trilemma", description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dataset", default="gaussians25", choices=sorted(DATASETS), help="default gaussians25")
    p.add_argument("--models", nargs="+", default=list(FAMILIES), choices=list(FAMILIES),
                   help="model families (default all; ddpm includes its DDIM cells)")
    p.add_argument("--checkpoints", nargs="+", default=[], metavar="FAMILY=PATH",
                   help="checkpoints to measure instead of training (a family may be given several times, e.g. "
                        "DDGAN once per T)")
    p.add_argument("--n", "--num-samples", dest="n", type=positive_int,
                   help="samples per cell (default: 2500 for 2D data, as PacGAN; 26,000 for stacked data, as Stacked "
                        "MNIST; 10,000 for digits; 50,000 otherwise); under torchrun write --num-samples, since "
                        "torchrun's parser takes --n for its own options")
    p.add_argument("--cell-n", nargs="+", default=[], metavar="CELL=N",
                   help="fewer samples for the named cells, e.g. ddpm=500 ddpm-10=2000 (a 1000-step sampler on a CPU); "
                        "their metrics, and the reference's they are compared with, are then at that N")
    p.add_argument("--seed", type=int, default=0, help="sample i of every cell uses seed + i (default 0)")
    p.add_argument("--quick", action="store_true", help="CI size: shorter training, n <= 1000, DDIM 10 and 50")
    p.add_argument("--train-steps", type=positive_int,
                   help="override the training iterations of every trained model (default: each preset's)")
    p.add_argument("--presets", nargs="+", default=[], metavar="FAMILY=PRESET",
                   help="train these bench.train presets instead of the dataset's own, e.g. ddgan=stacked-mnist-24 "
                        "(a preset of the same dataset); the other families train their default preset")
    p.add_argument("--root", help="data folder of file-backed datasets (cifar10, mnist and stacked-mnist: the "
                                  "folder holding MNIST/raw/, image-folder)")
    p.add_argument("--train-speed", default="fp32", metavar="SETTING",
                   help="precision and memory format the harness trains its models under (bench.train --speed): "
                        "fp32 (default) | bf16 | tf32 (CUDA), each optionally +cl; the table's train_speed column "
                        "says which, and a training folder keeps the setting it started with")
    measurement_arguments(p)
    run_arguments(p)
    return p


def measurement_arguments(p: argparse.ArgumentParser) -> None:
    """The metrics' inputs and extras: Inception, the sample format, learning curves, the paper's numbers."""
    p.add_argument("--inception-weights", type=Path, help="Inception-v3 weights for FID/IS (cifar10, folders)")
    p.add_argument("--inception-n", type=positive_int,
                   help="also measure Inception FID/KID/precision/recall on the first N samples of each cell (needs "
                        "--inception-weights; for data whose own extractor is not Inception, e.g. Stacked MNIST)")
    p.add_argument("--sample-format", choices=sorted(FORMATS), default="png",
                   help="measure the samples as stored in png (lossless, the default) or jpeg files (quality 75: the "
                        "DDGAN paper's FID protocol, which moves FID; see results/jpeg-vs-png-fid.md)")
    p.add_argument("--curve-points", type=nonnegative_int,
                   help="models the harness trains: measure the table's quality metric at this many points along "
                        "training (learning_curves.json/.png; the table's `plateau` column); 0: none (default 5, "
                        "3 with --quick)")
    p.add_argument("--paper", action="store_true", help="also print and write (paper.md, paper.csv) measured vs the "
                   "paper's numbers with deltas and sources (bench/paper.py): cifar10 Table 1 and the T ablation, "
                   "Stacked-MNIST on stacked data; time rows say when the hardware is not the paper's V100")



def run_arguments(p: argparse.ArgumentParser) -> None:
    """Timing, sampling settings, batch, device and output."""
    p.add_argument("--rounds", type=positive_int, default=5,
                   help="timed rounds of one batch of 100 (median; default 5)")
    p.add_argument("--retime", action="store_true",
                   help="time the finished cells again (samples and metrics kept): after a run on a busy machine, "
                        "or for cells flagged `timing_noisy`")
    p.add_argument("--throughput", action="store_true", help="also measure images/s at the best of batch sizes "
                                                             "100, 250, 500")
    p.add_argument("--speed", nargs="+", default=[], metavar="SETTING",
                   help="also measure each cell under these sampling settings (bench.speed), e.g. bf16+cl "
                        "bf16+cl+compile tf32 bf16+cl+graphs, or fast (the device's list: cpu "
                        f"{' '.join(speed.FAST['cpu'])}; cuda {' '.join(speed.FAST['cuda'])}); each is a cell "
                        "CELL@SETTING on the float32 cell's seeds, with its quality cost against it (pixel "
                        "differences, metric changes, flagged beyond bench.speed.TOLERANCE)")
    p.add_argument("--batch-size", type=positive_int, default=500,
                   help="batch size for drawing the n samples (default 500)")
    p.add_argument("--device", type=device_arg, default="auto", help="auto | cpu | cuda | cuda:N (default auto)")
    p.add_argument("--out", type=Path, help="output folder (default runs/trilemma-<dataset>)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
