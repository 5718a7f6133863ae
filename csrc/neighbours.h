// neighbours: CPU kernels for the first pass of bench.metrics.prdc over one block of products c = a b^T.
// v' = sa[i] + sb[j] - 2 c[i, j] approximates the squared distance v; the caller's bound on its error is
// |v' - v| <= pa[i] + qb[j] + kappa |c[i, j]|.
// Twin of the torch-ops first pass in bench.metrics.neighbours (impl="ref": approximate, less_than), which runs where
// the kernel cannot build; the tests hold both to prdc 0.2's values.
#pragma once

#include <torch/extension.h>

#include <vector>

// Nearest-candidate lists: every row's list (values ascending [n, kk] float32, indices [n, kk] int64) keeps the kk
// smallest v' seen so far (a self entry of a diagonal block counts as exactly 0), and row_bound[i] becomes the
// largest error bound over every entry of row i seen so far. With column lists, the same for columns.
void knn_update_cpu(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb, const at::Tensor& pa,
                    const at::Tensor& qb, double kappa, bool diagonal, const at::Tensor& row_values,
                    const at::Tensor& row_indices, const at::Tensor& row_bound, const at::Tensor& col_values,
                    const at::Tensor& col_indices, const at::Tensor& col_bound, int64_t row_offset,
                    int64_t col_offset);

// The tests v < t_row[i] and v < t_col[j], decided per entry where the bound allows: surely inside when
// v' + e < lo, surely outside when v' - e >= hi (e the entry's bound; the caller widens lo and hi from t for the
// roundings). Returns counts[j] = rows i surely inside lo_row[i] (int32 [m]), covered[i] = some j surely inside
// lo_row[i], recalled[i] = some j surely inside lo_col[j] (bool [n]), and the undecided pairs (i, j) of each test
// ([K, 2] int64).
std::vector<at::Tensor> classify_cpu(const at::Tensor& c, const at::Tensor& sa, const at::Tensor& sb,
                                     const at::Tensor& pa, const at::Tensor& qb, double kappa,
                                     const at::Tensor& lo_row, const at::Tensor& hi_row, const at::Tensor& lo_col,
                                     const at::Tensor& hi_col);
