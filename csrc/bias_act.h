// bias_act: declarations shared by the binding (bias_act.cpp) and its CPU (bias_act_cpu.cpp) and CUDA
// (bias_act.cu) kernels, plus the activations themselves. Semantics: ddgan_ref.ops.bias_act_ref.
#pragma once

#include <ATen/ATen.h>

#include <cmath>
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
// Returns {out, out summed over all dims but `dim` (reduce_bias) or an empty tensor}.
std::vector<at::Tensor> bias_act_cpu(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g,
                                     const BiasActParams& p);
#ifdef DDGAN_WITH_CUDA
at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const BiasActParams& p);
#endif

// f(s), f'(s), f''(s) of activation A with slope/scale alpha (lrelu only). T is the compute type.
template <Act A, typename T>
struct Activation {
  // std:: overloads keep float math in float on the host; nvcc maps them to the device math library.
  DDGAN_HOST_DEVICE static T sigmoid(T s) { return T(1) / (T(1) + std::exp(-s)); }

  DDGAN_HOST_DEVICE static T f(T s, T alpha) {
    if (A == Act::Linear) return s;
    if (A == Act::Relu) return s > T(0) ? s : T(0);
    if (A == Act::Lrelu) return s > T(0) ? s : s * alpha;
    if (A == Act::Tanh) return std::tanh(s);
    if (A == Act::Sigmoid) return sigmoid(s);
    if (A == Act::Elu) return s > T(0) ? s : std::expm1(s);
    if (A == Act::Selu) return T(1.0507009873554805) * (s > T(0) ? s : T(1.6732632423543772) * std::expm1(s));
    if (A == Act::Softplus) return s > T(20) ? s : std::log1p(std::exp(s));
    return s * sigmoid(s);  // Silu
  }

  DDGAN_HOST_DEVICE static T df(T s, T alpha) {
    if (A == Act::Linear) return T(1);
    if (A == Act::Relu) return s > T(0) ? T(1) : T(0);
    if (A == Act::Lrelu) return s > T(0) ? T(1) : alpha;
    if (A == Act::Tanh) { const T y = std::tanh(s); return T(1) - y * y; }
    if (A == Act::Sigmoid) { const T y = sigmoid(s); return y * (T(1) - y); }
    if (A == Act::Elu) return s > T(0) ? T(1) : std::exp(s);
    if (A == Act::Selu) return T(1.0507009873554805) * (s > T(0) ? T(1) : T(1.6732632423543772) * std::exp(s));
    if (A == Act::Softplus) return s > T(20) ? T(1) : sigmoid(s);
    const T y = sigmoid(s);  // Silu
    return y * (T(1) + s * (T(1) - y));
  }

  DDGAN_HOST_DEVICE static T d2f(T s, T alpha) {
    if (A == Act::Linear || A == Act::Relu || A == Act::Lrelu) return T(0);
    if (A == Act::Tanh) { const T y = std::tanh(s); return T(-2) * y * (T(1) - y * y); }
    if (A == Act::Sigmoid) { const T y = sigmoid(s); return y * (T(1) - y) * (T(1) - T(2) * y); }
    if (A == Act::Elu) return s > T(0) ? T(0) : std::exp(s);
    if (A == Act::Selu) return s > T(0) ? T(0) : T(1.0507009873554805 * 1.6732632423543772) * std::exp(s);
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
