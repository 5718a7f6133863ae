"""Faster sampling settings, one knob set for every family (bench.registry): precision, memory format,
torch.compile and CUDA graphs. The float32 eager path is the reference and the default.

A setting is written as its tokens joined by "+", e.g. "bf16+cl+compile" or "tf32+graphs":
  fp32 | tf32 | bf16 | fp16   precision: fp32 is IEEE float32, on CUDA too (bench.devices.exact_float32); tf32
                              lets CUDA matmuls and convolutions use tensor-core TF32; bf16 and fp16 run the
                              network under autocast (weights and activations in the low precision where
                              autocast casts them, the sampler's arithmetic and its noise in float32)
  cl                          channels-last weights and inputs (NHWC), the layout oneDNN and cuDNN prefer
  compile[=MODE]              torch.compile the network (MODE default | reduce-overhead | max-autotune; inductor
                              generates C++ on a CPU, so it needs a C++ compiler there)
  graphs                      CUDA only: the whole sampler (every step of a batch) captured once per batch size
                              and replayed; its noise is drawn on the CPU per image (ddgan_ref.rng) into the
                              graph's input buffers, so image i still depends only on the weights and seed + i
`apply(model, speed)` returns a copy of the model that samples under the setting; the model itself is unchanged.
Training (`bench.train --speed`) takes the precision (fp32, bf16, tf32 on CUDA) and cl: `training_options`.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils._pytree import tree_map

from bench.protocol import Generator
from ddgan_ref.rng import SeedStream, check_high

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
COMPILE_MODES = ("none", "default", "reduce-overhead", "max-autotune")
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}

# A fast cell's quality cost is measured on its first PIXEL_N images against the float32 cell's, and flagged beyond
# TOLERANCE: the quality metric moving by more than 5 % of its float32 value, or a mean absolute difference above
# 0.02 (about 2.5 of 255 grey levels on [-1, 1] images).
PIXEL_N = 100
TOLERANCE = {"quality_relative": 0.05, "mean_abs_diff": 0.02}

# `--speed fast`: the settings worth measuring on each device type (bench/test_speed_settings.py measures them).
FAST = {"cpu": ("bf16+cl", "bf16+cl+compile"), "cuda": ("tf32", "bf16+cl+graphs", "bf16+cl+compile+graphs")}


@dataclass(frozen=True)
class SpeedConfig:
    """How a model samples: precision, channels-last, torch.compile mode, CUDA graphs."""

    precision: str = "fp32"
    channels_last: bool = False
    compile: str = "none"
    cuda_graphs: bool = False

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision {self.precision!r}: choose from {', '.join(PRECISIONS)}")
        if self.compile not in COMPILE_MODES:
            raise ValueError(f"compile mode {self.compile!r}: choose from {', '.join(COMPILE_MODES)}")

    @property
    def reference(self) -> bool:
        """True for float32 eager, the path every other setting is measured against."""
        return self == SpeedConfig()

    @property
    def label(self) -> str:
        """The setting in the "+" notation that `parse` reads, e.g. "bf16+cl+compile"."""
        tokens = [self.precision] + ["cl"] * self.channels_last
        if self.compile != "none":
            tokens.append("compile" if self.compile == "default" else f"compile={self.compile}")
        return "+".join(tokens + ["graphs"] * self.cuda_graphs)

    def batch_invariant(self, device: torch.device) -> bool:
        """Whether image i is promised to be the same for every batch size (to 1e-4, as tested). Eager float32
        anywhere and eager bfloat16 on a CPU; not under compile (inductor may choose other kernels and reductions
        per shape), nor at a reduced precision on CUDA (cuBLAS and cuDNN pick algorithms per shape, and at these
        precisions their results differ visibly)."""
        return self.compile == "none" and (self.precision == "fp32" or self.precision == "bf16"
                                           and device.type == "cpu")


def parse(spec: str) -> SpeedConfig:
    """A SpeedConfig from "+"-joined tokens (module docstring); ValueError naming the bad token."""
    fields: dict[str, Any] = {}
    for token in (t.strip() for t in spec.split("+")):
        name, _, value = token.partition("=")
        if token in PRECISIONS and "precision" not in fields:
            fields["precision"] = token
        elif token in ("cl", "channels-last"):
            fields["channels_last"] = True
        elif name == "compile" and (value or "default") in COMPILE_MODES[1:]:
            fields["compile"] = value or "default"
        elif token in ("graphs", "cuda-graphs"):
            fields["cuda_graphs"] = True
        else:
            raise ValueError(f"speed setting {spec!r}: {token!r} is not one of fp32|tf32|bf16|fp16, cl, compile, "
                             f"compile=MODE ({'|'.join(COMPILE_MODES[1:])}), graphs (one precision at most)")
    return SpeedConfig(**fields)


def expand(specs: list[str] | tuple[str, ...], device: torch.device) -> tuple[SpeedConfig, ...]:
    """The settings of --speed arguments: "fast" is FAST for the device's type, anything else one setting;
    duplicates and the float32 reference (always measured) are dropped."""
    out: list[SpeedConfig] = []
    for spec in specs:
        for one in FAST.get(device.type, ()) if spec == "fast" else (spec,):
            speed = parse(one)
            if not speed.reference and speed not in out:
                out.append(speed)
    return tuple(out)


def native_bf16_cpu() -> bool:
    """Whether oneDNN multiplies bfloat16 natively on this CPU (AVX512-BF16 or AMX); otherwise it emulates it."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def check(speed: SpeedConfig, device: torch.device) -> None:
    """ValueError saying what to use instead where the setting cannot run on the device."""
    where = f"speed setting {speed.label} on {device}"
    if device.type == "cpu":
        if speed.precision == "tf32":
            raise ValueError(f"{where}: TF32 is a CUDA tensor-core mode; on a CPU use fp32 or bf16")
        if speed.precision == "fp16":
            raise ValueError(f"{where}: float16 has no fast CPU path in this suite (oneDNN's is AMX-FP16 only); "
                             f"use bf16")
        if speed.cuda_graphs:
            raise ValueError(f"{where}: CUDA graphs need a CUDA device; drop 'graphs' (compile is the CPU's "
                             f"way to cut per-call overhead)")
        if speed.compile == "reduce-overhead":
            raise ValueError(f"{where}: compile=reduce-overhead means CUDA graphs; on a CPU use compile")
        if speed.compile != "none" and not (os.environ.get("CXX") or shutil.which("g++") or shutil.which("c++")):
            raise ValueError(f"{where}: torch.compile generates C++ on a CPU and no C++ compiler was found (set CXX "
                             f"or install g++), or drop 'compile'")
    elif device.type == "cuda":
        if speed.cuda_graphs and speed.compile in ("reduce-overhead", "max-autotune"):
            raise ValueError(f"{where}: compile={speed.compile} captures CUDA graphs of its own, which cannot be "
                             f"captured inside the sampler's graph; with 'graphs' use compile (default mode)")
        if speed.precision == "bf16" and not torch.cuda.is_bf16_supported():
            raise ValueError(f"{where}: this GPU has no bfloat16; use fp16 or tf32")
    elif speed != SpeedConfig():
        raise ValueError(f"{where}: fast settings exist for cpu and cuda devices only")


def check_training(speed: SpeedConfig, device: torch.device) -> None:
    """ValueError saying what to use instead where a setting cannot train: compile and CUDA graphs are sampling
    settings here, and float16 needs the loss scaling the training loops do not do; then `check` on the device."""
    where = f"training under {speed.label} on {device}"
    if speed.compile != "none" or speed.cuda_graphs:
        raise ValueError(f"{where}: compile and graphs are sampling settings; training takes a precision (fp32, "
                         f"bf16, or tf32 on CUDA) and cl, e.g. bf16+cl")
    if speed.precision == "fp16":
        raise ValueError(f"{where}: float16 training needs loss scaling, which the training loops do not do; use "
                         f"bf16")
    check(speed, device)


def training_options(speed: SpeedConfig, device: torch.device) -> dict[str, Any]:
    """The keywords every family's train function takes for a setting (autocast dtype, channels_last), after
    `check_training`; TF32 is a process-wide switch, set around the call with `tf32`."""
    check_training(speed, device)
    return {"autocast": AUTOCAST.get(speed.precision), "channels_last": speed.channels_last}


def describe(speed: SpeedConfig, device: torch.device) -> dict[str, Any]:
    """What a result records about the setting it ran under."""
    info: dict[str, Any] = {"label": speed.label, "precision": speed.precision, "channels_last": speed.channels_last,
                            "compile": speed.compile, "cuda_graphs": speed.cuda_graphs,
                            "batch_invariant": speed.batch_invariant(device)}
    if device.type == "cpu" and speed.precision == "bf16":
        info["native_bf16"] = native_bf16_cpu()
    return info


def quality_cost(fast: Tensor, reference: Tensor, fast_metrics: dict[str, Any],
                 reference_metrics: dict[str, Any] | None, quality: str | None, against: str) -> dict[str, Any]:
    """What a fast setting costs against its float32 cell, on the same seeds: the max and mean absolute difference
    of their first images (fast, reference), the change of every metric both cells measured (fast minus float32;
    none when the float32 cell has no metrics), and `flagged`, the reason where it is beyond TOLERANCE (else None)."""
    diff = (fast.float() - reference.float()).abs()
    max_abs, mean_abs = diff.max().item(), diff.mean().item()
    ref = reference_metrics or {}
    delta = {k: float(fast_metrics[k]) - float(ref[k]) for k in sorted(set(fast_metrics) & set(ref))
             if isinstance(fast_metrics[k], (int, float)) and isinstance(ref[k], (int, float))}
    reasons = []  # written as `not <=`, so NaN (a setting that overflows) is beyond every tolerance
    if not mean_abs <= TOLERANCE["mean_abs_diff"]:
        reasons.append(f"mean |difference| {mean_abs:.4f} > {TOLERANCE['mean_abs_diff']}")
    if quality in delta and not abs(delta[quality]) <= TOLERANCE["quality_relative"] * abs(ref[quality]):
        reasons.append(f"{quality} moved {delta[quality]:+.4g} from {ref[quality]:.4g} "
                       f"(> {TOLERANCE['quality_relative']:.0%})")
    return {"against": against, "images": len(fast), "max_abs_diff": max_abs, "mean_abs_diff": mean_abs,
            "quality_metric": quality, "delta": delta, "tolerance": TOLERANCE,
            "metrics_compared": reference_metrics is not None, "flagged": "; ".join(reasons) or None}


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 for CUDA matmuls and cuDNN convolutions on (enabled) or off inside the block, whatever the process
    had set, which is restored after: both are process-wide switches, and PyTorch's default lets convolutions use
    TF32 (bench.devices.exact_float32)."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _float_tensor(fn: Callable[[Tensor], Tensor]) -> Callable[[Any], Any]:
    return lambda v: fn(v) if isinstance(v, Tensor) and v.is_floating_point() else v


class FastNetwork(nn.Module):
    """A family's network under a SpeedConfig: channels-last weights and 4-D inputs, the forward under autocast
    (optionally compiled), floating outputs back to contiguous float32 so the sampler's arithmetic is the
    reference's. Attributes it lacks are the wrapped network's (z_dim, synthesis, ...), so a sampler calls it
    as it calls the network."""

    def __init__(self, net: nn.Module, speed: SpeedConfig, device: torch.device):
        super().__init__()
        self.net = net.to(memory_format=torch.channels_last) if speed.channels_last else net
        self.speed, self.device_type = speed, device.type
        self.calls = 0  # forward calls so far: a captured CUDA graph replays this many per batch
        self._run = (torch.compile(self._forward, mode=speed.compile, dynamic=False) if speed.compile != "none"
                     else self._forward)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name.startswith("_") or name == "net":
                raise
            return getattr(self._modules["net"], name)

    def _forward(self, *args: Any, **kwargs: Any) -> Any:
        if self.speed.channels_last:
            to_nhwc = _float_tensor(lambda t: t.contiguous(memory_format=torch.channels_last) if t.ndim == 4 else t)
            args, kwargs = tree_map(to_nhwc, args), tree_map(to_nhwc, kwargs)
        dtype = AUTOCAST.get(self.speed.precision)
        with torch.autocast(self.device_type, dtype=dtype, enabled=dtype is not None):
            out = self.net(*args, **kwargs)
        return tree_map(_float_tensor(lambda t: t.float().contiguous()), out)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        with tf32(self.speed.precision == "tf32"):
            return self._run(*args, **kwargs)

    def fire_hooks(self, times: int) -> None:
        """Run the forward hooks `times` times, as a graph replay calls the network without Python: the harness's
        call counter (NFE) then counts a replayed batch like an eager one."""
        for _ in range(times):
            for hook in list(self._forward_hooks.values()):
                hook(self, (), None)


class Tape:
    """Stands in for a SeedStream while a sampler is captured: each draw becomes a static device buffer, in the
    order the sampler draws; `fill(seed)` draws the real numbers (SeedStream, on the CPU) into them.

    A fill draws every buffer in one SeedStream.draw_into call (rows on threads), into pinned host buffers on
    CUDA that are copied without blocking; the next fill waits for those copies before it overwrites them."""

    def __init__(self, n: int, device: torch.device):
        self.n, self.device = n, device
        self.draws: list[tuple[int, Tensor]] = []  # (high, buffer): high 0 for randn
        self._host: list[Tensor] = []
        self._copied: torch.cuda.Event | None = None

    def randn(self, *shape: int) -> Tensor:
        buffer = torch.empty((self.n, *shape), dtype=torch.float32, device=self.device)
        self.draws.append((0, buffer))
        return buffer

    def randint(self, high: int) -> Tensor:
        check_high(high)
        buffer = torch.empty(self.n, dtype=torch.long, device=self.device)
        self.draws.append((high, buffer))
        return buffer

    def fill(self, seed: int) -> None:
        if not self.draws:
            return
        cuda = self.device.type == "cuda"
        if self._copied is not None:
            self._copied.synchronize()
        if [(h.shape, h.dtype) for h in self._host] != [(b.shape, b.dtype) for _, b in self.draws]:
            self._host = [torch.empty(b.shape, dtype=b.dtype, pin_memory=cuda) for _, b in self.draws]
        SeedStream(seed, self.n, "cpu").draw_into(self._host, [high for high, _ in self.draws])
        for host, (_, buffer) in zip(self._host, self.draws, strict=True):
            buffer.copy_(host, non_blocking=cuda)
        if cuda:
            self._copied = torch.cuda.Event()
            self._copied.record(torch.cuda.current_stream(self.device))


class GraphedSampler:
    """One batch size and step count of a model's sampler as a captured CUDA graph (warmed up on a side stream
    first, as torch.cuda.graph requires)."""

    def __init__(self, model: Generator, network: FastNetwork, n: int, steps: int):
        stream = torch.cuda.Stream(model.device)
        stream.wait_stream(torch.cuda.current_stream(model.device))
        with torch.cuda.stream(stream), torch.no_grad():
            # The allocator, cuDNN / cuBLAS workspaces, autocast and compile caches fill on the first network call
            # and a recompile shows on the second: a multi-step sampler makes both in one run (DDPM's 1000 steps
            # would pay as much again for a second), a one-call sampler in two.
            before = network.calls
            for _ in range(2):
                model.generate(SeedStream(0, n, model.device), steps)
                if network.calls - before >= 2:
                    break
        torch.cuda.current_stream(model.device).wait_stream(stream)
        self.tape, self.graph, self.network = Tape(n, model.device), torch.cuda.CUDAGraph(), network
        before = network.calls
        with torch.no_grad(), torch.cuda.graph(self.graph):
            self.out = model.generate(self.tape, steps)
        self.calls = network.calls - before

    def __call__(self, seed: int) -> Tensor:
        self.tape.fill(seed)
        self.graph.replay()
        self.network.fire_hooks(self.calls)
        return self.out.clone()


class FastModel:
    """A Generator sampling under a SpeedConfig: a copy of `model` whose network is a FastNetwork (the original
    model is untouched); with cuda_graphs, each (batch size, steps) is captured on first use and replayed."""

    def __init__(self, model: Generator, speed: SpeedConfig):
        check(speed, model.device)
        inner = copy.copy(model)
        inner.network = FastNetwork(copy.deepcopy(model.network), speed, model.device)
        self.model, self.speed, self.original = inner, speed, model  # original: the float32 model, untouched
        self._graphs: dict[tuple[int, int], GraphedSampler] = {}

    def __getattr__(self, name: str) -> Any:  # name, config, device, network, ...: the inner model's
        if name in ("model", "speed", "original", "_graphs"):
            raise AttributeError(name)
        return getattr(self.model, name)

    def sample(self, n: int, steps: int, *, seed: int = 0) -> Tensor:
        if not self.speed.cuda_graphs:
            return self.model.sample(n, steps, seed=seed)
        if steps not in self.model.supported_steps:
            return self.model.sample(n, steps, seed=seed)  # raises the model's own ValueError
        if (n, steps) not in self._graphs:
            self._graphs[n, steps] = GraphedSampler(self.model, self.model.network, n, steps)
        return self._graphs[n, steps](seed)


def apply(model: Generator, speed: SpeedConfig) -> Generator:
    """The model itself for the float32 eager reference, else a FastModel (ValueError where the device cannot run
    the setting)."""
    return model if speed.reference else FastModel(model, speed)
