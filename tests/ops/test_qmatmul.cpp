// ops/qmatmul: every supported GGUF type on random blocks (odd row counts, odd block counts, odd batch), each
// path against the float64 product of the dequantized weight; the int8 path within its stated bound (x's
// rounding to 8-bit blocks) and bit-identical between batched and single rows, for AVX-512 VNNI and AVX2 (forced with
// JET_CPU_ISA), which agree up to summation order; Q8_0 quantization of any width; bad input.
#include <gtest/gtest.h>

#include <c10/util/Half.h>

#include "core/check.h"
#include "ops/cpu/isa.h"
#include "ops/qmatmul/qmatmul.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using gguf::Type;
using test::rel_err;

// Random blocks of type t: random bytes, with every fp16 scale field set to a finite value of sensible size.
QWeight random_weight(Type t, int64_t rows, int64_t cols, uint64_t seed) {
  at::Generator gen = test::seeded(seed);
  const int64_t be = gguf::type_block_elems(t), bb = gguf::type_block_bytes(t);
  const int64_t nblocks = rows * cols / be;
  at::Tensor bytes = at::randint(0, 256, {nblocks * bb}, gen, at::kByte);
  at::Tensor scales = at::rand({nblocks, 2}, gen) * 0.05 + 0.001;
  at::Tensor signs = at::randint(0, 2, {nblocks}, gen, at::kLong);
  uint8_t* p = bytes.data_ptr<uint8_t>();
  auto put = [&](uint8_t* at, float v) {
    const uint16_t h = c10::Half(v).x;
    std::memcpy(at, &h, 2);
  };
  for (int64_t b = 0; b < nblocks; ++b) {
    uint8_t* blk = p + b * bb;
    const float d = scales[b][0].item<float>(), m = scales[b][1].item<float>() * (signs[b].item<int64_t>() ? 1 : -1);
    switch (t) {
      case Type::Q4_1: case Type::Q5_1: put(blk, d); put(blk + 2, m); break;
      case Type::Q4_K: case Type::Q5_K: put(blk, d * 0.05f); put(blk + 2, std::fabs(m) * 0.05f); break;
      case Type::Q6_K: put(blk + 208, d * 0.05f); break;
      default: put(blk, d); break;  // Q4_0, Q5_0, Q8_0
    }
  }
  return qweight_from_blocks(t, rows, cols, p);
}

// Per-element bound of the int8 path: Σ_k |w[n, k]| · dx(m, k) / 2 (x rounded to 8 bits per 32-block), plus
// fp32 rounding of the sums.
at::Tensor int8_bound(const at::Tensor& x, const QWeight& w) {
  const at::Tensor xd = x.to(at::kDouble), wa = dequantize(w).to(at::kDouble).abs();
  const int64_t M = x.size(0), K = x.size(1);
  const at::Tensor dx = std::get<0>(xd.abs().view({M, K / 32, 32}).max(-1)) / 127.0;  // [M, K/32]
  const at::Tensor half = dx.repeat_interleave(32, 1) / 2;
  return at::matmul(half, wa.t()) + 2e-5 * at::matmul(xd.abs(), wa.t()) + 1e-6;
}

struct Case {
  Type type;
  int64_t K;
};

std::vector<Case> cases() {
  // Block-32 types with an odd number of blocks per row (the kernel's tail), K-quants with three super-blocks.
  return {{Type::Q4_0, 32 * 9}, {Type::Q4_1, 32 * 9}, {Type::Q5_0, 32 * 7}, {Type::Q5_1, 32 * 5},
          {Type::Q8_0, 32 * 11}, {Type::Q4_0, 64}, {Type::Q4_K, 768}, {Type::Q5_K, 768}, {Type::Q6_K, 768}};
}

// The int8 kernel of each instruction set this CPU runs (AVX-512 VNNI, AVX2 forced through JET_CPU_ISA).
TEST(QMatmul, Int8PathWithinBoundEveryType) {
  int ran = 0;
  test::for_each_isa({"avx512", "avx2"}, [&](const char* isa) {
    ++ran;
    for (const Case& c : cases()) {
      SCOPED_TRACE(std::string(isa) + " " + gguf::type_name(c.type) + " K=" + std::to_string(c.K));
      const QWeight w = random_weight(c.type, 37, c.K, c.K + int64_t(c.type));
      at::Generator gen = test::seeded(7);
      for (int64_t M : {1, 3, 6}) {
        const at::Tensor x = test::randn({M, c.K}, gen);
        const at::Tensor got = qmatmul(x, w, {}, QKernel::int8), want = qmatmul_ref(x, w);
        const at::Tensor err = (got.to(at::kDouble) - want).abs();
        EXPECT_TRUE((err <= int8_bound(x, w)).all().item<bool>()) << "M=" << M << " max err " << err.max().item<double>();
        EXPECT_LE(rel_err(got, want), 2e-2) << "M=" << M;
        // Batched rows (tiles of 4) equal the rows one by one, bit for bit.
        for (int64_t m = 0; m < M; ++m)
          EXPECT_TRUE(qmatmul(x.narrow(0, m, 1), w, {}, QKernel::int8).equal(got.narrow(0, m, 1))) << "row " << m;
      }
    }
  });
  if (ran == 0) GTEST_SKIP() << "neither AVX2 nor AVX-512 VNNI on this CPU";
}

TEST(QMatmul, Avx2EqualsAvx512UpToSummationOrder) {
  // The same 8-bit activations and integer block products; only the fp32 sums run in another order.
  for (const Case& c : cases()) {
    SCOPED_TRACE(std::string(gguf::type_name(c.type)) + " K=" + std::to_string(c.K));
    const QWeight w = random_weight(c.type, 21, c.K, 5 + c.K);
    at::Generator gen = test::seeded(8);
    const at::Tensor x = test::randn({5, c.K}, gen);
    at::Tensor y[2];
    int i = 0;
    for (const char* isa : {"avx512", "avx2"}) {
      test::ForceIsa force(isa);
      if (!force.ok()) GTEST_SKIP() << "no " << isa << " on this CPU";
      y[i++] = qmatmul(x, w, {}, QKernel::int8);
    }
    EXPECT_LE(rel_err(y[1], y[0]), 1e-6);
  }
}

TEST(QMatmul, CpuIsaFromTheEnvironment) {
  {
    test::ForceIsa force("portable");
    EXPECT_EQ(qmatmul_kernel_name(), "fallback");
    EXPECT_FALSE(qmatmul_int8_available());
    EXPECT_THROW(qmatmul(at::ones({1, 64}), quantize_q8_0(at::ones({3, 64})), {}, QKernel::int8), Error);
  }
  setenv("JET_CPU_ISA", "sse9", 1);
  EXPECT_THROW(cpu::reload_isa(), Error);
  unsetenv("JET_CPU_ISA");
  cpu::reload_isa();
}

TEST(QMatmul, GemmAndFallbackPathsMatchReference) {
  test::SingleThread one_thread;
  for (const Case& c : cases()) {
    SCOPED_TRACE(gguf::type_name(c.type));
    const QWeight w = random_weight(c.type, 19, c.K, 3 + c.K);
    at::Generator gen = test::seeded(9);
    const at::Tensor x = test::randn({2, 17, c.K}, gen), bias = test::randn({19}, gen);
    const at::Tensor want = qmatmul_ref(x, w, bias);
    EXPECT_LE(rel_err(qmatmul(x, w, bias, QKernel::fallback), want), 1e-5);
    EXPECT_LE(rel_err(qmatmul(x, w, bias, QKernel::gemm), want), 1e-2);  // bf16 operands
    const at::Tensor got = qmatmul(x, w, bias);  // automatic: 34 rows -> gemm
    EXPECT_EQ(got.sizes(), (std::vector<int64_t>{2, 17, 19}));
    EXPECT_LE(rel_err(got, want), 1e-2);
  }
}

TEST(QMatmul, DequantizeMatchesGgufRows) {
  const QWeight w = random_weight(Type::Q6_K, 5, 512, 1);
  const at::Tensor d = dequantize(w);
  std::vector<float> row(512);
  gguf::dequantize_row(Type::Q6_K, w.data.data_ptr<uint8_t>() + 3 * w.row_bytes(), row.data(), 512);
  EXPECT_TRUE(d[3].equal(at::from_blob(row.data(), {512}, at::kFloat)));
}

TEST(QMatmul, QuantizeQ8_0RoundTrip) {
  at::Generator gen = test::seeded(4);
  const at::Tensor w = test::randn({7, 96}, gen);
  w[2].zero_();  // an all-zero row stays zero
  const QWeight q = quantize_q8_0(w);
  EXPECT_EQ(q.type, Type::Q8_0);
  const at::Tensor back = dequantize(q);
  // Per element within half a step of its block (d = max / 127) plus 127 times the fp16 rounding of d (2^-11 d).
  const at::Tensor step = std::get<0>(w.abs().view({7, 3, 32}).max(-1, true)) / 127.0;
  const at::Tensor bound = (step * 0.57).expand({7, 3, 32}).reshape({7, 96});
  EXPECT_TRUE(((back - w).abs() <= bound + 1e-7).all().item<bool>());
  EXPECT_TRUE(back[2].eq(0).all().item<bool>());
}

TEST(QMatmul, Q8_0OfAnyWidthPadsItsLastBlock) {
  // Widths that are no multiple of 32 (a float weight quantized on load): the last block of each row is padded with
  // zeros and x's columns past K count as zeros, on every path.
  at::Generator gen = test::seeded(6);
  for (int64_t K : {17, 48, 144, 200}) {
    SCOPED_TRACE(K);
    const at::Tensor wf = test::randn({23, K}, gen);
    const QWeight w = quantize_q8_0(wf);
    EXPECT_EQ(w.block_cols(), (K + 31) / 32 * 32);
    EXPECT_EQ(w.row_bytes(), w.block_cols() / 32 * 34);
    const at::Tensor back = dequantize(w);
    ASSERT_EQ(back.sizes(), wf.sizes());
    EXPECT_LE(rel_err(back, wf), 1e-2);
    for (int64_t M : {1, 5, 33}) {
      const at::Tensor x = test::randn({M, K}, gen), want = qmatmul_ref(x, w);
      EXPECT_LE(rel_err(qmatmul(x, w, {}, QKernel::fallback), want), 1e-5) << "M=" << M;
      EXPECT_LE(rel_err(qmatmul(x, w, {}, QKernel::gemm), want), 1e-2) << "M=" << M;
      test::for_each_isa({"avx512", "avx2"}, [&](const char* isa) {
        const at::Tensor got = qmatmul(x, w, {}, QKernel::int8);
        const at::Tensor xp = at::constant_pad_nd(x, {0, w.block_cols() - K});
        const QWeight wp = quantize_q8_0(at::constant_pad_nd(wf, {0, w.block_cols() - K}));
        EXPECT_TRUE((got.to(at::kDouble) - want).abs().le(int8_bound(xp, wp)).all().item<bool>()) << isa << " M=" << M;
        EXPECT_TRUE(got.equal(qmatmul(xp, wp, {}, QKernel::int8))) << isa << " M=" << M;  // = explicit zero padding
      });
    }
  }
}

TEST(QMatmul, SeveralWeightsOfOneX) {
  // Weights whose blocks follow each other in one buffer run as one pass; apart (a gap between them), one call each;
  // both fill the same columns as single products.
  at::Generator gen = test::seeded(10);
  const at::Tensor wf = test::randn({16, 96}, gen);
  const QWeight all = quantize_q8_0(wf);
  const at::Tensor gapped = at::cat({all.data.narrow(0, 0, 5), at::zeros({1, all.row_bytes()}, at::kByte),
                                     all.data.narrow(0, 5, 11)}, 0);
  const QWeight a{all.type, 5, 96, all.data.narrow(0, 0, 5)}, b{all.type, 11, 96, all.data.narrow(0, 5, 11)};
  const QWeight a2{all.type, 5, 96, gapped.narrow(0, 0, 5)}, b2{all.type, 11, 96, gapped.narrow(0, 6, 11)};
  EXPECT_TRUE(qweights_consecutive({&a, &b}));
  EXPECT_FALSE(qweights_consecutive({&a2, &b2}));
  for (int64_t M : {1, 3, 40}) {
    const at::Tensor x = test::randn({M, 96}, gen), want = qmatmul(x, all);
    for (const auto& ws : {std::vector<const QWeight*>{&a, &b}, std::vector<const QWeight*>{&a2, &b2}}) {
      at::Tensor y = at::full({M, 20}, 7.f);  // row stride 20: columns past 16 untouched
      qmatmul_out(x.data_ptr<float>(), M, 96, ws, y.data_ptr<float>(), 20);
      if (M < kQMatmulGemmRows)  // int8: bit for bit; the bf16 GEMM of other column blocks may round otherwise
        EXPECT_TRUE(y.narrow(1, 0, 16).equal(want)) << "M=" << M;
      else
        EXPECT_LE(rel_err(y.narrow(1, 0, 16), want), 1e-5) << "M=" << M;
      EXPECT_TRUE(y.narrow(1, 16, 4).eq(7.f).all().item<bool>());
    }
  }
  const QWeight narrow = quantize_q8_0(test::randn({2, 64}, gen));
  at::Tensor y = at::empty({1, 18});
  EXPECT_THROW(qmatmul_out(at::ones({1, 96}).data_ptr<float>(), 1, 96, {&a, &narrow}, y.data_ptr<float>(), 18), Error);
}

TEST(QMatmul, RowsAndBadInput) {
  const QWeight w = random_weight(Type::Q4_1, 6, 64, 2);
  const QWeight r = qweight_rows(w, at::tensor(std::vector<int64_t>{4, 1}));
  EXPECT_TRUE(dequantize(r).equal(dequantize(w).index_select(0, at::tensor(std::vector<int64_t>{4, 1}))));
  EXPECT_THROW(qmatmul(at::ones({2, 63}), w), Error);               // K mismatch
  EXPECT_THROW(qmatmul(at::ones({2, 64}, at::kDouble), w), Error);  // not fp32
  EXPECT_THROW(qweight_from_blocks(Type::Q2_K, 1, 256, nullptr), Error);
  EXPECT_THROW(qweight_from_blocks(Type::Q4_0, 1, 48, nullptr), Error);
  EXPECT_THROW(quantize_q8_0(at::ones({40})), Error);    // not a matrix
  EXPECT_THROW(quantize_q8_0(at::ones({2, 0})), Error);  // no columns
}

}  // namespace
}  // namespace jet::ops
