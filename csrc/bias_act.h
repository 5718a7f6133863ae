// bias_act: declarations shared by the binding (bias_act.cpp) and its CPU (bias_act_cpu.cpp) and CUDA
// (bias_act.cu) kernels, plus the activations themselves. Semantics: ddgan_ref.ops.bias_act_ref.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__CUDACC__)
#define DDGAN_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define DDGAN_HOST_DEVICE inline
#endif

// Activation ids, in the order of ddgan_ref.ops.bias_act.ACTIVATIONS.
enum class Act : int64_t { Linear = 0, Relu, Lrelu, Tanh, Sigmoid, Elu, Selu, Softplus, Silu, Count };

struct BiasActParams {
  int64_t channels;     // size of x along dim (0 when there is no bias)
  int64_t inner;        // x.stride(dim): elements of one channel run
  int64_t act;          // an Act id
  double alpha, gain, clamp;  // clamp < 0: no clamp
  int64_t order;        // 0: y; 1: g * dy/ds; 2: g * d2y/ds2 (s = x + b)
  bool reduce_bias;     // also return the output summed over every dim but `dim` (the bias gradient)
};

// x, b, g: float/double (CPU) or also half/bfloat16 (CUDA); b has x.size(dim) elements or none; g is like x.
// Returns {out, out summed over all dims but `dim` (reduce_bias) or an undefined tensor}.
std::vector<at::Tensor> bias_act_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                                     const BiasActParams& p);
#ifdef DDGAN_WITH_CUDA
at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const BiasActParams& p);
#endif

// exp, expm1 and tanh for float32 in straight-line code (selects, no calls) that compilers vectorise, for the
// CPU kernel: libm's scalar calls would keep its loops scalar, slower than ATen's reference ops (results/README.md,
// "Vectorisable exp, expm1 and tanh"). Cephes' expf (Cody-Waite reduction, degree-6 polynomial; 2^n applied in two
// halves so results down to the denormals and up to FLT_MAX come out right, and 0 or inf beyond), Taylor expm1 and
// Cephes' tanhf polynomial near 0 where exp would cancel.
// Relative error a few float32 ulp (the tests hold them to 1e-5 of float64).
namespace vecmath {

inline float from_bits(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

inline int32_t to_bits(float f) {
  int32_t i;
  std::memcpy(&i, &f, sizeof i);
  return i;
}

// Twin of avx512::exp (bias_act_cpu.cpp), the same polynomial in intrinsics for the AVX-512 loops; this one serves
// every other clone and case, and the tests check both against the reference.
inline float exp(float x) {
  // Clamped so that 2^n below underflows to 0 (x <= -110) or overflows to inf (x >= 89) by itself, with no selects
  // after the polynomial (a NaN select there makes GCC evaluate sigmoid's division twice per vector).
  const float xc = x < -110.0f ? -110.0f : (x > 89.0f ? 89.0f : x);  // NaN passes and leaves p, so y, NaN
  const float t = xc * 1.44269504088896341f + 12582912.0f;  // 1.5 * 2^23: rounds to an integer n, held in t's low bits
  const float n = t - 12582912.0f;
  const float r = (xc - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * (r * r) + r + 1.0f;
  const int32_t k = to_bits(t) - 0x4B400000, h = k >> 1;  // n; |n| <= 159, so both halves are normal
  return p * from_bits((h + 127) << 23) * from_bits((k - h + 127) << 23);
}

inline float expm1(float x) {
  float p = 1.0f / 40320.0f;  // Taylor to x^8 for |x| < 0.5: error below 1e-8 relative
  p = p * x + 1.0f / 5040.0f;
  p = p * x + 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  const float small = (p * x) * x + x;
  return (x > -0.5f && x < 0.5f) ? small : exp(x) - 1.0f;
}

inline float tanh(float x) {
  const float z = x * x;
  float p = -5.70498872745e-3f;
  p = p * z + 2.06390887954e-2f;
  p = p * z - 5.37397155531e-2f;
  p = p * z + 1.33314422036e-1f;
  p = p * z - 3.33332819422e-1f;
  const float small = p * z * x + x;
  const float large = 1.0f - 2.0f / (exp(2.0f * (x < 0 ? -x : x)) + 1.0f);
  return (x < 0.625f && x > -0.625f) ? small : (x < 0 ? -large : large);
}

}  // namespace vecmath

// The math functions of the activations: vecmath's for float on the host, the standard ones otherwise.
template <typename T>
struct Math {
  DDGAN_HOST_DEVICE static T exp(T s) { return std::exp(s); }
  DDGAN_HOST_DEVICE static T expm1(T s) { return std::expm1(s); }
  DDGAN_HOST_DEVICE static T tanh(T s) { return std::tanh(s); }
};

#if !defined(__CUDACC__)
template <>
struct Math<float> {
  static float exp(float s) { return vecmath::exp(s); }
  static float expm1(float s) { return vecmath::expm1(s); }
  static float tanh(float s) { return vecmath::tanh(s); }
};
#endif

// f(s), f'(s), f''(s) of activation A with slope/scale alpha (lrelu only). T is the compute type. Twin of the
// reference functions in ddgan_ref.ops.bias_act.ACTIVATIONS (torch ops, derivatives by autograd): the reference is
// the tests' oracle and the fallback where no kernel builds.
template <Act A, typename T>
struct Activation {
  using M = Math<T>;
  DDGAN_HOST_DEVICE static T sigmoid(T s) { return T(1) / (T(1) + M::exp(-s)); }

  DDGAN_HOST_DEVICE static T f(T s, T alpha) {
    if (A == Act::Linear) return s;
    if (A == Act::Relu) return s < T(0) ? T(0) : s;  // NaN stays NaN, as torch.relu
    if (A == Act::Lrelu) return s > T(0) ? s : s * alpha;
    if (A == Act::Tanh) return M::tanh(s);
    if (A == Act::Sigmoid) return sigmoid(s);
    if (A == Act::Elu) return s > T(0) ? s : M::expm1(s);
    if (A == Act::Selu) return T(1.0507009873554805) * (s > T(0) ? s : T(1.6732632423543772) * M::expm1(s));
    if (A == Act::Softplus) return s > T(20) ? s : std::log1p(M::exp(s));
    return s / (T(1) + M::exp(-s));  // Silu: one division, no multiply; as torch's kernel
  }

  DDGAN_HOST_DEVICE static T df(T s, T alpha) {
    if (A == Act::Linear) return T(1);
    if (A == Act::Relu) return s > T(0) ? T(1) : T(0);
    if (A == Act::Lrelu) return s > T(0) ? T(1) : alpha;
    if (A == Act::Tanh) { const T y = M::tanh(s); return T(1) - y * y; }
    if (A == Act::Sigmoid) { const T y = sigmoid(s); return y * (T(1) - y); }
    if (A == Act::Elu) return s > T(0) ? T(1) : M::exp(s);
    if (A == Act::Selu) return T(1.0507009873554805) * (s > T(0) ? T(1) : T(1.6732632423543772) * M::exp(s));
    if (A == Act::Softplus) return s > T(20) ? T(1) : sigmoid(s);
    const T y = sigmoid(s);  // Silu
    return y * (T(1) + s * (T(1) - y));
  }

  DDGAN_HOST_DEVICE static T d2f(T s, T alpha) {
    if (A == Act::Linear || A == Act::Relu || A == Act::Lrelu) return T(0);
    if (A == Act::Tanh) { const T y = M::tanh(s); return T(-2) * y * (T(1) - y * y); }
    if (A == Act::Sigmoid) { const T y = sigmoid(s); return y * (T(1) - y) * (T(1) - T(2) * y); }
    if (A == Act::Elu) return s > T(0) ? T(0) : M::exp(s);
    if (A == Act::Selu) return s > T(0) ? T(0) : T(1.0507009873554805 * 1.6732632423543772) * M::exp(s);
    if (A == Act::Softplus) { if (s > T(20)) return T(0); const T y = sigmoid(s); return y * (T(1) - y); }
    const T y = sigmoid(s);  // Silu
    return y * (T(1) - y) * (T(2) + s * (T(1) - T(2) * y));
  }

  // The op for one element: y (ORDER 0), or g times the first (1) or second (2) derivative of y w.r.t. s.
  template <int ORDER>
  DDGAN_HOST_DEVICE static T apply(T s, T g, T alpha, T gain, T clamp) {
    if (ORDER == 0) {
      const T y = f(s, alpha) * gain;
      return clamp >= T(0) ? (y > clamp ? clamp : (y < -clamp ? -clamp : y)) : y;
    }
    if (clamp >= T(0)) {  // clamp passes gradients where |y| <= clamp, as torch.clamp does
      const T y = f(s, alpha) * gain;
      if (y > clamp || y < -clamp) return T(0);
    }
    return g * gain * (ORDER == 1 ? df(s, alpha) : d2f(s, alpha));
  }
};

template <Act A>
using ActTag = std::integral_constant<Act, A>;

// Calls fn(ActTag<A>{}) with the activation named by `act` as a compile-time constant.
template <typename Fn>
void dispatch_act(int64_t act, Fn&& fn) {
  switch (static_cast<Act>(act)) {
    case Act::Linear: return fn(ActTag<Act::Linear>{});
    case Act::Relu: return fn(ActTag<Act::Relu>{});
    case Act::Lrelu: return fn(ActTag<Act::Lrelu>{});
    case Act::Tanh: return fn(ActTag<Act::Tanh>{});
    case Act::Sigmoid: return fn(ActTag<Act::Sigmoid>{});
    case Act::Elu: return fn(ActTag<Act::Elu>{});
    case Act::Selu: return fn(ActTag<Act::Selu>{});
    case Act::Softplus: return fn(ActTag<Act::Softplus>{});
    case Act::Silu: return fn(ActTag<Act::Silu>{});
    default: TORCH_CHECK(false, "bias_act: act must be an activation id in [0, ", int64_t(Act::Count), "), got ", act);
  }
}

// Calls fn(std::integral_constant<int, ORDER>{}) for order 0, 1 or 2.
template <typename Fn>
void dispatch_order(int64_t order, Fn&& fn) {
  switch (order) {
    case 0: return fn(std::integral_constant<int, 0>{});
    case 1: return fn(std::integral_constant<int, 1>{});
    case 2: return fn(std::integral_constant<int, 2>{});
    default: TORCH_CHECK(false, "bias_act: order must be 0, 1 or 2, got ", order);
  }
}

// Calls fn(ActTag<A>{}, std::integral_constant<int, ORDER>{}): the one dispatch of the CPU and the CUDA kernel.
template <typename Fn>
void dispatch_act_order(int64_t act, int64_t order, Fn&& fn) {
  dispatch_act(act, [&](auto a) { dispatch_order(order, [&](auto o) { fn(a, o); }); });
}
