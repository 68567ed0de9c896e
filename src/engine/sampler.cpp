// Sampling: temperature scaling, top-k and top-p filtering as masks over fixed shapes, then the
// exponential race with a per-run generator on the logits' device.
#include "engine/sampler.h"

#include <ATen/ATen.h>

#include <limits>

#include "core/check.h"

namespace jet::engine {

void check_sampling_params(const SamplingParams& p) {
  JET_CHECK(p.temperature >= 0, "--temperature must be >= 0, got {}", p.temperature);
  JET_CHECK(p.top_k >= 0, "--top-k must be >= 0, got {}", p.top_k);
  JET_CHECK(p.top_p > 0 && p.top_p <= 1, "--top-p must be in (0, 1], got {}", p.top_p);
}

at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p) {
  JET_CHECK(logits.dim() >= 1, "filter_logits: expected logits [..., V]");
  at::Tensor x = logits.to(at::kFloat);
  const float neg_inf = -std::numeric_limits<float>::infinity();
  const int64_t V = x.size(-1);
  if (p.top_k > 0 && p.top_k < V) {
    at::Tensor kth = std::get<0>(at::topk(x, p.top_k, -1)).narrow(-1, p.top_k - 1, 1);  // [..., 1]
    x = x.masked_fill(x < kth, neg_inf);
  }
  if (p.top_p < 1.0) {
    auto [sorted, order] = at::sort(x, /*dim=*/-1, /*descending=*/true);
    at::Tensor probs = at::softmax(sorted, -1);
    // Drop a token when the tokens ranked above it already reach top_p (the first always stays).
    at::Tensor before = at::cumsum(probs, -1) - probs;
    x = x.scatter(-1, order, sorted.masked_fill(before >= p.top_p, neg_inf));
  }
  return x;
}

at::Generator make_generator(at::Device device, uint64_t seed) {
  at::Generator gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

at::Tensor sample_rows(const at::Tensor& logits, const SamplingParams& p, at::Generator& gen) {
  JET_CHECK(logits.dim() == 2, "sample_rows: expected logits [B, V]");
  if (p.temperature == 0) return logits.argmax(-1);
  at::Tensor probs = at::softmax(filter_logits(logits.to(at::kFloat) / p.temperature, p), -1);
  at::Tensor race = at::empty_like(probs).exponential_(1.0, gen);
  return (probs / race).argmax(-1);
}

Sampler::Sampler(const SamplingParams& p) : p_(p) { check_sampling_params(p); }

int64_t Sampler::sample(const at::Tensor& logits) {
  if (!gen_) gen_ = make_generator(logits.device(), p_.seed);
  return sample_rows(logits.reshape({1, -1}), p_, *gen_).item<int64_t>();
}

}  // namespace jet::engine
