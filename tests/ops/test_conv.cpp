// Dynamic (per-token kernel) and static short causal convs: forward and gradients vs the float64
// oracle, decode steps == forward, continuing from a tail == one pass, tail contents.
#include <gtest/gtest.h>

#include <string>

#include "core/check.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/short_conv/short_conv.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

constexpr double kTol = 1e-5;  // fp32 vs float64, outputs and every gradient
constexpr int64_t B = 2, C = 6;

TEST(DynamicConv, ForwardAndGradsMatchOracle) {
  test::SingleThread one_thread;
  for (int64_t W : {1, 4}) {
    for (int64_t T : {1, 3, 17}) {
      for (bool with_tail : {false, W > 1}) {
        SCOPED_TRACE("W=" + std::to_string(W) + " T=" + std::to_string(T) + (with_tail ? " tail" : ""));
        at::Generator gen = test::seeded(W * 100 + T);
        const at::Tensor x = test::randn({B, T, C}, gen), kern = test::randn({B, T, C, W}, gen);
        const at::Tensor tail = with_tail ? test::randn({B, C, W - 1}, gen) : at::Tensor();
        const at::Tensor dy = test::randn({B, T, C}, gen).to(at::kDouble);
        auto run = [&](bool ref, at::ScalarType dt) {
          at::Tensor xa = x.to(dt).requires_grad_(true), ka = kern.to(dt).requires_grad_(true);
          at::Tensor ta = with_tail ? tail.to(dt).requires_grad_(true) : at::Tensor();
          at::Tensor y = ref ? dynamic_conv_ref(xa, ka, ta, true) : dynamic_conv(xa, ka, ta, true);
          (y.to(at::kDouble) * dy).sum().backward();
          return std::vector<at::Tensor>{y, xa.grad(), ka.grad(), with_tail ? ta.grad() : at::zeros({1})};
        };
        const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
        const char* names[] = {"y", "dx", "dkernels", "dtail"};
        for (int i = 0; i < 4; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
      }
    }
  }
}

// Shared taps [C, W] added to every token's kernels (JetBlock's kernel-generator bias): output and the gradients
// of x, kernels, tail and the shared taps against the oracle, which adds them to its kernels; a bad shape throws.
TEST(DynamicConv, SharedTapsMatchOracle) {
  test::SingleThread one_thread;
  const int64_t W = 4, T = 13;
  at::Generator gen = test::seeded(17);
  const at::Tensor x = test::randn({B, T, C}, gen), kern = test::randn({B, T, C, W}, gen);
  const at::Tensor tail = test::randn({B, C, W - 1}, gen), shared = test::randn({C, W}, gen);
  const at::Tensor dy = test::randn({B, T, C}, gen).to(at::kDouble);
  auto run = [&](bool ref, at::ScalarType dt) {
    at::Tensor xa = x.to(dt).requires_grad_(true), ka = kern.to(dt).requires_grad_(true),
               ta = tail.to(dt).requires_grad_(true), sa = shared.to(dt).requires_grad_(true);
    at::Tensor y = ref ? dynamic_conv_ref(xa, ka, ta, true, sa) : dynamic_conv(xa, ka, ta, true, sa);
    (y.to(at::kDouble) * dy).sum().backward();
    return std::vector<at::Tensor>{y, xa.grad(), ka.grad(), ta.grad(), sa.grad()};
  };
  const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
  const char* names[] = {"y", "dx", "dkernels", "dtail", "dshared"};
  for (int i = 0; i < 5; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
  // The oracle with shared taps is the oracle of the summed kernels.
  EXPECT_LE(rel_err(want[0], dynamic_conv_ref(x, kern + shared, tail, true)), 1e-6);
  EXPECT_THROW(dynamic_conv(x, kern, tail, true, shared.narrow(1, 0, W - 1)), Error);
}

TEST(DynamicConv, StepsAndContinuationEqualOnePass) {
  test::SingleThread one_thread;
  const int64_t W = 4, T = 11, N = 5;
  at::Generator gen = test::seeded(3);
  const at::Tensor x = test::randn({B, T, C}, gen), kern = test::randn({B, T, C, W}, gen);
  const at::Tensor full = dynamic_conv(x, kern, at::Tensor(), true);
  // Prefill N tokens, then one token at a time from the tail.
  at::Tensor tail = conv_tail_after(x.narrow(1, 0, N), at::Tensor(), W);
  EXPECT_LE(rel_err(tail, x.narrow(1, N - (W - 1), W - 1).transpose(1, 2)), 0.0) << "tail = last W-1 inputs";
  for (int64_t t = N; t < T; ++t) {
    const at::Tensor y = dynamic_conv_step(x.select(1, t), kern.select(1, t), tail, true);
    EXPECT_LE(rel_err(y, full.select(1, t)), kTol) << "step " << t;
  }
  EXPECT_LE(rel_err(tail, conv_tail_after(x, at::Tensor(), W)), 0.0);
  // Two chunked calls, the second continuing from the first call's tail.
  const at::Tensor t1 = conv_tail_after(x.narrow(1, 0, 2), at::Tensor(), W);  // shorter than W−1: zero-padded
  const at::Tensor y2 = dynamic_conv(x.narrow(1, 2, T - 2), kern.narrow(1, 2, T - 2), t1, true);
  EXPECT_LE(rel_err(y2, full.narrow(1, 2, T - 2)), kTol);
}

TEST(DynamicConv, BadShapesThrow) {
  test::SingleThread one_thread;
  EXPECT_THROW(dynamic_conv(at::zeros({B, 3, C}), at::zeros({B, 3, C + 1, 4}), at::Tensor(), true), Error);
  at::Tensor tail = at::zeros({B, C, 2});
  EXPECT_THROW(dynamic_conv_step(at::zeros({B, C}), at::zeros({B, C, 4}), tail, true), Error);
}

TEST(ShortConv, ForwardGradsStepsMatchOracle) {
  test::SingleThread one_thread;
  const int64_t W = 4;
  for (bool bias_on : {false, true}) {
    for (bool silu : {false, true}) {
      for (int64_t T : {1, 17}) {
        SCOPED_TRACE(std::string(bias_on ? "bias" : "no bias") + (silu ? " silu" : "") + " T=" + std::to_string(T));
        at::Generator gen = test::seeded(T + 10 * bias_on + 20 * silu);
        const at::Tensor x = test::randn({B, T, C}, gen), w = test::randn({C, W}, gen);
        const at::Tensor b = bias_on ? test::randn({C}, gen) : at::Tensor();
        const at::Tensor tail = test::randn({B, C, W - 1}, gen);
        const at::Tensor dy = test::randn({B, T, C}, gen).to(at::kDouble);
        auto run = [&](bool ref, at::ScalarType dt) {
          at::Tensor xa = x.to(dt).requires_grad_(true), wa = w.to(dt).requires_grad_(true);
          at::Tensor ba = bias_on ? b.to(dt).requires_grad_(true) : at::Tensor();
          at::Tensor ta = tail.to(dt).requires_grad_(true);
          at::Tensor y = ref ? short_conv_ref(xa, wa, ba, ta, silu) : short_conv(xa, wa, ba, ta, silu);
          (y.to(at::kDouble) * dy).sum().backward();
          return std::vector<at::Tensor>{y, xa.grad(), wa.grad(), bias_on ? ba.grad() : at::zeros({1}), ta.grad()};
        };
        const auto want = run(true, at::kDouble), got = run(false, at::kFloat);
        const char* names[] = {"y", "dx", "dweight", "dbias", "dtail"};
        for (int i = 0; i < 5; ++i) EXPECT_LE(rel_err(got[i], want[i]), kTol) << names[i];
        at::Tensor st = tail.clone();
        for (int64_t t = 0; t < T; ++t)
          EXPECT_LE(rel_err(short_conv_step(x.select(1, t), w, b, st, silu), want[0].select(1, t)), kTol) << t;
        EXPECT_LE(rel_err(st, conv_tail_after(x, tail, W)), 0.0);
      }
    }
  }
}

}  // namespace
}  // namespace jet::ops
