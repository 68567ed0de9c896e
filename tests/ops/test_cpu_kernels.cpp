// ops/cpu (the raw kernels of the CPU decode step) vs the float64 references of the ops they stand for, odd
// sizes (masked tails of the AVX-512 bodies).
#include <gtest/gtest.h>

#include "ops/activations/silu_mul.h"
#include "ops/attention/decode_attention.h"
#include "ops/cpu/cpu_kernels.h"
#include "ops/norms/norms.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

TEST(CpuKernels, NormsAndSiluMatchReferences) {
  at::Generator gen = test::seeded(1);
  for (int64_t n : {1, 17, 64, 577}) {
    SCOPED_TRACE(n);
    const at::Tensor x = test::randn({n}, gen), y = test::randn({n}, gen), w = test::randn({n}, gen);
    at::Tensor out = at::empty({n}), h = x.clone();
    cpu::rms_norm(x.data_ptr<float>(), w.data_ptr<float>(), 1e-5f, n, out.data_ptr<float>());
    EXPECT_LE(rel_err(out, rms_norm_ref(x, w, 1e-5)), 1e-5);
    cpu::add_rms_norm(h.data_ptr<float>(), y.data_ptr<float>(), w.data_ptr<float>(), 1e-5f, n, out.data_ptr<float>());
    const auto [h_ref, n_ref] = add_rms_norm_ref(x, y, w, 1e-5);
    EXPECT_LE(rel_err(h, h_ref), 1e-6);
    EXPECT_LE(rel_err(out, n_ref), 1e-5);
    const at::Tensor g = 4 * test::randn({n}, gen);
    cpu::silu_mul(g.data_ptr<float>(), y.data_ptr<float>(), n, out.data_ptr<float>());
    EXPECT_LE(rel_err(out, silu_mul_ref(g, y)), 1e-5);
  }
}

TEST(CpuKernels, AttendMatchesDecodeAttentionReference) {
  at::Generator gen = test::seeded(2);
  for (int64_t D : {64, 24}) {
    for (int64_t S : {1, 5, 37}) {
      SCOPED_TRACE("D " + std::to_string(D) + " S " + std::to_string(S));
      const int64_t ld = D + 8;  // rows of a wider buffer
      const at::Tensor q = test::randn({1, 1, D}, gen), kv = test::randn({2, S, ld}, gen);
      const at::Tensor k = kv[0].narrow(1, 0, D), v = kv[1].narrow(1, 0, D);
      const at::Tensor want = decode_attention_ref(q, k.reshape({1, 1, S, D}), v.reshape({1, 1, S, D}), {}).view({D});
      at::Tensor out = at::empty({D}), scores = at::empty({S});
      cpu::attend(q.data_ptr<float>(), kv[0].data_ptr<float>(), kv[1].data_ptr<float>(), ld, S, D,
                  1.f / std::sqrt(float(D)), scores.data_ptr<float>(), out.data_ptr<float>());
      EXPECT_LE(rel_err(out, want), 1e-5);
    }
  }
}

}  // namespace
}  // namespace jet::ops
