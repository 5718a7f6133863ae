"""bench.speed: the settings' notation and refusals, every setting on every family's tiny preset on the CPU
(close to float32, NFE counted, the model untouched, same images across batch sizes where promised), the CUDA
graph's noise tape on the CPU, and the captured sampler itself under the `cuda` marker."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from bench import speed, timing
from bench.devices import resolve_device
from bench.plan import Entry, cells, samples_of
from bench.registry import FAMILIES, build_model
from bench.speed import FastNetwork, SpeedConfig, Tape
from ddgan_ref.ops import using
from ddgan_ref.rng import SeedStream

CPU = torch.device("cpu")


def test_notation_round_trips_and_names_bad_tokens():
    s = speed.parse("bf16+cl+compile=max-autotune+graphs")
    assert s == SpeedConfig("bf16", True, "max-autotune", True) and speed.parse(s.label) == s
    assert speed.parse("fp32") == SpeedConfig() and SpeedConfig().reference and not s.reference
    assert speed.parse("tf32+compile").label == "tf32+compile"
    for bad, word in (("bf16+fast", "'fast'"), ("bf16+fp16", "'fp16'"), ("compile=turbo", "compile=turbo")):
        with pytest.raises(ValueError, match=word):
            speed.parse(bad)
    assert [c.label for c in speed.expand(["fast", "bf16+cl", "fp32"], CPU)] == list(speed.FAST["cpu"])


@pytest.mark.parametrize("spec, words", [("tf32", "TF32 is a CUDA"), ("fp16", "use bf16"), ("bf16+graphs",
                                         "CUDA graphs need"), ("compile=reduce-overhead", "use compile")])
def test_cpu_refuses_what_it_cannot_run(spec, words):
    with pytest.raises(ValueError, match=words):
        speed.apply(build_model("ddgan", "tiny"), speed.parse(spec))


@pytest.mark.parametrize("mode", ["reduce-overhead", "max-autotune"])
def test_graphs_refuse_a_compile_mode_that_captures_graphs_of_its_own(mode):
    with pytest.raises(ValueError, match=f"compile={mode} captures CUDA graphs of its own"):
        speed.check(speed.parse(f"bf16+compile={mode}+graphs"), torch.device("cuda"))


def test_fast_cells_follow_their_float32_cell_and_draw_its_seeds():
    bf16 = speed.parse("bf16+cl")
    plan = cells(Entry("ddpm", "ddpm"), True, (bf16,))
    assert [c.id for c in plan] == ["ddpm", "ddpm@bf16+cl", "ddpm-10", "ddpm-10@bf16+cl", "ddpm-50", "ddpm-50@bf16+cl"]
    assert plan[1].base_id == "ddpm" and plan[1].speed == bf16 and plan[0].speed.reference
    run = SimpleNamespace(n=1000, cell_n=(("ddpm", 50),))
    assert [samples_of(run, c) for c in plan[:3]] == [50, 50, 1000]


def test_quality_cost_measures_and_flags_beyond_the_tolerance():
    ref = torch.zeros(4, 3, 2, 2)
    near = ref.clone()
    near[0, 0, 0, 0] = 0.4  # one pixel far off, the mean still small
    cost = speed.quality_cost(near, ref, {"fid": 10.3, "kid": 0.1}, {"fid": 10.0, "kid": 0.09, "is": 3.0}, "fid",
                              "ddgan-t4")
    assert cost["max_abs_diff"] == pytest.approx(0.4) and cost["mean_abs_diff"] == pytest.approx(0.4 / 48)
    assert cost["delta"] == pytest.approx({"fid": 0.3, "kid": 0.01}) and cost["flagged"] is None
    assert cost["against"] == "ddgan-t4" and cost["images"] == 4 and cost["metrics_compared"]
    moved = speed.quality_cost(near, ref, {"fid": 11.0}, {"fid": 10.0}, "fid", "x")["flagged"]
    assert moved == "fid moved +1 from 10 (> 5%)"
    blurred = speed.quality_cost(ref + 0.05, ref, {"fid": 10.0}, {"fid": 10.0}, "fid", "x")["flagged"]
    assert blurred == "mean |difference| 0.0500 > 0.02"
    alone = speed.quality_cost(near, ref, {"fid": 99.0}, None, "fid", "x")  # the float32 cell failed
    assert alone["delta"] == {} and not alone["metrics_compared"] and alone["flagged"] is None
    overflowed = ref.clone()
    overflowed[0, 0, 0, 0] = float("nan")  # fp16 overflow: NaN pixels and a NaN metric are beyond any tolerance
    nan = speed.quality_cost(overflowed, ref, {"fid": float("nan")}, {"fid": 10.0}, "fid", "x")["flagged"]
    assert nan == "mean |difference| nan > 0.02; fid moved +nan from 10 (> 5%)"


def test_compile_without_a_compiler_says_so(monkeypatch):
    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(speed.shutil, "which", lambda name: None)
    with pytest.raises(ValueError, match="no C\\+\\+ compiler"):
        speed.check(speed.parse("compile"), CPU)


EAGER = ("bf16", "fp32+cl", "bf16+cl")


@pytest.mark.parametrize("spec", EAGER)
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_every_eager_setting_on_every_family(name, spec):
    torch.manual_seed(0)
    ref = build_model(name, "tiny")
    weights = {k: v.clone() for k, v in ref.network.state_dict().items()}
    fast = speed.apply(ref, speed.parse(spec))
    steps = ref.default_steps
    x, y = ref.sample(6, steps, seed=3), fast.sample(6, steps, seed=3)
    assert y.dtype == torch.float32 and y.shape == x.shape and y.is_contiguous() and y.abs().max() <= 1
    tol = 0 if spec == "fp32+cl" else 0.1  # bfloat16 keeps 8 bits of mantissa
    assert (x - y).abs().mean() <= tol + 1e-5
    assert timing.count_calls(fast, lambda: fast.sample(2, steps, seed=0)) == steps
    assert not isinstance(ref.network, FastNetwork)  # the model itself is untouched
    for k, v in ref.network.state_dict().items():
        assert torch.equal(v, weights[k]) and v.is_contiguous()
    halves = torch.cat([fast.sample(2, steps, seed=3), fast.sample(4, steps, seed=5)])
    torch.testing.assert_close(y, halves, atol=1e-4, rtol=0)  # every eager CPU setting is batch_invariant
    assert speed.parse(spec).batch_invariant(torch.device("cpu"))
    with pytest.raises(ValueError):
        fast.sample(1, steps + 1)


def test_fast_network_keeps_float32_outside_and_the_wrapped_attributes():
    torch.manual_seed(0)
    m = build_model("stylegan2", "tiny")
    net = FastNetwork(m.network, speed.parse("bf16+cl"), CPU)
    assert net.z_dim == m.network.z_dim and net.synthesis is m.network.synthesis
    with pytest.raises(AttributeError):
        net.no_such_attribute  # noqa: B018


# Inductor takes 10-60 s per tiny network on 2 cores: StyleGAN2's (the quickest) runs by default, the others under
# `slow`.
@pytest.mark.parametrize("name", [pytest.param("ddgan", marks=pytest.mark.slow),
                                  pytest.param("ddpm", marks=pytest.mark.slow), "stylegan2"])
def test_compiled_setting_on_every_family(name):
    """torch.compile (inductor's C++ backend) on the CPU: close to eager float32, NFE still counted."""
    torch.manual_seed(0)
    ref = build_model(name, "tiny")
    fast = speed.apply(ref, speed.parse("fp32+compile"))
    steps = ref.default_steps
    torch.testing.assert_close(fast.sample(4, steps, seed=1), ref.sample(4, steps, seed=1), atol=1e-3, rtol=0)
    assert timing.count_calls(fast, lambda: fast.sample(4, steps, seed=1)) == steps


@pytest.fixture
def tf32_switches():
    """The two process-wide TF32 switches, restored after the test. Saved and set by hand: monkeypatch (pytest
    9.2) undoes an attribute the instance dict lacks by deleting it, and torch's cuBLAS module serves allow_tf32
    from __getattr__ and refuses the delete."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_tf32_sets_both_switches_inside_its_block_and_restores_them(monkeypatch, tf32_switches):
    """`tf32(False)` turns off the TF32 PyTorch allows cuDNN convolutions by default; exact_float32, which every
    command applies to a CUDA device (resolve_device), turns both off for the process."""
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    for enabled in (True, False):
        with pytest.raises(RuntimeError), speed.tf32(enabled):
            assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (enabled, enabled)
            raise RuntimeError
        assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32) == (False, False)


class FromTape:
    """Hands out a Tape's buffers in their order: what a replayed CUDA graph reads."""

    def __init__(self, tape: Tape):
        self.n, self.buffers = tape.n, iter(buffer for *_, buffer in tape.draws)

    def randn(self, *shape):
        return next(self.buffers)

    def randint(self, high):
        return next(self.buffers)


@pytest.mark.parametrize("impl", ["ref", "cpu"])
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_tape_fill_draws_what_the_eager_sampler_draws(name, impl):
    """The graph's inputs: recording a sampler's draws and filling them for a seed gives that seed's numbers, with
    either implementation of the per-row draws, and a later fill replaces the earlier one's numbers."""
    torch.manual_seed(0)
    m = build_model(name, "tiny")
    tape = Tape(3, CPU)
    m.generate(tape, m.default_steps)
    assert tape.draws
    with using(impl):
        tape.fill(3)
        tape.fill(7)
    torch.testing.assert_close(m.generate(FromTape(tape), m.default_steps), m.sample(3, m.default_steps, seed=7),
                               atol=0, rtol=0)


def test_tape_fill_follows_its_draws_when_they_change_and_does_nothing_without_any():
    tape = Tape(4, CPU)
    tape.fill(0)  # a sampler that draws nothing
    tape.randn(1)
    tape.fill(0)
    tape.draws.clear()
    buffer = tape.randn(5)
    tape.fill(3)
    assert torch.equal(buffer, SeedStream(3, 4).randn(5))


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_cuda_graphs_replay_the_eager_sampler(name):
    """Captured once per batch size, replayed per seed: float32 graphs equal eager sampling, image i depends only
    on seed + i, NFE is counted per replay; bf16 graphs stay close to float32."""
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    torch.manual_seed(0)
    ref = build_model(name, "tiny", device="cuda")
    steps = ref.default_steps
    graphed = speed.apply(ref, speed.parse("fp32+graphs"))
    with speed.tf32(False):  # float32 as the commands run it (bench.devices.exact_float32)
        x = ref.sample(8, steps, seed=11)
    torch.testing.assert_close(graphed.sample(8, steps, seed=11), x, atol=1e-5, rtol=0)
    torch.testing.assert_close(graphed.sample(8, steps, seed=11), x, atol=1e-5, rtol=0)  # a replay, not a capture
    assert not torch.equal(graphed.sample(8, steps, seed=12), x)
    torch.testing.assert_close(torch.cat([graphed.sample(4, steps, seed=11), graphed.sample(4, steps, seed=15)]), x,
                               atol=1e-4, rtol=0)  # batch_invariant's promise: another batch, other algorithms
    assert timing.count_calls(graphed, lambda: graphed.sample(8, steps, seed=0)) == steps
    low = speed.apply(ref, speed.parse("bf16+cl+graphs"))
    assert (low.sample(8, steps, seed=11) - x).abs().mean() < 0.1


def test_batch_invariance_is_promised_only_where_it_is_tested():
    """Eager float32 everywhere and eager bfloat16 on a CPU (tested above); on CUDA a reduced precision meets
    per-shape cuBLAS algorithms, and compiled code per-shape kernels, so neither is promised."""
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    promised = {(spec, dev.type): speed.parse(spec).batch_invariant(dev)
                for spec in ("fp32", "fp32+cl", "bf16+cl", "tf32", "fp16", "bf16+compile", "fp32+graphs")
                for dev in (cpu, cuda)}
    assert [k for k, v in promised.items() if v] == [("fp32", "cpu"), ("fp32", "cuda"), ("fp32+cl", "cpu"),
                                                     ("fp32+cl", "cuda"), ("bf16+cl", "cpu"),
                                                     ("fp32+graphs", "cpu"), ("fp32+graphs", "cuda")]
