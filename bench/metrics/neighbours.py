"""Precision, recall, density and coverage (Naeem et al., ICML 2020) with the values of prdc 0.2, in blocks.

prdc 0.2 (`prdc.compute_prdc`) builds three dense distance matrices with scikit-learn. For float32 features its
distance is d = sqrt(v), v = max(f32(-2 x.y + |x|^2 + |y|^2 computed in float64), 0), square root correctly
rounded in float32, and 0 on the diagonal of a set against itself; for any other dtype the same in float64.
A radius is the (k+1)-th smallest distance of a row (self included) and every test is a strict `<`.

This module gets the same values block by block, in O((N + M) x block) memory:
- a test d < r is done as v < t(r), t(r) the smallest representable v with sqrt(v) >= r (no square roots);
- float32 features on CPU: each block is first computed with a float32 matrix product, whose error against
  the float64 formula is at most gamma_D (|x|^2 + |y|^2). Only entries that this bound leaves undecided (a
  comparison, or the rank of a radius) are recomputed in float64; a block with many is recomputed whole;
- float32 on CUDA, and every other dtype: blocks in float64, cast as scikit-learn casts (no TF32 anywhere).
Ties behave as in prdc (strict `<`, self at 0): on exactly representable features (integer-valued, constant)
the results are identical; for duplicated rows of arbitrary floats prdc's own result depends on BLAS rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

U32 = 2.0**-24  # float32 unit roundoff
EXTRA_CANDIDATES = 4  # approximate nearest neighbours kept beyond the k + 1 a radius needs
REFINE_LIMIT = 0.02  # above this fraction of undecided entries a block is recomputed whole in float64


@dataclass
class Points:
    """A feature set: x [n, D] (float32, or float64 for any other input dtype) and |x|^2 [n] in float64."""

    x: Tensor
    sq: Tensor

    @classmethod
    def of(cls, features, device: torch.device | str | None = None) -> Points:
        x = features if isinstance(features, Tensor) else torch.from_numpy(np.asarray(features))
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
        x = x.to(device or x.device)
        x = (x if x.dtype == torch.float32 else x.to(torch.float64)).contiguous()
        return cls(x, torch.cat([(c.double() ** 2).sum(1) for c in x.split(4096)]))

    def __len__(self) -> int:
        return len(self.x)

    def part(self, s) -> Points:
        return Points(self.x[s], self.sq[s])

    @property
    def approximate(self) -> bool:
        """Whether blocks are first computed in float32 (float32 features on CPU)."""
        return self.x.dtype == torch.float32 and self.x.device.type == "cpu"

    def bound(self, other: Points) -> Tensor:
        """[n, 1] float64 bound on |float32 product formula - float64 formula| for rows of self against other:
        gamma_D (|x|^2 + |y|^2) for the product, plus 16 u (|x|^2 + |y|^2) for the roundings around it."""
        return (((self.x.shape[1] + 16) * U32) * (self.sq + other.sq.max()))[:, None]


def squares(d2: Tensor, dtype: torch.dtype) -> Tensor:
    """v = max(d2 rounded to dtype, 0): the quantity prdc's distances are square roots of."""
    return d2.to(dtype).clamp_min_(0)


def root(v: Tensor) -> Tensor:
    """Correctly rounded sqrt (torch's vectorised float32 sqrt is not; float64 sqrt rounded to float32 is)."""
    return v.double().sqrt().to(v.dtype)


def threshold(r: Tensor) -> Tensor:
    """t(r): the smallest v >= 0 of r's dtype with root(v) >= r, so that root(v) < r exactly when v < t."""
    t = (r.double() ** 2).to(r.dtype)
    inf = torch.tensor(float("inf"), dtype=r.dtype, device=r.device)
    zero = torch.zeros((), dtype=r.dtype, device=r.device)
    for _ in range(4):
        t = torch.where(root(t) < r, torch.nextafter(t, inf), t)
        below = torch.nextafter(t, -inf).clamp_min(0)
        t = torch.where((t > 0) & (root(below) >= r), below, t)
    return torch.where(r > 0, t, zero)


def exact_block(a: Points, b: Points) -> Tensor:
    """v [len(a), len(b)] as scikit-learn computes it (float32 for float32 features)."""
    return squares(torch.addmm(a.sq[:, None], a.x.double(), b.x.double().T, alpha=-2) + b.sq[None, :], a.x.dtype)


def exact_pairs(a: Points, i: Tensor, b: Points, j: Tensor, chunk: int = 1 << 16) -> Tensor:
    """v of the pairs (a[i], b[j]); i, j: index tensors of one shape. Small chunks keep the float64 copies in cache."""
    i, j = i.flatten(), j.flatten()
    step = max(1, chunk // a.x.shape[1])
    dots = [torch.linalg.vecdot(a.x[i[s:s + step]].double(), b.x[j[s:s + step]].double())
            for s in range(0, len(i), step)]
    dot = torch.cat(dots) if dots else torch.zeros(0, dtype=torch.float64, device=a.x.device)
    return squares((-2 * dot + a.sq[i]) + b.sq[j], a.x.dtype)


def approximate(a: Points, b: Points) -> tuple[Tensor, Tensor]:
    """Float32 squared distances [len(a), len(b)] and the float64 bound [len(a), 1] on their error."""
    return torch.addmm(a.sq[:, None].float() + b.sq[None, :].float(), a.x, b.x.T, alpha=-2), a.bound(b)


def _float32(x: Tensor, towards: float) -> Tensor:
    """float64 -> float32, rounded towards -inf or +inf (never across x)."""
    y = x.float()
    return torch.where((y.double() - x) * towards < 0, torch.nextafter(y, torch.tensor(towards)), y)


def less_than(a: Points, b: Points, t: Tensor, along_rows: bool, approx: tuple[Tensor, Tensor] | None) -> Tensor:
    """Bool [len(a), len(b)]: d(a_i, b_j) < r exactly as prdc, r = radii[i] (along_rows) or radii[j], given
    t = threshold(radii) for those rows or columns."""
    t_b = t[:, None] if along_rows else t[None, :]
    if approx is None:
        return exact_block(a, b) < t_b
    d2, bound = approx
    slack = bound if along_rows else bound.max()  # one value per row, or the largest for column thresholds
    sure = d2 < _float32(t_b.double() * (1 - 2 * U32) - slack, -float("inf"))
    unsure = (d2 < _float32(t_b.double() + slack, float("inf"))) ^ sure
    if not unsure.any():
        return sure
    i, j = unsure.nonzero(as_tuple=True)
    if len(i) > REFINE_LIMIT * unsure.numel():
        return exact_block(a, b) < t_b
    sure[i, j] = exact_pairs(a, i, b, j) < (t[i] if along_rows else t[j])
    return sure


def _merge(best: tuple[Tensor, Tensor], rows: slice, d2: Tensor, offset: int) -> None:
    """Keep in best[rows] the k smallest of (best[rows], this block's rows)."""
    k = best[0].shape[1]
    v, i = d2.topk(min(k, d2.shape[1]), dim=1, largest=False)
    v, i = torch.cat([best[0][rows], v], 1), torch.cat([best[1][rows], i + offset], 1)
    top = v.topk(k, dim=1, largest=False, sorted=True)
    best[0][rows], best[1][rows] = top.values, i.gather(1, top.indices)


def _candidates(p: Points, k: int, block: int) -> tuple[Tensor, Tensor]:
    """Approximate k nearest points (self included, at 0) of every point, ascending: float32 squared distances
    [n, k] and indices [n, k]. Each block of the symmetric matrix is computed once."""
    n = len(p)
    best = (torch.full((n, k), float("inf")), torch.zeros(n, k, dtype=torch.long))
    for s in range(0, n, block):
        rows = slice(s, min(s + block, n))
        for t in range(s, n, block):
            cols = slice(t, min(t + block, n))
            a, b = p.part(rows), p.part(cols)
            d2 = torch.addmm(a.sq[:, None].float() + b.sq[None, :].float(), a.x, b.x.T, alpha=-2)
            if s == t:
                d2.fill_diagonal_(0)
            _merge(best, rows, d2, t)
            if s != t:
                _merge(best, cols, d2.T.contiguous(), s)  # topk along rows is 3x faster
    return best


def _kth_exact_rows(p: Points, rows: Tensor, k: int, block: int) -> Tensor:
    """v of the (k+1)-th smallest distance of the given rows (self at 0), computed whole in float64."""
    out = [torch.zeros(0, dtype=p.x.dtype, device=p.x.device)]
    for s in range(0, len(rows), block):
        r = rows[s:s + block]
        v = exact_block(p.part(r), p)
        v[torch.arange(len(r), device=v.device), r] = 0
        out.append(v.kthvalue(k + 1, dim=1).values)
    return torch.cat(out)


def _kth_from_candidates(p: Points, approx: Tensor, idx: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """v of each row's (k+1)-th smallest distance from its ascending approximate candidates, and a mask of the
    rows where the float32 bound cannot guarantee it (those need a whole-row recount)."""
    n, kk = idx.shape
    delta = p.bound(p).float()
    # Candidates whose error intervals chain into the k-th one's form its cluster: everything before the cluster
    # is surely smaller, everything after surely larger, so only the cluster is recounted in float64.
    breaks = torch.cat([(approx[:, 1:] - approx[:, :-1]) > 2 * delta, torch.ones(n, 1, dtype=torch.bool)], 1)
    pos = torch.arange(kk)  # breaks[:, j]: a gap after candidate j (and always after the last one)
    first = torch.where(breaks[:, :k], pos[1:k + 1], 0).amax(dim=1)
    last = torch.where(breaks[:, k:], pos[k:], kk - 1).amin(dim=1)
    member = (pos >= first[:, None]) & (pos <= last[:, None])
    i, j = member.nonzero(as_tuple=True)
    v = torch.full((n, kk), float("inf"), dtype=p.x.dtype)
    v[i, j] = exact_pairs(p, i, p, idx[i, j]).masked_fill(idx[i, j] == i, 0)
    kth = v.sort(dim=1).values.gather(1, (k - first)[:, None])[:, 0]
    # Points outside the candidates have approx >= the last candidate's; they cannot rank before the kth
    # if even their lowest possible value is above it.
    floor = approx[:, -1] - delta[:, 0]
    doubtful = (floor <= kth.float() * (1 + 4 * U32)) if kk < len(p) else torch.zeros(n, dtype=torch.bool)
    return kth, doubtful


def radii(p: Points, k: int, block: int = 2048) -> Tensor:
    """[n] distance from each point to its k-th nearest other point, as prdc's
    compute_nearest_neighbour_distances: the (k+1)-th smallest of its row, self at distance 0."""
    if not p.approximate:
        return root(_kth_exact_rows(p, torch.arange(len(p), device=p.x.device), k, block))
    approx, idx = _candidates(p, min(k + 1 + EXTRA_CANDIDATES, len(p)), block)
    kth, doubtful = _kth_from_candidates(p, approx, idx, k)
    rows = doubtful.nonzero().flatten()
    kth[rows] = _kth_exact_rows(p, rows, k, block)
    return root(kth)


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


def prdc(real_features, fake_features, nearest_k: int = 5, *, block: int = 2048,
         device: torch.device | str | None = None) -> dict[str, float]:
    """Precision, recall, density and coverage of fake [M, D] against real [N, D] features (numpy or torch),
    k = nearest_k: prdc.compute_prdc's argument order, keys and values, in O((N + M) x block) memory."""
    real, fake = Points.of(real_features, device), Points.of(fake_features, device)
    _check(real, fake, nearest_k)
    r_real, r_fake = radii(real, nearest_k, block), radii(fake, nearest_k, block)
    real, fake = _common(real, fake), _common(fake, real)
    t_real, t_fake = threshold(r_real.to(real.x.dtype)), threshold(r_fake.to(real.x.dtype))
    counts = torch.zeros(len(fake), dtype=torch.long, device=real.x.device)
    covered = torch.zeros(len(real), dtype=torch.bool, device=real.x.device)
    recalled = torch.zeros_like(covered)
    for s in range(0, len(real), block):
        rows = slice(s, min(s + block, len(real)))
        for t in range(0, len(fake), block):
            cols = slice(t, min(t + block, len(fake)))
            a, b = real.part(rows), fake.part(cols)
            approx = approximate(a, b) if a.approximate else None
            inside_real = less_than(a, b, t_real[rows], True, approx)  # fake j inside real i's ball
            counts[cols] += inside_real.view(torch.uint8).sum(0, dtype=torch.int32)  # 5x a bool sum
            covered[rows] |= inside_real.any(1)
            recalled[rows] |= less_than(a, b, t_fake[cols], False, approx).any(1)
    return {"precision": (counts > 0).double().mean().item(), "recall": recalled.double().mean().item(),
            "density": (1.0 / float(nearest_k)) * counts.double().mean().item(),
            "coverage": covered.double().mean().item()}
