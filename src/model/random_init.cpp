// random_weights: draws every parameter in declaration order from one seeded generator; the linear
// layers' non-Linear parameters come from their block built with a seed derived from (seed, layer).
#include "model/random_init.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>

#include <cstdio>
#include <memory>

#include "core/check.h"
#include "core/shape.h"
#include "model/causal_lm.h"
#include "model/linear_mixer.h"

namespace jet::model {
namespace {

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// splitmix64: a well-spread 64-bit seed per layer.
uint64_t mix(uint64_t seed, uint64_t layer) {
  uint64_t z = seed + 0x9e3779b97f4a7c15ULL * (layer + 1);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

io::TensorMap random_weights(const CausalLM& lm, uint64_t seed, at::ScalarType dtype) {
  const ModelConfig& c = lm.config();
  const double std = c.to_json().value("initializer_range", 0.02);
  auto gen = at::make_generator<at::CPUGeneratorImpl>(seed);
  auto normal = [&](const std::vector<int64_t>& shape) {
    return at::normal(0.0, std, shape, gen, at::TensorOptions().dtype(at::kFloat));
  };
  // The block of the linear layer being drawn (parameters come layer by layer).
  int64_t block_layer = -1;
  std::unique_ptr<LinearBlock> block;
  io::TensorMap out;
  for (const auto& p : lm.params()) {
    int64_t layer = -1;
    int consumed = 0;
    std::sscanf(p.name.c_str(), "model.layers.%ld.self_attn.%n", &layer, &consumed);
    const bool in_block = consumed > 0 && is_linear_type(c.layer_types.at(layer));
    const std::string rel = in_block ? p.name.substr(consumed) : p.name;
    at::Tensor t;
    if (in_block && !LinearBlock::is_linear(rel)) {
      if (block_layer != layer) {
        block = make_layer_block(c, layer, mix(seed, layer));
        block_layer = layer;
      }
      t = block->p(rel);
    } else if (ends_with(rel, ".bias")) {
      t = at::zeros(p.shape, at::kFloat);
    } else if (ends_with(rel, "norm.weight") || ends_with(rel, "layernorm.weight")) {
      t = at::ones(p.shape, at::kFloat);
    } else {
      JET_CHECK(ends_with(rel, "_proj.weight") || in_block || rel == "model.embed_tokens.weight" ||
                    rel == "lm_head.weight",
                "random init: no rule for parameter '{}'", p.name);
      t = normal(p.shape);
    }
    JET_CHECK(t.sizes() == c10::IntArrayRef(p.shape), "random init: '{}' drawn as {}, declared {}", p.name,
              shape_str(t.sizes()), shape_str(p.shape));
    out[p.name] = t.to(p.keep_fp32 ? at::kFloat : dtype);
  }
  return out;
}

}  // namespace jet::model
