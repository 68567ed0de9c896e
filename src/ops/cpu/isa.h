// Which SIMD bodies the CPU kernels run (ops/cpu, ops/qmatmul): the best this CPU supports, capped by the
// environment variable JET_CPU_ISA (portable | avx2 | avx512) when set — benchmarks and tests run the AVX2 and
// portable paths on an AVX-512 machine that way.
#pragma once

namespace jet::ops::cpu {

enum class Isa { portable = 0, avx2 = 1, avx512 = 2 };

// avx512: AVX-512 F/BW/VL/DQ + VNNI, F16C, FMA; avx2: AVX2, F16C, FMA (cpuid at run time); capped by JET_CPU_ISA
// (read on first use; an unknown value is an error naming the variable).
Isa isa();
// Re-reads JET_CPU_ISA (tests switch paths with it).
void reload_isa();
const char* isa_name(Isa i);

}  // namespace jet::ops::cpu
