"""What a CUDA graph cannot capture, found on the CPU. bench.speed.GraphedSampler captures a family's whole sampler,
so nothing in it may read a device value on the host (item(), float(): a synchronisation) or copy a tensor from the
host (a blocking copy from pageable memory): on a GPU either fails the capture. Here every family's sampler and its
compiled network run on the meta device at the cifar10 preset the GPU benchmark measures, and every such transfer
is named with the line that made it."""

from __future__ import annotations

import traceback

import pytest
import torch
from torch._dynamo.backends.common import aot_autograd
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from bench.registry import FAMILIES, build_model
from bench.speed import FastNetwork, Tape, parse
from ddgan_ref.rng import SeedStream

META, CPU = torch.device("meta"), torch.device("cpu")
aten = torch.ops.aten


def meta_model(name: str):
    """The family's cifar10 network made directly on the meta device (shapes without numbers); DDPM samples a
    3-step sub-grid with its 1000-step (ancestral) update."""
    with torch.device(META):  # for the network only: the sampler's own tensors are made where the sampler makes them
        built = build_model(name, "cifar10", device=META)
    kwargs = {"fast_sampler": "ancestral"} if name == "ddpm" else {}
    model = type(built)(built.network, built.config, META, **kwargs)
    return model, (3 if name == "ddpm" else model.default_steps)


def transfer(func, args, kwargs, out) -> str | None:
    """What an ATen call moves between the host and the device, or None. A 0-d CPU tensor beside device tensors is
    a scalar argument (read on the host, no copy); a CPU tensor with dimensions beside them (indices) is copied."""
    tensors = [a for a in tree_leaves((args, kwargs)) if isinstance(a, torch.Tensor)]
    if func is aten._local_scalar_dense.default and args[0].device != CPU:
        return "reads a device value on the host (a synchronisation)"
    if func is aten._to_copy.default and args[0].device == CPU and out.device != CPU:
        return "copies a tensor from the host"
    if func is aten.copy_.default and args[0].device != CPU and args[1].device == CPU:
        return "copies a tensor from the host"
    if any(t.device != CPU for t in tensors) and any(t.device == CPU and t.ndim for t in tensors):
        return "copies a host tensor into a device operation"
    return None


class HostData(TorchFunctionMode):
    """Records tensors made on the device from host data (torch.tensor([...], device=...)): their copy runs below
    the dispatcher, where Transfers does not see it."""

    FROM_HOST = (torch.tensor, torch.as_tensor, torch.asarray, torch.Tensor.new_tensor)

    def __init__(self, found: list[str]):
        super().__init__()
        self.found = found

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in self.FROM_HOST:
            return func(*args, **kwargs)
        device = kwargs.get("device")
        data = args[1] if func is torch.Tensor.new_tensor else (args[0] if args else None)
        on_device = device is not None and torch.device(device) != CPU or func is torch.Tensor.new_tensor and (
            args[0].device != CPU)
        if on_device and not isinstance(data, torch.Tensor):
            self.found.append(f"makes a device tensor from host data: {where()}")
        return func(*args, **kwargs)


class Transfers(TorchDispatchMode):
    """Records each host-device transfer with the first frames of our code that made it."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is aten._local_scalar_dense.default and args[0].device != CPU:
            self.found.append(f"{transfer(func, args, kwargs, None)}: {where()}")
            return 0.5  # a meta tensor has no value; the sampler goes on so that every transfer is listed
        out = func(*args, **kwargs)
        leaves = [o for o in tree_leaves(out) if isinstance(o, torch.Tensor)]
        if leaves and (what := transfer(func, args, kwargs, leaves[0])):
            self.found.append(f"{what}: {where()}")
        return out


def where() -> str:
    frames = [f for f in traceback.extract_stack() if "/tests/" not in f.filename and "/torch/" not in f.filename]
    return " <- ".join(f"{f.filename.rsplit('/', 2)[-2]}/{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                       for f in frames[::-1][:3])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_sampler_a_graph_captures_neither_synchronises_nor_copies_from_the_host(name):
    model, steps = meta_model(name)
    model.generate(SeedStream(0, 2, META), steps)  # GraphedSampler's warm-up: per-device caches fill here
    with Transfers() as spy, HostData(spy.found):
        model.generate(Tape(2, META), steps)  # what torch.cuda.graph records
    assert spy.found == []


def test_the_spies_see_each_kind_of_transfer():
    """Each way a sampler could reach the host is reported, so an empty list above means something."""
    x, index = torch.zeros(4, device=META), torch.tensor([0, 1])
    for make in (lambda: float(x.sum()), lambda: torch.ones(4).to(META), lambda: x.copy_(torch.ones(4)),
                 lambda: x[index], lambda: torch.tensor([1.0, 2.0], device=META), lambda: x.new_tensor([1.0])):
        with Transfers() as spy, HostData(spy.found):
            make()
        assert len(spy.found) == 1, spy.found
    with Transfers() as spy, HostData(spy.found):
        x * torch.tensor(2.0) + torch.full((), 1.0, device=META)  # a host scalar and a device fill: no transfer
    assert spy.found == []


def network_inputs(name: str, model, n: int = 2) -> tuple[tuple, dict]:
    x = torch.empty(n, *model.shape, device=META)
    if name == "ddgan":
        return (x, torch.zeros(n, dtype=torch.long, device=META), torch.empty(n, model.network.z_dim, device=META)), {}
    if name == "ddpm":
        return (x, torch.zeros(n, dtype=torch.long, device=META)), {}
    noise = [torch.empty(*shape, device=META) for shape in model.network.synthesis.noise_shapes(n)]
    return (torch.empty(n, model.network.z_dim, device=META), None, 1.0), {"noise_mode": "random", "noise": noise}


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_compiled_network_copies_nothing_from_the_host(name):
    """Inductor keeps a host-to-device copy in the graph it traces as a blocking copy at every call (unless it can
    fold it into a constant), so the traced forward graph may hold none. The network is traced as `compile` traces
    it (FastNetwork._forward, channels-last; autocast is per device type and has no meta kind, so float32)."""
    torch._dynamo.reset()
    model, _ = meta_model(name)
    found: list[str] = []

    def inspect(gm: torch.fx.GraphModule, example_inputs):
        for node in gm.graph.nodes:
            ins = [a.meta.get("val") for a in node.args if isinstance(a, torch.fx.Node)]
            if node.op == "call_function" and ins and all(isinstance(v, torch.Tensor) for v in ins) and (
                    what := transfer(node.target, ins, node.kwargs, node.meta.get("val"))):
                found.append(f"{what}: {node.meta.get('stack_trace', str(node)).strip().splitlines()[-2].strip()}")
        return gm.forward

    fast = FastNetwork(model.network, parse("fp32+cl"), CPU)
    compiled = torch.compile(fast._forward, backend=aot_autograd(fw_compiler=inspect), dynamic=False)
    args, kwargs = network_inputs(name, model)
    with torch.no_grad():
        compiled(*args, **kwargs)
    torch._dynamo.reset()
    assert found == []
