"""Precision, recall, density and coverage (Naeem et al., ICML 2020) with the values of prdc 0.2, in blocks.

prdc 0.2 (`prdc.compute_prdc`) builds three dense distance matrices with scikit-learn (the formula is in
`bench.metrics.distances`). A radius is the (k+1)-th smallest distance of a row (self included, at 0) and every
test is a strict `<`. This module gets the same values block by block, in O((N + M) x block) memory:
- a test d < r is done as v < t(r), t(r) the smallest representable v with sqrt(v) >= r (no square roots);
- float32 features on CPU: each block gets a first pass (`FirstPass`): one matrix product in bfloat16 (on CPUs
  with bfloat16 matrix instructions, where it is faster than float32) or float32, whose error against the float64
  formula is bounded per entry. Entries the bound decides are final; the others (a comparison, or the rank of a
  radius) go to a float32 recount of those pairs after a bfloat16 pass, then to float64; a block with many
  undecided entries is recomputed whole. The compiled `neighbours` kernel (csrc/) merges nearest-candidate
  lists and runs the tests in one pass over each product; without it torch ops do the same in several passes;
- float32 on CUDA, and every other dtype: blocks in float64, cast as scikit-learn casts (no TF32 anywhere).
Ties behave as in prdc (strict `<`, self at 0): on exactly representable features (integer-valued, constant)
the results are identical; for duplicated rows of arbitrary floats prdc's own result depends on BLAS rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import NamedTuple

import torch
from torch import Tensor

from bench.metrics.distances import (
    U32,
    Points,
    bfloat16_is_fast,
    exact_block,
    exact_pairs,
    float32_bound,
    float32_pairs,
    product,
    root,
    threshold,
    to_float32,
)
from ddgan_ref.ops import neighbours_kernel

EXTRA_CANDIDATES = 4  # approximate nearest neighbours kept beyond the k + 1 a radius needs (float32 pass)
BF16_EXTRA_CANDIDATES = 12  # the same after a bfloat16 pass, whose wider bounds blur more ranks
REFINE_LIMIT = 0.02  # above this fraction of undecided entries a block is recomputed whole
FIRST_PASSES = ("auto", "float32", "bfloat16")
BF16_MIN_DIM = 64  # "auto" takes bfloat16 from this many dims on: below, products are cheap and recounts are not


@dataclass(frozen=True)
class FirstPass:
    """How blocks of two float32 CPU feature sets are first computed (active; otherwise float64 blocks): the
    product's precision, and the compiled kernel that merges and tests them (None: torch ops)."""

    active: bool
    bfloat16: bool = False
    kernel: ModuleType | None = None

    @classmethod
    def choose(cls, a: Points, b: Points, impl: str | None = None, first_pass: str = "auto") -> FirstPass:
        """impl (`ddgan_ref.ops.neighbours_kernel`): "auto" (the kernel if it builds, else torch ops with one
        warning), "cpu" (the kernel or an error), "ref" (torch ops), None (the `using()` default); first_pass: "auto"
        (bfloat16 where `bfloat16_is_fast` and features have at least BF16_MIN_DIM dims), "bfloat16", "float32"."""
        if first_pass not in FIRST_PASSES:
            raise ValueError(f"first_pass must be one of {', '.join(FIRST_PASSES)}, got {first_pass!r}")
        if not (a.approximate and b.approximate):
            if impl == "cpu":
                raise ValueError("impl='cpu' (the compiled first pass) needs float32 features on the CPU, got "
                                 f"{a.x.dtype} on {a.x.device} and {b.x.dtype} on {b.x.device}; use 'auto' or 'ref'")
            return cls(False)
        wide = a.x.shape[1] >= BF16_MIN_DIM
        bf16 = first_pass == "bfloat16" or (first_pass == "auto" and wide and bfloat16_is_fast())
        return cls(True, bf16, neighbours_kernel(a.x, impl))

    def describe(self) -> str:
        if not self.active:
            return "float64 blocks"
        return f"{'bfloat16' if self.bfloat16 else 'float32'} first pass, {'cpu kernel' if self.kernel else 'torch'}"


class Approx(NamedTuple):
    """A block's first pass for the torch path: v' [n, m] float32, float64 bounds per row [n, 1] and column
    [m, 1] on the error of each of its entries, and whether the product was bfloat16."""

    d2: Tensor
    row_bound: Tensor
    col_bound: Tensor
    bfloat16: bool


def approximate(a: Points, b: Points, bfloat16: bool, diagonal: bool = False) -> Approx:
    """The first pass of block (a, b) with torch ops; diagonal: a and b are the same points (self at 0)."""
    prod = product(a, b, bfloat16)
    if diagonal:
        prod.c.fill_diagonal_(0)
    d2 = (a.sq[:, None].float() + b.sq[None, :].float()).add_(prod.c, alpha=-2)
    if diagonal:
        d2.fill_diagonal_(0)
    row, col = prod.pa + prod.qb.max(), prod.qb + prod.pa.max()
    if prod.kappa:
        c_abs = prod.c.abs()  # abs, then amax: aminmax and inf-norms are slow on bfloat16
        row, col = row + prod.kappa * c_abs.amax(1).double(), col + prod.kappa * c_abs.amax(0).double()
    return Approx(d2, row[:, None], col[:, None], bfloat16)


def _limits(t: Tensor) -> tuple[Tensor, Tensor]:
    """float64 (lo, hi) for the exact test v < t: v' + e < lo proves it (nothing is below t = 0; the float32
    rounding of v), v' - e >= hi disproves it (hi covers float64 roundings of v' and e)."""
    t = t.double()
    return torch.where(t > 0, t * (1 - 2 * U32), -float("inf")), t * (1 + 2.0**-48)


def _split(v: Tensor, bound: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """(sure, unsure) masks for the exact test v_exact < t from an approximation v (float32) within `bound`
    (float64) of the float64 formula: sure = surely true, unsure = undecided."""
    lo, hi = _limits(t)
    sure = v < to_float32(lo - bound, -float("inf"))
    return sure, (v < to_float32(hi + bound, float("inf"))) ^ sure


def less_than(a: Points, b: Points, t: Tensor, along_rows: bool, approx: Approx | None) -> Tensor:
    """Bool [len(a), len(b)]: d(a_i, b_j) < r exactly as prdc, r = radii[i] (along_rows) or radii[j], given
    t = threshold(radii) for those rows or columns and approx = approximate(a, b) (None: float64 blocks)."""
    t_b = t[:, None] if along_rows else t[None, :]
    if approx is None:
        return exact_block(a, b) < t_b
    sure, unsure = _split(approx.d2, approx.row_bound if along_rows else approx.col_bound.T, t_b)
    if not unsure.any():
        return sure
    i, j = unsure.nonzero(as_tuple=True)
    if len(i) > REFINE_LIMIT * unsure.numel():
        return exact_block(a, b) < t_b
    sure[i, j] = _pairs_less_than(a, i, b, j, t[i] if along_rows else t[j], approx.bfloat16)
    return sure


def _pairs_less_than(a: Points, i: Tensor, b: Points, j: Tensor, t: Tensor, bfloat16: bool) -> Tensor:
    """v(a[i], b[j]) < t exactly; after a bfloat16 first pass a float32 one decides most pairs, float64 the rest."""
    if not bfloat16:
        return exact_pairs(a, i, b, j) < t
    sure, unsure = _split(*float32_pairs(a, i, b, j), t)
    k = unsure.nonzero().flatten()
    sure[k] = exact_pairs(a, i[k], b, j[k]) < t[k]
    return sure


def _merge(best: tuple[Tensor, Tensor], rows: slice, d2: Tensor, offset: int) -> None:
    """Keep in best[rows] the k smallest of (best[rows], this block's rows)."""
    k = best[0].shape[1]
    v, i = d2.topk(min(k, d2.shape[1]), dim=1, largest=False)
    v, i = torch.cat([best[0][rows], v], 1), torch.cat([best[1][rows], i + offset], 1)
    top = v.topk(k, dim=1, largest=False, sorted=True)
    best[0][rows], best[1][rows] = top.values, i.gather(1, top.indices)


def _check(real: Points, fake: Points, nearest_k: int) -> None:
    if not isinstance(nearest_k, int) or nearest_k < 1:
        raise ValueError(f"nearest_k must be a positive int, got {nearest_k!r}")
    if real.x.shape[1] != fake.x.shape[1]:
        raise ValueError(f"real features have {real.x.shape[1]} dims but fake features {fake.x.shape[1]}")
    if min(len(real), len(fake)) <= nearest_k:
        raise ValueError(f"nearest_k={nearest_k} needs more than {nearest_k} real and fake samples; "
                         f"got {len(real)} real and {len(fake)} fake")


def _common(p: Points, other: Points) -> Points:
    """p in the dtype scikit-learn uses for a pair: float32 only if both are float32."""
    return p if p.x.dtype == other.x.dtype else Points(p.x.double(), p.sq)


def _candidates(p: Points, kk: int, block: int, first: FirstPass) -> tuple[Tensor, Tensor, Tensor]:
    """Approximate kk nearest points (self included, at 0) of every point, ascending: squared distances [n, kk]
    (float32), indices [n, kk], and a float64 bound [n] on the error of every approximate distance of each row.
    Each block of the symmetric matrix is computed once."""
    n = len(p)
    best = (torch.full((n, kk), float("inf")), torch.zeros(n, kk, dtype=torch.long))
    delta = torch.zeros(n, dtype=torch.float64)
    nothing = (torch.empty(0, 0), torch.empty(0, 0, dtype=torch.long), torch.empty(0, dtype=torch.float64))
    for s in range(0, n, block):
        rows = slice(s, min(s + block, n))
        for t in range(s, n, block):
            cols = slice(t, min(t + block, n))
            a, b = p.part(rows), p.part(cols)
            if first.kernel is not None:
                prod = product(a, b, first.bfloat16)
                col_lists = (best[0][cols], best[1][cols], delta[cols]) if s != t else nothing
                first.kernel.knn_update(prod.c, a.sq, b.sq, prod.pa, prod.qb, prod.kappa, s == t, best[0][rows],
                                        best[1][rows], delta[rows], *col_lists, s, t)
                continue
            approx = approximate(a, b, first.bfloat16, diagonal=s == t)
            delta[rows] = torch.maximum(delta[rows], approx.row_bound[:, 0])
            _merge(best, rows, approx.d2, t)
            if s != t:
                delta[cols] = torch.maximum(delta[cols], approx.col_bound[:, 0])
                _merge(best, cols, approx.d2.T.contiguous(), s)  # transposed: topk is fastest along contiguous rows
    return *best, delta


def _kth_exact_rows(p: Points, rows: Tensor, k: int, block: int) -> Tensor:
    """v of the (k+1)-th smallest distance of the given rows (self at 0), computed whole in float64."""
    out = [torch.zeros(0, dtype=p.x.dtype, device=p.x.device)]
    for s in range(0, len(rows), block):
        r = rows[s:s + block]
        v = exact_block(p.part(r), p)
        v[torch.arange(len(r), device=v.device), r] = 0
        out.append(v.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _kth_from_candidates(p: Points, approx: Tensor, idx: Tensor, delta: Tensor, k: int,
                         rows: Tensor | None = None) -> Tensor:
    """v of each row's (k+1)-th smallest distance among its ascending approximate candidates, delta [n] a bound
    on the error of every approximate value of the row; rows: the points the rows belong to (default: all)."""
    n, kk = idx.shape
    delta = delta[:, None]
    # Candidates whose error intervals chain into the k-th one's form its cluster: everything before the cluster
    # is surely smaller, everything after surely larger, so only the cluster is recounted in float64.
    breaks = torch.cat([(approx[:, 1:] - approx[:, :-1]) > 2 * delta, torch.ones(n, 1, dtype=torch.bool)], 1)
    pos = torch.arange(kk)  # breaks[:, j]: a gap after candidate j (and always after the last one)
    first = torch.where(breaks[:, :k], pos[1:k + 1], 0).amax(dim=1)
    last = torch.where(breaks[:, k:], pos[k:], kk - 1).amin(dim=1)
    member = (pos >= first[:, None]) & (pos <= last[:, None])
    i, j = member.nonzero(as_tuple=True)
    v = torch.full((n, kk), float("inf"), dtype=p.x.dtype)
    point = i if rows is None else rows[i]
    v[i, j] = exact_pairs(p, point, p, idx[i, j]).masked_fill(idx[i, j] == point, 0)
    return v.sort(dim=1).values.gather(1, (k - first)[:, None])[:, 0]


def _doubtful(floor: Tensor, kth: Tensor, kk: int, n: int) -> Tensor:
    """Rows whose k-th value a point outside their kk candidates (all at least `floor`) could still undercut."""
    return floor <= kth.double() * (1 + 4 * U32) if kk < n else torch.zeros(len(kth), dtype=torch.bool)


def _kth_float32_rows(p: Points, rows: Tensor, k: int, kk: int, block: int) -> tuple[Tensor, Tensor]:
    """The k-th values of the given rows from a float32 pass over whole rows, and the rows it cannot prove."""
    out, left = [torch.zeros(0, dtype=p.x.dtype)], [torch.zeros(0, dtype=torch.long)]
    for s in range(0, len(rows), block):
        r = rows[s:s + block]
        a = p.part(r)
        d2 = torch.addmm(a.sq[:, None].float() + p.sq[None, :].float(), a.x, p.x.T, alpha=-2)
        d2[torch.arange(len(r)), r] = 0
        approx, idx = d2.topk(kk, dim=1, largest=False)
        delta = float32_bound(p.x.shape[1], a.sq + p.sq.max())
        out.append(_kth_from_candidates(p, approx, idx, to_float32(delta, float("inf")), k, rows=r))
        left.append(r[_doubtful(approx[:, -1].double() - delta, out[-1], kk, len(p))])
    return torch.cat(out), torch.cat(left)


def _float32_candidates(p: Points, idx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The candidates idx [n, kk] again with float32 approximate values (self at 0), ascending, and a float64
    bound [n] on their error (the float32 product's, per row)."""
    n, kk = idx.shape
    step = max(1, (1 << 20) // (kk * p.x.shape[1]))  # a few MiB of gathered rows at a time
    dots = [(p.x[idx[s:s + step]] * p.x[s:s + step, None]).sum(2) for s in range(0, n, step)]
    v = (p.sq[:, None].float() + p.sq[idx].float()) - 2 * torch.cat(dots)
    v = v.masked_fill_(idx == torch.arange(n)[:, None], 0)
    v, order = v.sort(dim=1)
    return v, idx.gather(1, order), float32_bound(p.x.shape[1], p.sq + p.sq[idx].amax(1))


def radii(p: Points, k: int, block: int = 2048, first: FirstPass | None = None) -> Tensor:
    """[n] distance from each point to its k-th nearest other point, as prdc's
    compute_nearest_neighbour_distances: the (k+1)-th smallest of its row, self at distance 0."""
    first = FirstPass.choose(p, p) if first is None else first
    if not first.active:
        return root(_kth_exact_rows(p, torch.arange(len(p), device=p.x.device), k, block))
    if first.bfloat16 and p.lo is None:
        p = p.with_bfloat16()
    kk = min(k + 1 + (BF16_EXTRA_CANDIDATES if first.bfloat16 else EXTRA_CANDIDATES), len(p))
    approx, idx, delta = _candidates(p, kk, block, first)
    floor = approx[:, -1].double() - delta  # no point outside the candidates is nearer than this
    if first.bfloat16:  # a float32 pass over the candidates narrows their bfloat16 bounds
        approx, idx, delta = _float32_candidates(p, idx)
    kth = _kth_from_candidates(p, approx, idx, to_float32(delta, float("inf")), k)
    rows = _doubtful(floor, kth, kk, len(p)).nonzero().flatten()
    if first.bfloat16 and len(rows):  # a float32 pass over the whole rows proves most of them
        kth[rows], rows = _kth_float32_rows(p, rows, k, min(k + 1 + EXTRA_CANDIDATES, len(p)), block)
    kth[rows] = _kth_exact_rows(p, rows, k, block)
    return root(kth)


def _kernel_tests(a: Points, b: Points, t_row: Tensor, t_col: Tensor, bfloat16: bool,
                  kernel: ModuleType) -> tuple[Tensor, Tensor, Tensor] | None:
    """The block's tests with the compiled kernel: (counts [m], covered [n], recalled [n]), None if too many
    entries are undecided."""
    prod = product(a, b, bfloat16)
    counts, covered, recalled, und_row, und_col = kernel.classify(prod.c, a.sq, b.sq, prod.pa, prod.qb, prod.kappa,
                                                                  *_limits(t_row), *_limits(t_col))
    if len(und_row) + len(und_col) > REFINE_LIMIT * prod.c.numel():
        return None
    i, j = und_row.unbind(1)
    inside = _pairs_less_than(a, i, b, j, t_row[i], bfloat16)
    counts.index_add_(0, j[inside], torch.ones(len(j[inside]), dtype=torch.int32))
    covered[i[inside]] = True
    i, j = und_col.unbind(1)
    recalled[i[_pairs_less_than(a, i, b, j, t_col[j], bfloat16)]] = True
    return counts, covered, recalled


def _block_tests(a: Points, b: Points, t_row: Tensor, t_col: Tensor, first: FirstPass) -> tuple[Tensor, ...]:
    """counts [m] (reals i with fake j inside ball i), covered [n] (real i's ball holds a fake), recalled [n]
    (real i inside some fake's ball) for a real x fake block; t_row, t_col: thresholds of the real and fake radii."""
    if first.kernel is not None:
        for bfloat16 in (True, False) if first.bfloat16 else (False,):  # many undecided: a float32 pass, then float64
            out = _kernel_tests(a, b, t_row, t_col, bfloat16, first.kernel)
            if out is not None:
                return out
    approx = approximate(a, b, first.bfloat16) if first.active and first.kernel is None else None
    inside = less_than(a, b, t_row, True, approx)
    recalled = less_than(a, b, t_col, False, approx).any(1)
    counts = inside.view(torch.uint8).sum(0, dtype=torch.int32)  # a uint8 view sums faster than bools
    return counts, inside.any(1), recalled


def prdc(real_features, fake_features, nearest_k: int = 5, *, block: int = 2048,
         device: torch.device | str | None = None, impl: str | None = None,
         first_pass: str = "auto") -> dict[str, float]:
    """Precision, recall, density and coverage of fake [M, D] against real [N, D] features (numpy or torch),
    k = nearest_k: prdc.compute_prdc's argument order, keys and values, in O((N + M) x block) memory.
    impl and first_pass (float32 features on CPU): see `FirstPass.choose`; they change the speed, not the values."""
    real, fake = Points.of(real_features, device), Points.of(fake_features, device)
    _check(real, fake, nearest_k)
    first_real, first_fake = (FirstPass.choose(p, p, impl, first_pass) for p in (real, fake))
    real, fake = (p.with_bfloat16() if f.bfloat16 else p for p, f in ((real, first_real), (fake, first_fake)))
    r_real, r_fake = radii(real, nearest_k, block, first_real), radii(fake, nearest_k, block, first_fake)
    real, fake = _common(real, fake), _common(fake, real)
    first = FirstPass.choose(real, fake, impl, first_pass)
    t_real, t_fake = threshold(r_real.to(real.x.dtype)), threshold(r_fake.to(real.x.dtype))
    counts = torch.zeros(len(fake), dtype=torch.long, device=real.x.device)
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.x.device)
    recalled = torch.zeros_like(covered)
    for s in range(0, len(real), block):
        rows = slice(s, min(s + block, len(real)))
        for t in range(0, len(fake), block):
            cols = slice(t, min(t + block, len(fake)))
            block_counts, block_covered, block_recalled = _block_tests(real.part(rows), fake.part(cols),
                                                                       t_real[rows], t_fake[cols], first)
            counts[cols] += block_counts
            covered[rows] |= block_covered
            recalled[rows] |= block_recalled
    return {"precision": (counts > 0).double().mean().item(), "recall": recalled.double().mean().item(),
            "density": (1.0 / float(nearest_k)) * counts.double().mean().item(),
            "coverage": covered.double().mean().item()}
