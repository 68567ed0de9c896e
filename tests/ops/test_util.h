// Helpers for op and block tests: relative error, seeded random tensors.
#pragma once
#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cstdint>
#include <cstdlib>
#include <initializer_list>
#include <limits>
#include <string>

#include "ops/cpu/isa.h"

namespace jet::test {

// ||a − b|| / ||b|| in float64; NaN anywhere gives +inf so it never passes a tolerance.
inline double rel_err(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.detach().to(at::kDouble).cpu(), y = b.detach().to(at::kDouble).cpu();
  if (!at::isfinite(x).all().item<bool>() || !at::isfinite(y).all().item<bool>())
    return std::numeric_limits<double>::infinity();
  const double den = y.norm().item<double>();
  const double num = (x - y).norm().item<double>();
  return den > 0 ? num / den : num;
}

// Runs a test body on one intra-op thread (restored afterwards): these tests are many tiny ops, and
// with the machine's cores shared, OpenMP's spinning workers make them ~10x slower.
class SingleThread {
 public:
  SingleThread() : prev_(at::get_num_threads()) { at::set_num_threads(1); }
  ~SingleThread() { at::set_num_threads(prev_); }
  SingleThread(const SingleThread&) = delete;
  SingleThread& operator=(const SingleThread&) = delete;

 private:
  int prev_;
};

// Runs a test body with the CPU kernels JET_CPU_ISA=`isa` picks (portable, avx2, avx512; ops/cpu/isa.h), the
// variable and the choice restored afterwards. ok(): this CPU runs that ISA (else the body should skip it).
class ForceIsa {
 public:
  explicit ForceIsa(const char* isa) {
    if (const char* v = std::getenv("JET_CPU_ISA")) old_ = v, had_ = true;
    setenv("JET_CPU_ISA", isa, 1);
    ops::cpu::reload_isa();
    ok_ = std::string(ops::cpu::isa_name(ops::cpu::isa())) == isa;
  }
  ~ForceIsa() {
    if (had_)
      setenv("JET_CPU_ISA", old_.c_str(), 1);
    else
      unsetenv("JET_CPU_ISA");
    ops::cpu::reload_isa();
  }
  ForceIsa(const ForceIsa&) = delete;
  ForceIsa& operator=(const ForceIsa&) = delete;
  bool ok() const { return ok_; }

 private:
  std::string old_;
  bool had_ = false, ok_ = false;
};

// fn(isa) under each of `isas` that this CPU runs (ForceIsa).
template <class Fn>
void for_each_isa(std::initializer_list<const char*> isas, const Fn& fn) {
  for (const char* isa : isas) {
    ForceIsa force(isa);
    if (force.ok()) fn(isa);
  }
}

inline at::Generator seeded(uint64_t seed) { return at::make_generator<at::CPUGeneratorImpl>(seed); }

inline at::Tensor randn(at::IntArrayRef shape, at::Generator& gen) {
  return at::randn(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

inline at::Tensor rand(at::IntArrayRef shape, at::Generator& gen) {
  return at::rand(shape, gen, at::TensorOptions().dtype(at::kFloat));
}

}  // namespace jet::test
