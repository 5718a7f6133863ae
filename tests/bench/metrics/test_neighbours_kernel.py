"""The compiled neighbours kernel (csrc/neighbours*.cpp) against the same rules written with torch ops."""

import pytest
import torch

from bench.metrics.neighbours import _limits
from ddgan_ref.ops import neighbours_kernel
from tests.clones import NARROWER, run_tests_with_isa

DTYPES = [torch.bfloat16, torch.float32]


@pytest.fixture(scope="module")
def kernel():
    return neighbours_kernel(torch.zeros(1, 1), "cpu")


def block(n: int, m: int, dtype: torch.dtype, seed: int) -> dict:
    g = torch.Generator().manual_seed(seed)
    x, y = torch.randn(n, 24, generator=g), torch.randn(m, 24, generator=g)
    c = (x @ y.T).to(dtype)
    sa, sb = (x.double() ** 2).sum(1), (y.double() ** 2).sum(1)
    pa, qb = torch.rand(n, generator=g, dtype=torch.float64), torch.rand(m, generator=g, dtype=torch.float64)
    return {"c": c, "sa": sa, "sb": sb, "pa": pa, "qb": qb, "kappa": 0.01}


def approximate(b: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """v' and every entry's bound e in float64, as the kernel computes them (its lists hold v' in float32)."""
    c = b["c"].double()
    return (b["sa"][:, None] + b["sb"][None, :]) - 2 * c, b["pa"][:, None] + b["qb"][None, :] + b["kappa"] * c.abs()


@pytest.mark.parametrize("dtype", DTYPES)
def test_knn_update_keeps_the_smallest_and_the_largest_bound(kernel, dtype):
    n, kk = 300, 7
    diag, off = block(n, n, dtype, 0), block(n, 200, dtype, 1)
    values, indices = torch.full((n, kk), float("inf")), torch.zeros(n, kk, dtype=torch.long)
    bound = torch.zeros(n, dtype=torch.float64)
    cols = (torch.full((200, kk), float("inf")), torch.zeros(200, kk, dtype=torch.long), torch.zeros(200).double())
    nothing = (torch.empty(0, 0), torch.empty(0, 0, dtype=torch.long), torch.empty(0, dtype=torch.float64))
    kernel.knn_update(**diag, diagonal=True, row_values=values, row_indices=indices, row_bound=bound,
                      col_values=nothing[0], col_indices=nothing[1], col_bound=nothing[2], row_offset=0, col_offset=0)
    kernel.knn_update(**off, diagonal=False, row_values=values, row_indices=indices, row_bound=bound,
                      col_values=cols[0], col_indices=cols[1], col_bound=cols[2], row_offset=0, col_offset=n)
    (v_diag, e_diag), (v_off, e_off) = approximate(diag), approximate(off)
    v_diag, v_off = v_diag.float().fill_diagonal_(0), v_off.float()
    e_diag.fill_diagonal_(0)  # the self entry is exact
    every = torch.cat([v_diag, v_off], 1)
    torch.testing.assert_close(values, every.topk(kk, dim=1, largest=False).values, rtol=1e-6, atol=0)
    torch.testing.assert_close(every.gather(1, indices), values, rtol=1e-6, atol=0)
    torch.testing.assert_close(bound, torch.cat([e_diag, e_off], 1).amax(1))
    torch.testing.assert_close(cols[0], v_off.T.topk(kk, dim=1, largest=False).values, rtol=1e-6, atol=0)
    torch.testing.assert_close(v_off.T.gather(1, cols[1]), cols[0], rtol=1e-6, atol=0)
    torch.testing.assert_close(cols[2], e_off.amax(0))


@pytest.mark.parametrize("dtype", DTYPES)
def test_classify_decides_what_the_bound_allows_and_lists_the_rest(kernel, dtype):
    b = block(250, 180, dtype, 2)
    v, e = approximate(b)
    g = torch.Generator().manual_seed(3)
    t_row = v.quantile(0.02, dim=1).float() * torch.empty(250).uniform_(0.9, 1.1, generator=g)
    t_col = v.quantile(0.02, dim=0).float()
    t_row[:5] = 0  # radius 0: nothing is inside
    counts, covered, recalled, und_row, und_col = kernel.classify(**b, lo_row=_limits(t_row)[0],
                                                                  hi_row=_limits(t_row)[1],
                                                                  lo_col=_limits(t_col)[0], hi_col=_limits(t_col)[1])
    for t, (counts_or_none, und) in ((t_row[:, None], (counts, und_row)), (t_col[None, :], (None, und_col))):
        lo, hi = _limits(t)
        inside = v + e < lo
        undecided = ~inside & (v - e < hi)
        assert torch.equal(und[(und[:, 0] * 1000 + und[:, 1]).argsort()], undecided.nonzero())  # threads' order
        if counts_or_none is not None:
            assert torch.equal(counts, inside.sum(0, dtype=torch.int32))
            assert torch.equal(covered, inside.any(1))
            assert not inside[:5].any()
        else:
            assert torch.equal(recalled, inside.any(1))
    assert 0 < len(und_row) < v.numel() // 10  # the test exercises both outcomes


def test_kernel_arguments_are_checked_by_name(kernel):
    b = block(10, 12, torch.float32, 4)
    lists = (torch.zeros(10, 3), torch.zeros(10, 3, dtype=torch.long), torch.zeros(10, dtype=torch.float64))
    nothing = (torch.empty(0, 0), torch.empty(0, 0, dtype=torch.long), torch.empty(0, dtype=torch.float64))
    with pytest.raises(RuntimeError, match="c must be bfloat16 or float32, got Double"):
        kernel.knn_update(**{**b, "c": b["c"].double()}, diagonal=False, row_values=lists[0], row_indices=lists[1],
                          row_bound=lists[2], col_values=nothing[0], col_indices=nothing[1], col_bound=nothing[2],
                          row_offset=0, col_offset=0)
    with pytest.raises(RuntimeError, match=r"sb must have shape \[12\], got \[11\]"):
        kernel.classify(**{**b, "sb": b["sb"][:11]}, lo_row=b["pa"], hi_row=b["pa"], lo_col=b["qb"], hi_col=b["qb"])
    with pytest.raises(RuntimeError, match="a diagonal block must be square"):
        kernel.knn_update(**b, diagonal=True, row_values=lists[0], row_indices=lists[1], row_bound=lists[2],
                          col_values=nothing[0], col_indices=nothing[1], col_bound=nothing[2], row_offset=0,
                          col_offset=0)
    with pytest.raises(RuntimeError, match=r"row_values must have shape \[10, kk >= 1\]"):
        kernel.knn_update(**b, diagonal=False, row_values=lists[0][:9], row_indices=lists[1], row_bound=lists[2],
                          col_values=nothing[0], col_indices=nothing[1], col_bound=nothing[2], row_offset=0,
                          col_offset=0)


@pytest.mark.parametrize("isa", NARROWER)
def test_kernel_narrower_clones_pass_the_same_tests(isa):
    """The AVX2 and baseline clones (DDGAN_CPU_ISA lowers the choice in a child process) against the same rules."""
    run_tests_with_isa(isa, __file__, "not narrower_clones")
