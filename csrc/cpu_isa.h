// The widest x86 instruction set the CPU kernels' clones may use in this process: AVX-512 (F, DQ, VL, BW), AVX2 + FMA
// or the baseline. DDGAN_CPU_ISA=avx2 or =baseline lowers it (read once per process), so that the tests can run every
// clone on one machine (tests/ddgan_ref/test_bias_act.py, tests/bench/metrics/test_neighbours_kernel.py).
#pragma once

#include <c10/util/Exception.h>

#include <cstdlib>
#include <string>

enum class CpuIsa : int { Baseline = 0, Avx2 = 1, Avx512 = 2 };

inline CpuIsa widest_cpu_isa() {
#if defined(__x86_64__) && defined(__GNUC__)
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512bw")) {
    return CpuIsa::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuIsa::Avx2;
#endif
  return CpuIsa::Baseline;
}

inline CpuIsa cpu_isa() {
  static const CpuIsa isa = [] {
    const CpuIsa widest = widest_cpu_isa();
    const char* env = std::getenv("DDGAN_CPU_ISA");
    const std::string cap = env ? env : "";
    TORCH_CHECK(cap.empty() || cap == "avx512" || cap == "avx2" || cap == "baseline",
                "DDGAN_CPU_ISA must be avx512, avx2 or baseline (or unset), got '", cap, "'");
    if (cap == "baseline") return CpuIsa::Baseline;
    if (cap == "avx2" && widest == CpuIsa::Avx512) return CpuIsa::Avx2;
    return widest;
  }();
  return isa;
}
