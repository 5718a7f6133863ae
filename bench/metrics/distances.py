"""Squared distances as prdc 0.2 computes them (the exact formula) and fast first-pass products with error bounds.

prdc 0.2 gets distances from scikit-learn: for float32 features v = max(f32(-2 x.y + |x|^2 + |y|^2 computed in
float64), 0), and d = sqrt(v) correctly rounded in float32; for any other dtype the same in float64. The exact
helpers here reproduce v. A first pass instead multiplies the block once in low precision, c = a b^T, and
v' = |x|^2 + |y|^2 - 2c is within pa[i] + qb[j] + kappa |c[i, j]| of the float64 formula (`Product`):
- float32 product: gamma_D (|x|^2 + |y|^2) for the sums (Higham, Accuracy and Stability, 3.1), kappa = 0;
- bfloat16 product of the features rounded to bfloat16 (lo): x.y - lo_x.lo_y = (x - lo_x).y + lo_x.(y - lo_y),
  bounded with Cauchy-Schwarz by |x - lo_x||y| + |lo_x||y - lo_y|; gamma_D |lo_x||lo_y| for the float32 sums of
  exact bfloat16 products; 2^-7 |c| for the rounding of the result to bfloat16 (covers truncation as well as
  round-to-nearest);
plus 16 u (|x|^2 + |y|^2) for the roundings around the product, u = 2^-24.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

U32 = 2.0**-24  # float32 unit roundoff
CHUNK_ROWS = 256  # rows per chunk when converting: small temporaries are reused instead of page-faulted in


def bfloat16_is_fast() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (AVX512-BF16 or AMX), where a bfloat16 first
    pass is faster than a float32 one."""
    checks = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # private torch.cpu helpers, if present
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


@dataclass
class Points:
    """A feature set: x [n, D] (float32, or float64 for any other input dtype) and |x|^2 [n] in float64; for a
    bfloat16 first pass also lo = x rounded to bfloat16 and upper bounds on |lo| and |x - lo| per row (float64)."""

    x: Tensor
    sq: Tensor
    lo: Tensor | None = None
    lo_norm: Tensor | None = None
    res_norm: Tensor | None = None

    @classmethod
    def of(cls, features, device: torch.device | str | None = None) -> Points:
        x = features if isinstance(features, Tensor) else torch.from_numpy(np.asarray(features))
        if x.ndim != 2:
            raise ValueError(f"features must be [N, D], got shape {tuple(x.shape)}")
        x = x.to(device or x.device)
        x = (x if x.dtype == torch.float32 else x.to(torch.float64)).contiguous()
        return cls(x, torch.cat([(c.double() ** 2).sum(1) for c in x.split(CHUNK_ROWS)]))

    def __len__(self) -> int:
        return len(self.x)

    def part(self, s) -> Points:
        if self.lo is None:
            return Points(self.x[s], self.sq[s])
        return Points(self.x[s], self.sq[s], self.lo[s], self.lo_norm[s], self.res_norm[s])

    def with_bfloat16(self) -> Points:
        """The same points with their bfloat16 rounding and the norms that bound its error (float32 norms, whose
        relative error is below gamma_D, enlarged by 2 D u)."""
        lo = self.x.to(torch.bfloat16)
        up = 1 + 2 * self.x.shape[1] * U32
        res = [torch.linalg.vector_norm(c - low, dim=1) for c, low in
               zip(self.x.split(CHUNK_ROWS), lo.split(CHUNK_ROWS), strict=True)]
        lo_norm = torch.linalg.vector_norm(lo, dim=1, dtype=torch.float32)
        return Points(self.x, self.sq, lo, lo_norm.double() * up, torch.cat(res).double() * up)

    @property
    def approximate(self) -> bool:
        """Whether blocks get a first pass (float32 features on CPU); otherwise they are computed in float64."""
        return self.x.dtype == torch.float32 and self.x.device.type == "cpu"


@dataclass
class Product:
    """A first-pass block: c = a b^T [n, m] (bfloat16 or float32) with |v' - v| <= pa[i] + qb[j] + kappa |c[i, j]|
    for v' = |a_i|^2 + |b_j|^2 - 2 c[i, j] (pa [n], qb [m] float64)."""

    c: Tensor
    pa: Tensor
    qb: Tensor
    kappa: float


def float32_bound(d: int, sq: Tensor) -> Tensor:
    """(D + 16) u sq: the bound on |v' - v| when v' comes from a float32 product of D-dim points and sq holds
    |x|^2 + |y|^2 (float64, or an upper bound on it): gamma_D for the product's float32 sums and the rest for the
    roundings around the product (the module docstring)."""
    return ((d + 16) * U32) * sq


def product(a: Points, b: Points, bfloat16: bool) -> Product:
    """The first pass of block (a, b): a bfloat16 product (a and b carry lo) or a float32 one."""
    d = a.x.shape[1]
    if not bfloat16:
        return Product(a.x @ b.x.T, float32_bound(d, a.sq), float32_bound(d, b.sq), 0.0)
    gamma, up = d * U32 / (1 - d * U32), 1 + 1e-6
    pa = 2 * (a.res_norm * b.sq.max().sqrt() + gamma * a.lo_norm * b.lo_norm.max()) + 16 * U32 * a.sq
    qb = 2 * a.lo_norm.max() * b.res_norm + 16 * U32 * b.sq
    return Product(a.lo @ b.lo.T, pa * up + 1e-30, qb * up, 2.0**-6 * up)  # 1e-30: flushed subnormals


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


def _pair_dots(a: Points, i: Tensor, b: Points, j: Tensor, dtype: torch.dtype, chunk: int) -> Tensor:
    """a.x[i] . b.x[j] in dtype, gathered `chunk` elements at a time so the copies stay in cache."""
    step = max(1, chunk // a.x.shape[1])
    dots = [torch.linalg.vecdot(a.x[i[s:s + step]].to(dtype), b.x[j[s:s + step]].to(dtype))
            for s in range(0, len(i), step)]
    return torch.cat(dots) if dots else torch.zeros(0, dtype=dtype, device=a.x.device)


def exact_pairs(a: Points, i: Tensor, b: Points, j: Tensor) -> Tensor:
    """v of the pairs (a[i], b[j]); i, j: index tensors of one shape."""
    i, j = i.flatten(), j.flatten()
    return squares((-2 * _pair_dots(a, i, b, j, torch.float64, 1 << 16) + a.sq[i]) + b.sq[j], a.x.dtype)


def float32_pairs(a: Points, i: Tensor, b: Points, j: Tensor) -> tuple[Tensor, Tensor]:
    """A float32 first pass for the pairs (a[i], b[j]) only (i, j flat): approximate v (float32) and the float64
    bound on each one's error (the float32 product's)."""
    sa, sb = a.sq[i], b.sq[j]
    v = (sa.float() + sb.float()) - 2 * _pair_dots(a, i, b, j, torch.float32, 1 << 20)
    return v, float32_bound(a.x.shape[1], sa + sb)


def to_float32(x: Tensor, towards: float) -> Tensor:
    """float64 -> float32, rounded towards -inf or +inf (never across x)."""
    y = x.float()
    return torch.where((y.double() - x) * towards < 0, torch.nextafter(y, torch.tensor(towards)), y)
