// Hand-derived backward of the chunked WY form for one decay per token and head (none, fixed,
// scalar) × (additive, delta), as a custom autograd function: no autograd graph through the chunk
// loop. Forward: the no-grad chunked forward (CUDA kernels or the ATen form), inputs saved. Backward:
// recompute the chunk factors and the incoming states, one reverse pass over the chunks for the state
// gradient, then every input's gradient from batched matmuls over all chunks. Derivation in README.md
// ("Chunked backward").
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/check.h"
#include "ops/compute_type.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_chunk_bwd.h"
#include "ops/linear_attention/linear_attention_detail.h"
#ifdef JET_CUDA
#include <ATen/cuda/CUDAEvent.h>

#include "ops/linear_attention/linear_attention_chunk_grad.h"
#endif

namespace jet::ops::detail {

ChunkScanOut chunk_scan(const at::Tensor& a, const at::Tensor& b, const at::Tensor& w, const at::Tensor& a2,
                        const at::Tensor& b2, const at::Tensor& e, const at::Tensor& z0, bool reverse) {
#ifdef JET_CUDA
  if (chunk_scan_cuda_takes(b, z0)) return chunk_scan_cuda(a, b, w, a2, b2, e, z0, reverse);
#endif
  const int64_t NC = b.size(2);
  // a2ᵀ b2 of every chunk at once; the loop below only carries Z.
  const at::Tensor y = a2.defined() ? at::matmul(a2.transpose(-1, -2), b2) : at::Tensor();
  std::vector<at::Tensor> zin(NC), r(NC);
  at::Tensor z = z0;
  for (int64_t i = 0; i < NC; ++i) {
    const int64_t n = reverse ? NC - 1 - i : i;
    zin[n] = z;
    r[n] = a.defined() ? b.select(2, n) + at::matmul(a.select(2, n), z) : b.select(2, n);
    at::Tensor next = z * e.select(2, n);
    if (w.defined()) next = next + at::matmul(w.select(2, n).transpose(-1, -2), r[n]);
    if (y.defined()) next = next + y.select(2, n);
    z = next;
  }
  return {at::stack(zin, 2), at::stack(r, 2), z};
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// Backward of y = x / sqrt(Σx² + ε) (r = that inverse norm): dx = r (dy − y (y·dy)).
at::Tensor l2_normalize_backward(const at::Tensor& y, const at::Tensor& r, const at::Tensor& dy) {
  return r * (dy - y * (y * dy).sum(-1, true));
}

at::Tensor tr(const at::Tensor& x) { return x.transpose(-1, -2); }

// q, k normalised along the last dim when `on` (else as given), with the inverse norms r the backward needs.
struct NormedQK {
  at::Tensor rq, rk, qn, kn;  // inverse norms [B, T, H, 1] (undefined when off); normalised q, k
};
NormedQK normed_qk(const at::Tensor& q0, const at::Tensor& k0, bool on) {
  if (!on) return {at::Tensor(), at::Tensor(), q0, k0};
  const at::Tensor rq = at::rsqrt(q0.square().sum(-1, true) + 1e-6), rk = at::rsqrt(k0.square().sum(-1, true) + 1e-6);
  return {rq, rk, q0 * rq, k0 * rk};
}

struct Grads {
  at::Tensor dq, dk, dv, dg, dbeta, ds0;
};

// r.dq, r.dk in the inputs' dtypes from the chunked gradients dQ, dK of the scaled, normalised q̂, k̂ (the L2
// norms' backward when on).
void set_qk_grads(Grads& r, const at::Tensor& dQ, const at::Tensor& dK, int64_t T, double scale, bool l2,
                  const at::Tensor& q_in, const at::Tensor& k_in, const NormedQK& n) {
  at::Tensor dq = from_chunks(dQ, T) * scale, dk = from_chunks(dK, T);
  if (l2) {
    dq = l2_normalize_backward(n.qn, n.rq, dq);
    dk = l2_normalize_backward(n.kn, n.rk, dk);
  }
  r.dq = dq.to(q_in.scalar_type());
  r.dk = dk.to(k_in.scalar_type());
}

// JET_LA_BWD_PROFILE=1 on CUDA tensors: CUDA events between the phases of the backward, the split
// (ms) printed to stderr when it goes out of scope.
class PhaseTimer {
 public:
  explicit PhaseTimer(const at::Tensor& x) {
#ifdef JET_CUDA
    on_ = x.is_cuda() && std::getenv("JET_LA_BWD_PROFILE") != nullptr;
#endif
    mark("start");
  }
  void mark(const char* name) {
#ifdef JET_CUDA
    if (!on_) return;
    names_.push_back(name);
    events_.push_back(std::make_unique<at::cuda::CUDAEvent>(cudaEventDefault));
    events_.back()->record();
#endif
  }
  ~PhaseTimer() {
#ifdef JET_CUDA
    if (!on_ || events_.size() < 2) return;
    events_.back()->synchronize();
    std::string line = "la_chunk backward ms:";
    for (size_t i = 1; i < events_.size(); ++i)
      line += fmt::format(" {} {:.4f}", names_[i], events_[i - 1]->elapsed_time(*events_[i]));
    std::fprintf(stderr, "%s\n", line.c_str());
#endif
  }

 private:
  bool on_ = false;
#ifdef JET_CUDA
  std::vector<const char*> names_;
  std::vector<std::unique_ptr<at::cuda::CUDAEvent>> events_;
#endif
};

// The backward (README.md, "Chunked backward"). Chunk tensors are [B, H, NC, C, X]; per chunk with
// Q̂ (normed, scaled), K̂, Γ = cumsum g, γ = Γ_C, D_ij = e^{Γi−Γj} (j ≤ i, else 0):
//   forward   A = β K̂K̂ᵀ ⊙ D (strict), T = (I+A)⁻¹, U = T βV, W = T β e^Γ K̂, V' = U − W S_c,
//             O = e^Γ Q̂ S_c + P V' (P = Q̂K̂ᵀ ⊙ D), S_{c+1} = e^γ S_c + K̃ᵀ V' (K̃ = e^{γ−Γ} K̂)
//   reverse   dV' = Pᵀ dO + K̃ dS_{c+1},  dS_c = e^γ dS_{c+1} + (e^Γ Q̂)ᵀ dO − Wᵀ dV'
Grads chunked_backward(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in, const at::Tensor& g_in,
                       const at::Tensor& beta_in, const at::Tensor& s0_in, const LinearAttentionOptions& opt,
                       const at::Tensor& dO_in, const at::Tensor& dS_in) {
  PhaseTimer timer(v_in);
  const at::ScalarType ct = compute_type(v_in);
  const at::Tensor q0 = q_in.to(ct), k0 = k_in.to(ct), v0 = v_in.to(ct);
  const int64_t B = q0.size(0), T = q0.size(1), H = q0.size(2), K = q0.size(3), V = v0.size(3);
  const int64_t C = kLinearAttentionChunk, NC = (T + C - 1) / C;
  const double scale = linear_attention_scale(opt, K);
  const NormedQK nq = normed_qk(q0, k0, opt.qk_l2norm);
  const at::Tensor &qn = nq.qn, &kn = nq.kn;
  const auto f = q0.options();
  JET_CHECK(opt.decay != Decay::vector, "linear_attention: the chunked backward takes no vector decay");
  const at::Tensor gtok = token_log_decay(g_in, opt, q0, ct);  // [B, T, H, 1]
  const at::Tensor Q = to_chunks(qn * scale, NC), Kc = to_chunks(kn, NC), Vc = to_chunks(v0, NC);
  const at::Tensor G = to_chunks(gtok, NC).cumsum(3);  // Γ [B, H, NC, C, 1]
  const at::Tensor GC = G.narrow(3, C - 1, 1);          // γ [B, H, NC, 1, 1]
  const at::Tensor eG = G.exp(), eGC = GC.exp(), eTail = (GC - G).exp();
  const at::Tensor Qg = Q * eG, Kt = Kc * eTail;
  const auto bl = f.dtype(at::kBool);
  const at::Tensor lower = at::ones({C, C}, bl).tril();
  const at::Tensor D = (G - tr(G)).masked_fill(lower.logical_not(), -std::numeric_limits<double>::infinity()).exp();
  const at::Tensor QK = at::matmul(Q, tr(Kc)), P = QK * D;

  at::Tensor bc, Ds, B0, A, Tm, U, W;
  if (opt.delta) {
    bc = to_chunks(beta_in.to(ct).unsqueeze(-1), NC);  // [B, H, NC, C, 1]
    Ds = D.tril(-1);
    B0 = at::matmul(Kc, tr(Kc)) * Ds;
    A = bc * B0;
    Tm = at::linalg_solve_triangular(A + at::eye(C, f), at::eye(C, f).expand_as(A), /*upper=*/false,
                                     /*left=*/true, /*unitriangular=*/true);
    U = at::matmul(Tm, bc * Vc);
    W = at::matmul(Tm, bc * eG * Kc);
  }
  timer.mark("factors");
  const at::Tensor nW = opt.delta ? -W : at::Tensor();
  const at::Tensor s0 = s0_in.defined() ? s0_in.to(ct) : at::zeros({B, H, K, V}, f);
  const ChunkScanOut fwd = chunk_scan(nW, opt.delta ? U : Vc, Kt, {}, {}, eGC, s0, /*reverse=*/false);
  const at::Tensor& Sc = fwd.zin;  // incoming state per chunk
  const at::Tensor& Vp = fwd.r;    // V'
  timer.mark("scan_fwd");

  const at::Tensor dOc = dO_in.defined() ? to_chunks(dO_in.to(ct), NC) : at::zeros_like(Vc);
  const at::Tensor dSf = dS_in.defined() ? dS_in.to(ct) : at::zeros({B, H, K, V}, f);
  const ChunkScanOut bwd = chunk_scan(Kt, at::matmul(tr(P), dOc), nW, Qg, dOc, eGC, dSf, /*reverse=*/true);
  const at::Tensor& dSn = bwd.zin;  // dS_{c+1} per chunk
  const at::Tensor& dVp = bwd.r;    // dV'
  timer.mark("scan_bwd");

  // O = e^Γ Q̂ S_c + P V'
  const at::Tensor dQs = at::matmul(dOc, tr(Sc));
  at::Tensor dG = (dQs * Qg).sum(-1, true);  // terms in e^{Γ_i} of one token i
  at::Tensor dQ = dQs * eG;
  const at::Tensor E1 = at::matmul(dOc, tr(Vp)) * D;  // dP ⊙ D
  const at::Tensor M1 = E1 * QK;                      // dP ⊙ P
  at::Tensor Mpair = M1;  // terms in e^{Γi−Γj} of a pair j ≤ i
  dQ = dQ + at::matmul(E1, Kc);
  at::Tensor dK = at::matmul(tr(E1), Q);
  // S_{c+1} = e^γ S_c + K̃ᵀ V'
  const at::Tensor dKt = at::matmul(Vp, tr(dSn));
  dK = dK + dKt * eTail;
  const at::Tensor tk = (dKt * Kt).sum(-1, true);
  // the e^γ of e^γ S_c: eGC ⟨S_c, dS_{c+1}⟩ as a batched dot (no [K, V] product tensor)
  const at::Tensor dstate = eGC * at::matmul(Sc.flatten(-2).unsqueeze(-2), dSn.flatten(-2).unsqueeze(-1));
  at::Tensor dV = dVp, dbeta;
  if (opt.delta) {
    // V' = U − W S_c, [U | W] = T [βV | β e^Γ K̂], T = (I + A)⁻¹: dA = −Tᵀ dT Tᵀ = −(Tᵀ dU) Uᵀ − (Tᵀ dW) Wᵀ
    const at::Tensor dRU = at::matmul(tr(Tm), dVp);
    const at::Tensor dRW = -at::matmul(tr(Tm), at::matmul(dVp, tr(Sc)));
    dV = bc * dRU;
    const at::Tensor kw = (dRW * Kc).sum(-1, true) * eG;
    dK = dK + bc * eG * dRW;
    dbeta = (dRU * Vc).sum(-1, true) + kw;
    dG = dG + bc * kw;
    const at::Tensor dA = -(at::matmul(dRU, tr(U)) + at::matmul(dRW, tr(W))).tril(-1);
    dbeta = dbeta + (dA * B0).sum(-1, true);
    // A = β (K̂K̂ᵀ ⊙ D), strictly lower
    const at::Tensor E2 = bc * dA * Ds;
    Mpair = Mpair + dA * A;
    dK = dK + at::matmul(E2, Kc) + at::matmul(tr(E2), Kc);
  }
  // Γ_i = Σ_{s≤i} g_s within the chunk: g_t enters e^{Γ_i} for i ≥ t (reverse cumsum), e^{γ−Γ_i} for
  // i < t (exclusive cumsum), e^γ always, and e^{Γi−Γj} for the pairs j < t ≤ i: summed as such (rows
  // ≥ t of columns < t), not as rowsum − colsum then cumsum, which cancels (fixed decay sums it all).
  const at::Tensor rows_from = Mpair.flip(-2).cumsum(-2).flip(-2);  // Σ_{i≥t} M_ij at [t, j]
  const at::Tensor dg = dG.flip(3).cumsum(3).flip(3) + (tk.cumsum(3) - tk) + dstate +
                        (rows_from * at::ones({C, C}, bl).tril(-1)).sum(-1, true);

  timer.mark("chunk_grads");
  Grads r;
  set_qk_grads(r, dQ, dK, T, scale, opt.qk_l2norm, q_in, k_in, nq);
  r.dv = from_chunks(dV, T).to(v_in.scalar_type());
  if (opt.decay == Decay::scalar) r.dg = from_chunks(dg, T).squeeze(-1).to(g_in.scalar_type());
  if (opt.decay == Decay::fixed)  // one value per head from every token's terms: summed in float64
    r.dg = from_chunks(dg.to(at::kDouble), T).sum({0, 1, 3}).to(g_in.scalar_type());
  if (opt.delta) r.dbeta = from_chunks(dbeta, T).squeeze(-1).to(beta_in.scalar_type());
  if (s0_in.defined()) r.ds0 = bwd.z.to(s0_in.scalar_type());
  timer.mark("inputs");
  return r;
}

#ifdef JET_CUDA
// Whether the backward runs on the CUDA kernels (linear_attention_chunk_grad.h): the delta rule with one
// decay per token and head, bf16 CUDA q/k/v, head widths the kernels take, and JET_LA_BWD unset (K ≥ 64:
// the K = 32 gradients of q, k, β are off on the H100, see README.md) or cuda (every step in kernels, any
// K) or cuda_aten (the per-chunk algebra in ATen ops); JET_LA_BWD=scan keeps the batched ATen matmuls and
// the chunk-scan kernel, aten autograd through the ATen form.
bool grad_kernels_take(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const LinearAttentionOptions& opt) {
  const char* e = std::getenv("JET_LA_BWD");
  const bool dflt = !e || !*e;
  const bool want = (dflt && q.size(3) >= 64) || (e && (std::strcmp(e, "cuda") == 0 || std::strcmp(e, "cuda_aten") == 0));
  return want && q.is_cuda() && opt.delta && opt.decay != Decay::vector &&
         q.scalar_type() == at::kBFloat16 && k.scalar_type() == at::kBFloat16 && v.scalar_type() == at::kBFloat16 &&
         q.size(0) > 0 && q.size(1) > 0 && linear_attention_chunk_cuda_supports(q.size(3), v.size(3));
}

// The backward with the CUDA kernels doing the recomputation, the reverse pass, dv, dS_0 and every
// product over the value columns; the rest (the 64×64 and 64×K per-chunk algebra of step 3) here in
// batched fp32 ATen ops on [B, H, NC, 64, ·] tensors, the same equations as chunked_backward.
Grads chunked_backward_cuda(const at::Tensor& q_in, const at::Tensor& k_in, const at::Tensor& v_in,
                            const at::Tensor& g_in, const at::Tensor& beta_in, const at::Tensor& s0_in,
                            const LinearAttentionOptions& opt, const at::Tensor& dO_in, const at::Tensor& dS_in) {
  PhaseTimer timer(v_in);
  const int64_t T = q_in.size(1), K = q_in.size(3);
  const int64_t C = kLinearAttentionChunk, NC = (T + C - 1) / C;
  const double scale = linear_attention_scale(opt, K);
  const at::Tensor gk = g_in.defined() ? g_in.to(at::kFloat) : g_in;
  const at::Tensor dO = dO_in.defined() ? dO_in.to(at::kBFloat16) : at::zeros_like(v_in);
  const char* e = std::getenv("JET_LA_BWD");
  const bool fused = !(e && std::strcmp(e, "cuda_aten") == 0);
  const ChunkGradCuda kr = linear_attention_chunk_grad_cuda(
      q_in, k_in, v_in, gk, opt.decay == Decay::fixed, beta_in.to(at::kFloat),
      s0_in.defined() ? s0_in.to(at::kFloat) : s0_in, dO, dS_in.defined() ? dS_in.to(at::kFloat) : dS_in, scale,
      opt.qk_l2norm, fused);
  timer.mark("kernels");
  Grads r;
  if (fused) {
    r.dq = kr.dq.to(q_in.scalar_type());
    r.dk = kr.dk.to(k_in.scalar_type());
    r.dv = kr.dv.to(v_in.scalar_type());
    if (opt.decay == Decay::scalar) r.dg = kr.dg.to(g_in.scalar_type());
    if (opt.decay == Decay::fixed) r.dg = kr.dg.to(at::kDouble).sum(at::IntArrayRef{0, 1}).to(g_in.scalar_type());
    r.dbeta = kr.dbeta.to(beta_in.scalar_type());
    if (s0_in.defined()) r.ds0 = kr.ds0.to(s0_in.scalar_type());
    timer.mark("inputs");
    return r;
  }
  const at::Tensor q0 = q_in.to(at::kFloat), k0 = k_in.to(at::kFloat);
  const NormedQK nq = normed_qk(q0, k0, opt.qk_l2norm);
  const at::Tensor &qn = nq.qn, &kn = nq.kn;
  const auto f = q0.options();
  const at::Tensor Q = to_chunks(qn * scale, NC), Kc = to_chunks(kn, NC);
  const at::Tensor G = to_chunks(token_log_decay(g_in, opt, q0, at::kFloat), NC).cumsum(3);
  const at::Tensor GC = G.narrow(3, C - 1, 1);
  const at::Tensor eG = G.exp(), eTail = (GC - G).exp();
  const auto bl = f.dtype(at::kBool);
  const at::Tensor D =
      (G - tr(G)).masked_fill(at::ones({C, C}, bl).tril().logical_not(), -std::numeric_limits<double>::infinity()).exp();
  const at::Tensor Ds = D.tril(-1);
  const at::Tensor bc = to_chunks(beta_in.to(at::kFloat).unsqueeze(-1), NC);
  // O = e^Γ Q̂ S_c + P V'
  const at::Tensor E1 = kr.dP * D;
  const at::Tensor M1 = E1 * at::matmul(Q, tr(Kc));
  at::Tensor dQ = kr.dQs * eG + at::matmul(E1, Kc);
  at::Tensor dK = at::matmul(tr(E1), Q) + kr.dKt * eTail;
  at::Tensor dG = (kr.dQs * Q).sum(-1, true) * eG;
  const at::Tensor tk = (kr.dKt * Kc).sum(-1, true) * eTail;
  // delta: dR_W = −Tᵀ dV' S_cᵀ; Tᵀ dV' Vᵀ gives Σ dR_U ⊙ V (its diagonal) and dR_U Uᵀ = (Tᵀ dV' Vᵀ) diag(β) Tᵀ
  const at::Tensor Tt = tr(kr.T);
  const at::Tensor X1 = at::matmul(Tt, kr.dVV);
  const at::Tensor dRW = -at::matmul(Tt, kr.dVS);
  const at::Tensor W = at::matmul(kr.T, bc * eG * Kc);
  const at::Tensor dA = -(at::matmul(X1 * tr(bc), Tt) + at::matmul(dRW, tr(W))).tril(-1);
  const at::Tensor kw = (dRW * Kc).sum(-1, true) * eG;
  dK = dK + bc * eG * dRW;
  const at::Tensor B0 = at::matmul(Kc, tr(Kc)) * Ds;
  const at::Tensor dbeta = X1.diagonal(0, -2, -1).unsqueeze(-1) + kw + (dA * B0).sum(-1, true);
  dG = dG + bc * kw;
  const at::Tensor E2 = bc * dA * Ds;
  const at::Tensor Mpair = M1 + dA * (bc * B0);
  dK = dK + at::matmul(E2 + tr(E2), Kc);
  const at::Tensor dstate = GC.exp() * kr.dstate.unsqueeze(-1).unsqueeze(-1);
  const at::Tensor rows_from = Mpair.flip(-2).cumsum(-2).flip(-2);
  const at::Tensor dg = dG.flip(3).cumsum(3).flip(3) + (tk.cumsum(3) - tk) + dstate +
                        (rows_from * at::ones({C, C}, bl).tril(-1)).sum(-1, true);
  timer.mark("chunk_grads");
  set_qk_grads(r, dQ, dK, T, scale, opt.qk_l2norm, q_in, k_in, nq);
  r.dv = kr.dv.to(v_in.scalar_type());
  if (opt.decay == Decay::scalar) r.dg = from_chunks(dg, T).squeeze(-1).to(g_in.scalar_type());
  if (opt.decay == Decay::fixed) r.dg = from_chunks(dg.to(at::kDouble), T).sum({0, 1, 3}).to(g_in.scalar_type());
  r.dbeta = from_chunks(dbeta, T).squeeze(-1).to(beta_in.scalar_type());
  if (s0_in.defined()) r.ds0 = kr.ds0.to(s0_in.scalar_type());
  timer.mark("inputs");
  return r;
}
#endif

// Inputs q, k, v, g, beta, initial_state (the last three optional: autograd takes no undefined tensor
// as an input); outputs o, final state.
using OptTensor = std::optional<at::Tensor>;
at::Tensor value(const OptTensor& x) { return x.value_or(at::Tensor()); }
OptTensor optional(const at::Tensor& x) { return x.defined() ? OptTensor(x) : std::nullopt; }

class ChunkedFunction : public torch::autograd::Function<ChunkedFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const OptTensor& g_opt, const OptTensor& beta_opt, const OptTensor& s0_opt,
                               const LinearAttentionOptions& opt, BatchFn forward_fn) {
    const at::Tensor g = value(g_opt), beta = value(beta_opt), s0 = value(s0_opt);
    ctx->save_for_backward({q, k, v, g, beta, s0});
    ctx->saved_data["decay"] = static_cast<int64_t>(opt.decay);
    ctx->saved_data["delta"] = opt.delta;
    ctx->saved_data["l2"] = opt.qk_l2norm;
    ctx->saved_data["scale"] = opt.scale;
    ctx->set_materialize_grads(false);
    LinearAttentionInput in;
    in.q = q, in.k = k, in.v = v, in.g = g, in.beta = beta, in.initial_state = s0;
    LinearAttentionOutput out = forward_fn(in, opt);
    return {out.o, out.final_state};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    const variable_list s = ctx->get_saved_variables();
    LinearAttentionOptions opt;
    opt.decay = static_cast<Decay>(ctx->saved_data["decay"].toInt());
    opt.delta = ctx->saved_data["delta"].toBool();
    opt.qk_l2norm = ctx->saved_data["l2"].toBool();
    opt.scale = ctx->saved_data["scale"].toDouble();
    // JET_LA_BWD_TF32=1 (a benchmark knob): the backward's fp32 cuBLAS matmuls on TF32 tensor cores; the
    // global setting is restored on the way out, also when the backward throws.
    struct Tf32Knob {
      at::Context& ctx = at::globalContext();
      const bool prev = ctx.allowTF32CuBLAS();
      Tf32Knob() {
        const char* e = std::getenv("JET_LA_BWD_TF32");
        if (e && std::strcmp(e, "1") == 0) ctx.setAllowTF32CuBLAS(true);
      }
      ~Tf32Knob() { ctx.setAllowTF32CuBLAS(prev); }
    } knob;
#ifdef JET_CUDA
    if (grad_kernels_take(s[0], s[1], s[2], opt)) {
      Grads r = chunked_backward_cuda(s[0], s[1], s[2], s[3], s[4], s[5], opt, grads[0], grads[1]);
      return {r.dq, r.dk, r.dv, r.dg, r.dbeta, r.ds0, at::Tensor(), at::Tensor()};
    }
#endif
    Grads r = chunked_backward(s[0], s[1], s[2], s[3], s[4], s[5], opt, grads[0], grads[1]);
    return {r.dq, r.dk, r.dv, r.dg, r.dbeta, r.ds0, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

bool chunked_backward_takes(const LinearAttentionOptions& opt) {
  const char* e = std::getenv("JET_LA_BWD");
  const bool aten = e && std::strcmp(e, "aten") == 0;
  return !aten && opt.decay != Decay::vector;
}

LinearAttentionOutput chunked_with_backward(const LinearAttentionInput& in, const LinearAttentionOptions& opt,
                                            BatchFn forward_fn) {
  variable_list out = ChunkedFunction::apply(in.q, in.k, in.v, optional(in.g), optional(in.beta),
                                                   optional(in.initial_state), opt, forward_fn);
  return {out[0], out[1]};
}

}  // namespace jet::ops::detail
