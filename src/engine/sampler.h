// Next-token sampling on the logits' device: greedy (temperature 0), or temperature + top-k + top-p
// and a draw from a seeded generator of that device. Fixed shapes and no host synchronisation, so the
// engine samples inside its captured decode step; a seed reproduces a run on the same device.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <optional>

namespace jet::engine {

struct SamplingParams {
  double temperature = 1.0;  // 0 = greedy (argmax)
  int64_t top_k = 0;         // 0 = off
  double top_p = 1.0;        // 1 = off
  uint64_t seed = 0;
};

// Validates ranges (temperature >= 0, top_k >= 0, 0 < top_p <= 1) with one-line errors.
void check_sampling_params(const SamplingParams& p);

// logits [..., V] -> logits [..., V] (fp32) with the tokens outside top-k and outside the top-p nucleus
// set to -inf. The nucleus is the smallest set of most likely tokens whose probability reaches top_p.
at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p);

// A generator of `device`'s kind (a fresh one, not the global default) seeded with seed.
at::Generator make_generator(at::Device device, uint64_t seed);

// logits [B, V] -> token ids [B] (int64, on the logits' device): argmax when greedy, else a draw from
// softmax(filter_logits(logits / temperature)) by the exponential race (argmax of p / E, E ~ Exp(1)).
at::Tensor sample_rows(const at::Tensor& logits, const SamplingParams& p, at::Generator& gen);

// One sequence at a time, ids on the host (a host sync per call).
class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [V] (any device/dtype) -> token id.
  int64_t sample(const at::Tensor& logits);

 private:
  SamplingParams p_;
  std::optional<at::Generator> gen_;  // made for the device of the first logits
};

}  // namespace jet::engine
