"""Network-level GPU timings for a lent device machine (run by .ci/gpu-check; not CI): the compiled kernels vs
the reference inside whole models, at the cifar10 presets with freshly initialised weights.

  python3 .ci/gpu_timings.py [--deadline EPOCH_SECONDS] [--out DIR] [--ddpm] [--prdc] [--profile]

Writes DIR/gpu_timings.json (one row per measurement, rewritten after each) and prints each row: NVML device
facts; DDGAN (T=4) and StyleGAN2 sampling at the paper's batch of 100 (bench.timing.paper_time: median of 5
after a warm-up, NFE, peak memory, joules per image) with impl "cuda" and "ref"; the NCSN++ generator's
forward + backward at batch 64 (impls alternated, median of 20 calls each); optionally DDPM with 100 and 1000
steps, bench.metrics.prdc on CUDA at 10k and 50k x 2048-d, and a torch.profiler table of one DDGAN sample call.
A step that fails is recorded with its error; steps after the deadline are recorded as skipped.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch

from bench import timing
from bench.registry import build_model
from ddgan_ref import ops
from ddgan_ref.provenance import describe_device

DEVICE = torch.device("cuda")


class Recorder:
    def __init__(self, out: Path, deadline: float):
        self.path, self.deadline, self.rows = out / "gpu_timings.json", deadline, []

    def emit(self, **row) -> None:
        self.rows.append(row)
        print(json.dumps(row), flush=True)
        self.path.write_text(json.dumps(self.rows, indent=1))

    def step(self, name: str, fn) -> None:
        if time.time() > self.deadline:
            return self.emit(step=name, skipped="deadline")
        try:
            fn(self)
        except Exception as e:  # one failure must not hide the other measurements
            self.emit(step=name, error=f"{type(e).__name__}: {e}")


def device_facts(rec: Recorder) -> None:
    rec.emit(step="device_info", **describe_device(DEVICE), torch=torch.__version__,
             tf32_conv=torch.backends.cudnn.allow_tf32, tf32_matmul=torch.backends.cuda.matmul.allow_tf32)


def generator_forward_backward(rec: Recorder) -> None:
    torch.manual_seed(0)
    G = build_model("ddgan", preset_name="cifar10", device=DEVICE).network
    x, z = torch.randn(64, 3, 32, 32, device=DEVICE), torch.randn(64, G.z_dim, device=DEVICE)
    t = torch.full((64,), 3, dtype=torch.long, device=DEVICE)
    times: dict[str, list[float]] = {}
    for impl in ("ref", "cuda", "ref", "cuda"):
        with ops.using(impl):
            fn = lambda: torch.autograd.grad(G(x, t, z).square().mean(), list(G.parameters()))
            times.setdefault(impl, []).extend(timing.median_seconds(fn, DEVICE, rounds=10, warmup=2))
    ref, cuda = statistics.median(times["ref"]), statistics.median(times["cuda"])
    rec.emit(step="ncsnpp_cifar10_G_fwd_bwd_b64", ref_s=ref, cuda_s=cuda, speedup=ref / cuda)


def sampling(name: str, steps: int, impls=("cuda", "ref"), rounds: int = 5):
    def run(rec: Recorder) -> None:
        torch.manual_seed(0)
        model = build_model(name, preset_name="cifar10", device=DEVICE)
        for impl in impls:
            with ops.using(impl):
                result = timing.paper_time(model, steps, DEVICE, batch=100, rounds=rounds)
            rec.emit(step=f"paper_time {name} cifar10 steps={steps} impl={impl}", **asdict(result))
    return run


def prdc_on_cuda(rec: Recorder) -> None:
    from bench.metrics import prdc

    for n in (10_000, 50_000):
        g = torch.Generator().manual_seed(n)
        real, fake = torch.randn(n, 2048, generator=g), torch.randn(n, 2048, generator=g) + 0.1
        torch.cuda.synchronize()
        start = time.perf_counter()
        values = prdc(real, fake, 5, device="cuda")
        torch.cuda.synchronize()
        rec.emit(step=f"prdc cuda {n}x{n} 2048-d", seconds=time.perf_counter() - start, **values,
                 peak_cuda_bytes=torch.cuda.max_memory_allocated())


def profile_sampling(rec: Recorder) -> None:
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = build_model("ddgan", preset_name="cifar10", device=DEVICE)
    for impl in ("ref", "cuda"):
        with ops.using(impl):
            model.sample(100, 4)
            torch.cuda.synchronize()
            with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                model.sample(100, 4)
                torch.cuda.synchronize()
        events = prof.key_averages()
        key = "self_device_time_total" if hasattr(events[0], "self_device_time_total") else "self_cuda_time_total"
        print(f"== profile impl={impl}\n{events.table(sort_by=key, row_limit=14)}", flush=True)
        rec.emit(step=f"profile ddgan sample 100 impl={impl}", self_gpu_ms=sum(getattr(e, key) for e in events) / 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deadline", type=float, default=time.time() + 240, help="epoch seconds: start no step after")
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for gpu_timings.json")
    parser.add_argument("--ddpm", action="store_true", help="also DDPM sampling with 100 and 1000 steps (~90 s)")
    parser.add_argument("--prdc", action="store_true", help="also bench.metrics.prdc on CUDA at 10k and 50k")
    parser.add_argument("--profile", action="store_true", help="also profile one DDGAN sample call per impl")
    args = parser.parse_args()
    rec = Recorder(args.out, args.deadline)
    rec.step("device_info", device_facts)
    rec.step("ddgan", sampling("ddgan", 4))
    rec.step("stylegan2", sampling("stylegan2", 1))
    rec.step("generator", generator_forward_backward)
    if args.prdc:
        rec.step("prdc", prdc_on_cuda)
    if args.profile:
        rec.step("profile", profile_sampling)
    if args.ddpm:
        rec.step("ddpm 100", sampling("ddpm", 100, impls=("auto",), rounds=3))
        rec.step("ddpm 1000", sampling("ddpm", 1000, impls=("auto",), rounds=1))


if __name__ == "__main__":
    main()
