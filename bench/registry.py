"""The model families of the suite, one frozen `Family` record each in the dict literal FAMILIES: how a family is
configured, built, loaded, trained and sampled, and which cells the trilemma harness measures for it. Every CLI
and the harness read this table; a new family is one more entry here plus its own package."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from baselines.ddpm import configs as ddpm_configs
from baselines.ddpm import model as ddpm_model
from baselines.ddpm import train as ddpm_train
from baselines.stylegan2 import configs as sg2_configs
from baselines.stylegan2 import model as sg2_model
from baselines.stylegan2 import train as sg2_train
from bench import speed
from bench.data import stack_items
from bench.protocol import Generator
from bench.speed import SpeedConfig
from ddgan_ref import configs as ddgan_configs
from ddgan_ref import model as ddgan_model
from ddgan_ref import train as ddgan_train
from ddgan_ref.checkpoints import FORMAT as DDGAN_FORMAT
from ddgan_ref.checkpoints import read_checkpoint as read_ddgan
from ddgan_ref.io import Checkpoint, CheckpointError, check_resumable, load_file, peek_format
from ddgan_ref.provenance import provenance


@dataclass(frozen=True)
class TrainOverrides:
    """Changes to a preset asked for on the command line; None keeps the preset's value. A family refuses the
    ones its config does not have."""

    dataset: str | None = None
    timesteps: int | None = None  # DDGAN's T
    epochs: int | None = None
    steps: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    lr_g: float | None = None
    lr_d: float | None = None
    seed: int | None = None
    checkpoint_every: int | None = None


Progress = Callable[[int, dict[str, float]], None]  # (iterations done, losses of the last one)


@dataclass(frozen=True)
class TrainRun:
    """How one training runs: where, whether it continues a checkpoint, an absolute iteration limit, progress,
    (DDGAN) data workers and whether it trains alone even under torchrun, and the precision and memory format of
    its iterations (bench.speed.training_options; the checkpoint's meta records it as train_speed)."""

    device: torch.device
    resume: bool = False
    max_steps: int | None = None
    progress: Progress | None = None
    num_workers: int = 0
    single_process: bool = False
    speed: SpeedConfig = SpeedConfig()


@dataclass(frozen=True)
class CellSpec:
    """One trilemma cell of a trained model: its sampling steps (None: the model's default) and its label, where
    '{steps}' stands for the steps it runs."""

    steps: int | None
    label: str


@dataclass(frozen=True)
class Variant:
    """A model the harness trains on an embedded dataset: a name suffix and the overrides of the preset."""

    suffix: str
    overrides: TrainOverrides = TrainOverrides()


@dataclass(frozen=True)
class Family:
    """One model family: its presets and checkpoint format, and the functions the CLIs and the harness call."""

    name: str
    checkpoint_format: str  # the `format` entry of its checkpoints, which bench.sample dispatches on
    presets: Mapping[str, Any]  # preset name -> frozen config; the harness trains the one named as the dataset
    configure: Callable[[Any, TrainOverrides], Any]  # (preset config, overrides) -> config
    build: Callable[..., Generator]  # build(preset name, device=...): an untrained model of a preset
    load: Callable[[Path, torch.device], Generator]  # model of a checkpoint
    read: Callable[..., Checkpoint]  # read(path, mmap=False): a checkpoint's parts, its config decoded
    train: Callable[[Any, Dataset, Path, TrainRun], Path]  # trains into a folder; returns the checkpoint path
    total_steps: Callable[[Any, Dataset, int], int]  # (config, data, processes) -> iterations of a full run
    data_shape: Callable[[Any], tuple[int, ...]]  # shape of one data item the config models
    cells: tuple[CellSpec, ...]
    quick_cells: tuple[CellSpec, ...]  # under bench.trilemma --quick
    quick_train_steps: int  # iterations under bench.trilemma --quick
    variants: tuple[Variant, ...] = (Variant(""),)
    curve_steps: int | None = None  # sampling steps of the harness's learning curves (None: the default)
    data_workers: bool = False  # whether its training reads batches through DataLoader workers (--num-workers)

    def preset(self, name: str) -> Any:
        if name not in self.presets:
            raise KeyError(f"unknown {self.name} preset {name!r}; choose from {sorted(self.presets)}")
        return self.presets[name]


def override_train(config: Any, overrides: TrainOverrides, names: Mapping[str, str], family: str) -> Any:
    """`config` with the overrides applied to its dataset and its `train` section (names: override -> field of
    config.train); an override the family has no field for is a ValueError naming the flag."""
    given = {k: v for k, v in asdict(overrides).items() if v is not None and k != "dataset"}
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise ValueError(f"--{unknown[0].replace('_', '-')} does not apply to --model {family}")
    train = replace(config.train, **{names[k]: v for k, v in given.items()})
    return replace(config, train=train, dataset=overrides.dataset or config.dataset)


def train_under_speed(run: TrainRun, train: Callable[..., Any], checkpoint: Path, *args: Any, **kwargs: Any) -> None:
    """A family's train function, writing `checkpoint`, called under run.speed: its autocast / channels_last
    keywords (bench.speed.training_options, which refuses what cannot train), TF32 around the call where asked,
    and the setting in the checkpoint's meta as train_speed; a resume under another setting is refused
    (check_resume_speed)."""
    options = speed.training_options(run.speed, run.device)
    if run.resume:
        check_resume_speed(checkpoint, run.speed)
    meta = {**kwargs.pop("meta", {}), "train_speed": run.speed.label}
    with speed.tf32(run.speed.precision == "tf32"):
        train(*args, meta=meta, **kwargs, **options)


def trained_speed(meta: Mapping[str, Any]) -> str:
    """The setting a checkpoint's meta says it trained under (train_under_speed writes it); checkpoints from before
    --speed existed trained in float32."""
    return meta.get("train_speed", "fp32")


def given_training(checkpoint: Path) -> dict[str, Any] | None:
    """How a checkpoint that bench.train wrote trained, from its meta (no tensor read): its iterations and setting
    (trained_speed); None where the meta says neither (a converted official checkpoint)."""
    return training_of(load_file(checkpoint, mmap=True).get("meta") or {})


def training_of(meta: Mapping[str, Any]) -> dict[str, Any] | None:
    """given_training's answer from a checkpoint's meta already read."""
    if meta.get("step") is None:
        return None
    return {"given": True, "iterations": meta["step"], "train_speed": trained_speed(meta)}


def check_resume_speed(checkpoint: Path, setting: SpeedConfig) -> None:
    """CheckpointError where `checkpoint` exists and trained under another setting than `setting`: a run keeps one
    setting, so that its checkpoint's train_speed says how all of it trained."""
    if checkpoint.is_file():
        _check_speed(load_file(checkpoint, mmap=True).get("meta") or {}, checkpoint, setting)


def check_resume(f: Family, checkpoint: Path, config: Any, setting: SpeedConfig) -> Mapping[str, Any] | None:
    """CheckpointError where `checkpoint` exists and holds a run that `config` under `setting` cannot continue:
    another config (io.check_resumable names every field that differs) or another setting; else the checkpoint's
    meta (None where there is no checkpoint). It reads no tensor, so the CLIs call it before any work; the training
    checks again when it loads the checkpoint."""
    if checkpoint.is_file():
        try:
            saved = f.read(checkpoint, mmap=True)
        except CheckpointError:  # another family's run is named as such; anything else keeps the reader's message
            other = next((g.name for g in FAMILIES.values() if g.checkpoint_format == peek_format(checkpoint)), None)
            if other is None or other == f.name:
                raise
            raise CheckpointError(f"{checkpoint} holds a {other} run, not a {f.name} one: resume it with --model "
                                  f"{other}, or train {f.name} in another output folder") from None
        check_resumable(saved.config, config, checkpoint)
        _check_speed(saved.meta, checkpoint, setting)
        return saved.meta
    return None


def _check_speed(meta: Mapping[str, Any], checkpoint: Path, setting: SpeedConfig) -> None:
    trained = trained_speed(meta)
    if trained != setting.label:
        raise CheckpointError(f"{checkpoint} holds a run trained under {trained}, not {setting.label}: a run keeps "
                              f"one setting so that its checkpoint says how it trained; resume it under --speed "
                              f"{trained}, or train under {setting.label} in another output folder")


# DDGAN (ddgan_ref/).

DDGAN_TRAIN_FIELDS = {"epochs": "num_epoch", "batch_size": "batch_size", "lr_g": "lr_g", "lr_d": "lr_d",
                      "seed": "seed", "checkpoint_every": "checkpoint_every"}


def configure_ddgan(config: ddgan_configs.DDGANConfig, overrides: TrainOverrides) -> ddgan_configs.DDGANConfig:
    if overrides.timesteps is not None:
        config = replace(config, diffusion=replace(config.diffusion, num_timesteps=overrides.timesteps))
    return override_train(config, replace(overrides, timesteps=None), DDGAN_TRAIN_FIELDS, "ddgan")


def train_ddgan(config: ddgan_configs.DDGANConfig, data: Dataset, out: Path, run: TrainRun) -> Path:
    world = ddgan_train.World() if run.single_process else None  # None: the torchrun processes train together
    train_under_speed(run, ddgan_train.train, out / ddgan_train.CHECKPOINT_NAME, config, data, out, device=run.device,
                      resume=run.resume, max_steps=run.max_steps, num_workers=run.num_workers, progress=run.progress,
                      world=world)
    return out / ddgan_train.CHECKPOINT_NAME


def ddgan_total_steps(config: ddgan_configs.DDGANConfig, data: Dataset, processes: int) -> int:
    world = ddgan_train.World(0, processes)
    return ddgan_train.iters_per_epoch(data, config.train, world) * config.train.num_epoch


# The baselines (baselines/): one process, data as one tensor.

BASELINE_TRAIN_FIELDS = ("steps", "batch_size", "lr", "lr_g", "lr_d", "seed", "checkpoint_every")


def configure_baseline(family: str) -> Callable[[Any, TrainOverrides], Any]:
    def configure(config: Any, overrides: TrainOverrides) -> Any:
        have = {f for f in BASELINE_TRAIN_FIELDS if hasattr(config.train, f)}
        return override_train(config, overrides, {f: f for f in have}, family)
    return configure


def train_baseline(module: Any) -> Callable[[Any, Dataset, Path, TrainRun], Path]:
    """The train function of a baseline's train module (train(config, data tensor, out, ...), CHECKPOINT_NAME)."""
    def train(config: Any, data: Dataset, out: Path, run: TrainRun) -> Path:
        train_under_speed(run, module.train, out / module.CHECKPOINT_NAME, config, stack_items(data), out,
                          device=run.device, resume=run.resume, max_steps=run.max_steps, meta=provenance(run.device),
                          progress=run.progress)
        return out / module.CHECKPOINT_NAME
    return train


FAMILIES: dict[str, Family] = {
    "ddgan": Family(
        name="ddgan", checkpoint_format=DDGAN_FORMAT, presets=ddgan_configs.PRESETS, configure=configure_ddgan,
        build=ddgan_model.build, load=ddgan_model.load, read=read_ddgan, train=train_ddgan,
        total_steps=ddgan_total_steps, data_shape=lambda config: tuple(config.generator.data_shape),
        cells=(CellSpec(None, "DDGAN (T={steps})"),), quick_cells=(CellSpec(None, "DDGAN (T={steps})"),),
        quick_train_steps=600, data_workers=True,
        variants=(Variant("t4", TrainOverrides(timesteps=4)), Variant("t2", TrainOverrides(timesteps=2)))),
    "ddpm": Family(
        name="ddpm", checkpoint_format=ddpm_model.FORMAT, presets=ddpm_configs.PRESETS,
        configure=configure_baseline("ddpm"), build=ddpm_model.build, load=ddpm_model.load, read=ddpm_model.read,
        train=train_baseline(ddpm_train), total_steps=lambda config, data, processes: config.train.steps,
        data_shape=lambda config: tuple(config.data_shape),
        cells=(CellSpec(None, "DDPM ({steps} steps)"), *(CellSpec(s, f"DDIM ({s} steps)") for s in (10, 20, 50, 100))),
        quick_cells=(CellSpec(None, "DDPM ({steps} steps)"), *(CellSpec(s, f"DDIM ({s} steps)") for s in (10, 50))),
        quick_train_steps=1500,
        # DDIM (100 steps) of the same network: its curve tracks training at a tenth of the 1000-step cost.
        curve_steps=100),
    "stylegan2": Family(
        name="stylegan2", checkpoint_format=sg2_model.FORMAT, presets=sg2_configs.PRESETS,
        configure=configure_baseline("stylegan2"), build=sg2_model.build, load=sg2_model.load, read=sg2_model.read,
        train=train_baseline(sg2_train), total_steps=lambda config, data, processes: config.train.steps,
        data_shape=lambda config: tuple(config.data_shape),
        cells=(CellSpec(None, "StyleGAN2"),), quick_cells=(CellSpec(None, "StyleGAN2"),), quick_train_steps=1500),
}


def family(name: str) -> Family:
    """FAMILIES[name]; a KeyError names the choices."""
    if name not in FAMILIES:
        raise KeyError(f"unknown model family {name!r}; choose from {sorted(FAMILIES)}")
    return FAMILIES[name]


def family_of_format(fmt: object) -> Family:
    """The family whose checkpoints carry `format` fmt; a KeyError names the known formats."""
    formats = {f.checkpoint_format: f for f in FAMILIES.values()}
    if not isinstance(fmt, str) or fmt not in formats:
        raise KeyError(f"unknown checkpoint format {fmt!r}; expected one of {sorted(formats)}. An official "
                       f"checkpoint (NVlabs DDGAN netG_*.pth or content.pth, a diffusers DDPM folder, a pesser .ckpt, "
                       f"a stylegan2-ada .pkl) converts to ours with: python -m bench.convert SOURCE --out FILE.pt")
    return formats[fmt]


def build_model(name: str, preset_name: str = "tiny", *, checkpoint: str | Path | None = None,
                device: torch.device | str = "cpu") -> Generator:
    """A model of family `name`: loaded from `checkpoint`, else untrained (weights from torch's global RNG) from
    the preset."""
    f, device = family(name), torch.device(device)
    if checkpoint is not None:
        return f.load(Path(checkpoint), device)
    f.preset(preset_name)  # an unknown preset: the KeyError that names this family's choices
    return f.build(preset_name, device=device)
