// neighbours CPU kernels: one pass over a block of products (bfloat16 or float32) per call, the row loops compiled
// for AVX-512, AVX2 + FMA and baseline x86-64 (chosen at run time), rows spread over threads with at::parallel_for.
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "cpu_isa.h"
#include "neighbours.h"

namespace {

#define NB_INLINE __attribute__((always_inline)) inline

constexpr int64_t kChunk = 256;  // entries of a row handled per vector loop
constexpr int64_t kTile = 64;    // columns per column-list task
constexpr float kInf = std::numeric_limits<float>::infinity();

NB_INLINE float widen(float v) { return v; }
NB_INLINE float widen(uint16_t v) {  // bfloat16 bits: the high half of a float32
  const uint32_t bits = uint32_t(v) << 16;
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

// Puts (d, j) into the ascending list v/ix of kk entries, dropping its last; the caller checked d < v[kk - 1].
NB_INLINE void insert(float* v, int64_t* ix, int64_t kk, float d, int64_t j) {
  int64_t p = kk - 1;
  for (; p > 0 && v[p - 1] > d; --p) {
    v[p] = v[p - 1];
    ix[p] = ix[p - 1];
  }
  v[p] = d;
  ix[p] = j;
}

struct Block {  // one block of products and the parts of its error bound (see neighbours.h)
  const void* c;
  int64_t n, m;
  const double *sa, *sb, *pa, *qb;
  double kappa;
};

struct Lists {  // nearest-candidate lists, offset so that entry i of this block is list i
  float* values;
  int64_t* indices;
  double* bound;
  int64_t kk, offset;  // offset: the global index of this block's first point on the other side
};

// Row i against columns [j0, j1): d = v' (float32) into buf, largest qb + kappa |c| into emax, smallest d returned.
template <typename C>
NB_INLINE float row_run(const Block& b, int64_t i, int64_t j0, int64_t j1, float* __restrict__ buf, double& emax) {
  const C* __restrict__ c = static_cast<const C*>(b.c) + i * b.m;
  const double* __restrict__ sb = b.sb;
  const double* __restrict__ qb = b.qb;
  const double s = b.sa[i], kappa = b.kappa;
  float dmin = kInf;
  double em = emax;
#pragma omp simd reduction(min : dmin) reduction(max : em)
  for (int64_t j = j0; j < j1; ++j) {
    const double cj = widen(c[j]);
    const float d = static_cast<float>(s + sb[j] - 2.0 * cj);
    buf[j - j0] = d;
    dmin = std::min(dmin, d);
    em = std::max(em, qb[j] + kappa * std::fabs(cj));
  }
  emax = em;
  return dmin;
}

// Row i against columns [j0, j1) into its list (no lambda here: it would lose the caller's target attributes).
template <typename C>
NB_INLINE void knn_segment(const Block& b, const Lists& l, int64_t i, int64_t j0, int64_t j1, double& em) {
  float* v = l.values + i * l.kk;
  int64_t* ix = l.indices + i * l.kk;
  float buf[kChunk];
  for (int64_t s = j0; s < j1; s += kChunk) {
    const int64_t e = std::min(s + kChunk, j1);
    if (row_run<C>(b, i, s, e, buf, em) >= v[l.kk - 1]) continue;
    for (int64_t j = s; j < e; ++j) {
      if (buf[j - s] < v[l.kk - 1]) insert(v, ix, l.kk, buf[j - s], l.offset + j);
    }
  }
}

template <typename C>
NB_INLINE void knn_row(const Block& b, const Lists& l, int64_t i, bool diagonal) {
  double em = 0;
  if (diagonal) {  // the self entry is exactly 0 and left out of the bound
    knn_segment<C>(b, l, i, 0, i, em);
    float* v = l.values + i * l.kk;
    if (0.0f < v[l.kk - 1]) insert(v, l.indices + i * l.kk, l.kk, 0.0f, l.offset + i);
    knn_segment<C>(b, l, i, i + 1, b.m, em);
  } else {
    knn_segment<C>(b, l, i, 0, b.m, em);
  }
  l.bound[i] = std::max(l.bound[i], b.pa[i] + em);
}

// Columns [j0, j0 + w) (w <= kTile) of an off-diagonal block against every row, into the column lists.
template <typename C>
NB_INLINE void knn_cols(const Block& b, const Lists& l, int64_t j0, int64_t w) {
  float thr[kTile], d[kTile];
  double em[kTile];
  for (int64_t t = 0; t < w; ++t) {
    thr[t] = l.values[(j0 + t) * l.kk + l.kk - 1];
    em[t] = 0;
  }
  const double* __restrict__ sb = b.sb + j0;
  for (int64_t i = 0; i < b.n; ++i) {
    const C* __restrict__ c = static_cast<const C*>(b.c) + i * b.m + j0;
    const double s = b.sa[i], p = b.pa[i], kappa = b.kappa;
    int any = 0;
#pragma omp simd reduction(| : any)
    for (int64_t t = 0; t < w; ++t) {
      const double cj = widen(c[t]);
      d[t] = static_cast<float>(s + sb[t] - 2.0 * cj);
      em[t] = std::max(em[t], p + kappa * std::fabs(cj));
      any |= d[t] < thr[t];
    }
    if (!any) continue;
    for (int64_t t = 0; t < w; ++t) {
      if (d[t] >= thr[t]) continue;
      float* v = l.values + (j0 + t) * l.kk;
      insert(v, l.indices + (j0 + t) * l.kk, l.kk, d[t], l.offset + i);
      thr[t] = v[l.kk - 1];
    }
  }
  for (int64_t t = 0; t < w; ++t) l.bound[j0 + t] = std::max(l.bound[j0 + t], b.qb[j0 + t] + em[t]);
}

struct Tests {  // the two tests' thresholds (see neighbours.h)
  const double *lo_row, *hi_row, *lo_col, *hi_col;
};

// Row i of a real x fake block: flags[j] bit 0 surely inside t_row[i], bit 1 undecided; bit 2 surely inside
// t_col[j], bit 3 undecided. counts[j] += bit 0. Returns the OR of all flags.
template <typename C>
NB_INLINE int classify_row(const Block& b, const Tests& t, int64_t i, int32_t* __restrict__ counts,
                           uint8_t* __restrict__ flags) {
  const C* __restrict__ c = static_cast<const C*>(b.c) + i * b.m;
  const double* __restrict__ sb = b.sb;
  const double* __restrict__ qb = b.qb;
  const double* __restrict__ lo_col = t.lo_col;
  const double* __restrict__ hi_col = t.hi_col;
  const double s = b.sa[i], p = b.pa[i], kappa = b.kappa, lo = t.lo_row[i], hi = t.hi_row[i];
  int all = 0;
#pragma omp simd reduction(| : all)
  for (int64_t j = 0; j < b.m; ++j) {
    const double cj = widen(c[j]);
    const double d = s + sb[j] - 2.0 * cj, e = p + qb[j] + kappa * std::fabs(cj);
    const int in_row = d + e < lo, in_col = d + e < lo_col[j];
    const int f = in_row | ((!in_row & (d - e < hi)) << 1) | (in_col << 2) | ((!in_col & (d - e < hi_col[j])) << 3);
    counts[j] += in_row;
    flags[j] = static_cast<uint8_t>(f);
    all |= f;
  }
  return all;
}

using KnnRowFn = void (*)(const Block&, const Lists&, int64_t, bool);
using KnnColsFn = void (*)(const Block&, const Lists&, int64_t, int64_t);
using ClassifyFn = int (*)(const Block&, const Tests&, int64_t, int32_t*, uint8_t*);

template <typename C>
struct Kernels {
  static void knn_row_default(const Block& b, const Lists& l, int64_t i, bool diag) { knn_row<C>(b, l, i, diag); }
  static void knn_cols_default(const Block& b, const Lists& l, int64_t j0, int64_t w) { knn_cols<C>(b, l, j0, w); }
  static int classify_default(const Block& b, const Tests& t, int64_t i, int32_t* counts, uint8_t* flags) {
    return classify_row<C>(b, t, i, counts, flags);
  }
#if defined(__x86_64__) && defined(__GNUC__)
#define NB_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512")))
#define NB_AVX2 __attribute__((target("avx2,fma")))
  NB_AVX512 static void knn_row_avx512(const Block& b, const Lists& l, int64_t i, bool diag) {
    knn_row<C>(b, l, i, diag);
  }
  NB_AVX2 static void knn_row_avx2(const Block& b, const Lists& l, int64_t i, bool diag) { knn_row<C>(b, l, i, diag); }
  NB_AVX512 static void knn_cols_avx512(const Block& b, const Lists& l, int64_t j0, int64_t w) {
    knn_cols<C>(b, l, j0, w);
  }
  NB_AVX2 static void knn_cols_avx2(const Block& b, const Lists& l, int64_t j0, int64_t w) { knn_cols<C>(b, l, j0, w); }
  NB_AVX512 static int classify_avx512(const Block& b, const Tests& t, int64_t i, int32_t* counts, uint8_t* flags) {
    return classify_row<C>(b, t, i, counts, flags);
  }
  NB_AVX2 static int classify_avx2(const Block& b, const Tests& t, int64_t i, int32_t* counts, uint8_t* flags) {
    return classify_row<C>(b, t, i, counts, flags);
  }
#endif
  template <typename F>
  static F pick(F avx512, F avx2, F baseline) {  // the widest clone this process may run (cpu_isa.h)
    return cpu_isa() == CpuIsa::Avx512 ? avx512 : (cpu_isa() == CpuIsa::Avx2 ? avx2 : baseline);
  }
#if defined(__x86_64__) && defined(__GNUC__)
#define NB_PICK(name) pick(name##_avx512, name##_avx2, name##_default)
#else
#define NB_PICK(name) name##_default
#endif
  static KnnRowFn knn_row_fn() { return NB_PICK(knn_row); }
  static KnnColsFn knn_cols_fn() { return NB_PICK(knn_cols); }
  static ClassifyFn classify_fn() { return NB_PICK(classify); }
};

Block block_of(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb, const at::Tensor& pa,
               const at::Tensor& qb, double kappa) {
  return {c.data_ptr(), c.size(0), c.size(1), sa.const_data_ptr<double>(), sb.const_data_ptr<double>(),
          pa.const_data_ptr<double>(), qb.const_data_ptr<double>(), kappa};
}

Lists lists_of(const at::Tensor& values, const at::Tensor& indices, const at::Tensor& bound, int64_t offset) {
  return {values.data_ptr<float>(), indices.data_ptr<int64_t>(), bound.data_ptr<double>(), values.size(1), offset};
}

template <typename C>
void knn_update(const Block& b, const Lists& rows, const Lists* cols, bool diagonal) {
  const KnnRowFn row_fn = Kernels<C>::knn_row_fn();
  at::parallel_for(0, b.n, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) row_fn(b, rows, i, diagonal);
  });
  if (cols == nullptr) return;
  const KnnColsFn cols_fn = Kernels<C>::knn_cols_fn();
  at::parallel_for(0, (b.m + kTile - 1) / kTile, 1, [&](int64_t begin, int64_t end) {
    for (int64_t t = begin; t < end; ++t) cols_fn(b, *cols, t * kTile, std::min(kTile, b.m - t * kTile));
  });
}

template <typename C>
std::vector<at::Tensor> classify(const Block& b, const Tests& t) {
  const ClassifyFn fn = Kernels<C>::classify_fn();
  auto counts = at::zeros({b.m}, at::kInt);
  auto covered = at::zeros({b.n}, at::kBool), recalled = at::zeros({b.n}, at::kBool);
  bool* cov = covered.data_ptr<bool>();
  bool* rec = recalled.data_ptr<bool>();
  std::vector<int64_t> undecided_row, undecided_col;
  std::mutex merge;
  at::parallel_for(0, b.n, 64, [&](int64_t begin, int64_t end) {
    std::vector<int32_t> local(b.m, 0);
    std::vector<uint8_t> flags(b.m);
    std::vector<int64_t> und_row, und_col;
    for (int64_t i = begin; i < end; ++i) {
      const int all = fn(b, t, i, local.data(), flags.data());
      cov[i] = all & 1;
      rec[i] = (all >> 2) & 1;
      if (!(all & 0b1010)) continue;
      for (int64_t j = 0; j < b.m; ++j) {
        if (flags[j] & 2) und_row.insert(und_row.end(), {i, j});
        if (flags[j] & 8) und_col.insert(und_col.end(), {i, j});
      }
    }
    std::lock_guard<std::mutex> lock(merge);
    int32_t* total = counts.data_ptr<int32_t>();
    for (int64_t j = 0; j < b.m; ++j) total[j] += local[j];
    undecided_row.insert(undecided_row.end(), und_row.begin(), und_row.end());
    undecided_col.insert(undecided_col.end(), und_col.begin(), und_col.end());
  });
  auto as_pairs = [](const std::vector<int64_t>& v) {
    return at::tensor(at::ArrayRef<int64_t>(v), at::kLong).view({-1, 2});
  };
  return {counts, covered, recalled, as_pairs(undecided_row), as_pairs(undecided_col)};
}

}  // namespace

void knn_update_cpu(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb, const at::Tensor& pa,
                    const at::Tensor& qb, double kappa, bool diagonal, const at::Tensor& row_values,
                    const at::Tensor& row_indices, const at::Tensor& row_bound, const at::Tensor& col_values,
                    const at::Tensor& col_indices, const at::Tensor& col_bound, int64_t row_offset,
                    int64_t col_offset) {
  const Block b = block_of(c, sa, sb, pa, qb, kappa);
  const Lists rows = lists_of(row_values, row_indices, row_bound, col_offset);
  const bool with_cols = col_values.numel() > 0;
  const Lists cols = with_cols ? lists_of(col_values, col_indices, col_bound, row_offset) : rows;
  if (c.scalar_type() == at::kBFloat16) {
    knn_update<uint16_t>(b, rows, with_cols ? &cols : nullptr, diagonal);
  } else {
    knn_update<float>(b, rows, with_cols ? &cols : nullptr, diagonal);
  }
}

std::vector<at::Tensor> classify_cpu(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb,
                                     const at::Tensor& pa, const at::Tensor& qb, double kappa,
                                     const at::Tensor& lo_row, const at::Tensor& hi_row, const at::Tensor& lo_col,
                                     const at::Tensor& hi_col) {
  const Block b = block_of(c, sa, sb, pa, qb, kappa);
  const Tests t{lo_row.const_data_ptr<double>(), hi_row.const_data_ptr<double>(), lo_col.const_data_ptr<double>(),
                hi_col.const_data_ptr<double>()};
  return c.scalar_type() == at::kBFloat16 ? classify<uint16_t>(b, t) : classify<float>(b, t);
}
