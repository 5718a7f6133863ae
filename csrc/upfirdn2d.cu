// upfirdn2d CUDA kernel: one thread per output element, polyphase taps only, any strides on input (NCHW and
// channels_last), output written in the input's layout, float accumulation for half/bfloat16. Indices are 32-bit
// (the binding checks sizes): blockIdx.x walks the output's outer index (n * C + c for NCHW, n for channels_last)
// and blockIdx.y/threadIdx.x the elements inside it, so a thread does one or two 32-bit divisions, not int64 ones.
// The filter is read as given: flip and gain are applied here, so a call launches one kernel and nothing else.
// Twin of ddgan_ref.ops.upfirdn2d_ref, the readable oracle the tests compare it with and the fallback.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "upfirdn2d.h"

namespace {

struct Geometry {
  int n, c, in_h, in_w, out_h, out_w, kh, kw, up_x, up_y, down_x, down_y, pad_x0, pad_y0;
  int64_t sx_n, sx_c, sx_h, sx_w;  // input strides
  bool channels_last;              // output layout
  bool flip_filter;                // correlate with f as given (true) or with f rotated by 180 degrees
  unsigned inner;                  // output elements per outer index: out_h * out_w (NCHW) or that * C
};

__device__ __forceinline__ int floor_mod(int a, int m) { return ((a % m) + m) % m; }

// UX/KX/UY/KY: compile-time up factors and filter sizes (0: read from g at run time).
template <typename T, int UX, int KX, int UY, int KY>
__global__ void upfirdn2d_kernel(const T* __restrict__ x, const at::opmath_type<T>* __restrict__ w,
                                 T* __restrict__ y, Geometry g, at::opmath_type<T> gain) {
  using acc_t = at::opmath_type<T>;
  const int ux = UX ? UX : g.up_x, uy = UY ? UY : g.up_y, kw = KX ? KX : g.kw, kh = KY ? KY : g.kh;
  const unsigned outer = blockIdx.x, out_w = g.out_w, channels = g.c;
  for (unsigned r = blockIdx.y * blockDim.x + threadIdx.x; r < g.inner; r += gridDim.y * blockDim.x) {
    unsigned n, c, pixel;
    if (g.channels_last) {
      n = outer, pixel = r / channels, c = r - pixel * channels;
    } else {
      n = outer / channels, c = outer - n * channels, pixel = r;
    }
    const int oy = pixel / out_w, ox = pixel - oy * out_w;
    const int sx = ox * g.down_x - g.pad_x0, sy = oy * g.down_y - g.pad_y0;
    const int tx0 = floor_mod(-sx, ux), ty0 = floor_mod(-sy, uy);  // the taps of make_axis (upfirdn2d_cpu.cpp)
    const int ix0 = (sx + tx0) / ux, iy0 = (sy + ty0) / uy;
    const T* plane = x + n * g.sx_n + c * g.sx_c;
    acc_t acc = 0;
#pragma unroll
    for (int ty = ty0, iy = iy0; ty < (KY ? KY : kh); ty += uy, ++iy) {
      if (iy < 0 || iy >= g.in_h) continue;
      const acc_t* row = w + (g.flip_filter ? ty : kh - 1 - ty) * kw;
#pragma unroll
      for (int tx = tx0, ix = ix0; tx < (KX ? KX : kw); tx += ux, ++ix) {
        if (ix < 0 || ix >= g.in_w) continue;
        acc += static_cast<acc_t>(plane[iy * g.sx_h + ix * g.sx_w]) * row[g.flip_filter ? tx : kw - 1 - tx];
      }
    }
    y[(int64_t)outer * g.inner + r] = static_cast<T>(acc * gain);
  }
}

template <typename T, int UX, int KX, int UY, int KY>
void launch(const at::Tensor& x, const at::Tensor& w, at::Tensor& y, const Geometry& g, double gain) {
  const int threads = 256;
  const unsigned outer = g.channels_last ? g.n : g.n * g.c;
  const dim3 blocks(outer, std::min<unsigned>((g.inner + threads - 1) / threads, 65535u));
  auto stream = c10::cuda::getCurrentCUDAStream();
  upfirdn2d_kernel<T, UX, KX, UY, KY><<<blocks, threads, 0, stream>>>(
      x.data_ptr<T>(), w.data_ptr<at::opmath_type<T>>(), y.data_ptr<T>(), g, static_cast<at::opmath_type<T>>(gain));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

template <typename T>
void run(const at::Tensor& x, const at::Tensor& f, at::Tensor& y, const Geometry& g, double gain) {
  const auto w = f.to(c10::CppTypeToScalarType<at::opmath_type<T>>::value).contiguous();  // no-op as Python calls it
  const auto is = [&](int ux, int kx, int uy, int ky) {
    return g.up_x == ux && g.kw == kx && g.up_y == uy && g.kh == ky;
  };
  if (is(2, 4, 2, 4)) return launch<T, 2, 4, 2, 4>(x, w, y, g, gain);
  if (is(1, 4, 1, 4)) return launch<T, 1, 4, 1, 4>(x, w, y, g, gain);
  if (is(2, 4, 1, 1)) return launch<T, 2, 4, 1, 1>(x, w, y, g, gain);
  if (is(1, 1, 2, 4)) return launch<T, 1, 1, 2, 4>(x, w, y, g, gain);
  launch<T, 0, 0, 0, 0>(x, w, y, g, gain);
}

}  // namespace

at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dParams& p) {
  TORCH_CHECK(x.numel() < (1LL << 31), "upfirdn2d: x has ", x.numel(), " elements; the CUDA kernel takes < 2^31");
  const c10::cuda::CUDAGuard guard(x.device());
  const auto format = upfirdn2d_output_format(x);
  auto y = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options().memory_format(format));
  TORCH_CHECK(y.numel() < (1LL << 31), "upfirdn2d: the output has ", y.numel(), " elements; the CUDA kernel takes < 2^31");
  if (y.numel() == 0) return y;
  Geometry g{(int)x.size(0), (int)x.size(1), (int)p.in_h, (int)p.in_w, (int)p.out_h, (int)p.out_w,
             (int)p.kernel_h, (int)p.kernel_w, (int)p.up_x, (int)p.up_y, (int)p.down_x, (int)p.down_y,
             (int)p.pad_x0, (int)p.pad_y0, x.stride(0), x.stride(1), x.stride(2), x.stride(3),
             format == at::MemoryFormat::ChannelsLast, p.flip_filter, 0u};
  g.inner = static_cast<unsigned>(g.channels_last ? y.numel() / g.n : (int64_t)p.out_h * p.out_w);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, x.scalar_type(), "upfirdn2d_cuda",
                                  [&] { run<scalar_t>(x, f, y, g, p.gain); });
  return y;
}
