// bias_act: Python binding and argument checks; dispatches to the CPU or CUDA kernel by device.
#include <torch/extension.h>

#include "bias_act.h"

static std::vector<at::Tensor> bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, int64_t dim,
                                        int64_t act, double alpha, double gain, double clamp, int64_t order,
                                        bool reduce_bias) {
  TORCH_CHECK(x.is_floating_point(), "bias_act: x must be a floating-point tensor, got ", x.scalar_type());
  TORCH_CHECK(x.dim() >= 1, "bias_act: x must have at least one dimension");
  TORCH_CHECK(dim >= 0 && dim < x.dim(), "bias_act: dim must be in [0, ", x.dim(), ") for x of shape ", x.sizes(),
              ", got ", dim);
  TORCH_CHECK(b.numel() == 0 || (b.dim() == 1 && b.numel() == x.size(dim)), "bias_act: b must be empty or have ",
              x.size(dim), " elements (x.shape[dim]), got shape ", b.sizes());
  TORCH_CHECK(b.numel() == 0 || (b.device() == x.device() && b.scalar_type() == x.scalar_type()),
              "bias_act: b must have x's device and dtype (", x.device(), ", ", x.scalar_type(), "), got (",
              b.device(), ", ", b.scalar_type(), ")");
  TORCH_CHECK(order >= 0 && order <= 2, "bias_act: order must be 0 (value), 1 or 2 (derivatives), got ", order);
  TORCH_CHECK(order == 0 || (g.sizes() == x.sizes() && g.device() == x.device() && g.scalar_type() == x.scalar_type()),
              "bias_act: g must match x (shape ", x.sizes(), ", ", x.scalar_type(), ", ", x.device(), ") for order ",
              order, ", got (shape ", g.sizes(), ", ", g.scalar_type(), ", ", g.device(), ")");
  TORCH_CHECK(act >= 0 && act < int64_t(Act::Count), "bias_act: act must be an activation id in [0, ",
              int64_t(Act::Count), "), got ", act);
  TORCH_CHECK(!reduce_bias || b.numel() > 0, "bias_act: reduce_bias needs a bias b");
  TORCH_CHECK(std::isfinite(alpha) && std::isfinite(gain) && std::isfinite(clamp),
              "bias_act: alpha, gain and clamp must be finite, got ", alpha, ", ", gain, ", ", clamp);
  // Kernels walk memory linearly: x dense, g in x's strides, so the channel of offset i is (i / inner) % channels.
  const at::Tensor xd = x.is_non_overlapping_and_dense() ? x : x.contiguous();
  const at::Tensor gd = (order == 0 || g.strides() == xd.strides()) ? g : at::empty_like(xd).copy_(g);
  const at::Tensor bd = b.contiguous();
  // A size-1 dim may have any stride (even 0); its channel index is 0 whatever `inner` is.
  const int64_t inner = x.size(dim) == 1 ? 1 : xd.stride(dim);
  const BiasActParams p{b.numel() ? x.size(dim) : 0, inner, act, alpha, gain, clamp, order, reduce_bias};
  if (x.is_cuda()) {
#ifdef DDGAN_WITH_CUDA
    auto y = bias_act_cuda(xd, bd, gd, p);
    std::vector<int64_t> others;
    for (int64_t i = 0; i < y.dim(); ++i) {
      if (i != dim) others.push_back(i);
    }
    return {y, reduce_bias ? y.sum(others) : at::empty({0}, y.options())};
#else
    TORCH_CHECK(false, "bias_act: x is a CUDA tensor but this build of the extension has no CUDA kernel");
#endif
  }
  TORCH_CHECK(x.device().is_cpu(), "bias_act: x must be a CPU or CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bias_act: the CPU kernel supports float32 and float64 x, got ", x.scalar_type());
  return bias_act_cpu(xd, bd, gd, p);
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act,
        "[clamp(act(x + b) * gain) or its first/second derivative times g, that summed over all dims but dim]",
        py::arg("x"), py::arg("b"), py::arg("g"), py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"),
        py::arg("clamp"), py::arg("order"), py::arg("reduce_bias"));
}
