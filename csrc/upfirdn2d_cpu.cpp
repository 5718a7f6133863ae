// upfirdn2d CPU kernel: polyphase direct filtering (only taps that land on input samples are computed),
// one padded copy of each [H, W] plane, planes spread over threads with at::parallel_for. Twin of
// ddgan_ref.ops.upfirdn2d_ref, the readable oracle the tests compare it with and the fallback where it cannot build.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "upfirdn2d.h"

namespace {

// Tap geometry of one axis, shared by every plane: output o uses taps first_tap[o] + j * up, which read
// padded-buffer index first_in[o] + j, for j < num_taps[o]. Buffer index b holds input sample lo + b.
// upfirdn2d.cu derives the same taps in each thread (tx0, ix0), without tables.
struct Axis {
  std::vector<int64_t> first_tap, first_in, num_taps;
  int64_t lo = 0, len = 0;
};

Axis make_axis(int64_t up, int64_t down, int64_t pad0, int64_t taps, int64_t out) {
  Axis a;
  a.first_tap.resize(out), a.first_in.resize(out), a.num_taps.resize(out);
  int64_t lo = INT64_MAX, hi = INT64_MIN;
  for (int64_t o = 0; o < out; ++o) {
    const int64_t s = o * down - pad0;           // upsampled-grid position of tap 0
    const int64_t t0 = ((-s) % up + up) % up;    // first tap that lands on an input sample
    const int64_t i0 = (s + t0) / up;            // exact: s + t0 is a multiple of up
    const int64_t n = std::max<int64_t>((taps - t0 + up - 1) / up, 0);
    a.first_tap[o] = t0, a.first_in[o] = i0, a.num_taps[o] = n;
    lo = std::min(lo, i0), hi = std::max(hi, i0 + std::max<int64_t>(n, 1) - 1);
  }
  a.lo = lo, a.len = hi - lo + 1;
  for (auto& i : a.first_in) i -= lo;
  return a;
}

// Copy plane `src` [h, w] into `buf` [ay.len, ax.len], whose margins stay zero (set once by the caller).
template <typename T>
void fill_buffer(const T* src, int64_t h, int64_t w, const Axis& ax, const Axis& ay, T* buf) {
  const int64_t x_begin = std::max<int64_t>(ax.lo, 0), x_end = std::min(ax.lo + ax.len, w);
  const int64_t y_begin = std::max<int64_t>(ay.lo, 0), y_end = std::min(ay.lo + ay.len, h);
  if (x_end <= x_begin) return;
  for (int64_t iy = y_begin; iy < y_end; ++iy) {
    std::copy(src + iy * w + x_begin, src + iy * w + x_end, buf + (iy - ay.lo) * ax.len + (x_begin - ax.lo));
  }
}

// One output plane. UX/KX/UY/KY are compile-time up factors and filter sizes (0: read at run time);
// with constants and K % U == 0 every output has K / U taps per axis and the loops unroll.
template <typename T, int UX, int KX, int UY, int KY>
void filter_plane(const T* buf, const Axis& ax, const Axis& ay, const T* w, int64_t up_x, int64_t up_y,
                  int64_t kw, T* out) {
  const int64_t ux = UX ? UX : up_x, uy = UY ? UY : up_y, kx_stride = KX ? KX : kw;
  const int64_t out_w = ax.first_in.size(), out_h = ay.first_in.size(), buf_w = ax.len;
  for (int64_t oy = 0; oy < out_h; ++oy) {
    const int64_t nty = (UY && KY) ? KY / UY : ay.num_taps[oy];
    const T* rows = buf + ay.first_in[oy] * buf_w;
    const T* wrows = w + ay.first_tap[oy] * kx_stride;
    for (int64_t ox = 0; ox < out_w; ++ox) {
      const int64_t ntx = (UX && KX) ? KX / UX : ax.num_taps[ox];
      const T* row = rows + ax.first_in[ox];
      const T* wrow = wrows + ax.first_tap[ox];
      T acc = 0;
      for (int64_t j = 0; j < nty; ++j) {
        for (int64_t i = 0; i < ntx; ++i) acc += row[j * buf_w + i] * wrow[j * uy * kx_stride + i * ux];
      }
      out[oy * out_w + ox] = acc;
    }
  }
}

template <typename T>
using PlaneFn = void (*)(const T*, const Axis&, const Axis&, const T*, int64_t, int64_t, int64_t, T*);

// The specialised variants: the [1,3,3,1] 4x4 filter at factor 2 (up, down, plain) and its 1-D passes.
template <typename T>
PlaneFn<T> pick_plane_fn(const Upfirdn2dParams& p) {
  const auto is = [&](int64_t ux, int64_t kx, int64_t uy, int64_t ky) {
    return p.up_x == ux && p.kernel_w == kx && p.up_y == uy && p.kernel_h == ky;
  };
  if (is(2, 4, 2, 4)) return filter_plane<T, 2, 4, 2, 4>;
  if (is(1, 4, 1, 4)) return filter_plane<T, 1, 4, 1, 4>;
  if (is(2, 4, 1, 1)) return filter_plane<T, 2, 4, 1, 1>;
  if (is(1, 1, 2, 4)) return filter_plane<T, 1, 1, 2, 4>;
  if (is(1, 4, 1, 1)) return filter_plane<T, 1, 4, 1, 1>;
  if (is(1, 1, 1, 4)) return filter_plane<T, 1, 1, 1, 4>;
  return filter_plane<T, 0, 0, 0, 0>;
}

// Correlation taps: f rotated by 180 degrees (true convolution) unless flip_filter, times gain.
template <typename T>
std::vector<T> correlation_taps(const at::Tensor& f, const Upfirdn2dParams& p) {
  const auto fc = f.contiguous();
  const T* src = fc.data_ptr<T>();
  const int64_t n = p.kernel_h * p.kernel_w;
  std::vector<T> w(n);
  for (int64_t i = 0; i < n; ++i) w[i] = src[p.flip_filter ? i : n - 1 - i] * static_cast<T>(p.gain);
  return w;
}

template <typename T>
void run(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dParams& p, at::Tensor& y) {
  const Axis ax = make_axis(p.up_x, p.down_x, p.pad_x0, p.kernel_w, p.out_w);
  const Axis ay = make_axis(p.up_y, p.down_y, p.pad_y0, p.kernel_h, p.out_h);
  const std::vector<T> w = correlation_taps<T>(f, p);
  const PlaneFn<T> plane = pick_plane_fn<T>(p);
  const T* src = x.data_ptr<T>();
  T* dst = y.data_ptr<T>();
  const int64_t planes = x.size(0) * x.size(1), in_size = p.in_h * p.in_w, out_size = p.out_h * p.out_w;
  const int64_t grain = std::max<int64_t>(1, 16384 / std::max<int64_t>(out_size, 1));
  at::parallel_for(0, planes, grain, [&](int64_t begin, int64_t end) {
    std::vector<T> buf(ax.len * ay.len, T(0));
    for (int64_t i = begin; i < end; ++i) {
      fill_buffer(src + i * in_size, p.in_h, p.in_w, ax, ay, buf.data());
      plane(buf.data(), ax, ay, w.data(), p.up_x, p.up_y, p.kernel_w, dst + i * out_size);
    }
  });
}

}  // namespace

at::Tensor upfirdn2d_cpu(const at::Tensor& x, const at::Tensor& f, const Upfirdn2dParams& p) {
  const auto format = upfirdn2d_output_format(x);
  const auto xc = x.contiguous();
  auto y = at::empty({x.size(0), x.size(1), p.out_h, p.out_w}, x.options());
  if (y.numel() > 0) {
    AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "upfirdn2d_cpu", [&] { run<scalar_t>(xc, f, p, y); });
  }
  return format == at::MemoryFormat::ChannelsLast ? y.contiguous(format) : y;
}
