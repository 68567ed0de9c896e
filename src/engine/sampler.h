// Next-token sampling: greedy (temperature 0), or temperature + top-k + top-p with a seeded generator
// so that a run is reproducible from its seed.
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

// logits [V] -> logits [V] (fp32) with the tokens outside top-k and outside the top-p nucleus set to
// -inf. The nucleus is the smallest set of most likely tokens whose probability reaches top_p.
at::Tensor filter_logits(const at::Tensor& logits, const SamplingParams& p);

class Sampler {
 public:
  explicit Sampler(const SamplingParams& p);
  // logits [V] (any device/dtype) -> token id.
  int64_t sample(const at::Tensor& logits);

 private:
  SamplingParams p_;
  at::Generator gen_;
};

}  // namespace jet::engine
