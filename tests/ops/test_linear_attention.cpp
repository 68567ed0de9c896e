// Linear-attention family: chunked forward, final state and gradients vs the float64 oracle for all
// eight members (decay × update), varlen packing, prefill + recurrent steps, bf16, bad inputs.
#include <gtest/gtest.h>
#include <torch/csrc/autograd/function.h>

#include <string>
#include <vector>

#include "core/check.h"
#include "ops/linear_attention/linear_attention.h"
#include "test_util.h"

namespace jet::ops {
namespace {

using test::rel_err;

constexpr double kTolFp32 = 1e-4;  // fp32 path vs float64 oracle, every tensor (outputs, states, grads)
constexpr int64_t B = 2, H = 2, K = 8, V = 12;

struct Member {
  Decay decay;
  bool delta;
};

const std::vector<Member> kMembers = {{Decay::none, false},   {Decay::fixed, false}, {Decay::scalar, false},
                                      {Decay::vector, false}, {Decay::none, true},   {Decay::fixed, true},
                                      {Decay::scalar, true},  {Decay::vector, true}};

std::string name(const Member& m) {
  const char* d[] = {"none", "fixed", "scalar", "vector"};
  return std::string(d[static_cast<int>(m.decay)]) + (m.delta ? "+delta" : "+add");
}

LinearAttentionOptions options(const Member& m) {
  LinearAttentionOptions o;
  o.decay = m.decay;
  o.delta = m.delta;
  o.qk_l2norm = m.delta || m.decay == Decay::fixed;  // the delta rule needs it; one additive member uses it too
  return o;
}

// Random inputs for batch b × t tokens (n states); log decays from −softplus, β from sigmoid.
// gate_scale multiplies the log decays (small: the gentle gates of GLA, which take the factorised
// vector-decay form; 1: decays strong enough for the pairwise form).
LinearAttentionInput make_input(const Member& m, int64_t b, int64_t t, int64_t n, bool init, uint64_t seed,
                                double gate_scale = 1.0) {
  at::Generator gen = test::seeded(seed);
  LinearAttentionInput in;
  in.q = test::randn({b, t, H, K}, gen);
  in.k = test::randn({b, t, H, K}, gen);
  in.v = test::randn({b, t, H, V}, gen);
  if (!m.delta) in.k = in.k * 0.3;
  switch (m.decay) {
    case Decay::none: break;
    case Decay::fixed: in.g = -at::softplus(test::randn({H}, gen)); break;
    case Decay::scalar: in.g = -at::softplus(test::randn({b, t, H}, gen)); break;
    case Decay::vector: in.g = -at::softplus(test::randn({b, t, H, K}, gen)); break;
  }
  if (in.g.defined()) in.g = in.g * gate_scale;
  if (m.delta) in.beta = at::sigmoid(test::randn({b, t, H}, gen));
  if (init) in.initial_state = test::randn({n, H, K, V}, gen) * 0.5;
  return in;
}

// The differentiable inputs of a call, in a fixed order.
std::vector<std::pair<std::string, at::Tensor*>> inputs(LinearAttentionInput& in) {
  std::vector<std::pair<std::string, at::Tensor*>> r = {{"q", &in.q}, {"k", &in.k}, {"v", &in.v}};
  if (in.g.defined()) r.push_back({"g", &in.g});
  if (in.beta.defined()) r.push_back({"beta", &in.beta});
  if (in.initial_state.defined()) r.push_back({"initial_state", &in.initial_state});
  return r;
}

LinearAttentionInput as_leaves(const LinearAttentionInput& src, at::ScalarType dt) {
  LinearAttentionInput in = src;
  for (auto& [n, t] : inputs(in)) *t = t->detach().to(dt).requires_grad_(true);
  return in;
}

struct FwdBwd {
  LinearAttentionOutput out;
  std::vector<std::pair<std::string, at::Tensor>> grads;  // (input name, its gradient)
};

FwdBwd run(LinearAttentionInput in, const LinearAttentionOptions& opt, bool ref, const at::Tensor& dO,
           const at::Tensor& dS) {
  FwdBwd r;
  r.out = ref ? linear_attention_ref(in, opt) : linear_attention_chunked(in, opt);
  const at::Tensor loss = (r.out.o.to(at::kDouble) * dO).sum() + (r.out.final_state.to(at::kDouble) * dS).sum();
  loss.backward();
  for (auto& [n, t] : inputs(in)) r.grads.push_back({n, t->grad()});
  return r;
}

// Whether o of the chunked path comes from the hand-derived backward (linear_attention_chunk_bwd.h).
bool manual_backward(const at::Tensor& o) {
  return o.grad_fn() && o.grad_fn()->name().find("ChunkedFunction") != std::string::npos;
}

void ChunkedMatchesOracleWithGradients(const Member& m, const LinearAttentionOptions& opt, double gate_scale) {
  uint64_t seed = 1;
  for (int64_t T : {1, 17, 64, 65, 200}) {
    for (bool init : {false, true}) {
      SCOPED_TRACE(name(m) + " T=" + std::to_string(T) + (init ? " with S0" : " no S0"));
      const LinearAttentionInput src = make_input(m, B, T, B, init, seed++, gate_scale);
      at::Generator gen = test::seeded(seed++);
      const at::Tensor dO = test::randn({B, T, H, V}, gen).to(at::kDouble);
      const at::Tensor dS = test::randn({B, H, K, V}, gen).to(at::kDouble);
      const FwdBwd ref = run(as_leaves(src, at::kDouble), opt, true, dO, dS);
      const FwdBwd got = run(as_leaves(src, at::kFloat), opt, false, dO, dS);
      EXPECT_EQ(got.out.o.scalar_type(), at::kFloat);
      EXPECT_EQ(manual_backward(got.out.o), m.decay != Decay::vector) << "backward route";
      EXPECT_LE(rel_err(got.out.o, ref.out.o), kTolFp32) << "o";
      EXPECT_LE(rel_err(got.out.final_state, ref.out.final_state), kTolFp32) << "final state";
      ASSERT_EQ(got.grads.size(), ref.grads.size());
      for (size_t i = 0; i < got.grads.size(); ++i)
        EXPECT_LE(rel_err(got.grads[i].second, ref.grads[i].second), kTolFp32) << "d" << got.grads[i].first;
    }
  }
}

void VarlenPackingEqualsSeparateRuns(const Member& m) {
  const LinearAttentionOptions opt = options(m);
  const std::vector<int64_t> lens = {17, 64, 70, 1};
  std::vector<int64_t> cu = {0};
  for (int64_t l : lens) cu.push_back(cu.back() + l);
  const int64_t N = lens.size(), total = cu.back();
  LinearAttentionInput packed = make_input(m, 1, total, N, true, 99);
  packed.cu_seqlens = at::tensor(cu, at::kLong);
  const LinearAttentionOutput whole = linear_attention_chunked(packed, opt);
  const LinearAttentionOutput oracle = linear_attention_ref(packed, opt);
  EXPECT_LE(rel_err(whole.o, oracle.o), kTolFp32);
  EXPECT_LE(rel_err(whole.final_state, oracle.final_state), kTolFp32);
  for (int64_t n = 0; n < N; ++n) {
    LinearAttentionInput one;
    one.q = packed.q.narrow(1, cu[n], lens[n]);
    one.k = packed.k.narrow(1, cu[n], lens[n]);
    one.v = packed.v.narrow(1, cu[n], lens[n]);
    if (packed.g.defined()) one.g = m.decay == Decay::fixed ? packed.g : packed.g.narrow(1, cu[n], lens[n]);
    if (packed.beta.defined()) one.beta = packed.beta.narrow(1, cu[n], lens[n]);
    one.initial_state = packed.initial_state.narrow(0, n, 1);
    const LinearAttentionOutput sep = linear_attention_chunked(one, opt);
    EXPECT_LE(rel_err(whole.o.narrow(1, cu[n], lens[n]), sep.o), 1e-6) << "sequence " << n;
    EXPECT_LE(rel_err(whole.final_state.narrow(0, n, 1), sep.final_state), 1e-6) << "sequence " << n;
  }
}

void PrefillThenStepsEqualsOnePass(const Member& m) {
  const LinearAttentionOptions opt = options(m);
  const int64_t N = 70, M = 9;
  const LinearAttentionInput all = make_input(m, B, N + M, B, true, 7);
  const LinearAttentionOutput full = linear_attention_chunked(all, opt);
  LinearAttentionInput pre = all;
  pre.q = all.q.narrow(1, 0, N);
  pre.k = all.k.narrow(1, 0, N);
  pre.v = all.v.narrow(1, 0, N);
  if (m.decay == Decay::scalar || m.decay == Decay::vector) pre.g = all.g.narrow(1, 0, N);
  if (m.delta) pre.beta = all.beta.narrow(1, 0, N);
  at::Tensor S = linear_attention_chunked(pre, opt).final_state;
  const at::Tensor before = S.clone();
  for (int64_t t = N; t < N + M; ++t) {
    at::Tensor g;
    if (all.g.defined()) g = m.decay == Decay::fixed ? all.g : all.g.select(1, t);
    const at::Tensor beta = m.delta ? all.beta.select(1, t) : at::Tensor();
    const at::Tensor o = linear_attention_step(all.q.select(1, t), all.k.select(1, t), all.v.select(1, t), g, beta, S, opt);
    EXPECT_LE(rel_err(o, full.o.select(1, t)), kTolFp32) << "step " << t;
  }
  EXPECT_GT(rel_err(S, before), 1e-3) << "the step must update the state in place";
  EXPECT_LE(rel_err(S, full.final_state), kTolFp32);
}

void RecurrentLoopMatchesOracle(const Member& m) {
  const LinearAttentionOptions opt = options(m);
  for (int64_t T : {1, 17, 64}) {
    SCOPED_TRACE("T=" + std::to_string(T));
    const LinearAttentionInput in = make_input(m, B, T, B, true, 100 + T);
    const LinearAttentionOutput ref = linear_attention_ref(in, opt);
    const LinearAttentionOutput rec = linear_attention_recurrent(in, opt);
    EXPECT_LE(rel_err(rec.o, ref.o), kTolFp32);
    EXPECT_LE(rel_err(rec.final_state, ref.final_state), kTolFp32);
    EXPECT_LE(rel_err(in.initial_state, make_input(m, B, T, B, true, 100 + T).initial_state), 0.0)
        << "the recurrent loop must not write into initial_state";
    const LinearAttentionOutput sw = linear_attention(in, opt);  // no grad, T ≤ 64: the recurrent loop
    EXPECT_LE(rel_err(sw.o, ref.o), kTolFp32);
  }
}

void Bf16InputsKeepFp32State(const Member& m) {
  const LinearAttentionOptions opt = options(m);
  LinearAttentionInput in = make_input(m, B, 130, B, true, 5);
  in.q = in.q.to(at::kBFloat16);
  in.k = in.k.to(at::kBFloat16);
  in.v = in.v.to(at::kBFloat16);
  const LinearAttentionOutput ref = linear_attention_ref(in, opt);
  const LinearAttentionOutput got = linear_attention_chunked(in, opt);
  EXPECT_EQ(got.o.scalar_type(), at::kBFloat16);
  EXPECT_EQ(got.final_state.scalar_type(), at::kFloat);
  EXPECT_LE(rel_err(got.o, ref.o), 1e-2);               // bf16 output rounding
  EXPECT_LE(rel_err(got.final_state, ref.final_state), kTolFp32);  // state stays fp32
}

// One process per property (ctest runs each test separately), looping over the eight members.
TEST(Family, ChunkedMatchesOracleWithGradients) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    SCOPED_TRACE(name(m));
    ChunkedMatchesOracleWithGradients(m, options(m), 1.0);
  }
}

TEST(Family, GentleVectorDecayUsesFactorisedScores) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    if (m.decay != Decay::vector) continue;
    SCOPED_TRACE(name(m));
    ChunkedMatchesOracleWithGradients(m, options(m), 0.05);  // −softplus · 0.05: Γ over a chunk stays above −30
  }
}

TEST(Family, VarlenPackingEqualsSeparateRuns) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    SCOPED_TRACE(name(m));
    VarlenPackingEqualsSeparateRuns(m);
  }
}

TEST(Family, PrefillThenStepsEqualsOnePass) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    SCOPED_TRACE(name(m));
    PrefillThenStepsEqualsOnePass(m);
  }
}

TEST(Family, RecurrentLoopMatchesOracle) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    SCOPED_TRACE(name(m));
    RecurrentLoopMatchesOracle(m);
  }
}

TEST(Family, Bf16InputsKeepFp32State) {
  test::SingleThread one_thread;
  for (const Member& m : kMembers) {
    SCOPED_TRACE(name(m));
    Bf16InputsKeepFp32State(m);
  }
}

// The hand-derived chunked backward (decay none/fixed/scalar) with the q/k L2 norm on and off, both
// updates: o, the final state and every input's gradient (loss through o and the final state) vs the
// float64 oracle, kTolFp32 each. One test per decay.
void ManualBackwardMatchesOracle(Decay decay) {
  test::SingleThread one_thread;
  for (bool delta : {false, true}) {
    for (bool l2 : {false, true}) {
      const Member m{decay, delta};
      SCOPED_TRACE(name(m) + (l2 ? " l2" : " no l2"));
      LinearAttentionOptions opt = options(m);
      opt.qk_l2norm = l2;
      ChunkedMatchesOracleWithGradients(m, opt, 1.0);
    }
  }
}

TEST(ChunkedBackward, NoDecayMatchesOracle) { ManualBackwardMatchesOracle(Decay::none); }
TEST(ChunkedBackward, FixedDecayMatchesOracle) { ManualBackwardMatchesOracle(Decay::fixed); }
TEST(ChunkedBackward, ScalarDecayMatchesOracle) { ManualBackwardMatchesOracle(Decay::scalar); }

// Packed sequences (one empty) through the hand-derived backward: gradients of every input equal the
// oracle's (kTolFp32) and those of separate runs (1e-6).
TEST(ChunkedBackward, VarlenGradientsEqualSeparateRuns) {
  test::SingleThread one_thread;
  const std::vector<int64_t> lens = {17, 64, 0, 70, 1};
  std::vector<int64_t> cu = {0};
  for (int64_t l : lens) cu.push_back(cu.back() + l);
  const int64_t N = lens.size(), total = cu.back();
  for (const Member& m : {Member{Decay::scalar, true}, Member{Decay::fixed, false}}) {
    SCOPED_TRACE(name(m));
    const LinearAttentionOptions opt = options(m);
    LinearAttentionInput src = make_input(m, 1, total, N, true, 123);
    src.cu_seqlens = at::tensor(cu, at::kLong);
    at::Generator gen = test::seeded(124);
    const at::Tensor dO = test::randn({1, total, H, V}, gen).to(at::kDouble);
    const at::Tensor dS = test::randn({N, H, K, V}, gen).to(at::kDouble);
    const FwdBwd ref = run(as_leaves(src, at::kDouble), opt, true, dO, dS);
    const FwdBwd got = run(as_leaves(src, at::kFloat), opt, false, dO, dS);
    EXPECT_LE(rel_err(got.out.o, ref.out.o), kTolFp32) << "o";
    EXPECT_LE(rel_err(got.out.final_state, ref.out.final_state), kTolFp32) << "final state";
    for (size_t i = 0; i < got.grads.size(); ++i)
      EXPECT_LE(rel_err(got.grads[i].second, ref.grads[i].second), kTolFp32) << "d" << got.grads[i].first;
    // Separate runs: the packed gradient of each token-indexed input, sliced, equals the one-sequence run's.
    for (int64_t n = 0; n < N; ++n) {
      if (lens[n] == 0) continue;
      LinearAttentionInput one = src;
      one.cu_seqlens = at::Tensor();
      one.q = src.q.narrow(1, cu[n], lens[n]);
      one.k = src.k.narrow(1, cu[n], lens[n]);
      one.v = src.v.narrow(1, cu[n], lens[n]);
      if (m.decay == Decay::scalar) one.g = src.g.narrow(1, cu[n], lens[n]);
      if (m.delta) one.beta = src.beta.narrow(1, cu[n], lens[n]);
      one.initial_state = src.initial_state.narrow(0, n, 1);
      const FwdBwd sep = run(as_leaves(one, at::kFloat), opt, false, dO.narrow(1, cu[n], lens[n]),
                             dS.narrow(0, n, 1));
      for (size_t i = 0; i < sep.grads.size(); ++i) {
        const std::string& what = sep.grads[i].first;
        if (what == "g" && m.decay == Decay::fixed) continue;  // [H]: summed over all sequences
        const at::Tensor whole = what == "initial_state" ? got.grads[i].second.narrow(0, n, 1)
                                                         : got.grads[i].second.narrow(1, cu[n], lens[n]);
        EXPECT_LE(rel_err(whole, sep.grads[i].second), 1e-6) << "sequence " << n << " d" << what;
      }
    }
  }
}

// A loss on o alone or on the final state alone (the other output gets no gradient).
TEST(ChunkedBackward, LossOnOneOutput) {
  test::SingleThread one_thread;
  const Member m{Decay::scalar, true};
  const LinearAttentionOptions opt = options(m);
  const LinearAttentionInput src = make_input(m, B, 65, B, true, 77);
  at::Generator gen = test::seeded(78);
  const at::Tensor dO = test::randn({B, 65, H, V}, gen).to(at::kDouble);
  const at::Tensor dS = test::randn({B, H, K, V}, gen).to(at::kDouble);
  for (bool use_o : {false, true}) {
    SCOPED_TRACE(use_o ? "loss on o" : "loss on the final state");
    std::vector<std::vector<at::Tensor>> grads;
    for (bool ref : {true, false}) {
      LinearAttentionInput in = as_leaves(src, ref ? at::kDouble : at::kFloat);
      const LinearAttentionOutput out = ref ? linear_attention_ref(in, opt) : linear_attention_chunked(in, opt);
      const at::Tensor loss =
          use_o ? (out.o.to(at::kDouble) * dO).sum() : (out.final_state.to(at::kDouble) * dS).sum();
      loss.backward();
      grads.emplace_back();
      // q has no gradient from the final state: the oracle leaves it undefined, the chunked path zero.
      for (auto& [n, t] : inputs(in)) grads.back().push_back(t->grad().defined() ? t->grad() : at::zeros_like(*t));
    }
    for (size_t i = 0; i < grads[0].size(); ++i) EXPECT_LE(rel_err(grads[1][i], grads[0][i]), kTolFp32) << i;
  }
}

TEST(LinearAttention, BadInputsThrow) {
  const Member m{Decay::scalar, true};
  const LinearAttentionOptions opt = options(m);
  LinearAttentionInput in = make_input(m, B, 5, B, false, 3);
  LinearAttentionInput bad = in;
  bad.beta = at::Tensor();
  EXPECT_THROW(linear_attention_chunked(bad, opt), Error);
  bad = in;
  bad.g = in.g.unsqueeze(-1);
  EXPECT_THROW(linear_attention_chunked(bad, opt), Error);
  bad = in;
  bad.initial_state = at::zeros({B, H, K, V + 1});
  EXPECT_THROW(linear_attention_ref(bad, opt), Error);
  bad = in;
  bad.cu_seqlens = at::tensor(std::vector<int64_t>{0, 5}, at::kLong);  // B must be 1
  EXPECT_THROW(linear_attention_chunked(bad, opt), Error);
  at::Tensor S = at::zeros({B, H, K, V});
  EXPECT_THROW(linear_attention_step(in.q.select(1, 0), in.k.select(1, 0), in.v.select(1, 0), in.g.select(1, 0),
                                     at::Tensor(), S, opt),
               Error);
}

TEST(LinearAttention, ScaleDefaultsToInverseRootK) {
  LinearAttentionOptions opt;
  EXPECT_DOUBLE_EQ(linear_attention_scale(opt, 64), 0.125);
  opt.scale = 1.0;
  EXPECT_DOUBLE_EQ(linear_attention_scale(opt, 64), 1.0);
}

}  // namespace
}  // namespace jet::ops
