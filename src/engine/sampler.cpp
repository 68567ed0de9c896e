// Sampling: temperature scaling, top-k and top-p filtering as masks over fixed shapes (per row), then
// the exponential race with noise hashed from (seed key, position, token).
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

namespace {

// x [B, V] fp32 -> x with -inf at the tokens ranked >= top_k[b] (top_k 0: none) and at those after the
// top_p[b] nucleus is reached (top_p 1: none), ranks by descending logit.
at::Tensor filter_rows(const at::Tensor& x, const at::Tensor& top_k, const at::Tensor& top_p) {
  const float neg_inf = -std::numeric_limits<float>::infinity();
  auto [sorted, order] = at::sort(x, /*dim=*/-1, /*descending=*/true);
  at::Tensor k = top_k.unsqueeze(1), p = top_p.unsqueeze(1);
  at::Tensor rank = at::arange(x.size(-1), top_k.options()).unsqueeze(0);
  sorted = sorted.masked_fill(at::logical_and(k > 0, rank >= k), neg_inf);
  // Drop a token when the tokens ranked above it already reach top_p (the first always stays).
  at::Tensor probs = at::softmax(sorted, -1);
  at::Tensor before = at::cumsum(probs, -1) - probs;
  sorted = sorted.masked_fill(at::logical_and(p < 1, before >= p), neg_inf);
  return x.scatter(-1, order, sorted);
}

}  // namespace

at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p) {
  JET_CHECK(logits.dim() >= 1, "filter_logits: expected logits [..., V]");
  at::Tensor x = logits.to(at::kFloat).reshape({-1, logits.size(-1)});
  auto on = x.options();
  at::Tensor out = filter_rows(x, at::full({x.size(0)}, p.top_k, on.dtype(at::kLong)),
                               at::full({x.size(0)}, p.top_p, on));
  return out.reshape(logits.sizes());
}

at::Generator make_generator(at::Device device, uint64_t seed) {
  at::Generator gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

RowSampling RowSampling::narrow(int64_t rows) const {
  return {temperature.narrow(0, 0, rows), top_k.narrow(0, 0, rows), top_p.narrow(0, 0, rows), key.narrow(0, 0, rows)};
}

int64_t seed_key(uint64_t seed) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  z ^= z >> 31;
  return static_cast<int64_t>(z & 0xffffffffull);
}

at::Tensor hash_uniform(const at::Tensor& key, const at::Tensor& position, int64_t V) {
  // A 32-bit integer hash (xor-shift / multiply rounds) in int64 arithmetic: every value stays below
  // 2^32 and every multiplier below 2^31, so no product overflows.
  constexpr int64_t M = 0xffffffffll;
  auto mix = [&](at::Tensor h) {
    h = at::bitwise_xor(h, h.bitwise_right_shift(16));
    h = h.mul(0x7feb352dll).bitwise_and(M);
    h = at::bitwise_xor(h, h.bitwise_right_shift(15));
    h = h.mul(0x68e31da5ll).bitwise_and(M);
    return at::bitwise_xor(h, h.bitwise_right_shift(16));
  };
  at::Tensor row = mix(at::bitwise_xor(key, mix(position.bitwise_and(M))));  // [B]
  at::Tensor v = at::arange(V, key.options());
  at::Tensor h = mix(mix(row.unsqueeze(1).add(v.mul(0x2545f491ll).bitwise_and(M)).bitwise_and(M)));  // [B, V]
  return (h.bitwise_right_shift(8).to(at::kFloat) + 0.5f) / 16777216.0f;  // 24 bits -> (0, 1)
}

at::Tensor sample_rows(const at::Tensor& logits, const RowSampling& p, const at::Tensor& position) {
  JET_CHECK(logits.dim() == 2, "sample_rows: expected logits [B, V]");
  at::Tensor temp = p.temperature.unsqueeze(1);
  at::Tensor x = logits.to(at::kFloat) / at::where(temp > 0, temp, at::ones_like(temp));
  at::Tensor probs = at::softmax(filter_rows(x, p.top_k, p.top_p), -1);
  at::Tensor race = -at::log(hash_uniform(p.key, position, logits.size(1)));  // Exp(1)
  return at::where(p.temperature > 0, (probs / race).argmax(-1), logits.argmax(-1));
}

Sampler::Sampler(const SamplingParams& p) : p_(p) { check_sampling_params(p); }

int64_t Sampler::sample(const at::Tensor& logits) {
  auto f = logits.options().dtype(at::kFloat), l = logits.options().dtype(at::kLong);
  const RowSampling row{at::full({1}, p_.temperature, f), at::full({1}, p_.top_k, l), at::full({1}, p_.top_p, f),
                        at::full({1}, seed_key(p_.seed), l)};
  return sample_rows(logits.reshape({1, -1}), row, at::full({1}, calls_++, l)).item<int64_t>();
}

}  // namespace jet::engine
