// ModelConfig <-> HF config.json. Accepts both rope schemas (legacy rope_theta + rope_scaling and
// transformers 5's rope_parameters), HF's layer_types names (full_attention, sliding_attention) and
// ours (attn, swa, jet, ...), and numbers written as strings (the official norm_eps "1e-5").
#include "model/config.h"

#include <algorithm>
#include <cmath>
#include <set>

#include <fmt/ranges.h>

#include "core/check.h"
#include "io/hf_json.h"

namespace jet::model {
namespace {

const std::vector<std::string> kModelTypes = {"llama", "qwen2", "jet_nemotron"};
const std::set<std::string> kLayerTypes = {"attn", "swa", "jet", "gdn", "deltanet", "gla", "retnet", "mamba2"};

struct Reader {
  const nlohmann::json& j;
  std::string where;

  bool has(const char* key) const { return j.contains(key) && !j[key].is_null(); }

  int64_t integer(const char* key, std::optional<int64_t> def = std::nullopt) const {
    if (!has(key)) {
      JET_CHECK(def.has_value(), "{}: missing '{}'", where, key);
      return *def;
    }
    const auto& v = j[key];
    JET_CHECK(v.is_number_integer(), "{}: '{}' must be an integer, got {}", where, key, v.dump());
    return v.get<int64_t>();
  }
  int64_t positive(const char* key, std::optional<int64_t> def = std::nullopt) const {
    int64_t v = integer(key, def);
    JET_CHECK(v > 0, "{}: '{}' must be positive, got {}", where, key, v);
    return v;
  }
  double number(const char* key, std::optional<double> def = std::nullopt) const {
    if (!has(key)) {
      JET_CHECK(def.has_value(), "{}: missing '{}'", where, key);
      return *def;
    }
    const auto& v = j[key];
    if (v.is_number()) return v.get<double>();
    if (v.is_string()) {
      const std::string s = v.get<std::string>();
      try {
        size_t used = 0;
        double d = std::stod(s, &used);
        if (used == s.size()) return d;
      } catch (const std::exception&) {
      }
    }
    JET_FAIL("{}: '{}' must be a number, got {}", where, key, v.dump());
  }
  bool boolean(const char* key, bool def) const {
    if (!has(key)) return def;
    JET_CHECK(j[key].is_boolean(), "{}: '{}' must be true or false, got {}", where, key,
              j[key].dump());
    return j[key].get<bool>();
  }
  std::string string(const char* key, const std::string& def) const {
    if (!has(key)) return def;
    JET_CHECK(j[key].is_string(), "{}: '{}' must be a string, got {}", where, key, j[key].dump());
    return j[key].get<std::string>();
  }
  Reader sub(const char* key) const {
    JET_CHECK(j[key].is_object(), "{}: '{}' must be an object", where, key);
    return Reader{j[key], fmt::format("{} ({})", where, key)};
  }
};

RopeConfig parse_rope(const Reader& r) {
  RopeConfig rope;
  // transformers 5 writes rope_parameters {rope_type, rope_theta, ...}; older files rope_theta at the
  // top level and rope_scaling {type|rope_type, factor, ...} or null.
  std::optional<Reader> params;
  if (r.has("rope_parameters")) {
    params.emplace(r.sub("rope_parameters"));
    rope.theta = params->number("rope_theta", r.number("rope_theta", 10000.0));
  } else {
    rope.theta = r.number("rope_theta", 10000.0);
    if (r.has("rope_scaling")) params.emplace(r.sub("rope_scaling"));
  }
  if (!params) return rope;
  std::string type = params->string("rope_type", params->string("type", "default"));
  if (type == "default") return rope;
  if (type == "linear") {
    rope.scaling = RopeScaling::linear;
    rope.factor = params->number("factor");
  } else if (type == "llama3") {
    rope.scaling = RopeScaling::llama3;
    rope.factor = params->number("factor");
    rope.low_freq_factor = params->number("low_freq_factor");
    rope.high_freq_factor = params->number("high_freq_factor");
    rope.original_max_position_embeddings = params->positive("original_max_position_embeddings");
  } else {
    JET_FAIL("{}: unsupported rope scaling type '{}' (supported: default, linear, llama3)", r.where,
             type);
  }
  return rope;
}

std::vector<int64_t> parse_eos(const Reader& r) {
  if (!r.has("eos_token_id")) return {};
  const auto& v = r.j["eos_token_id"];
  if (v.is_number_integer()) return {v.get<int64_t>()};
  JET_CHECK(v.is_array(), "{}: 'eos_token_id' must be an integer or a list, got {}", r.where,
            v.dump());
  std::vector<int64_t> out;
  for (const auto& e : v) {
    JET_CHECK(e.is_number_integer(), "{}: 'eos_token_id' entries must be integers", r.where);
    out.push_back(e.get<int64_t>());
  }
  return out;
}

// HF's names for the attention kinds map onto ours.
std::string layer_type_from_hf(const std::string& t) {
  if (t == "full_attention") return "attn";
  if (t == "sliding_attention") return "swa";
  return t;
}

}  // namespace

void ModelConfig::validate_sizes(const std::string& where) {
  auto in = [&](const char* name, int64_t v, int64_t lo, int64_t hi) {
    JET_CHECK(v >= lo && v <= hi, "{}: {} = {} is out of range [{}, {}]", where, name, v, lo, hi);
  };
  // Far beyond any published model, far below what would exhaust memory before the weights are read.
  in("vocab_size", vocab_size, 1, kMaxVocab);
  in("hidden_size", hidden_size, 1, kMaxHidden);
  in("intermediate_size", intermediate_size, 1, kMaxIntermediate);
  in("num_hidden_layers", num_hidden_layers, 1, kMaxLayers);
  in("num_attention_heads", num_attention_heads, 1, kMaxHeads);
  in("num_key_value_heads", num_key_value_heads, 1, num_attention_heads);
  JET_CHECK(num_attention_heads % num_key_value_heads == 0,
            "{}: num_attention_heads {} is not a multiple of num_key_value_heads {}", where, num_attention_heads,
            num_key_value_heads);
  if (head_dim == 0) {
    JET_CHECK(hidden_size % num_attention_heads == 0,
              "{}: hidden_size {} is not a multiple of num_attention_heads {} (give head_dim)", where, hidden_size,
              num_attention_heads);
    head_dim = hidden_size / num_attention_heads;
  }
  in("head_dim", head_dim, 2, kMaxHeadDim);
  JET_CHECK(head_dim % 2 == 0, "{}: head_dim {} must be even for RoPE", where, head_dim);
}

void ModelConfig::validate(const std::string& where) {
  validate_sizes(where);
  auto finite = [&](const char* name, double v, double lo, double hi) {
    JET_CHECK(std::isfinite(v) && v >= lo && v <= hi, "{}: {} = {} must be a finite number in [{}, {}]", where, name,
              v, lo, hi);
  };
  JET_CHECK(std::isfinite(rms_norm_eps) && rms_norm_eps > 0 && rms_norm_eps < 1,
            "{}: rms_norm_eps = {} must be a finite number in (0, 1)", where, rms_norm_eps);
  finite("rope_theta", rope.theta, 1, 1e30);
  if (rope.scaling != RopeScaling::none) finite("rope factor", rope.factor, 1e-6, 1e6);
  if (rope.scaling == RopeScaling::llama3) {
    finite("rope low_freq_factor", rope.low_freq_factor, 1e-6, 1e6);
    finite("rope high_freq_factor", rope.high_freq_factor, 1e-6, 1e6);
    JET_CHECK(rope.high_freq_factor > rope.low_freq_factor, "{}: rope high_freq_factor {} must exceed low_freq_factor {}",
              where, rope.high_freq_factor, rope.low_freq_factor);
    JET_CHECK(rope.original_max_position_embeddings > 0 && rope.original_max_position_embeddings <= kMaxPositions,
              "{}: rope original_max_position_embeddings = {} is out of range", where,
              rope.original_max_position_embeddings);
  }
  JET_CHECK(max_position_embeddings >= 0 && max_position_embeddings <= kMaxPositions,
            "{}: max_position_embeddings = {} is out of range [0, {}]", where, max_position_embeddings, kMaxPositions);
  JET_CHECK(bos_token_id >= -1 && bos_token_id < vocab_size, "{}: bos_token_id {} is outside the vocabulary of {}",
            where, bos_token_id, vocab_size);
  for (int64_t e : eos_token_ids)
    JET_CHECK(e >= 0 && e < vocab_size, "{}: eos_token_id {} is outside the vocabulary of {}", where, e, vocab_size);
  JET_CHECK(static_cast<int64_t>(layer_types.size()) == num_hidden_layers, "{}: {} layer types for {} layers", where,
            layer_types.size(), num_hidden_layers);
  if (swa)
    JET_CHECK(swa->window_size >= 1 && swa->window_size <= kMaxPositions, "{}: swa window_size = {} is out of range",
              where, swa->window_size);
  if (jet) {
    JET_CHECK(jet->num_heads >= 1 && jet->num_heads <= kMaxHeads && jet->head_dim >= 1 && jet->head_dim <= kMaxHeadDim,
              "{}: jet num_heads {} / head_dim {} are out of range", where, jet->num_heads, jet->head_dim);
    finite("jet expand_v", jet->expand_v, 1e-3, 64);
    JET_CHECK(jet->conv_size >= 1 && jet->conv_size <= 64, "{}: jet conv_size = {} is out of range [1, 64]", where,
              jet->conv_size);
    JET_CHECK(jet->dconv_generator_reduction >= 1 && jet->dconv_generator_reduction <= hidden_size,
              "{}: jet dconv_generator_reduction = {} is out of range [1, hidden_size]", where,
              jet->dconv_generator_reduction);
    JET_CHECK(std::isfinite(jet->norm_eps) && jet->norm_eps > 0 && jet->norm_eps < 1,
              "{}: jet norm_eps = {} must be a finite number in (0, 1)", where, jet->norm_eps);
  }
}

ModelConfig ModelConfig::from_json(const nlohmann::json& j, const std::string& where) {
  JET_CHECK(j.is_object(), "{}: config is not a JSON object", where);
  Reader r{j, where};
  ModelConfig c;
  c.source = j;
  c.model_type = r.string("model_type", "");
  JET_CHECK(!c.model_type.empty(), "{}: missing 'model_type'", where);
  JET_CHECK(std::find(kModelTypes.begin(), kModelTypes.end(), c.model_type) != kModelTypes.end(),
            "{}: unsupported architecture '{}' (model_type; supported: {})", where, c.model_type,
            fmt::join(kModelTypes, ", "));
  if (r.has("architectures")) {
    const auto& a = j["architectures"];
    JET_CHECK(a.is_array() && !a.empty() && a[0].is_string(),
              "{}: 'architectures' must be a list of strings", where);
    c.architecture = a[0].get<std::string>();
  }
  c.vocab_size = r.positive("vocab_size");
  c.hidden_size = r.positive("hidden_size");
  c.intermediate_size = r.positive("intermediate_size");
  c.num_hidden_layers = r.positive("num_hidden_layers");
  c.num_attention_heads = r.positive("num_attention_heads");
  c.num_key_value_heads = r.positive("num_key_value_heads", c.num_attention_heads);
  c.head_dim = r.has("head_dim") ? r.positive("head_dim") : 0;  // 0: validate() derives it
  // Sizes are checked before anything depends on them (layer_types below has one entry per layer).
  c.validate_sizes(where);
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  const std::string act = r.string("hidden_act", "silu");
  JET_CHECK(act == "silu", "{}: unsupported hidden_act '{}' (supported: silu)", where, act);
  c.rope = parse_rope(r);
  if (c.model_type == "llama") {
    c.qkv_bias = c.o_bias = r.boolean("attention_bias", false);
    c.mlp_bias = r.boolean("mlp_bias", false);
  } else {  // qwen2 and jet_nemotron (built on Qwen2.5): q/k/v carry a bias, o_proj does not
    c.qkv_bias = true;
  }
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.max_position_embeddings = r.integer("max_position_embeddings", 0);
  c.bos_token_id = r.integer("bos_token_id", -1);
  c.eos_token_ids = parse_eos(r);
  c.torch_dtype = r.string("torch_dtype", r.string("dtype", ""));

  if (r.has("layer_types")) {
    const auto& lt = j["layer_types"];
    JET_CHECK(lt.is_array(), "{}: 'layer_types' must be a list", where);
    JET_CHECK(static_cast<int64_t>(lt.size()) == c.num_hidden_layers,
              "{}: 'layer_types' has {} entries, num_hidden_layers is {}", where, lt.size(),
              c.num_hidden_layers);
    for (const auto& t : lt) {
      JET_CHECK(t.is_string(), "{}: 'layer_types' entries must be strings", where);
      std::string type = layer_type_from_hf(t.get<std::string>());
      JET_CHECK(kLayerTypes.count(type), "{}: unknown layer type '{}' in layer_types", where,
                t.get<std::string>());
      c.layer_types.push_back(type);
    }
  } else {
    c.layer_types.assign(c.num_hidden_layers, "attn");
  }

  if (r.has("efficient_attention_config")) {
    Reader eac = r.sub("efficient_attention_config");
    if (eac.has("swa")) c.swa = SwaConfig{eac.sub("swa").positive("window_size")};
    if (eac.has("jet")) {
      Reader jr = eac.sub("jet");
      JetConfig jc;
      jc.num_heads = jr.positive("num_heads");
      jc.head_dim = jr.positive("head_dim");
      jc.expand_v = jr.number("expand_v", 1.0);
      jc.conv_size = jr.positive("conv_size", 4);
      jc.dconv_generator_reduction = jr.positive("dconv_generator_reduction", 8);
      jc.norm_eps = jr.number("norm_eps", 1e-5);
      c.jet = jc;
    }
  }
  // Qwen2-style sliding window: the window comes from the top-level sliding_window.
  if (!c.swa && std::count(c.layer_types.begin(), c.layer_types.end(), "swa") > 0 &&
      r.has("sliding_window"))
    c.swa = SwaConfig{r.positive("sliding_window")};
  for (const char* needs : {"swa", "jet"}) {
    bool used = std::count(c.layer_types.begin(), c.layer_types.end(), needs) > 0;
    bool given = std::string(needs) == "swa" ? c.swa.has_value() : c.jet.has_value();
    JET_CHECK(!used || given, "{}: layer_types uses '{}' but efficient_attention_config has no '{}'",
              where, needs, needs);
  }
  c.validate(where);
  return c;
}

ModelConfig ModelConfig::from_file(const std::string& path) {
  return from_json(io::read_json_file(path), path);
}

nlohmann::json ModelConfig::to_json() const {
  nlohmann::json j = source.is_object() ? source : nlohmann::json::object();
  j["model_type"] = model_type;
  if (!architecture.empty()) j["architectures"] = {architecture};
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  j["head_dim"] = head_dim;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = rms_norm_eps;
  j.erase("rope_parameters");
  j["rope_theta"] = rope.theta;
  switch (rope.scaling) {
    case RopeScaling::none: j["rope_scaling"] = nullptr; break;
    case RopeScaling::linear: j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", rope.factor}}; break;
    case RopeScaling::llama3:
      j["rope_scaling"] = {{"rope_type", "llama3"},
                           {"factor", rope.factor},
                           {"low_freq_factor", rope.low_freq_factor},
                           {"high_freq_factor", rope.high_freq_factor},
                           {"original_max_position_embeddings", rope.original_max_position_embeddings}};
      break;
  }
  if (model_type == "llama") {
    JET_CHECK(qkv_bias == o_bias, "config: llama needs the same bias on q/k/v and o_proj");
    j["attention_bias"] = qkv_bias;
    j["mlp_bias"] = mlp_bias;
  }
  j["tie_word_embeddings"] = tie_word_embeddings;
  if (max_position_embeddings > 0) j["max_position_embeddings"] = max_position_embeddings;
  j["bos_token_id"] = bos_token_id >= 0 ? nlohmann::json(bos_token_id) : nlohmann::json(nullptr);
  if (eos_token_ids.empty())
    j["eos_token_id"] = nullptr;
  else if (eos_token_ids.size() == 1)
    j["eos_token_id"] = eos_token_ids[0];
  else
    j["eos_token_id"] = eos_token_ids;
  if (!torch_dtype.empty()) j["torch_dtype"] = torch_dtype;

  bool all_attn = std::all_of(layer_types.begin(), layer_types.end(),
                              [](const std::string& t) { return t == "attn"; });
  if (model_type == "qwen2") {
    nlohmann::json lt = nlohmann::json::array();
    for (const auto& t : layer_types) lt.push_back(t == "swa" ? "sliding_attention" : "full_attention");
    j["layer_types"] = lt;
  } else if (model_type == "jet_nemotron" || !all_attn) {
    j["layer_types"] = layer_types;
  } else {
    j.erase("layer_types");
  }
  if (swa || jet) {
    nlohmann::json& eac = j["efficient_attention_config"];
    if (!eac.is_object()) eac = nlohmann::json::object();
    if (swa) eac["swa"]["window_size"] = swa->window_size;
    if (jet) {
      auto& o = eac["jet"];
      o["num_heads"] = jet->num_heads;
      o["head_dim"] = jet->head_dim;
      o["expand_v"] = jet->expand_v;
      o["conv_size"] = jet->conv_size;
      o["dconv_generator_reduction"] = jet->dconv_generator_reduction;
      o["norm_eps"] = jet->norm_eps;
    }
  }
  return j;
}

}  // namespace jet::model
