// make_block: a linear block from its layer type and efficient_attention_config entry.
#include <set>

#include "core/check.h"
#include "model/blocks/blocks.h"

namespace jet::model {
namespace {

// Reads the keys of one config object into fields, rejecting keys it does not know.
class Reader {
 public:
  Reader(const std::string& type, const nlohmann::json& j) : type_(type), j_(j) {
    JET_CHECK(j.is_object(), "efficient_attention_config.{}: expected an object", type);
  }
  template <typename T>
  Reader& operator()(const char* key, T& field) {
    known_.insert(key);
    if (j_.contains(key)) {
      try {
        field = j_.at(key).get<T>();
      } catch (const nlohmann::json::exception&) {
        JET_FAIL("efficient_attention_config.{}.{}: wrong type ({})", type_, key, j_.at(key).dump());
      }
    }
    return *this;
  }
  void finish() const {
    for (const auto& [key, value] : j_.items())
      JET_CHECK(known_.count(key) || key == "mode" || key == "dconv_implementation",
                "efficient_attention_config.{}: unknown key '{}'", type_, key);
  }

 private:
  std::string type_;
  const nlohmann::json& j_;
  std::set<std::string> known_;
};

}  // namespace

std::unique_ptr<LinearBlock> make_block(const std::string& type, const nlohmann::json& cfg, int64_t hidden_size,
                                        double init_std, uint64_t seed) {
  Reader r(type, cfg);
  if (type == "jet") {
    JetBlockConfig c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("num_heads", c.num_heads)("head_dim", c.head_dim)("expand_v", c.expand_v)("conv_size", c.conv_size)(
        "dconv_generator_reduction", c.dconv_generator_reduction)("norm_eps", c.norm_eps).finish();
    return make_jet_block(c, seed);
  }
  if (type == "gdn") {
    GatedDeltaNetConfig c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("num_heads", c.num_heads)("head_dim", c.head_dim)("expand_v", c.expand_v)("conv_size", c.conv_size)(
        "conv_bias", c.conv_bias)("use_gate", c.use_gate)("norm_eps", c.norm_eps).finish();
    return make_gated_deltanet(c, seed);
  }
  if (type == "deltanet") {
    DeltaNetConfig c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("num_heads", c.num_heads)("expand_k", c.expand_k)("expand_v", c.expand_v)("conv_size", c.conv_size)(
        "conv_bias", c.conv_bias)("use_gate", c.use_gate)("norm_eps", c.norm_eps).finish();
    return make_deltanet(c, seed);
  }
  if (type == "gla") {
    GLAConfig c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("num_heads", c.num_heads)("expand_k", c.expand_k)("expand_v", c.expand_v)(
        "gate_low_rank_dim", c.gate_low_rank_dim)("gate_logit_normalizer", c.gate_logit_normalizer)(
        "norm_eps", c.norm_eps).finish();
    return make_gla(c, seed);
  }
  if (type == "retnet") {
    RetNetConfig c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("num_heads", c.num_heads)("expand_k", c.expand_k)("expand_v", c.expand_v)("rope_theta", c.rope_theta)(
        "norm_eps", c.norm_eps).finish();
    return make_retnet(c, seed);
  }
  if (type == "mamba2") {
    Mamba2Config c;
    c.hidden_size = hidden_size, c.init_std = init_std;
    r("head_dim", c.head_dim)("state_size", c.state_size)("expand", c.expand)("n_groups", c.n_groups)(
        "conv_kernel", c.conv_kernel)("use_conv_bias", c.use_conv_bias)("norm_eps", c.norm_eps).finish();
    return make_mamba2(c, seed);
  }
  JET_FAIL("unknown linear layer type '{}' (jet, gdn, deltanet, gla, retnet, mamba2)", type);
}

}  // namespace jet::model
