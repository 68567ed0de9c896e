// random_weights: the rule of each parameter by its official name; N(0, std) draws run in parallel, one
// seeded generator per parameter; the linear layers' other parameters come from their block, built
// with a seed derived from (seed, layer).
#include "model/random_init.h"

#include <ATen/ATen.h>
#include <ATen/CPUGeneratorImpl.h>
#include <ATen/Parallel.h>

#include <cstdio>
#include <memory>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "core/strings.h"
#include "model/causal_lm.h"
#include "model/linear_mixer.h"

namespace jet::model {
namespace {

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
  const ParamList& params = lm.params();
  std::vector<at::Tensor> values(params.size());
  std::vector<size_t> drawn;  // indices of the N(0, std) parameters, drawn below in parallel
  // The block of the linear layer being read (parameters come layer by layer).
  int64_t block_layer = -1;
  std::unique_ptr<LinearBlock> block;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    int64_t layer = -1;
    int consumed = 0;
    std::sscanf(p.name.c_str(), "model.layers.%ld.self_attn.%n", &layer, &consumed);
    const bool in_block = consumed > 0 && is_linear_type(c.layer_types.at(layer));
    const std::string rel = in_block ? p.name.substr(consumed) : p.name;
    if (in_block && !LinearBlock::is_linear(rel)) {
      if (block_layer != layer) {
        block = make_layer_block(c, layer, mix(seed, layer), /*init_std=*/0.0);  // its Linears are redrawn here
        block_layer = layer;
      }
      values[i] = block->p(rel);
    } else if (ends_with(rel, ".bias")) {
      values[i] = at::zeros(p.shape, at::kFloat);
    } else if (ends_with(rel, "norm.weight") || ends_with(rel, "layernorm.weight")) {
      values[i] = at::ones(p.shape, at::kFloat);
    } else {
      JET_CHECK(ends_with(rel, "_proj.weight") || in_block || rel == "model.embed_tokens.weight" ||
                    rel == "lm_head.weight",
                "random init: no rule for parameter '{}'", p.name);
      drawn.push_back(i);
    }
  }
  // One generator per parameter (seeded by its index), so the draw is parallel yet the same on any
  // number of threads: a 2B model in seconds rather than half a minute.
  at::parallel_for(0, static_cast<int64_t>(drawn.size()), 1, [&](int64_t begin, int64_t end) {
    for (int64_t j = begin; j < end; ++j) {
      const size_t i = drawn[j];
      auto gen = at::make_generator<at::CPUGeneratorImpl>(mix(seed, 0x100000000ULL + i));
      values[i] = at::normal(0.0, std, params[i].shape, gen, at::TensorOptions().dtype(at::kFloat))
                      .to(params[i].keep_fp32 ? at::kFloat : dtype);
    }
  });
  io::TensorMap out;
  for (size_t i = 0; i < params.size(); ++i) {
    const Param& p = params[i];
    JET_CHECK(values[i].sizes() == c10::IntArrayRef(p.shape), "random init: '{}' drawn as {}, declared {}",
              p.name, shape_str(values[i].sizes()), shape_str(p.shape));
    out[p.name] = values[i].to(p.keep_fp32 ? at::kFloat : dtype);
  }
  return out;
}

}  // namespace jet::model
