"""Training: toy mode coverage, divergence, kill-and-resume, torchrun (gloo) and the CLIs."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from bench.data import build_dataset
from ddgan_ref import checkpoints as ck
from ddgan_ref import configs, io, model
from ddgan_ref import train as tr

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def mixture_scores(x: torch.Tensor, centers: torch.Tensor, std: float) -> tuple[int, float]:
    """PacGAN's 2D protocol (spec metrics.md §6.2): (modes with >= 1 high-quality sample, fraction of
    high-quality samples), high-quality meaning within 3 std of the nearest mode."""
    d, nearest = torch.cdist(x, centers).min(dim=1)
    good = d < 3 * std
    return int(torch.bincount(nearest[good], minlength=len(centers)).gt(0).sum()), good.float().mean().item()


@pytest.fixture(scope="module")
def gaussians25_run(tmp_path_factory):
    """The gaussians25 preset trained to the end (8 epochs, 3120 iterations), one thread for speed."""
    out = tmp_path_factory.mktemp("gaussians25")
    data = build_dataset("gaussians25", seed=0)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        tr.train(configs.preset("gaussians25"), data, out)
    finally:
        torch.set_num_threads(threads)
    x = model.load(out / tr.CHECKPOINT_NAME).sample(2500, 4, seed=0)
    return mixture_scores(x, data.centers, data.std)


def test_gaussians25_training_covers_most_modes(gaussians25_run):
    """The preset covers most of the 25 modes with sharp samples (PacGAN protocol, 2500 samples).

    Thresholds: >= 20 modes with a high-quality sample and >= 50% high-quality samples. Measured on CPU with
    training seeds 0 and 3: 25 modes, 0.88; an untrained generator puts about 2% of samples near a mode.
    """
    modes, quality = gaussians25_run
    assert modes >= 20 and quality >= 0.5, gaussians25_run


def corrupt_at(step: int, monkeypatch) -> None:
    """Fill a weight of G with NaN just before iteration `step` runs."""
    d_step = tr.d_step

    def corrupted(state, *args):
        if state.step == step:
            with torch.no_grad():
                next(state.G.parameters()).fill_(float("nan"))
        return d_step(state, *args)

    monkeypatch.setattr(tr, "d_step", corrupted)


def test_divergence_stops_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    config = replace(configs.preset("gaussians25"), train=replace(configs.preset("gaussians25").train,
                                                                   checkpoint_every=2))
    data = build_dataset("gaussians25", size=4096, seed=0)
    corrupt_at(5, monkeypatch)
    with pytest.raises(io.TrainingDiverged, match=r"training diverged at step 5: non-finite loss .* the last good "
                                                  r"checkpoint .*checkpoint.pt is kept"):
        tr.train(config, data, tmp_path)
    _, sd, meta, rest = ck.read_checkpoint(tmp_path / tr.CHECKPOINT_NAME)
    assert meta["step"] == 4 and all(v.isfinite().all() for v in sd.values())
    assert all(v.isfinite().all() for v in rest["train_state"]["G"].values())


def test_resume_under_another_number_of_processes_is_refused(tmp_path):
    """Each rank's batches and noise follow the process count, so a run continues exactly only under its own."""
    config, ckpt = configs.preset("tiny"), tmp_path / tr.CHECKPOINT_NAME
    data = build_dataset(config.dataset, seed=0)
    tr.train(config, data, tmp_path, max_steps=1)
    saved = io.load_file(ckpt)
    io.save_atomic(saved | {"meta": saved["meta"] | {"world_size": 2}}, ckpt)  # as two processes write it
    with pytest.raises(io.CheckpointError, match=r"trained by 2 process\(es\), this run has 1; resume it with "
                                                 r"torchrun --nproc-per-node 2"):
        tr.train(config, data, tmp_path, max_steps=2, resume=True)


def test_channels_last_and_autocast_reach_the_networks_and_the_batches(tmp_path, monkeypatch):
    """train(channels_last=True, autocast=bfloat16): G and D hold NHWC weights, and D's steps see NHWC batches
    under bfloat16 autocast."""
    seen = []
    d_step = tr.d_step

    def watched(state, x0, *args):
        seen.append((x0.is_contiguous(memory_format=torch.channels_last), torch.is_autocast_enabled("cpu"),
                     torch.get_autocast_dtype("cpu")))
        return d_step(state, x0, *args)

    monkeypatch.setattr(tr, "d_step", watched)
    config = configs.preset("tiny")
    data = build_dataset(config.dataset, seed=0)
    state = tr.train(config, data, tmp_path, max_steps=2, autocast=torch.bfloat16, channels_last=True)
    assert seen == [(True, True, torch.bfloat16)] * 2
    weights = [p for m in (state.G, state.D) for p in m.parameters() if p.ndim == 4]
    assert weights and all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)


def train_args(out: Path, *extra: str) -> list[str]:
    return ["-m", "bench.train", "--model", "ddgan", "--preset", "tiny", "--out", str(out), "--device", "cpu",
            "--checkpoint-every", "3", "--max-steps", "18", "--quiet", *extra]


def test_kill_and_resume_matches_uninterrupted_run(tmp_path):
    straight = run_cli(*train_args(tmp_path / "straight"))
    assert straight.returncode == 0, straight.stderr
    proc = subprocess.Popen([sys.executable, *train_args(tmp_path / "killed")], cwd=ROOT, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ckpt = tmp_path / "killed" / tr.CHECKPOINT_NAME
    deadline = time.time() + 120
    while not ckpt.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = ck.read_checkpoint(ckpt)[2]["step"]
    assert killed_at < 18, "the run finished before it could be killed"
    resumed = run_cli(*train_args(tmp_path / "killed", "--resume"))
    assert resumed.returncode == 0, resumed.stderr
    a = ck.read_checkpoint(tmp_path / "straight" / tr.CHECKPOINT_NAME)[3]["train_state"]
    b = ck.read_checkpoint(ckpt)[3]["train_state"]
    assert a["step"] == b["step"] == 18
    for net in ("G", "D"):
        for k in a[net]:
            torch.testing.assert_close(a[net][k], b[net][k], atol=0, rtol=0)


@pytest.mark.distributed
def test_torchrun_two_process_gloo_training(tmp_path):
    out = tmp_path / "ddp"
    res = run_cli("-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "bench.train",
                  "--model", "ddgan", "--preset", "gaussians25", "--out", str(out), "--device", "cpu",
                  "--max-steps", "6", "--checkpoint-every", "3", "--quiet")
    assert res.returncode == 0, res.stderr
    _, _, meta, rest = ck.read_checkpoint(out / tr.CHECKPOINT_NAME)
    assert meta["world_size"] == 2 and rest["train_state"]["step"] == 6
    assert (out / "samples.png").exists()


def test_sample_cli_writes_grid_and_folder(tmp_path):
    res = run_cli(*train_args(tmp_path / "run"))
    assert res.returncode == 0, res.stderr
    ckpt = tmp_path / "run" / tr.CHECKPOINT_NAME
    grid = run_cli("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "9", "--out", str(tmp_path / "g.png"),
                   "--quiet")
    assert grid.returncode == 0, grid.stderr
    assert (tmp_path / "g.png").stat().st_size > 0
    folder = run_cli("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "5", "--batch-size", "2", "--out",
                     str(tmp_path / "imgs"), "--quiet")
    assert folder.returncode == 0, folder.stderr
    assert sorted(p.name for p in (tmp_path / "imgs").glob("*.png")) == [f"{i:06d}.png" for i in range(5)]
    record = json.loads((tmp_path / "imgs" / "samples.json").read_text())
    assert record["n"] == 5 and record["seed"] == 0 and record["steps"] == 4 and "git_commit" in record
    batched = torch.load(tmp_path / "imgs" / "samples.pt", weights_only=True)
    torch.testing.assert_close(batched, model.load(ckpt).sample(5, 4, seed=0), atol=1e-5, rtol=1e-4)
    assert record["speed"]["label"] == "fp32"
    fast = run_cli("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "5", "--out", str(tmp_path / "fast"),
                   "--speed", "bf16+cl", "--quiet")
    assert fast.returncode == 0, fast.stderr
    assert json.loads((tmp_path / "fast" / "samples.json").read_text())["speed"]["label"] == "bf16+cl"
    low = torch.load(tmp_path / "fast" / "samples.pt", weights_only=True)
    assert 0 < (low - batched).abs().mean() < 0.1  # bfloat16: close to float32, not equal
    refused = run_cli("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "5", "--out", str(tmp_path / "x.png"),
                      "--speed", "fp16", "--device", "cpu")
    assert refused.returncode == 2 and "float16 has no fast CPU path" in refused.stderr
    again = ("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "3", "--out", str(tmp_path / "imgs"), "--quiet")
    mixed = run_cli(*again)  # 3 new images beside the 5 old ones would be measured as 5
    assert mixed.returncode == 2 and "already holds 5 image files (000000.png, ...)" in mixed.stderr
    assert "--overwrite" in mixed.stderr and len(list((tmp_path / "imgs").glob("*.png"))) == 5
    replaced = run_cli(*again, "--overwrite", "--sample-format", "jpeg")
    assert replaced.returncode == 0, replaced.stderr
    assert sorted(p.name for p in (tmp_path / "imgs").iterdir() if p.suffix in (".png", ".jpg")) == [
        f"{i:06d}.jpg" for i in range(3)]
    for out, fmt, says in (("g.png", "jpeg", "--sample-format jpeg applies to an --out folder"),
                           ("g.jpg", "png", "a grid is written as .png")):
        bad = run_cli("-m", "bench.sample", "--checkpoint", str(ckpt), "--n", "2", "--out", str(tmp_path / out),
                      "--sample-format", fmt)
        assert bad.returncode == 2 and says in bad.stderr


def test_cli_help_is_complete():
    for module in ("bench.train", "bench.sample"):
        res = run_cli("-m", module, "--help")
        assert res.returncode == 0 and "--out" in res.stdout and "--device" in res.stdout


def test_sample_cli_truncated_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"PK\x03\x04 truncated")
    res = run_cli("-m", "bench.sample", "--checkpoint", str(bad), "--n", "2", "--out", str(tmp_path / "g.png"))
    assert res.returncode == 2 and "truncated, corrupt or not a PyTorch checkpoint" in res.stderr
