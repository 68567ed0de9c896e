// Next-token sampling on the logits' device: greedy (temperature 0), or temperature + top-k + top-p
// and the exponential race. Fixed shapes and no host synchronisation, so the engine samples inside its
// captured decode step. Parameters are per row (RowSampling): each sequence of a batch has its own,
// and its draws come from noise hashed from (its seed, the position, the token id), with no generator
// state, so a sequence samples the same tokens whatever batch or slot it runs in, on a given device.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace jet::engine {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
};

// Validates ranges (temperature >= 0, top_k >= 0, 0 < top_p <= 1) with one-line errors.
void check_sampling_params(const SamplingParams& p);

// logits [..., V] -> logits [..., V] (fp32) with -inf for the tokens outside the top_k most likely (ties
// ranked by the sort) and outside the top-p nucleus: the smallest set of most likely tokens whose
// probability reaches top_p.
at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p);

// A generator of `device`'s kind (a fresh one, not the global default) seeded with seed.
at::Generator make_generator(at::Device device, uint64_t seed);

// Per-row sampling parameters, tensors [B] on the logits' device (a captured step reads them in place).
struct RowSampling {
  at::Tensor temperature;  // float; 0 = greedy
  at::Tensor top_k;        // long; 0 = off
  at::Tensor top_p;        // float; 1 = off
  at::Tensor key;          // long; seed_key(seed), in [0, 2^32)
  RowSampling narrow(int64_t rows) const;  // rows [0, rows)
};

// A 32-bit noise key of a 64-bit seed (splitmix64, so nearby seeds give unrelated streams).
int64_t seed_key(uint64_t seed);

// Uniform noise in (0, 1), [B, V] float: a hash of (key[b], position[b], v). key, position: [B] long.
at::Tensor hash_uniform(const at::Tensor& key, const at::Tensor& position, int64_t V);

// logits [B, V] -> token ids [B] (int64): per row, argmax when its temperature is 0, else the
// exponential race over softmax(top-k/top-p filtered logits / temperature) with the hashed noise of
// (key, position): position[b] is the position of the token whose logits row b holds.
at::Tensor sample_rows(const at::Tensor& logits, const RowSampling& p, const at::Tensor& position);

// One sequence at a time, ids on the host (a host sync per call); the n-th call draws at position n.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [V] (any device/dtype) -> token id.
  int64_t sample(const at::Tensor& logits);

 private:
  SamplingParams p_;
  int64_t calls_ = 0;
};

}  // namespace jet::engine
