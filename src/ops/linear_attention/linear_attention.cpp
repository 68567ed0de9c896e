// ATen paths of the linear-attention family: the chunked WY form (autograd gives its backward), the
// in-place one-token step and the recurrent loop over it. Math in README.md of this directory.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <limits>
#include <optional>
#include <set>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "ops/compute_type.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_chunk_bwd.h"
#include "ops/linear_attention/linear_attention_detail.h"
#ifdef JET_CUDA
#include "ops/linear_attention/linear_attention_chunk_cuda.h"
#include "ops/linear_attention/linear_attention_step_cuda.h"
#endif

namespace jet::ops {

double linear_attention_scale(const LinearAttentionOptions& opt, int64_t K) {
  return opt.scale > 0 ? opt.scale : 1.0 / std::sqrt(static_cast<double>(K));
}

at::Tensor l2_normalize(const at::Tensor& x) { return x * at::rsqrt(x.square().sum(-1, true) + 1e-6); }

void check_linear_attention(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  JET_CHECK(in.q.defined() && in.k.defined() && in.v.defined(), "linear_attention: q, k and v are required");
  JET_CHECK(in.q.dim() == 4 && in.k.sizes() == in.q.sizes(),
            "linear_attention: q {} and k {} must both be [B, T, H, K]", shape_str(in.q.sizes()),
            shape_str(in.k.sizes()));
  const int64_t B = in.q.size(0), T = in.q.size(1), H = in.q.size(2), K = in.q.size(3);
  JET_CHECK(in.v.dim() == 4 && in.v.size(0) == B && in.v.size(1) == T && in.v.size(2) == H,
            "linear_attention: v {} must be [{}, {}, {}, V]", shape_str(in.v.sizes()), B, T, H);
  const int64_t V = in.v.size(3);
  switch (opt.decay) {
    case Decay::none:
      JET_CHECK(!in.g.defined(), "linear_attention: g given but decay is none");
      break;
    case Decay::fixed:
      JET_CHECK(in.g.defined() && in.g.dim() == 1 && in.g.size(0) == H,
                "linear_attention: fixed decay needs g [{}]", H);
      break;
    case Decay::scalar:
      JET_CHECK(in.g.defined() && in.g.sizes() == at::IntArrayRef({B, T, H}),
                "linear_attention: scalar decay needs g [{}, {}, {}]", B, T, H);
      break;
    case Decay::vector:
      JET_CHECK(in.g.defined() && in.g.sizes() == in.q.sizes(),
                "linear_attention: vector decay needs g [{}, {}, {}, {}]", B, T, H, K);
      break;
  }
  if (opt.delta)
    JET_CHECK(in.beta.defined() && in.beta.sizes() == at::IntArrayRef({B, T, H}),
              "linear_attention: the delta rule needs beta [{}, {}, {}]", B, T, H);
  else
    JET_CHECK(!in.beta.defined(), "linear_attention: beta given without the delta rule");
  int64_t N = B;
  if (in.cu_seqlens.defined()) {
    JET_CHECK(B == 1, "linear_attention: packed sequences (cu_seqlens) need B == 1, got {}", B);
    JET_CHECK(in.cu_seqlens.dim() == 1 && in.cu_seqlens.size(0) >= 2 &&
                  in.cu_seqlens.scalar_type() == at::kLong,
              "linear_attention: cu_seqlens must be int64 [N + 1]");
    const at::Tensor cu = in.cu_seqlens.cpu();
    const int64_t* c = cu.data_ptr<int64_t>();
    N = cu.size(0) - 1;
    JET_CHECK(c[0] == 0 && c[N] == T, "linear_attention: cu_seqlens must run from 0 to T = {}", T);
    for (int64_t n = 0; n < N; ++n)
      JET_CHECK(c[n + 1] >= c[n], "linear_attention: cu_seqlens must not decrease (at {})", n);
  }
  if (in.initial_state.defined())
    JET_CHECK(in.initial_state.sizes() == at::IntArrayRef({N, H, K, V}),
              "linear_attention: initial_state {} must be [{}, {}, {}, {}]",
              shape_str(in.initial_state.sizes()), N, H, K, V);
}

namespace detail {

LinearAttentionOutput per_sequence(const LinearAttentionInput& in, const LinearAttentionOptions& opt, BatchFn fn) {
  if (!in.cu_seqlens.defined()) return fn(in, opt);
  const at::Tensor cu = in.cu_seqlens.cpu();
  const int64_t* c = cu.data_ptr<int64_t>();
  const int64_t N = cu.size(0) - 1;
  std::vector<at::Tensor> outs, states;
  for (int64_t n = 0; n < N; ++n) {
    const int64_t len = c[n + 1] - c[n];
    LinearAttentionInput s;
    s.q = in.q.narrow(1, c[n], len);
    s.k = in.k.narrow(1, c[n], len);
    s.v = in.v.narrow(1, c[n], len);
    if (in.g.defined()) s.g = opt.decay == Decay::fixed ? in.g : in.g.narrow(1, c[n], len);
    if (in.beta.defined()) s.beta = in.beta.narrow(1, c[n], len);
    if (in.initial_state.defined()) s.initial_state = in.initial_state.narrow(0, n, 1);
    LinearAttentionOutput r = fn(s, opt);
    outs.push_back(r.o);
    states.push_back(r.final_state);
  }
  return {at::cat(outs, 1), at::cat(states, 0)};
}

at::Tensor to_chunks(const at::Tensor& x, int64_t NC) {
  const int64_t B = x.size(0), T = x.size(1), H = x.size(2), X = x.size(3), C = kLinearAttentionChunk;
  return at::constant_pad_nd(x, {0, 0, 0, 0, 0, NC * C - T}).view({B, NC, C, H, X}).permute({0, 3, 1, 2, 4});
}

at::Tensor from_chunks(const at::Tensor& x, int64_t T) {
  const int64_t B = x.size(0), H = x.size(1), NC = x.size(2), C = x.size(3), X = x.size(4);
  return x.permute({0, 2, 3, 1, 4}).reshape({B, NC * C, H, X}).narrow(1, 0, T);
}

at::Tensor token_log_decay(const at::Tensor& g, const LinearAttentionOptions& opt, const at::Tensor& q,
                           at::ScalarType ct) {
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2);
  switch (opt.decay) {
    case Decay::none: return at::zeros({B, T, H, 1}, q.options().dtype(ct));
    case Decay::fixed: return g.to(ct).view({1, 1, H, 1}).expand({B, T, H, 1});
    case Decay::scalar: return g.to(ct).unsqueeze(-1);
    case Decay::vector: return g.to(ct);
  }
  JET_FAIL("linear_attention: unknown decay");
}

}  // namespace detail

namespace {

// Σ_d a_i[d] b_j[d] exp(Γ_i[d] − Γ_j[d]) where mask(i, j), else 0. a, b: [..., C, X]; G (Γ): [..., C, 1]
// (scalar decay, one value per token) or [..., C, X] (vector decay); mask: [C, C] bool. In the pairwise
// forms only masked-in differences (i ≥ j, so ≤ 0) are exponentiated.
at::Tensor decayed_scores(const at::Tensor& a, const at::Tensor& b, const at::Tensor& G, const at::Tensor& mask) {
  const double ninf = -std::numeric_limits<double>::infinity();
  if (G.size(-1) == 1) {
    const at::Tensor diff = G - G.transpose(-1, -2);  // [..., C, C]
    return at::matmul(a, b.transpose(-1, -2)) * diff.masked_fill(mask.logical_not(), ninf).exp();
  }
  // Vector decay. While e^{−Γ} stays far from overflow (Γ ≥ −30 over every chunk: GLA's logsigmoid/16
  // gates), factor e^{Γi−Γj} = e^{Γi}·e^{−Γj}: two matmuls, no [C, C, X] tensor, and every product is
  // still exact to rounding. Otherwise the pairwise form, C·C·X memory per chunk.
  if (G.min().item<double>() >= -30.0)
    return at::matmul(a * G.exp(), (b * (-G).exp()).transpose(-1, -2)).masked_fill(mask.logical_not(), 0.0);
  const at::Tensor diff = G.unsqueeze(-2) - G.unsqueeze(-3);  // [..., C, C, X]
  const at::Tensor w = diff.masked_fill(mask.logical_not().unsqueeze(-1), ninf).exp();
  return (a.unsqueeze(-2) * b.unsqueeze(-3) * w).sum(-1);
}

LinearAttentionOutput chunked_batch(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  const at::ScalarType ct = compute_type(in.v);
  at::Tensor q = in.q.to(ct), k = in.k.to(ct), v = in.v.to(ct);  // [B, T, H, K|V]
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  const int64_t C = kLinearAttentionChunk, NC = (T + C - 1) / C;
  if (T == 0) {
    at::Tensor S = in.initial_state.defined() ? in.initial_state.to(ct) : at::zeros({B, H, K, V}, q.options());
    return {at::empty({B, 0, H, V}, in.v.options()), S};
  }
  if (opt.qk_l2norm) {
    q = l2_normalize(q);
    k = l2_normalize(k);
  }
  q = q * linear_attention_scale(opt, K);
  // [B, T, H, X] -> [B, H, NC, C, X]; padded tokens have k = v = β = 0 and log decay 0, so they change
  // neither the state nor the real outputs.
  auto chunks = [&](const at::Tensor& x) { return detail::to_chunks(x, NC); };
  const at::Tensor logdecay = detail::token_log_decay(in.g, opt, q, ct);  // [B, T, H, 1] or [B, T, H, K]
  const at::Tensor qc = chunks(q), kc = chunks(k), vc = chunks(v);
  const at::Tensor G = chunks(logdecay).cumsum(3);          // Γ: [B, H, NC, C, 1|K]
  const at::Tensor GC = G.narrow(3, C - 1, 1);              // Γ_C: [B, H, NC, 1, 1|K]
  const at::Tensor lower = at::ones({C, C}, q.options().dtype(at::kBool)).tril();
  const at::Tensor scores = decayed_scores(qc, kc, G, lower);       // [B, H, NC, C, C]
  const at::Tensor q_state = qc * G.exp();                          // reads the incoming state
  const at::Tensor k_state = kc * (GC - G).exp();                   // writes the outgoing state
  const at::Tensor state_decay = GC.exp().transpose(-1, -2);        // [B, H, NC, 1|K, 1]
  at::Tensor U, W;  // [B, H, NC, C, V], [B, H, NC, C, K]: values to write = U − W S
  if (opt.delta) {
    const at::Tensor bc = chunks(in.beta.to(ct).unsqueeze(-1));     // [B, H, NC, C, 1]
    const at::Tensor strict = at::ones({C, C}, lower.options()).tril(-1);
    const at::Tensor A = decayed_scores(kc * bc, kc, G, strict);    // β_i k_i·k_j e^{Γi−Γj}, j < i
    const at::Tensor IA = A + at::eye(C, q.options());
    const at::Tensor rhs = at::cat({vc * bc, kc * G.exp() * bc}, -1);
    const at::Tensor sol = at::linalg_solve_triangular(IA, rhs, /*upper=*/false, /*left=*/true,
                                                       /*unitriangular=*/true);
    U = sol.narrow(-1, 0, V);
    W = sol.narrow(-1, V, K);
  }
  at::Tensor S = in.initial_state.defined() ? in.initial_state.to(ct) : at::zeros({B, H, K, V}, q.options());
  std::vector<at::Tensor> outs;
  for (int64_t n = 0; n < NC; ++n) {
    const at::Tensor vn = opt.delta ? U.select(2, n) - at::matmul(W.select(2, n), S) : vc.select(2, n);
    outs.push_back(at::matmul(q_state.select(2, n), S) + at::matmul(scores.select(2, n), vn));
    S = S * state_decay.select(2, n) + at::matmul(k_state.select(2, n).transpose(-1, -2), vn);
  }
  at::Tensor o = detail::from_chunks(at::stack(outs, 2), T);
  return {o.to(in.v.scalar_type()), S};
}

LinearAttentionOutput recurrent_batch(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  const int64_t B = in.q.size(0), T = in.q.size(1), H = in.q.size(2), K = in.q.size(3), V = in.v.size(3);
  const at::ScalarType ct = compute_type(in.v);
  at::Tensor S = in.initial_state.defined() ? in.initial_state.to(ct).clone()
                                            : at::zeros({B, H, K, V}, in.v.options().dtype(ct));
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < T; ++t) {
    at::Tensor g;
    if (in.g.defined()) g = opt.decay == Decay::fixed ? in.g : in.g.select(1, t);
    const at::Tensor beta = in.beta.defined() ? in.beta.select(1, t) : at::Tensor();
    outs.push_back(linear_attention_step(in.q.select(1, t), in.k.select(1, t), in.v.select(1, t), g, beta, S, opt));
  }
  at::Tensor o = T ? at::stack(outs, 1) : at::empty({B, 0, H, V}, in.v.options());
  return {o, S};
}

bool needs_grad(const LinearAttentionInput& in) {
  return c10::GradMode::is_enabled() &&
         (in.q.requires_grad() || in.k.requires_grad() || in.v.requires_grad() ||
          (in.g.defined() && in.g.requires_grad()) || (in.beta.defined() && in.beta.requires_grad()) ||
          (in.initial_state.defined() && in.initial_state.requires_grad()));
}

// The CUDA chunked forward (linear_attention_chunk_cuda.h) takes bf16 CUDA inputs, decay
// none/fixed/scalar, either update, the head widths it was built for (no autograd of its own: with
// gradients it runs inside chunked_with_backward).
bool chunk_cuda_fits(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
#ifdef JET_CUDA
  return in.q.is_cuda() && opt.decay != Decay::vector && in.q.scalar_type() == at::kBFloat16 &&
         in.k.scalar_type() == at::kBFloat16 && in.v.scalar_type() == at::kBFloat16 &&
         linear_attention_chunk_cuda_supports(in.q.size(3), in.v.size(3));
#else
  (void)in, (void)opt;
  return false;
#endif
}

bool chunk_cuda_takes(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  return !needs_grad(in) && chunk_cuda_fits(in, opt);
}

// The chunked forward without autograd: the CUDA kernels where they fit, else the ATen form.
LinearAttentionOutput chunked_forward(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
#ifdef JET_CUDA
  if (chunk_cuda_fits(in, opt))
    return linear_attention_chunk_cuda(in.q, in.k, in.v, in.g.defined() ? in.g.to(at::kFloat) : in.g,
                                       opt.decay == Decay::fixed, in.beta.defined() ? in.beta.to(at::kFloat) : in.beta,
                                       in.initial_state, in.cu_seqlens, linear_attention_scale(opt, in.q.size(3)),
                                       opt.qk_l2norm);
#endif
  return detail::per_sequence(in, opt, chunked_batch);
}

// One sequence (or an unpacked batch) with the hand-derived backward (an empty one: autograd, nothing to do).
LinearAttentionOutput chunked_manual_backward(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  if (in.q.size(1) == 0) return chunked_batch(in, opt);
  return detail::chunked_with_backward(in, opt, chunked_forward);
}

}  // namespace

LinearAttentionOutput linear_attention_chunked(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  check_linear_attention(in, opt);
  if (!needs_grad(in)) return chunked_forward(in, opt);
  // Gradients: the hand-derived chunked backward (linear_attention_chunk_bwd.h) where it applies, else
  // autograd through the ATen form (vector decay, or JET_LA_BWD=aten).
  if (detail::chunked_backward_takes(opt)) return detail::per_sequence(in, opt, chunked_manual_backward);
  return detail::per_sequence(in, opt, chunked_batch);
}

LinearAttentionOutput linear_attention_recurrent(const LinearAttentionInput& in,
                                                 const LinearAttentionOptions& opt) {
  check_linear_attention(in, opt);
  return detail::per_sequence(in, opt, recurrent_batch);
}

LinearAttentionOutput linear_attention(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  // The CUDA chunked kernels are three launches whatever T, cheaper than T step launches.
  if (!needs_grad(in) && in.q.size(1) <= kLinearAttentionChunk && !chunk_cuda_takes(in, opt))
    return linear_attention_recurrent(in, opt);
  return linear_attention_chunked(in, opt);
}

#ifdef JET_CUDA
namespace {

// The fused CUDA step (linear_attention_step_cuda.h) for CUDA tensors outside autograd; nullopt when
// the call is not for it (CPU, float64 state, gradients wanted, a head width the kernel lacks).
std::optional<at::Tensor> step_cuda(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,
                                    const LinearAttentionOptions& opt) {
  static const std::set<int64_t> kWidths = {16, 32, 64, 96, 128, 192, 256};
  if (!state.is_cuda() || state.scalar_type() != at::kFloat || !kWidths.count(q.size(2))) return std::nullopt;
  const bool grad = c10::GradMode::is_enabled() &&
                    (q.requires_grad() || k.requires_grad() || v.requires_grad() || state.requires_grad() ||
                     (g.defined() && g.requires_grad()) || (beta.defined() && beta.requires_grad()));
  if (grad) return std::nullopt;
  const int64_t B = q.size(0), H = q.size(1);
  // One dtype for q, k, v: theirs when they agree (fp32 or bf16), else fp32 (what the ATen path computes in).
  const at::ScalarType dt = q.scalar_type() == k.scalar_type() && q.scalar_type() == v.scalar_type() &&
                                    (v.scalar_type() == at::kBFloat16 || v.scalar_type() == at::kFloat)
                                ? v.scalar_type()
                                : at::kFloat;
  StepDecay decay = StepDecay::none;
  at::Tensor gf;
  switch (opt.decay) {
    case Decay::none: break;
    case Decay::fixed: decay = StepDecay::scalar, gf = g.to(at::kFloat).view({1, H}).expand({B, H}); break;
    case Decay::scalar: decay = StepDecay::scalar, gf = g.to(at::kFloat); break;
    case Decay::vector: decay = StepDecay::vector, gf = g.to(at::kFloat); break;
  }
  if (!state.is_contiguous()) state = state.contiguous();
  at::Tensor o = linear_attention_step_cuda(q.to(dt), k.to(dt), v.to(dt), gf,
                                            beta.defined() ? beta.to(at::kFloat) : beta, state, decay,
                                            linear_attention_scale(opt, q.size(2)), opt.qk_l2norm);
  return o.to(v.scalar_type());
}

}  // namespace
#endif

at::Tensor linear_attention_step(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& g, const at::Tensor& beta, at::Tensor& state,
                                 const LinearAttentionOptions& opt) {
  JET_CHECK(q.dim() == 3 && k.sizes() == q.sizes(), "linear_attention_step: q {} and k {} must be [B, H, K]",
            shape_str(q.sizes()), shape_str(k.sizes()));
  const int64_t B = q.size(0), H = q.size(1), K = q.size(2);
  JET_CHECK(v.dim() == 3 && v.size(0) == B && v.size(1) == H, "linear_attention_step: v {} must be [{}, {}, V]",
            shape_str(v.sizes()), B, H);
  JET_CHECK(state.sizes() == at::IntArrayRef({B, H, K, v.size(2)}) &&
                (state.scalar_type() == at::kFloat || state.scalar_type() == at::kDouble),
            "linear_attention_step: state {} must be fp32 [{}, {}, {}, {}]", shape_str(state.sizes()), B, H, K,
            v.size(2));
  JET_CHECK(opt.delta == beta.defined(), "linear_attention_step: beta must be given exactly for the delta rule");
  JET_CHECK((opt.decay == Decay::none) != g.defined(), "linear_attention_step: g must be given exactly with a decay");
#ifdef JET_CUDA
  if (auto o = step_cuda(q, k, v, g, beta, state, opt)) return *o;
#endif
  const at::ScalarType ct = state.scalar_type();
  at::Tensor qf = q.to(ct), kf = k.to(ct), vf = v.to(ct);
  if (opt.qk_l2norm) {
    qf = l2_normalize(qf);
    kf = l2_normalize(kf);
  }
  qf = qf * linear_attention_scale(opt, K);
  switch (opt.decay) {
    case Decay::none: break;
    case Decay::fixed: state.mul_(g.to(ct).exp().view({1, H, 1, 1})); break;
    case Decay::scalar: state.mul_(g.to(ct).exp().view({B, H, 1, 1})); break;
    case Decay::vector: state.mul_(g.to(ct).exp().view({B, H, K, 1})); break;
  }
  at::Tensor u = vf;  // [B, H, V]
  if (opt.delta) u = beta.to(ct).unsqueeze(-1) * (vf - at::matmul(kf.unsqueeze(-2), state).squeeze(-2));
  state.add_(kf.unsqueeze(-1) * u.unsqueeze(-2));
  return at::matmul(qf.unsqueeze(-2), state).squeeze(-2).to(v.scalar_type());
}

}  // namespace jet::ops
