// The raw CPU decode step of the linear blocks in a quantized model (LinearBlock::step_cpu): what JetBlock and
// Gated DeltaNet share. Every projection is an int8 GEMM of the rows (ops/qmatmul), the rest per row and head on
// raw fp32 memory (ops/cpu): no ATen operator (ATen's thread pool splits the GEMM rows and the heads), no tensor
// allocated once the scratch buffers have grown (a vector of a few weight pointers per step is the one allocation).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <cmath>

#include "core/check.h"
#include "model/blocks/block.h"
#include "model/packed_rows.h"  // pack_qweights
#include "ops/cpu/cpu_kernels.h"

namespace jet::model {

std::vector<const ops::QWeight*> LinearBlock::qweights(at::ArrayRef<std::string> names) {
  std::vector<ops::QWeight*> ws;
  for (const std::string& n : names) {
    ops::QWeight& w = qparams_[index_.at(n)];
    if (!w.defined()) return {};
    ws.push_back(&w);
  }
  std::vector<const ops::QWeight*> out(ws.begin(), ws.end());
  if (!ops::qweights_consecutive(out)) pack_qweights(ws);  // once; separate passes if the types differ
  return out;
}

bool LinearBlock::cpu_state_fits(const BlockState& state, int64_t B) {
  auto fits = [&](const at::Tensor& t) {
    return t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous() && t.size(0) >= B;
  };
  if (!fits(state.S)) return false;
  for (const at::Tensor& t : state.conv)
    if (!fits(t)) return false;
  return true;
}

const float* LinearBlock::raw(const std::string& name) const {
  const at::Tensor& t = p(name);
  JET_CHECK(t.defined() && t.device().is_cpu() && t.scalar_type() == at::kFloat && t.is_contiguous(),
            "{} block: parameter '{}' must be a contiguous fp32 CPU tensor for the CPU decode step", type(), name);
  return t.data_ptr<float>();
}

void LinearBlock::gated_delta_rows_cpu(const DeltaRows& r, int64_t B, int64_t H, int64_t K, int64_t V, double eps,
                                       BlockState& state, float* out) const {
  const ops::QWeight& o_proj = q("o_proj.weight");
  const int64_t D = o_proj.rows;
  const float* A_log = raw("A_log");
  const float* dt_bias = raw("dt_bias");
  const float* norm = raw("o_norm.weight");
  const float scale = 1.f / std::sqrt(float(K));
  float* S = state.S.data_ptr<float>();
  float* o = ops::cpu::scratch(1, B * H * V);
  at::parallel_for(0, B * H, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t b = i / H, h = i % H;
      float* row = r.y + b * r.ld;
      float* qh = row + r.q + h * K;
      float* kh = row + r.k + h * K;
      ops::cpu::l2_normalize(qh, K, scale);
      ops::cpu::l2_normalize(kh, K, 1.f);
      const float beta = 1.f / (1.f + std::exp(-row[r.b + h]));
      const float a = row[r.a + h] + dt_bias[h];
      const float softplus = a > 20.f ? a : std::log1p(std::exp(a));  // torch's threshold
      const float decay = std::exp(-std::exp(A_log[h]) * softplus);
      float* oh = o + (b * H + h) * V;
      ops::cpu::delta_rule_step(qh, kh, row + r.v + h * V, decay, beta, K, V, S + i * K * V, oh);
      ops::cpu::rms_norm(oh, norm, float(eps), V, oh);
      if (r.g >= 0) ops::cpu::silu_mul(row + r.g + h * V, oh, V, oh);
    }
  });
  ops::qmatmul_out(o, B, H * V, o_proj, out, D);
}

}  // namespace jet::model
