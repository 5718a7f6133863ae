// neighbours: Python binding and argument checks of the CPU kernels behind bench.metrics.prdc's first pass.
#include <torch/extension.h>

#include "neighbours.h"

namespace {

void check_vector(const at::Tensor& t, const char* name, int64_t size, at::ScalarType dtype) {
  TORCH_CHECK(t.device().is_cpu(), "neighbours: ", name, " must be a CPU tensor, got ", t.device());
  TORCH_CHECK(t.dim() == 1 && t.size(0) == size, "neighbours: ", name, " must have shape [", size, "], got ",
              t.sizes());
  TORCH_CHECK(t.scalar_type() == dtype, "neighbours: ", name, " must be ", dtype, ", got ", t.scalar_type());
  TORCH_CHECK(t.is_contiguous(), "neighbours: ", name, " must be contiguous");
}

void check_block(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb, const at::Tensor& pa,
                 const at::Tensor& qb, double kappa) {
  TORCH_CHECK(c.device().is_cpu(), "neighbours: c must be a CPU tensor, got ", c.device());
  TORCH_CHECK(c.dim() == 2, "neighbours: c must be 2-D [n, m], got ", c.dim(), "-D");
  TORCH_CHECK(c.scalar_type() == at::kBFloat16 || c.scalar_type() == at::kFloat,
              "neighbours: c must be bfloat16 or float32, got ", c.scalar_type());
  TORCH_CHECK(c.is_contiguous(), "neighbours: c must be contiguous");
  check_vector(sa, "sa", c.size(0), at::kDouble);
  check_vector(sb, "sb", c.size(1), at::kDouble);
  check_vector(pa, "pa", c.size(0), at::kDouble);
  check_vector(qb, "qb", c.size(1), at::kDouble);
  TORCH_CHECK(std::isfinite(kappa) && kappa >= 0, "neighbours: kappa must be finite and >= 0, got ", kappa);
}

void check_lists(const at::Tensor& values, const at::Tensor& indices, const at::Tensor& bound, const char* side,
                 int64_t size) {
  TORCH_CHECK(values.dim() == 2 && values.size(0) == size && values.size(1) >= 1, "neighbours: ", side,
              "_values must have shape [", size, ", kk >= 1], got ", values.sizes());
  TORCH_CHECK(values.scalar_type() == at::kFloat && values.is_contiguous() && values.device().is_cpu(),
              "neighbours: ", side, "_values must be a contiguous float32 CPU tensor");
  TORCH_CHECK(indices.sizes() == values.sizes() && indices.scalar_type() == at::kLong && indices.is_contiguous() &&
                  indices.device().is_cpu(),
              "neighbours: ", side, "_indices must be a contiguous int64 CPU tensor shaped like ", side, "_values");
  check_vector(bound, side == std::string("row") ? "row_bound" : "col_bound", size, at::kDouble);
}

void knn_update(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb, const at::Tensor& pa,
                const at::Tensor& qb, double kappa, bool diagonal, const at::Tensor& row_values,
                const at::Tensor& row_indices, const at::Tensor& row_bound, const at::Tensor& col_values,
                const at::Tensor& col_indices, const at::Tensor& col_bound, int64_t row_offset, int64_t col_offset) {
  check_block(c, sa, sb, pa, qb, kappa);
  TORCH_CHECK(!diagonal || c.size(0) == c.size(1), "neighbours: a diagonal block must be square, got ", c.sizes());
  check_lists(row_values, row_indices, row_bound, "row", c.size(0));
  if (col_values.numel() > 0) {
    TORCH_CHECK(!diagonal, "neighbours: column lists are for off-diagonal blocks only (diagonal=True given)");
    check_lists(col_values, col_indices, col_bound, "col", c.size(1));
    TORCH_CHECK(col_values.size(1) == row_values.size(1), "neighbours: col_values must have as many candidates as "
                "row_values (", row_values.size(1), "), got ", col_values.size(1));
  }
  TORCH_CHECK(row_offset >= 0 && col_offset >= 0, "neighbours: row_offset and col_offset must be >= 0, got ",
              row_offset, " and ", col_offset);
  knn_update_cpu(c, sa, sb, pa, qb, kappa, diagonal, row_values, row_indices, row_bound, col_values, col_indices,
                 col_bound, row_offset, col_offset);
}

std::vector<at::Tensor> classify(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb,
                                 const at::Tensor& pa, const at::Tensor& qb, double kappa, const at::Tensor& lo_row,
                                 const at::Tensor& hi_row, const at::Tensor& lo_col, const at::Tensor& hi_col) {
  check_block(c, sa, sb, pa, qb, kappa);
  check_vector(lo_row, "lo_row", c.size(0), at::kDouble);
  check_vector(hi_row, "hi_row", c.size(0), at::kDouble);
  check_vector(lo_col, "lo_col", c.size(1), at::kDouble);
  check_vector(hi_col, "hi_col", c.size(1), at::kDouble);
  return classify_cpu(c, sa, sb, pa, qb, kappa, lo_row, hi_row, lo_col, hi_col);
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("knn_update", &knn_update, "merge a block's approximate squared distances into nearest-candidate lists",
        py::arg("c"), py::arg("sa"), py::arg("sb"), py::arg("pa"), py::arg("qb"), py::arg("kappa"),
        py::arg("diagonal"), py::arg("row_values"), py::arg("row_indices"), py::arg("row_bound"),
        py::arg("col_values"), py::arg("col_indices"), py::arg("col_bound"), py::arg("row_offset"),
        py::arg("col_offset"));
  m.def("classify", &classify, "the prdc ball tests of a block, as far as the error bound decides them",
        py::arg("c"), py::arg("sa"), py::arg("sb"), py::arg("pa"), py::arg("qb"), py::arg("kappa"), py::arg("lo_row"),
        py::arg("hi_row"), py::arg("lo_col"), py::arg("hi_col"));
}
