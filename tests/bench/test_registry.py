"""bench.registry: for every family of the table, the Generator contract, exact resume, the refusals and the
divergence stop of training; configuration overrides; and a toy fourth family, registered here alone, run
through bench.train, bench.sample and bench.trilemma."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from bench import registry, speed, timing, trilemma
from bench import sample as bench_sample
from bench import train as bench_train
from bench.data import stack_items
from bench.data.memory import InMemoryDataset
from bench.protocol import Generator
from bench.registry import FAMILIES, CellSpec, Family, TrainOverrides, TrainRun, build_model
from ddgan_ref.io import Checkpoint, CheckpointError, TrainingDiverged, load_file, save_atomic
from ddgan_ref.rng import SeedStream


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_sample_contract(name):
    """STYLE.md E10 for every family: float32 in [-1, 1], deterministic, batch-independent, NFE = steps counted
    on `network`, and steps outside supported_steps refused."""
    torch.manual_seed(0)
    m = build_model(name, "tiny")
    assert isinstance(m, Generator) and isinstance(m.network, nn.Module) and m.config is not None
    s = m.default_steps
    x = m.sample(4, s, seed=0)
    assert x.dtype == torch.float32 and x.shape[0] == 4 and x.isfinite().all() and x.abs().max() <= 1
    torch.testing.assert_close(x, m.sample(4, s, seed=0), atol=0, rtol=0)  # deterministic
    halves = torch.cat([m.sample(2, s, seed=0), m.sample(2, s, seed=2)])
    torch.testing.assert_close(x, halves, atol=1e-4, rtol=1e-4)  # image i depends only on seed + i
    assert not torch.equal(x, m.sample(4, s, seed=1))
    assert timing.count_calls(m, lambda: m.sample(3, s, seed=0)) == s
    assert s + 1 not in m.supported_steps
    with pytest.raises(ValueError):
        m.sample(1, s + 1)


def assert_same(a, b, where: str = "") -> None:
    """Nested checkpoint contents equal exactly: tensors bit for bit, everything else by ==."""
    if isinstance(a, torch.Tensor):
        torch.testing.assert_close(a, b, atol=0, rtol=0, msg=where)
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            assert_same(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize("setting", ["fp32", "bf16+cl"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_resumed_training_equals_the_uninterrupted_run(name, setting, tmp_path):
    """Through the family table: 4 iterations straight, or 2 then a resume to 4 (max_steps counts all of them):
    the same sampling weights and resume state, bit for bit, in float32 and under bfloat16 + channels-last."""
    f, cpu, fast = FAMILIES[name], torch.device("cpu"), speed.parse(setting)
    config = f.configure(f.preset("tiny"), TrainOverrides(checkpoint_every=2, seed=3))
    data = dataset_of(torch.rand(64, *f.data_shape(config)) * 2 - 1)
    straight = f.train(config, data, tmp_path / "a", TrainRun(cpu, max_steps=4, speed=fast))
    f.train(config, data, tmp_path / "b", TrainRun(cpu, max_steps=2, speed=fast))
    resumed = f.train(config, data, tmp_path / "b", TrainRun(cpu, resume=True, max_steps=4, speed=fast))
    a, b = load_file(straight), load_file(resumed)
    assert a["train_state"]["step"] == b["train_state"]["step"] == 4
    assert_same(a["state_dict"], b["state_dict"], "state_dict")
    assert_same(a["train_state"], b["train_state"], "train_state")


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_training_under_bf16_channels_last_is_applied_and_saves_float32(name, tmp_path):
    """The same 4 iterations in float32, bf16 and bf16+cl: bf16 gives other weights than float32 (autocast reaches
    the family's iterations), all three close; every tensor of the bf16+cl checkpoint float32 or integer and
    contiguous, and the setting in its meta and its training record."""
    f, cpu = FAMILIES[name], torch.device("cpu")
    config = f.configure(f.preset("tiny"), TrainOverrides(seed=3))
    data = dataset_of(torch.rand(64, *f.data_shape(config)) * 2 - 1)
    files = {s: load_file(f.train(config, data, tmp_path / s, TrainRun(cpu, max_steps=4, speed=speed.parse(s))))
             for s in ("fp32", "bf16", "bf16+cl")}
    ref, low = files["fp32"]["state_dict"], files["bf16"]["state_dict"]
    assert any(not torch.equal(ref[k], low[k]) for k in ref)
    for k in ref:
        torch.testing.assert_close(low[k], ref[k], atol=0.05, rtol=0, msg=k)
        torch.testing.assert_close(files["bf16+cl"]["state_dict"][k], ref[k], atol=0.05, rtol=0, msg=k)
    tensors = torch.utils._pytree.tree_leaves(files["bf16+cl"])
    assert all(t.is_contiguous() and t.dtype in (torch.float32, torch.int64, torch.bool)
               for t in tensors if isinstance(t, Tensor))
    assert files["bf16+cl"]["meta"]["train_speed"] == "bf16+cl" and files["fp32"]["meta"]["train_speed"] == "fp32"
    budget = bench_train.training_budget(tmp_path / "bf16+cl" / "checkpoint.pt", config, cpu, 1.0, False)
    assert budget["speed"] == "bf16+cl"


@pytest.mark.parametrize(("setting", "words"), [
    ("bf16+cl+compile", "compile and graphs are sampling settings"),
    ("fp16", "float16 training needs loss scaling"),
    ("tf32", "TF32 is a CUDA tensor-core mode"),
])
def test_training_refuses_settings_it_cannot_train_under(setting, words, tmp_path, capsys):
    """Through the CLI (exit 2, nothing written) and through the family table (ValueError)."""
    args = ["--model", "ddpm", "--preset", "tiny", "--out", str(tmp_path / "run"), "--speed", setting, "--quiet",
            "--device", "cpu"]
    assert bench_train.main(args) == 2
    assert words in capsys.readouterr().err and not (tmp_path / "run").exists()
    f = FAMILIES["ddgan"]
    with pytest.raises(ValueError, match=words):
        f.train(f.preset("tiny"), dataset_of(torch.zeros(64, 3, 8, 8)), tmp_path / "lib",
                TrainRun(torch.device("cpu"), max_steps=1, speed=speed.parse(setting)))


def test_cli_reports_a_refused_setting_and_a_missing_dataset_together(tmp_path, capsys):
    args = ["--model", "ddgan", "--preset", "tiny", "--out", str(tmp_path / "run"), "--speed", "fp16", "--dataset",
            "cifar10", "--data-root", str(tmp_path / "nowhere"), "--quiet", "--device", "cpu"]
    assert bench_train.main(args) == 2
    err = capsys.readouterr().err
    assert "float16 training needs loss scaling" in err and "CIFAR-10 not found" in err
    assert bench_train.main([*args[:6], "--speed", "bf16+bogus", *args[8:]]) == 2  # a malformed one, with the rest
    err = capsys.readouterr().err
    assert "error: speed setting 'bf16+bogus': 'bogus' is not one of" in err and "CIFAR-10 not found" in err


def test_cli_refuses_to_resume_a_run_under_another_speed_setting_or_config(tmp_path, capsys):
    """The setting is part of the run: --resume under another one stops before any work (exit 2), saying what
    the checkpoint trained under, and the checkpoint stays as it was; so does a resume under another config,
    naming the fields that differ."""
    args = ["--model", "ddpm", "--preset", "tiny", "--out", str(tmp_path), "--quiet", "--device", "cpu"]
    assert bench_train.main([*args, "--max-steps", "1", "--speed", "bf16"]) == 0
    before = (tmp_path / "checkpoint.pt").read_bytes()
    assert bench_train.main([*args, "--max-steps", "2", "--resume"]) == 2
    assert "trained under bf16, not fp32" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert bench_train.main([*args, "--max-steps", "2", "--resume", "--speed", "bf16", "--seed", "1"]) == 2
    assert "holds another run, its config differs: train.seed = 0 there, 1 now" in capsys.readouterr().err
    assert (tmp_path / "checkpoint.pt").read_bytes() == before
    assert bench_train.main([*args, "--max-steps", "2", "--resume", "--speed", "bf16"]) == 0


def dataset_of(x: Tensor) -> InMemoryDataset:
    return InMemoryDataset("test", x, torch.zeros(len(x)), num_modes=None)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_training_refuses_to_overwrite_or_mix_runs_and_stops_on_divergence(name, tmp_path):
    """Through the family table: a second run into the folder needs resume; a resume under another config is
    refused naming the field, and one under another speed setting naming both; a NaN loss stops the run and leaves
    the last good checkpoint as it was."""
    f, cpu = FAMILIES[name], torch.device("cpu")
    config = f.configure(f.preset("tiny"), TrainOverrides(checkpoint_every=1))
    shape = f.data_shape(config)
    checkpoint = f.train(config, dataset_of(torch.rand(64, *shape) * 2 - 1), tmp_path, TrainRun(cpu, max_steps=2))
    with pytest.raises(FileExistsError, match="resume=True"):
        f.train(config, dataset_of(torch.zeros(64, *shape)), tmp_path, TrainRun(cpu, max_steps=2))
    seed = config.train.seed
    other = f.configure(config, TrainOverrides(seed=seed + 1))
    with pytest.raises(CheckpointError, match=f"holds another run, its config differs: train.seed = {seed} there, "
                                              f"{seed + 1} now"):
        f.train(other, dataset_of(torch.zeros(64, *shape)), tmp_path, TrainRun(cpu, resume=True, max_steps=4))
    with pytest.raises(CheckpointError, match="holds a run trained under fp32, not bf16: .* --speed fp32"):
        f.train(config, dataset_of(torch.zeros(64, *shape)), tmp_path,
                TrainRun(cpu, resume=True, max_steps=4, speed=speed.parse("bf16")))
    before = checkpoint.read_bytes()
    with pytest.raises(TrainingDiverged, match="last good checkpoint"):
        f.train(config, dataset_of(torch.full((64, *shape), float("nan"))), tmp_path,
                TrainRun(cpu, resume=True, max_steps=4))
    assert checkpoint.read_bytes() == before


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_weights_made_non_finite_behind_a_finite_loss_never_reach_the_checkpoint(name, tmp_path, monkeypatch):
    """An optimiser step that leaves NaN weights after a finite loss stops the run before its checkpoint write, so
    the file keeps the last good state (the loss alone would let the NaN weights be saved)."""
    f, cpu = FAMILIES[name], torch.device("cpu")
    config = f.configure(f.preset("tiny"), TrainOverrides(checkpoint_every=1))
    data = dataset_of(torch.rand(64, *f.data_shape(config)) * 2 - 1)
    checkpoint = f.train(config, data, tmp_path, TrainRun(cpu, max_steps=2))
    before, adam_step = checkpoint.read_bytes(), torch.optim.Adam.step

    def poisoned(self, *args, **kwargs):
        out = adam_step(self, *args, **kwargs)
        with torch.no_grad():
            for group in self.param_groups:
                for p in group["params"]:
                    p.fill_(float("nan"))
        return out

    monkeypatch.setattr(torch.optim.Adam, "step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"training diverged at step \d+: non-finite .* the last good "
                                               r"checkpoint .*checkpoint.pt is kept\. Lower the learning rate"):
        f.train(config, data, tmp_path, TrainRun(cpu, resume=True, max_steps=4))
    assert checkpoint.read_bytes() == before


def test_overrides_a_family_has_no_field_for_are_refused():
    ddgan, ddpm = FAMILIES["ddgan"], FAMILIES["ddpm"]
    config = ddgan.configure(ddgan.preset("tiny"), TrainOverrides(timesteps=2, epochs=3, lr_g=1e-3))
    assert (config.diffusion.num_timesteps, config.train.num_epoch, config.train.lr_g) == (2, 3, 1e-3)
    assert ddpm.configure(ddpm.preset("tiny"), TrainOverrides(steps=7, lr=0.1)).train.steps == 7
    with pytest.raises(ValueError, match="--steps does not apply to --model ddgan"):
        ddgan.configure(ddgan.preset("tiny"), TrainOverrides(steps=5))
    with pytest.raises(ValueError, match="--timesteps does not apply to --model ddpm"):
        ddpm.configure(ddpm.preset("tiny"), TrainOverrides(timesteps=5))
    with pytest.raises(KeyError, match="unknown stylegan2 preset 'nope'"):
        FAMILIES["stylegan2"].preset("nope")
    with pytest.raises(KeyError, match="unknown checkpoint format"):
        registry.family_of_format("something/else")


# A fourth family: one Gaussian fitted to the data (mean and Cholesky factor as an affine map of z).

FORMAT = "tests/gaussian-checkpoint"


@dataclass(frozen=True)
class GaussianTrain:
    steps: int = 3  # one "iteration" refines the fit on a bigger prefix of the data
    seed: int = 0
    checkpoint_every: int = 1


@dataclass(frozen=True)
class GaussianConfig:
    name: str
    dataset: str
    data_shape: tuple[int, ...] = (2,)
    train: GaussianTrain = GaussianTrain()


class Gaussian:
    """One affine network call per sample batch: x = mean + L z."""

    name = "gaussian"
    default_steps = 1
    supported_steps = (1,)

    def __init__(self, net: nn.Linear, config: GaussianConfig, device: torch.device):
        self.device, self.config, self.net = torch.device(device), config, net.to(device)

    @property
    def network(self) -> nn.Module:
        return self.net

    @network.setter
    def network(self, module: nn.Module) -> None:
        self.net = module

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        if steps not in self.supported_steps:
            raise ValueError(f"a Gaussian samples in one step, got {steps}")
        return self.generate(SeedStream(seed, n, self.device), steps)

    @torch.no_grad()
    def generate(self, rng: SeedStream, steps: int) -> Tensor:
        return self.net(rng.randn(*self.config.data_shape)).clamp(-1, 1)


@torch.no_grad()
def fitted(x: Tensor) -> nn.Linear:
    net = nn.Linear(x.shape[1], x.shape[1])
    cov = torch.cov(x.T) + 1e-6 * torch.eye(x.shape[1])
    net.weight.data, net.bias.data = torch.linalg.cholesky(cov), x.mean(0)
    return net


def train_gaussian(config: GaussianConfig, data: Dataset, out: Path, run: TrainRun) -> Path:
    x, path = stack_items(data), out / "checkpoint.pt"
    last = config.train.steps if run.max_steps is None else min(config.train.steps, run.max_steps)
    for step in range(1, last + 1):
        net = fitted(x[: len(x) * step // last])
        if run.progress is not None:
            run.progress(step, {"mean_norm": float(net.bias.detach().norm())})
    save_atomic({"format": FORMAT, "config": asdict(config), "state_dict": net.state_dict(), "meta": {}}, path)
    return path


def read_gaussian(path: Path, *, mmap: bool = False) -> Checkpoint:
    payload = load_file(path, mmap=mmap)
    if payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a Gaussian checkpoint")
    config = GaussianConfig(**{**payload["config"], "data_shape": tuple(payload["config"]["data_shape"]),
                               "train": GaussianTrain(**payload["config"]["train"])})
    return Checkpoint(config, payload["state_dict"], payload["meta"], {})


def load_gaussian(path: Path, device: torch.device) -> Gaussian:
    config, state_dict, _, _ = read_gaussian(path)
    net = nn.Linear(*config.data_shape * 2)
    net.load_state_dict(state_dict)
    return Gaussian(net, config, device)


GAUSSIAN = Family(
    name="gaussian", checkpoint_format=FORMAT, presets={"gaussians25": GaussianConfig("gaussians25", "gaussians25")},
    configure=lambda config, overrides: registry.override_train(config, overrides, {"steps": "steps"}, "gaussian"),
    build=lambda preset, device: Gaussian(nn.Linear(2, 2), GaussianConfig(preset, preset), device),
    load=load_gaussian, read=read_gaussian, train=train_gaussian,
    total_steps=lambda config, data, processes: config.train.steps, data_shape=lambda config: config.data_shape,
    cells=(CellSpec(None, "Gaussian"),),
    quick_cells=(CellSpec(None, "Gaussian"),), quick_train_steps=2)


@pytest.fixture
def fourth_family(monkeypatch):
    monkeypatch.setitem(FAMILIES, "gaussian", GAUSSIAN)


def test_a_fourth_family_runs_through_train_sample_and_trilemma(fourth_family, tmp_path, capsys):
    run = tmp_path / "train"
    assert bench_train.main(["--model", "gaussian", "--preset", "gaussians25", "--out", str(run), "--quiet"]) == 0
    assert (run / "samples.png").is_file()
    assert bench_sample.main(["--checkpoint", str(run / "checkpoint.pt"), "--n", "6", "--out", str(tmp_path / "s"),
                              "--quiet"]) == 0
    assert torch.load(tmp_path / "s" / "samples.pt", weights_only=True).shape == (6, 2)
    assert json.loads((tmp_path / "s" / "samples.json").read_text())["model"] == "gaussian"
    out = tmp_path / "trilemma"
    code = trilemma.main(["--models", "gaussian", "--quick", "--train-steps", "2", "--n", "200",
                          "--batch-size", "100", "--rounds", "1", "--quiet", "--out", str(out)])
    assert code == 0
    record = json.loads((out / "cells" / "gaussian.json").read_text())
    assert record["status"] == "ok" and record["label"] == "Gaussian" and record["timing"]["nfe"] == 1
    assert record["training"]["max_steps"] == 2 and record["training"]["family"] == "gaussian"
    assert record["metrics"]["modes"] >= 1 and "| Gaussian |" in (out / "trilemma.md").read_text()


def test_harness_refuses_a_training_folder_of_another_preset_before_any_work(fourth_family, monkeypatch, tmp_path,
                                                                             capsys):
    """A folder whose training ran under another preset would be resumed under the new one: the harness refuses
    it in preflight (exit 2) naming the fields that differ, and the checkpoint stays as it was."""
    other = GaussianConfig("gaussians25-seed1", "gaussians25", train=GaussianTrain(seed=1))
    monkeypatch.setitem(GAUSSIAN.presets, other.name, other)
    args = ["--models", "gaussian", "--quick", "--train-steps", "2", "--n", "200", "--batch-size", "100",
            "--rounds", "1", "--quiet", "--curve-points", "0", "--out", str(tmp_path)]
    assert trilemma.main(args) == 0
    checkpoint = tmp_path / "train" / "gaussian" / "checkpoint.pt"
    before = checkpoint.read_bytes()
    capsys.readouterr()
    assert trilemma.main([*args, "--presets", "gaussian=gaussians25-seed1"]) == 2
    err = capsys.readouterr().err
    assert "holds another run, its config differs: name = 'gaussians25' there, 'gaussians25-seed1' now" in err
    assert "train.seed = 0 there, 1 now" in err and "training gaussian" not in err
    assert checkpoint.read_bytes() == before
