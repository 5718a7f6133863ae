// bias_act CUDA kernel: one elementwise pass (grid-stride) over dense memory in any layout, activation and
// derivative order fixed at compile time, half/bfloat16 computed in float.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "bias_act.h"

namespace {

template <typename T, Act A, int ORDER>
__global__ void bias_act_kernel(const T* __restrict__ x, const T* __restrict__ b, const T* __restrict__ g,
                                T* __restrict__ y, int64_t n, BiasActParams p) {
  using acc_t = at::opmath_type<T>;
  using Op = Activation<A, acc_t>;
  const acc_t alpha = p.alpha, gain = p.gain, clamp = p.clamp;
  for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
    acc_t s = static_cast<acc_t>(x[i]);
    if (p.channels) s += static_cast<acc_t>(b[(i / p.inner) % p.channels]);
    const acc_t gi = ORDER ? static_cast<acc_t>(g[i]) : acc_t(0);
    y[i] = static_cast<T>(Op::template apply<ORDER>(s, gi, alpha, gain, clamp));
  }
}

}  // namespace

at::Tensor bias_act_cuda(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, const BiasActParams& p) {
  const c10::cuda::CUDAGuard guard(x.device());
  auto y = at::empty_like(x);
  const int64_t n = x.numel();
  if (n == 0) return y;
  const int threads = 256;
  const int64_t blocks = std::min<int64_t>((n + threads - 1) / threads, 65535LL * 8);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "bias_act_cuda", [&] {
    const scalar_t* bp = p.channels ? b.data_ptr<scalar_t>() : nullptr;
    const scalar_t* gp = p.order ? g.data_ptr<scalar_t>() : nullptr;
    dispatch_act(p.act, [&](auto act) {
      dispatch_order(p.order, [&](auto order) {
        bias_act_kernel<scalar_t, decltype(act)::value, decltype(order)::value>
            <<<blocks, threads, 0, stream>>>(x.data_ptr<scalar_t>(), bp, gp, y.data_ptr<scalar_t>(), n, p);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
    });
  });
  return y;
}
