// The six linear mixer blocks (one .cpp each): JetBlock as the official Jet-Nemotron layer, and the
// PostNAS candidates with the projections, convs, norms and gates of their fla layers. Parameter names
// are the official ones, relative to the layer ("q_proj.weight"; the model adds "model.layers.{i}.self_attn.").
// Every block starts from Init(seed) (Linear weights N(0, init_std), biases 0, layer-specific parameters
// as in the reference layer) and keeps its state in BlockState (block.h).
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "model/blocks/block.h"

namespace jet::model {

// Jet-Nemotron JetBlock (jetai/modeling/hf/jet_block.py): Gated DeltaNet with q/k SiLU, a dynamic
// per-token conv on V, gated RMSNorm output. State: S [B, H, head_dim, head_v_dim]; conv = {V tail}.
struct JetBlockConfig {
  int64_t hidden_size = 1536;
  int64_t num_heads = 12;
  int64_t head_dim = 96;
  double expand_v = 2.0;
  int64_t conv_size = 4;
  int64_t dconv_generator_reduction = 8;
  double norm_eps = 1e-5;
  double init_std = 0.02;  // initializer_range
};

// fla GatedDeltaNet (use_short_conv, use_gate by default). State conv = {q, k, v tails}.
struct GatedDeltaNetConfig {
  int64_t hidden_size = 2048;
  int64_t num_heads = 6;
  int64_t head_dim = 256;
  double expand_v = 2.0;
  int64_t conv_size = 4;
  bool conv_bias = false;
  bool use_gate = true;
  double norm_eps = 1e-5;
  double init_std = 0.02;
};

// fla DeltaNet (SiLU short convs on q, k, v, L2 q/k norm, sigmoid beta, no decay). conv = {q, k, v}.
struct DeltaNetConfig {
  int64_t hidden_size = 1024;
  int64_t num_heads = 4;
  double expand_k = 1.0;
  double expand_v = 1.0;
  int64_t conv_size = 4;
  bool conv_bias = false;
  bool use_gate = false;
  double norm_eps = 1e-5;
  double init_std = 0.02;
};

// fla GatedLinearAttention (no short conv, low-rank vector gate, swish-gated RMSNorm). conv = {}.
struct GLAConfig {
  int64_t hidden_size = 1024;
  int64_t num_heads = 4;
  double expand_k = 0.5;
  double expand_v = 1.0;
  int64_t gate_low_rank_dim = 16;
  double gate_logit_normalizer = 16.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
};

// fla MultiScaleRetention (rotary q/k, fixed decay γ_h = 1 − 2^(−5−h), swish-gated RMSNorm). conv = {}.
struct RetNetConfig {
  int64_t hidden_size = 1024;
  int64_t num_heads = 8;
  double expand_k = 1.0;
  double expand_v = 2.0;
  double rope_theta = 10000.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
};

// fla Mamba2 (in_proj → z, xBC, dt; conv1d on xBC; SSD; D skip; RMSNormGated gate-then-norm).
// State: S [B, H, state_size, head_dim] (fla keeps the transpose); conv = {xBC tail}.
struct Mamba2Config {
  int64_t hidden_size = 2048;
  int64_t head_dim = 64;
  int64_t state_size = 128;
  int64_t expand = 2;
  int64_t n_groups = 1;
  int64_t conv_kernel = 4;
  bool use_conv_bias = true;
  double a_init_lo = 1.0, a_init_hi = 16.0;
  double norm_eps = 1e-5;
  double init_std = 0.02;
};

std::unique_ptr<LinearBlock> make_jet_block(const JetBlockConfig& c, uint64_t seed);
std::unique_ptr<LinearBlock> make_gated_deltanet(const GatedDeltaNetConfig& c, uint64_t seed);
std::unique_ptr<LinearBlock> make_deltanet(const DeltaNetConfig& c, uint64_t seed);
std::unique_ptr<LinearBlock> make_gla(const GLAConfig& c, uint64_t seed);
std::unique_ptr<LinearBlock> make_retnet(const RetNetConfig& c, uint64_t seed);
std::unique_ptr<LinearBlock> make_mamba2(const Mamba2Config& c, uint64_t seed);

// The block for a layer_types entry from its efficient_attention_config[type] object (keys as the
// config structs above, i.e. the official/fla argument names; "mode" and "dconv_implementation" are
// accepted and ignored, any other unknown key is an error). hidden_size and init_std come from the model.
std::unique_ptr<LinearBlock> make_block(const std::string& type, const nlohmann::json& cfg, int64_t hidden_size,
                                        double init_std, uint64_t seed);

}  // namespace jet::model
