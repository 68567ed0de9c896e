// Float64 oracle of the linear-attention family: the per-token recurrence of linear_attention.h,
// written as plainly as possible (one token at a time, whole-state tensor ops) so autograd on it gives
// the reference gradients. Returns o in float64 (not v's dtype) and the final state in float64.
#include <ATen/ATen.h>

#include <vector>

#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_detail.h"

namespace jet::ops {
namespace {

LinearAttentionOutput ref_batch(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  const auto d = at::kDouble;
  at::Tensor q = in.q.to(d), k = in.k.to(d), v = in.v.to(d);  // [B, T, H, K|V]
  const int64_t B = q.size(0), T = q.size(1), H = q.size(2), K = q.size(3), V = v.size(3);
  if (opt.qk_l2norm) {
    q = l2_normalize(q);
    k = l2_normalize(k);
  }
  q = q * linear_attention_scale(opt, K);
  at::Tensor S = in.initial_state.defined() ? in.initial_state.to(d) : at::zeros({B, H, K, V}, q.options());
  std::vector<at::Tensor> outs;
  for (int64_t t = 0; t < T; ++t) {
    const at::Tensor qt = q.select(1, t), kt = k.select(1, t), vt = v.select(1, t);  // [B, H, K|V]
    switch (opt.decay) {
      case Decay::none: break;
      case Decay::fixed: S = S * in.g.to(d).exp().view({1, H, 1, 1}); break;
      case Decay::scalar: S = S * in.g.to(d).select(1, t).exp().view({B, H, 1, 1}); break;
      case Decay::vector: S = S * in.g.to(d).select(1, t).exp().unsqueeze(-1); break;
    }
    at::Tensor u = vt;  // [B, H, V]
    if (opt.delta) {
      const at::Tensor read = (S * kt.unsqueeze(-1)).sum(2);  // Sᵀk: [B, H, V]
      u = in.beta.to(d).select(1, t).unsqueeze(-1) * (vt - read);
    }
    S = S + kt.unsqueeze(-1) * u.unsqueeze(2);
    outs.push_back((S * qt.unsqueeze(-1)).sum(2));
  }
  return {T ? at::stack(outs, 1) : at::zeros({B, 0, H, V}, q.options()), S};  // an empty packed sequence: T = 0
}

}  // namespace

LinearAttentionOutput linear_attention_ref(const LinearAttentionInput& in, const LinearAttentionOptions& opt) {
  check_linear_attention(in, opt);
  return detail::per_sequence(in, opt, ref_batch);
}

}  // namespace jet::ops
