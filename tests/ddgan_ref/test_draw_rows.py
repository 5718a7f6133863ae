"""ddgan_ref.ops.draw_rows: the compiled per-row draws are torch.randn / torch.randint's numbers, row by row and
draw after draw, whatever the shapes (normal_ takes another path below 16 numbers), the batch and the threads."""

from __future__ import annotations

import importlib

import numpy
import pytest
import torch

from ddgan_ref.ops import draw_rows, using
from ddgan_ref.rng import SeedStream

draw_rows_module = importlib.import_module("ddgan_ref.ops.draw_rows")  # the attribute of that name is the function
SHAPES = [(1,), (15,), (16,), (17,), (2,), (256,), (3, 32, 32)]  # 100 rows of 3x32x32 spread over tasks


def generators(seed: int, n: int) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(seed + i) for i in range(n)]


def per_generator_calls(seed: int, n: int, draws: list[tuple[int, tuple[int, ...]]]) -> list[torch.Tensor]:
    """What each generator draws when called once per draw, in order: the definition draw_rows keeps."""
    rows = [[torch.randint(high, shape, generator=g) if high else torch.randn(shape, generator=g) for high, shape
             in draws] for g in generators(seed, n)]
    return [torch.stack([row[d] for row in rows]) for d in range(len(draws))]


def buffers(n: int, draws: list[tuple[int, tuple[int, ...]]]) -> list[torch.Tensor]:
    return [torch.full((n, *shape), -1, dtype=torch.long if high else torch.float32) for high, shape in draws]


@pytest.mark.parametrize("impl", ["cpu", "ref"])
@pytest.mark.parametrize("n", [1, 7, 100])
def test_every_row_gets_its_generators_numbers_draw_after_draw(impl, n):
    draws = [(0, shape) for shape in SHAPES] + [(10, ()), (0, (3, 32, 32)), (1000, (2,))]
    got = buffers(n, draws)
    draw_rows(got, [high for high, _ in draws], generators(5, n), impl=impl)
    for g, want in zip(got, per_generator_calls(5, n, draws), strict=True):
        assert torch.equal(g, want)


def test_buffers_made_in_inference_mode_are_drawn_into_by_the_kernels_threads():
    with torch.inference_mode():
        got = torch.empty(100, 3, 32, 32)
        draw_rows([got], [0], generators(3, 100), impl="cpu")
    assert torch.equal(got, per_generator_calls(3, 100, [(0, (3, 32, 32))])[0])


@pytest.mark.parametrize("impl", ["cpu", "ref"])
def test_a_draw_is_an_in_place_update_to_autograd_as_the_callers_own_would_be(impl):
    """The kernel's threads run under the caller's modes: an inference tensor is refused outside inference mode,
    and a drawn buffer's version moves, so a graph that saved it refuses to go backward."""
    with torch.inference_mode():
        inference = torch.empty(100, 3, 32, 32)
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        draw_rows([inference], [0], generators(0, 100), impl=impl)
    w, x = torch.ones(3, 32, 32, requires_grad=True), torch.zeros(100, 3, 32, 32)
    loss = (w * x).sum()
    draw_rows([x], [0], generators(0, 100), impl=impl)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_a_using_cuda_block_draws_with_the_kernel_as_auto_does(monkeypatch):
    """The draws are on the CPU whatever the device, so a block asking for the CUDA kernels samples as before."""
    with using("cuda"):
        got = SeedStream(4, 3).randn(5)
    assert torch.equal(got, per_generator_calls(4, 3, [(0, (5,))])[0])
    with pytest.raises(RuntimeError, match=r"draw_rows: there is no cuda kernel"):
        draw_rows([torch.empty(3, 5)], [0], generators(4, 3), impl="cuda")  # asked for by name: refused


def test_auto_and_cpu_take_the_kernel_and_ref_the_twin(monkeypatch):
    twin_calls = []
    monkeypatch.setattr(draw_rows_module, "_loop", lambda *args: twin_calls.append(args))  # the twin's loop
    for impl in ("auto", "cpu", None):
        got = torch.empty(4, 3)
        draw_rows([got], [0], generators(0, 4), impl=impl)
        assert not twin_calls and torch.equal(got, per_generator_calls(0, 4, [(0, (3,))])[0])
    with using("ref"):
        draw_rows([got], [0], generators(0, 4))
    assert len(twin_calls) == 1


def test_seed_stream_draws_the_same_numbers_through_either_implementation_and_any_batch_split():
    with using("ref"):
        reference = SeedStream(9, 100)
        want = reference.randn(3, 32, 32), reference.randint(7)
    with using("cpu"):
        whole = SeedStream(9, 100)
        got = whole.randn(3, 32, 32), whole.randint(7)
        parts = [SeedStream(9 + lo, 25) for lo in range(0, 100, 25)]
        split = torch.cat([p.randn(3, 32, 32) for p in parts]), torch.cat([p.randint(7) for p in parts])
    for a, b, c in zip(want, got, split, strict=True):
        assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize(("args", "message"), [
    (([torch.empty(3, 2)], [0, 1], 3), "one high per buffer"),
    (([torch.empty(3, 2)], [0], 0), "at least one generator"),
    (([torch.empty(4, 2)], [0], 3), r"buffer 0 must be a contiguous CPU tensor with 3 rows.*got \(4, 2\)"),
    (([torch.empty(2, 3).t()], [0], 3), "buffer 0 must be a contiguous CPU tensor"),
    (([torch.empty(3, 2, dtype=torch.float64)], [0], 3), "buffer 0 with high 0 must be torch.float32"),
    (([torch.empty(3, 2), torch.empty(3)], [0, 5], 3), "buffer 1 with high 5 must be torch.int64"),
    (([torch.empty(3, dtype=torch.long)], [-1], 3), "high >= 0"),
    (([torch.empty(3, dtype=torch.long)], [True], 3), "high 0 must be an integer, got True"),
    (([torch.empty(3, dtype=torch.long)], [2.7], 3), "high 0 must be an integer, got 2.7"),
], ids=["highs", "no-generators", "rows", "strided", "float64", "int-buffer", "negative-high", "bool", "float"])
@pytest.mark.parametrize("impl", ["cpu", "ref"])
def test_buffers_that_do_not_fit_are_refused_saying_what_they_must_be(args, message, impl):
    bufs, highs, n = args
    with pytest.raises(ValueError, match=message):
        draw_rows(bufs, highs, generators(0, n), impl=impl)


def test_seed_stream_refuses_an_empty_integer_range():
    with pytest.raises(ValueError, match="randint needs high >= 1, got 0"):
        SeedStream(0, 2).randint(0)


@pytest.mark.parametrize("impl", ["cpu", "ref"])
def test_a_generator_shared_by_two_rows_is_refused(impl):
    """Rows on threads would take turns on it in no set order, so the numbers would not be the loop's."""
    g = torch.Generator().manual_seed(0)
    with pytest.raises(ValueError, match="each row needs a generator of its own"):
        draw_rows([torch.empty(2, 3)], [0], [g, g], impl=impl)


def test_integer_highs_of_any_integer_type_are_taken():
    got = torch.empty(4, dtype=torch.long)
    draw_rows([got], [numpy.int64(7)], generators(1, 4), impl="cpu")
    assert torch.equal(got, per_generator_calls(1, 4, [(7, ())])[0])


def test_the_twin_draws_float32_whatever_the_default_dtype():
    saved = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        got, twin = torch.empty(3, 20, dtype=torch.float32), torch.empty(3, 20, dtype=torch.float32)
        draw_rows([got], [0], generators(2, 3), impl="cpu")
        draw_rows([twin], [0], generators(2, 3), impl="ref")
    finally:
        torch.set_default_dtype(saved)
    assert torch.equal(got, twin)
