// upfirdn2d: declarations shared by the binding (upfirdn2d.cpp) and its CPU (upfirdn2d_cpu.cpp) and CUDA
// (upfirdn2d.cu) kernels. Semantics: ddgan_ref.ops.upfirdn2d_ref, the readable PyTorch twin.
#pragma once

#include <ATen/ATen.h>

struct Upfirdn2dParams {
  int64_t up_x, up_y, down_x, down_y;
  int64_t pad_x0, pad_x1, pad_y0, pad_y1;
  int64_t in_h, in_w, out_h, out_w, kernel_h, kernel_w;
  bool flip_filter;
  double gain;
};

// x: [N, C, H, W] float/double, f: [kh, kw] of x's dtype. Returns [N, C, out_h, out_w] in x's layout.
at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dParams& p);

#ifdef DDGAN_WITH_CUDA
// x: [N, C, H, W] float/double/half/bfloat16 (NCHW or channels_last), f: float32 (double for double x).
at::Tensor upfirdn2d_cuda(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dParams& p);
#endif

// The output layout rule, twin of _output_format in ddgan_ref/ops/upfirdn2d.py (the fake function that
// torch.compile traces): channels_last in, channels_last out.
inline at::MemoryFormat upfirdn2d_output_format(const at::Tensor& x) {
  return (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) ? at::MemoryFormat::ChannelsLast
                                                                                   : at::MemoryFormat::Contiguous;
}
