// Run-time choice of the CPU kernels' instruction set (isa.h).
#include "ops/cpu/isa.h"

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/check.h"

namespace jet::ops::cpu {
namespace {

Isa supported() {
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
      __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c") && __builtin_cpu_supports("fma"))
    return Isa::avx2;
  return Isa::portable;
}

Isa from_env() {
  const Isa best = supported();
  const char* env = std::getenv("JET_CPU_ISA");
  if (!env || !*env) return best;
  const std::string v = env;
  const Isa cap = v == "portable" ? Isa::portable : v == "avx2" ? Isa::avx2 : v == "avx512" ? Isa::avx512 : best;
  JET_CHECK(v == "portable" || v == "avx2" || v == "avx512", "JET_CPU_ISA must be portable, avx2 or avx512, got '{}'",
            v);
  return cap < best ? cap : best;
}

std::atomic<int> current{-1};

}  // namespace

Isa isa() {
  int v = current.load(std::memory_order_relaxed);
  if (v < 0) current.store(v = int(from_env()), std::memory_order_relaxed);
  return Isa(v);
}

void reload_isa() { current.store(int(from_env()), std::memory_order_relaxed); }

const char* isa_name(Isa i) { return i == Isa::avx512 ? "avx512" : i == Isa::avx2 ? "avx2" : "portable"; }

}  // namespace jet::ops::cpu
