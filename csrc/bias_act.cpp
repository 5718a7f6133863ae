// bias_act: Python binding and argument checks; dispatches to the CPU or CUDA kernel by device.
#include <torch/extension.h>
#include <torch/version.h>

#include "bias_act.h"

// The forward's graph node, written against torch::autograd::Node (as PyTorch's generated nodes are), is compiled only
// for the torch minor version it is tested with: Node's ownership and constructors change between releases. Other
// versions use the torch::autograd::Function (BiasAct) below: the same formulas, and the tests run both.
#if TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR == 14
#define DDGAN_BIAS_ACT_NODE
#include <ATen/FuncTorchTLS.h>
#include <torch/csrc/autograd/functions/utils.h>
#endif

// Every dim of an ndim-dimensional tensor but `dim`: what the bias gradient sums over.
static std::vector<int64_t> dims_but(int64_t ndim, int64_t dim) {
  std::vector<int64_t> others;
  for (int64_t i = 0; i < ndim; ++i) {
    if (i != dim) others.push_back(i);
  }
  return others;
}

// {out, db}: db (out summed over all dims but dim) only with reduce_bias, else an undefined tensor (no allocation).
static std::vector<at::Tensor> compute(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, int64_t dim,
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
    return {y, reduce_bias ? y.sum(dims_but(y.dim(), dim)) : at::Tensor()};
#else
    TORCH_CHECK(false, "bias_act: x is a CUDA tensor but this build of the extension has no CUDA kernel");
#endif
  }
  TORCH_CHECK(x.device().is_cpu(), "bias_act: x must be a CPU or CUDA tensor, got ", x.device());
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "bias_act: the CPU kernel supports float32 and float64 x, got ", x.scalar_type());
  return bias_act_cpu(xd, bd, gd, p);
}

// The Python binding: db is an empty tensor when not asked for (the custom ops return tensors only).
static std::vector<at::Tensor> bias_act(const at::Tensor& x, const at::Tensor& b, const at::Tensor& g, int64_t dim,
                                        int64_t act, double alpha, double gain, double clamp, int64_t order,
                                        bool reduce_bias) {
  auto out = compute(x, b, g, dim, act, alpha, gain, clamp, order, reduce_bias);
  if (!out[1].defined()) out[1] = at::empty({0}, out[0].options());
  return out;
}

// Eager-mode autograd in C++, twin of the custom ops' Python autograd in ddgan_ref/ops/bias_act.py: that one is what
// torch.compile and opcheck trace; this one keeps the Python frame out of eager backward passes, because for small
// tensors (StyleGAN2's mapping network: 64 x 512) the per-call overhead is most of the time.
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct Args {
  int64_t dim, act;
  double alpha, gain, clamp;

  // One saved entry (a tuple), not five: each entry of saved_data is a string-keyed hash-map insert and lookup.
  void save(AutogradContext* ctx) const {
    ctx->saved_data["args"] = c10::ivalue::Tuple::create(dim, act, alpha, gain, clamp);
  }
  static Args load(AutogradContext* ctx) {
    const auto& e = ctx->saved_data["args"].toTupleRef().elements();
    return {e[0].toInt(), e[1].toInt(), e[2].toDouble(), e[3].toDouble(), e[4].toDouble()};
  }
};

bool piecewise_linear(int64_t act) { return act <= int64_t(Act::Lrelu); }  // zero second derivative

std::vector<int64_t> bias_shape(const at::Tensor& x, int64_t dim) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[dim] = -1;
  return shape;
}

// (r, db): r = g times the first (order 1) or second (order 2) derivative of y w.r.t. s = x + b; db = r summed over
// all dims but dim (reduce) or an empty tensor. Differentiable once more for order 1. Twin of ddgan::bias_act_grad's
// Python autograd (_bias_act_grad_backward in ddgan_ref/ops/bias_act.py), which serves torch.compile.
struct BiasActGrad : torch::autograd::Function<BiasActGrad> {
  static variable_list forward(AutogradContext* ctx, const at::Tensor& g, const at::Tensor& x, const at::Tensor& b,
                               Args a, int64_t order, bool reduce) {
    ctx->set_materialize_grads(false);
    ctx->save_for_backward({g, x, b});
    a.save(ctx);
    ctx->saved_data["order"] = order, ctx->saved_data["reduce"] = reduce;
    return bias_act(x, b, g, a.dim, a.act, a.alpha, a.gain, a.clamp, order, reduce);  // outputs must be defined
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    TORCH_CHECK(ctx->saved_data["order"].toInt() == 1,
                "bias_act: the compiled kernels support gradients up to second order; use impl='ref'");
    const auto saved = ctx->get_saved_variables();
    const at::Tensor &g = saved[0], &x = saved[1], &b = saved[2];
    const Args a = Args::load(ctx);
    at::Tensor dr = grads[0];
    if (ctx->saved_data["reduce"].toBool() && grads[1].defined()) {  // db = sum(r): r also gets d_db along dim
      const auto d_r = grads[1].reshape(bias_shape(x, a.dim)).expand_as(x);
      dr = dr.defined() ? dr + d_r : d_r;
    }
    variable_list out(6);  // g, x, b, args, order, reduce
    if (!dr.defined()) return out;
    if (ctx->needs_input_grad(0)) out[0] = BiasActGrad::apply(dr, x, b, a, 1, false)[0];
    const bool want_db = b.numel() > 0 && ctx->needs_input_grad(2);
    if (!piecewise_linear(a.act) && (ctx->needs_input_grad(1) || want_db)) {
      auto r = BiasActGrad::apply(dr * g, x, b, a, 2, want_db);
      if (ctx->needs_input_grad(1)) out[1] = r[0];
      if (want_db) out[2] = r[1];
    }
    return out;
  }
};

// The first-order backward of y = clamp(act(x + b) * gain): {dx, db (want_db) or undefined}. Through BiasActGrad
// (order 1, differentiable once more) when grad mode is on (create_graph: R1), else the kernel directly. Twin of
// _bias_act_backward in ddgan_ref/ops/bias_act.py (ddgan::bias_act's autograd under torch.compile).
variable_list first_backward(const at::Tensor& x, const at::Tensor& b, const at::Tensor& dy, const Args& a,
                             bool want_db) {
  if (a.act == int64_t(Act::Linear) && a.clamp < 0) {  // y = (x + b) * gain: no kernel needed
    at::Tensor gs = a.gain != 1 ? dy * a.gain : dy;
    return {gs, want_db ? gs.sum(dims_but(gs.dim(), a.dim)) : at::Tensor()};
  }
  if (!at::GradMode::is_enabled()) return compute(x, b, dy, a.dim, a.act, a.alpha, a.gain, a.clamp, 1, want_db);
  return BiasActGrad::apply(dy, x, b, a, 1, want_db);
}

// y = clamp(act(x + b) * gain); backward through first_backward, so second-order gradients work.
struct BiasAct : torch::autograd::Function<BiasAct> {
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, const at::Tensor& b, Args a) {
    ctx->save_for_backward({x, b});
    a.save(ctx);
    return compute(x, b, x, a.dim, a.act, a.alpha, a.gain, a.clamp, 0, false)[0];  // g is unused at order 0
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Args a = Args::load(ctx);
    const bool want_db = saved[1].numel() > 0 && ctx->needs_input_grad(1);
    auto r = first_backward(saved[0], saved[1], grads[0], a, want_db);
    return {ctx->needs_input_grad(0) ? r[0] : at::Tensor(), want_db ? r[1] : at::Tensor(), at::Tensor()};
  }
};

#ifdef DDGAN_BIAS_ACT_NODE
// BiasAct's graph node, without torch::autograd::Function's generic bookkeeping (per-input and per-output metadata,
// the saved_data map, jvp and view closures, a mutex), which is a large share of a small tensor's forward + backward
// (numbers in results/README.md, "The eager graph node").
struct BiasActNode : torch::autograd::Node {
  torch::autograd::SavedVariable x_, b_;
  Args a{};

  variable_list apply(variable_list&& grads) override {
    variable_list out(2);  // x, b
    if (!grads[0].defined()) return out;
    const at::Tensor x = x_.unpack(), b = b_.unpack();  // raises after release_variables or an in-place change
    const bool want_db = b.numel() > 0 && task_should_compute_output(1);
    auto r = first_backward(x, b, grads[0], a, want_db);
    if (task_should_compute_output(0)) out[0] = r[0];
    if (want_db) out[1] = r[1];
    return out;
  }
  std::string name() const override { return "BiasActBackward"; }
  void compiled_args(torch::dynamo::autograd::CompiledNodeArgs& args) const override {
    TORCH_CHECK_NOT_IMPLEMENTED(false, "bias_act: compiled autograd cannot trace this eager call's graph node; run the "
                                "forward with compiled autograd already on (bias_act then builds a node it takes), "
                                "inside torch.compile, or with impl='ref'");
  }
  void release_variables() override {
    x_.reset_data();
    b_.reset_data();
  }
};

at::Tensor bias_act_node(const at::Tensor& x, const at::Tensor& b, int64_t dim, int64_t act, double alpha,
                         double gain, double clamp) {
  if (const auto& functorch = at::functorch::functorchTLSAccessor()) {
    functorch->checkSupportsCppAutogradFunction();  // vmap/grad transforms: the error torch gives for BiasAct
  }
  TORCH_CHECK(!torch::autograd::isFwGradDefined(x) && !torch::autograd::isFwGradDefined(b),
              "bias_act: the compiled kernels have no forward-mode gradient (dual tensors); use impl='ref'");
  at::Tensor y;
  {
    at::AutoDispatchBelowADInplaceOrView below_autograd;  // the kernel's own allocations need no autograd
    y = compute(x, b, x, dim, act, alpha, gain, clamp, 0, false)[0];
  }
  if (torch::autograd::compute_requires_grad(x, b)) {
    auto node = c10::make_intrusive<BiasActNode>();
    node->set_next_edges(torch::autograd::collect_next_edges(x, b));
    node->x_ = torch::autograd::SavedVariable(x, false);
    node->b_ = torch::autograd::SavedVariable(b, false);
    node->a = Args{dim, act, alpha, gain, clamp};
    torch::autograd::set_history(y, node);
  }
  return y;
}
#endif

at::Tensor bias_act_function(const at::Tensor& x, const at::Tensor& b, int64_t dim, int64_t act, double alpha,
                             double gain, double clamp) {
  return BiasAct::apply(x, b, Args{dim, act, alpha, gain, clamp});
}

#ifdef DDGAN_BIAS_ACT_NODE
constexpr bool kNode = true;
const auto bias_act_autograd = bias_act_node;
#else
constexpr bool kNode = false;
const auto bias_act_autograd = bias_act_function;
#endif

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("bias_act", &bias_act,
        "[clamp(act(x + b) * gain) or its first/second derivative times g, that summed over all dims but dim]",
        py::arg("x"), py::arg("b"), py::arg("g"), py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"),
        py::arg("clamp"), py::arg("order"), py::arg("reduce_bias"));
  m.def("bias_act_autograd", bias_act_autograd,
        "clamp(act(x + b) * gain) with eager autograd in C++ (gradients up to second order); b may be empty",
        py::arg("x"), py::arg("b"), py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"),
        py::arg("clamp"));
  m.def("bias_act_function", &bias_act_function,
        "bias_act_autograd through torch::autograd::Function (what torch versions without the graph node use)",
        py::arg("x"), py::arg("b"), py::arg("dim"), py::arg("act"), py::arg("alpha"), py::arg("gain"),
        py::arg("clamp"));
  m.attr("autograd_node") = kNode;  // whether bias_act_autograd builds BiasActNode (else BiasAct)
}
