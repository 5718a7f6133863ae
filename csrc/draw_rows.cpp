// draw_rows: the per-row random draws of ddgan_ref.rng.SeedStream, rows spread over threads. Semantics:
// ddgan_ref.ops.draw_rows_ref. Row i of every buffer is drawn from generator i, buffer after buffer, by the ATen
// call torch.randn / torch.randint make (normal_ or random_ on a contiguous tensor of the row's size), so the
// numbers are the ones the Python loop draws; only the loop over rows moves out of Python and onto threads.
#include <torch/extension.h>

#include <ATen/Parallel.h>
#include <ATen/ThreadLocalState.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace {

// A task draws at least this many numbers: below it, handing rows to another thread costs more than drawing them.
constexpr int64_t kMinNumbersPerTask = 1 << 14;

void check(const std::vector<at::Tensor>& buffers, const std::vector<int64_t>& highs,
           const std::vector<at::Generator>& generators) {
  TORCH_CHECK(buffers.size() == highs.size(), "draw_rows: one high per buffer, got ", buffers.size(),
              " buffers and ", highs.size(), " highs");
  const auto n = static_cast<int64_t>(generators.size());
  TORCH_CHECK(n >= 1, "draw_rows: at least one generator (row) is needed");
  for (const auto& g : generators) {
    TORCH_CHECK(g.defined() && g.device().is_cpu(), "draw_rows: every generator must be a CPU generator");
  }
  for (size_t b = 0; b < buffers.size(); ++b) {
    const at::Tensor& t = buffers[b];
    TORCH_CHECK(t.device().is_cpu(), "draw_rows: buffer ", b, " must be a CPU tensor, got ", t.device());
    TORCH_CHECK(t.dim() >= 1 && t.size(0) == n, "draw_rows: buffer ", b, " must have ", n,
                " rows (one per generator), got shape ", t.sizes());
    TORCH_CHECK(t.is_contiguous(), "draw_rows: buffer ", b, " must be contiguous");
    TORCH_CHECK(!t.requires_grad(), "draw_rows: buffer ", b, " must not require grad");
    if (highs[b] > 0) {
      TORCH_CHECK(t.scalar_type() == at::kLong, "draw_rows: buffer ", b, " takes integers below ", highs[b],
                  ", so it must be int64, got ", t.scalar_type());
    } else {
      TORCH_CHECK(highs[b] == 0, "draw_rows: high must be 0 (normal draws) or positive, got ", highs[b]);
      TORCH_CHECK(t.scalar_type() == at::kFloat, "draw_rows: buffer ", b, " takes normal draws, so it must be "
                  "float32, got ", t.scalar_type());
    }
  }
}

// Fills buffers[b][i] for every row i and buffer b, in buffer order within a row: high 0 draws standard normals,
// high > 0 integers in [0, high).
void draw_rows_(const std::vector<at::Tensor>& buffers, const std::vector<int64_t>& highs,
                const std::vector<at::Generator>& generators) {
  check(buffers, highs, generators);
  const auto n = static_cast<int64_t>(generators.size());
  int64_t per_row = 0;
  for (const auto& t : buffers) per_row += t.numel() / n;
  const int64_t grain = std::max<int64_t>(1, kMinNumbersPerTask / std::max<int64_t>(1, per_row));
  // The worker threads run under the caller's grad and inference modes, so an in-place draw is checked and
  // counted (the buffers' version counters) exactly as the caller's own normal_ / random_ would be.
  const at::ThreadLocalState caller;
  at::parallel_for(0, n, grain, [&](int64_t lo, int64_t hi) {
    at::ThreadLocalStateGuard as_caller(caller);
    for (int64_t i = lo; i < hi; ++i) {
      for (size_t b = 0; b < buffers.size(); ++b) {
        at::Tensor row = buffers[b].select(0, i);
        if (highs[b] > 0) {
          row.random_(0, highs[b], generators[i]);
        } else {
          row.normal_(0.0, 1.0, generators[i]);
        }
      }
    }
  });
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("draw_rows_", &draw_rows_, "draw row i of every buffer from generator i, rows spread over threads",
        py::arg("buffers"), py::arg("highs"), py::arg("generators"), py::call_guard<py::gil_scoped_release>());
}
