// bias_act CPU kernel: one pass over memory, activation and derivative order fixed at compile time,
// runs of constant bias (NCHW) or of consecutive channels (channels_last, [N, C]) so loops vectorise.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "bias_act.h"
#include "cpu_isa.h"

namespace {

// One span of n elements; bias is either one value for the whole span (bias_step 0) or one per element
// (bias_step 1). Scalars by value and __restrict__ pointers let the compiler vectorise the loop.
// With `sums`, the outputs are also added to the bias gradient: sums[0] += sum(y) for a constant-bias span,
// sums[k] += y[k] otherwise (double accumulators).
template <typename T, Act A, int ORDER, bool CLAMP>
__attribute__((always_inline)) inline void span(const T* __restrict__ x, const T* __restrict__ g,
                                                T* __restrict__ y, int64_t n, const T* __restrict__ bias,
                                                int64_t bias_step, T alpha, T gain, T clamp,
                                                double* __restrict__ sums) {
  using Op = Activation<A, T>;
  const T c = CLAMP ? clamp : T(-1);
  if (bias_step == 0) {
    const T bv = bias ? bias[0] : T(0);
    for (int64_t k = 0; k < n; ++k) y[k] = Op::template apply<ORDER>(x[k] + bv, ORDER ? g[k] : T(0), alpha, gain, c);
    if (sums) {
      double total = 0;
#pragma omp simd reduction(+ : total)
      for (int64_t k = 0; k < n; ++k) total += y[k];
      sums[0] += total;
    }
  } else if (sums) {
    for (int64_t k = 0; k < n; ++k) {
      const T v = Op::template apply<ORDER>(x[k] + bias[k], ORDER ? g[k] : T(0), alpha, gain, c);
      y[k] = v;
      sums[k] += v;
    }
  } else {
    for (int64_t k = 0; k < n; ++k) {
      y[k] = Op::template apply<ORDER>(x[k] + bias[k], ORDER ? g[k] : T(0), alpha, gain, c);
    }
  }
}

#if defined(__x86_64__) && defined(__GNUC__)
#define DDGAN_AVX512 __attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma")))

// linear, relu, lrelu, sigmoid and silu (value and first derivative, no clamp) for float32 with AVX-512 intrinsics:
// in the generic span the compiler turns the exp clamp's constant arms into blends, about twice the instructions per
// vector (results/README.md, "The AVX-512 intrinsics loops"), and at the NCSN++ shapes sigmoid and silu are
// compute-bound; all five also sum the bias gradient in the same loop and store full vectors unmasked. Same Cephes exp
// as vecmath::exp; vscalefps applies 2^n (overflow to inf, gradual underflow), and min/max clamp with x as the
// operand that NaN passes through.
namespace avx512 {

constexpr bool has_intrinsics(Act a) {
  return a == Act::Linear || a == Act::Relu || a == Act::Lrelu || a == Act::Sigmoid || a == Act::Silu;
}

// Twin of vecmath::exp (bias_act.h), 16 lanes at once; vecmath's serves the generic loops of the other clones.
DDGAN_AVX512 inline __m512 exp(__m512 x) {
  x = _mm512_min_ps(_mm512_set1_ps(89.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fmadd_ps(n, _mm512_set1_ps(2.12194440e-4f), r);
  __m512 p = _mm512_set1_ps(1.9875691500e-4f);
  for (const float c : {1.3981999507e-3f, 8.3334519073e-3f, 4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f}) {
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(c));
  }
  p = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// The op for 16 values, as Activation<A, float>::apply<ORDER> without clamp: s = x + b, g the upstream gradient.
// Twin of that generic formula (bias_act.h), which the other clones run; the tests compare every clone with the
// reference (DDGAN_CPU_ISA, cpu_isa.h).
template <Act A, int ORDER>
DDGAN_AVX512 inline __m512 apply(__m512 s, __m512 g, __m512 gain, __m512 alpha) {
  const __m512 zero = _mm512_setzero_ps(), one = _mm512_set1_ps(1.0f);
  if constexpr (A == Act::Linear || A == Act::Relu || A == Act::Lrelu) {
    const __mmask16 pos = _mm512_cmp_ps_mask(s, zero, _CMP_GT_OQ);  // false for NaN, as s > 0
    if (ORDER == 0) {
      __m512 f = s;
      if (A == Act::Relu) f = _mm512_mask_mov_ps(s, _mm512_cmp_ps_mask(s, zero, _CMP_LT_OQ), zero);  // NaN stays
      if (A == Act::Lrelu) f = _mm512_mask_mul_ps(s, __mmask16(~pos), s, alpha);
      return _mm512_mul_ps(f, gain);
    }
    const __m512 gg = _mm512_mul_ps(g, gain);
    if (A == Act::Relu) return _mm512_maskz_mov_ps(pos, gg);
    return A == Act::Lrelu ? _mm512_mask_mul_ps(gg, __mmask16(~pos), gg, alpha) : gg;
  } else {
    const __m512 e = exp(_mm512_sub_ps(zero, s));
    if (ORDER == 0 && A == Act::Silu) return _mm512_mul_ps(_mm512_div_ps(s, _mm512_add_ps(one, e)), gain);
    const __m512 y = _mm512_div_ps(one, _mm512_add_ps(one, e)), not_y = _mm512_sub_ps(one, y);
    if (ORDER == 0) return _mm512_mul_ps(y, gain);
    const __m512 d = A == Act::Silu ? _mm512_mul_ps(y, _mm512_fmadd_ps(s, not_y, one)) : _mm512_mul_ps(y, not_y);
    return _mm512_mul_ps(_mm512_mul_ps(g, gain), d);
  }
}

// 16 values of span() at y + k (the first `m` lanes where the tail is shorter); full vectors load and store
// without masks, because masks on every vector slow the loop down (results/README.md, "The AVX-512 intrinsics
// loops"). Adds the outputs to the bias-gradient sums as span() does.
template <bool FULL>
DDGAN_AVX512 inline __m512 load(const float* p, int64_t k, __mmask16 m) {
  return FULL ? _mm512_loadu_ps(p + k) : _mm512_maskz_loadu_ps(m, p + k);
}

template <Act A, int ORDER, bool FULL>
DDGAN_AVX512 inline void step(const float* x, const float* g, float* y, int64_t k, __mmask16 m, const float* bias,
                              int64_t bias_step, __m512 bv, __m512 gain, __m512 alpha, double* sums,
                              __m512d& total) {
  const __m512 s = _mm512_add_ps(load<FULL>(x, k, m), bias_step ? load<FULL>(bias, k, m) : bv);
  __m512 v = apply<A, ORDER>(s, ORDER ? load<FULL>(g, k, m) : s, gain, alpha);
  if (FULL) {
    _mm512_storeu_ps(y + k, v);
  } else {
    v = _mm512_maskz_mov_ps(m, v);  // lanes past the end hold f(0), not 0
    _mm512_mask_storeu_ps(y + k, m, v);
  }
  if (!sums) return;
  const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
  if (bias_step == 0) {
    total = _mm512_add_pd(total, _mm512_add_pd(lo, hi));
  } else if (FULL) {
    _mm512_storeu_pd(sums + k, _mm512_add_pd(_mm512_loadu_pd(sums + k), lo));
    _mm512_storeu_pd(sums + k + 8, _mm512_add_pd(_mm512_loadu_pd(sums + k + 8), hi));
  } else {
    _mm512_mask_storeu_pd(sums + k, __mmask8(m), _mm512_add_pd(_mm512_maskz_loadu_pd(__mmask8(m), sums + k), lo));
    _mm512_mask_storeu_pd(sums + k + 8, __mmask8(m >> 8),
                          _mm512_add_pd(_mm512_maskz_loadu_pd(__mmask8(m >> 8), sums + k + 8), hi));
  }
}

// span() for the activations with an intrinsics version (has_intrinsics), ORDER 0 or 1, no clamp, T = float: the
// twin of the generic span() above, which every other clone, activation, order and clamp runs.
template <Act A, int ORDER>
DDGAN_AVX512 void span(const float* x, const float* g, float* y, int64_t n, const float* bias, int64_t bias_step,
                       float alpha, float gain, double* sums) {
  const __m512 gv = _mm512_set1_ps(gain), av = _mm512_set1_ps(alpha);
  const __m512 bv = _mm512_set1_ps(bias && !bias_step ? bias[0] : 0.0f);
  __m512d total = _mm512_setzero_pd();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) step<A, ORDER, true>(x, g, y, k, 0xFFFF, bias, bias_step, bv, gv, av, sums, total);
  if (k < n) {
    const auto tail = __mmask16((1u << (n - k)) - 1);
    step<A, ORDER, false>(x, g, y, k, tail, bias, bias_step, bv, gv, av, sums, total);
  }
  if (sums && bias_step == 0) sums[0] += _mm512_reduce_add_pd(total);
}

}  // namespace avx512
#endif

// The same span compiled three times: for AVX-512 and for AVX2 + FMA (chosen at run time where the CPU has them)
// and for the baseline x86-64 / other architectures, so one build runs everywhere and uses 16- or 8-wide vectors
// where it can.
#if defined(__x86_64__) && defined(__GNUC__)
template <typename T, Act A, int ORDER, bool CLAMP>
__attribute__((target("avx512f,avx512dq,avx512vl,avx512bw,avx2,fma,prefer-vector-width=512"))) void span_avx512(
    const T* x, const T* g, T* y, int64_t n, const T* bias, int64_t bias_step, T alpha, T gain, T clamp, double* sums) {
  if constexpr (std::is_same_v<T, float> && avx512::has_intrinsics(A) && ORDER < 2 && !CLAMP) {
    avx512::span<A, ORDER>(x, g, y, n, bias, bias_step, alpha, gain, sums);
  } else {
    span<T, A, ORDER, CLAMP>(x, g, y, n, bias, bias_step, alpha, gain, clamp, sums);
  }
}

template <typename T, Act A, int ORDER, bool CLAMP>
__attribute__((target("avx2,fma"))) void span_avx2(const T* x, const T* g, T* y, int64_t n, const T* bias,
                                                   int64_t bias_step, T alpha, T gain, T clamp, double* sums) {
  span<T, A, ORDER, CLAMP>(x, g, y, n, bias, bias_step, alpha, gain, clamp, sums);
}
#endif

template <typename T, Act A, int ORDER, bool CLAMP>
void span_default(const T* x, const T* g, T* y, int64_t n, const T* bias, int64_t bias_step, T alpha, T gain,
                  T clamp, double* sums) {
  span<T, A, ORDER, CLAMP>(x, g, y, n, bias, bias_step, alpha, gain, clamp, sums);
}

template <typename T>
using SpanFn = void (*)(const T*, const T*, T*, int64_t, const T*, int64_t, T, T, T, double*);

template <typename T, Act A, int ORDER, bool CLAMP>
SpanFn<T> pick_span() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (cpu_isa() == CpuIsa::Avx512) return span_avx512<T, A, ORDER, CLAMP>;
  if (cpu_isa() == CpuIsa::Avx2) return span_avx2<T, A, ORDER, CLAMP>;
#endif
  return span_default<T, A, ORDER, CLAMP>;
}

// Splits [0, n) into spans of constant bias (runs of `inner` elements, NCHW) or of consecutive channels
// (inner == 1: channels_last, [N, C]) and hands them to the span function across threads. With `db`, also
// sums y per channel (per-thread double partials, added in thread order: deterministic for a thread count).
template <typename T, Act A, int ORDER, bool CLAMP>
void run(const T* x, const T* b, const T* g, T* y, int64_t n, const BiasActParams& p, T* db) {
  const T alpha = p.alpha, gain = p.gain, clamp = p.clamp;
  const int64_t channels = p.channels, inner = p.inner;
  const SpanFn<T> run_span = pick_span<T, A, ORDER, CLAMP>();
  std::vector<double> partial(db ? at::get_num_threads() * channels : 0, 0.0);
  at::parallel_for(0, n, 32768, [&](int64_t begin, int64_t end) {
    double* part = db ? partial.data() + at::get_thread_num() * channels : nullptr;
    for (int64_t i = begin; i < end;) {
      const T* gi = ORDER ? g + i : nullptr;
      if (channels == 0) {
        run_span(x + i, gi, y + i, end - i, nullptr, 0, alpha, gain, clamp, nullptr);
        i = end;
      } else if (inner > 1) {
        const int64_t stop = std::min(end, (i / inner + 1) * inner), c = (i / inner) % channels;
        run_span(x + i, gi, y + i, stop - i, b + c, 0, alpha, gain, clamp, part ? part + c : nullptr);
        i = stop;
      } else {
        const int64_t stop = std::min(end, (i / channels + 1) * channels), c = i % channels;
        run_span(x + i, gi, y + i, stop - i, b + c, 1, alpha, gain, clamp, part ? part + c : nullptr);
        i = stop;
      }
    }
  });
  for (int64_t c = 0; db && c < channels; ++c) {
    double total = 0;
    for (size_t t = c; t < partial.size(); t += channels) total += partial[t];
    db[c] = static_cast<T>(total);
  }
}

// x's layout, uninitialised. Large outputs come straight from mmap (glibc's threshold tops out at 32 MiB), so the
// first write to each 4 KiB page faults, which can cost more than the arithmetic (results/README.md, "Huge pages
// for large outputs"). Transparent huge pages are asked for instead (as PyTorch's THP_MEM_ALLOC_ENABLE=1 does for
// every allocation): 2 MiB pages, 512x fewer faults; a no-op where THP is off or madvise is unsupported.
at::Tensor empty_output(const at::Tensor& like) {
  auto y = at::empty_like(like);
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  const uintptr_t start = reinterpret_cast<uintptr_t>(y.data_ptr()), bytes = y.nbytes();
  const uintptr_t begin = (start + kHuge - 1) & ~(kHuge - 1), end = (start + bytes) & ~(kHuge - 1);
  if (bytes >= 4 * kHuge && end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_HUGEPAGE);
#endif
  return y;
}

}  // namespace

std::vector<at::Tensor> bias_act_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                                     const BiasActParams& p) {
  auto y = empty_output(x);
  auto db = p.reduce_bias ? at::empty({p.channels}, x.options()) : at::Tensor();
  if (x.numel() == 0) return {y, db.defined() ? db.zero_() : db};  // db is written channel by channel below
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "bias_act_cpu", [&] {
    const scalar_t* bp = p.channels ? b.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gp = p.order ? g.data_ptr<scalar_t>() : nullptr;
    dispatch_act_order(p.act, p.order, [&](auto act, auto order) {
      constexpr Act A = decltype(act)::value;
      constexpr int ORDER = decltype(order)::value;
      const scalar_t* xp = x.data_ptr<scalar_t>();
      scalar_t* yp = y.data_ptr<scalar_t>();
      scalar_t* dbp = p.reduce_bias ? db.data_ptr<scalar_t>() : nullptr;
      if (p.clamp >= 0) {
        run<scalar_t, A, ORDER, true>(xp, bp, gp, yp, x.numel(), p, dbp);
      } else {
        run<scalar_t, A, ORDER, false>(xp, bp, gp, yp, x.numel(), p, dbp);
      }
    });
  });
  return {y, db};
}
