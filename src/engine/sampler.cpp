// Sampling: temperature scaling, top-k and top-p filtering, then a draw from a CPU generator seeded
// once per run (draws happen on the CPU so a seed gives the same tokens on every device).
#include "engine/sampler.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <limits>

#include "core/check.h"

namespace jet::engine {

void check_sampling_params(const SamplingParams& p) {
  JET_CHECK(p.temperature >= 0, "--temperature must be >= 0, got {}", p.temperature);
  JET_CHECK(p.top_k >= 0, "--top-k must be >= 0, got {}", p.top_k);
  JET_CHECK(p.top_p > 0 && p.top_p <= 1, "--top-p must be in (0, 1], got {}", p.top_p);
}

at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p) {
  JET_CHECK(logits.dim() == 1, "filter_logits: expected logits [V]");
  at::Tensor x = logits.to(at::kFloat).clone();
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t V = x.size(0);
  if (p.top_k > 0 && p.top_k < V) {
    at::Tensor kth = std::get<0>(at::topk(x, p.top_k)).index({p.top_k - 1});
    x.masked_fill_(x < kth, neg_inf);
  }
  if (p.top_p < 1.0) {
    auto [sorted, order] = at::sort(x, /*dim=*/0, /*descending=*/true);
    at::Tensor probs = at::softmax(sorted, 0);
    // Drop a token when the tokens ranked above it already reach top_p (the first always stays).
    at::Tensor before = at::cumsum(probs, 0) - probs;
    at::Tensor drop = before >= p.top_p;
    x.index_put_({order.masked_select(drop)}, neg_inf);
  }
  return x;
}

Sampler::Sampler(const SamplingParams& p) : p_(p), gen_(at::make_generator<at::CPUGeneratorImpl>(p.seed)) {
  check_sampling_params(p);
}

int64_t Sampler::sample(const at::Tensor& logits) {
  if (p_.temperature == 0) return logits.argmax().item<int64_t>();
  at::Tensor scaled = logits.to(at::kCPU, at::kFloat) / p_.temperature;
  at::Tensor probs = at::softmax(filter_logits(scaled, p_), 0);
  return at::multinomial(probs, 1, /*replacement=*/false, gen_).item<int64_t>();
}

}  // namespace jet::engine
