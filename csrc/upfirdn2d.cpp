// upfirdn2d: Python binding and argument checks; dispatches to the CPU or CUDA kernel by device.
#include <torch/extension.h>

#include "upfirdn2d.h"

static at::Tensor upfirdn2d(const at::Tensor& x, const at::Tensor& f, int64_t up_x, int64_t up_y, int64_t down_x,
                            int64_t down_y, int64_t pad_x0, int64_t pad_x1, int64_t pad_y0, int64_t pad_y1,
                            bool flip_filter, double gain) {
  TORCH_CHECK(x.dim() == 4, "upfirdn2d: x must be 4-D [N, C, H, W], got ", x.dim(), "-D");
  TORCH_CHECK(x.is_floating_point(), "upfirdn2d: x must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(f.dim() == 2, "upfirdn2d: f must be a 2-D [kh, kw] filter, got ", f.dim(), "-D");
  TORCH_CHECK(f.device() == x.device(), "upfirdn2d: f must be on x's device ", x.device(), ", got ", f.device());
  const auto f_dtype = x.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  TORCH_CHECK(f.scalar_type() == f_dtype, "upfirdn2d: f must be ", f_dtype, " for x of dtype ", x.scalar_type(),
              ", got ", f.scalar_type());
  TORCH_CHECK(f.numel() > 0, "upfirdn2d: f must not be empty");
  TORCH_CHECK(up_x >= 1 && up_y >= 1, "upfirdn2d: up must be >= 1, got (", up_x, ", ", up_y, ")");
  TORCH_CHECK(down_x >= 1 && down_y >= 1, "upfirdn2d: down must be >= 1, got (", down_x, ", ", down_y, ")");
  TORCH_CHECK(std::isfinite(gain), "upfirdn2d: gain must be finite, got ", gain);
  Upfirdn2dParams p{up_x, up_y, down_x, down_y, pad_x0, pad_x1, pad_y0, pad_y1,
                    x.size(2), x.size(3), 0, 0, f.size(0), f.size(1), flip_filter, gain};
  const int64_t padded_h = p.in_h * up_y + pad_y0 + pad_y1, padded_w = p.in_w * up_x + pad_x0 + pad_x1;
  TORCH_CHECK(padded_h >= p.kernel_h && padded_w >= p.kernel_w, "upfirdn2d: pad (x0, x1, y0, y1) = (", pad_x0, ", ",
              pad_x1, ", ", pad_y0, ", ", pad_y1, ") leaves a padded input of ", padded_h, "x", padded_w,
              ", smaller than the ", p.kernel_h, "x", p.kernel_w, " filter");
  p.out_h = (padded_h - p.kernel_h) / down_y + 1;  // twin of _output_hw (ddgan_ref/ops/upfirdn2d.py, the fake op)
  p.out_w = (padded_w - p.kernel_w) / down_x + 1;
  if (x.is_cuda()) {
#ifdef DDGAN_WITH_CUDA
    return upfirdn2d_cuda(x, f, p);
#else
    TORCH_CHECK(false, "upfirdn2d: x is a CUDA tensor but this build of the extension has no CUDA kernel");
#endif
  }
  TORCH_CHECK(x.device().is_cpu(), "upfirdn2d: x must be a CPU or CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "upfirdn2d: the CPU kernel supports float32 and float64 x, got ", x.scalar_type());
  return upfirdn2d_cpu(x, f, p);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("upfirdn2d", &upfirdn2d, "upsample, pad, FIR-filter and downsample a [N, C, H, W] tensor", py::arg("x"),
        py::arg("f"), py::arg("up_x"), py::arg("up_y"), py::arg("down_x"), py::arg("down_y"), py::arg("pad_x0"),
        py::arg("pad_x1"), py::arg("pad_y0"), py::arg("pad_y1"), py::arg("flip_filter"), py::arg("gain"));
}
