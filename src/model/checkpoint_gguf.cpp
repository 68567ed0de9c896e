// GGUF checkpoints (llama / qwen2 arch): ModelConfig from the {arch}.* metadata keys, tensors
// dequantised to fp32 and renamed from llama.cpp's names (blk.N.attn_q.weight) to HF's
// (model.layers.N.self_attn.q_proj.weight). llama.cpp's converter reorders the rows of llama Q and K
// weights for its rotary layout; they are put back into HF's "rotate half" order here.
#include <ATen/ATen.h>

#include <regex>

#include "core/check.h"
#include "io/gguf.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "text/tokenizer.h"

namespace jet::model {
namespace {

// llama.cpp stores each head's rows as interleaved (even, odd) pairs of the two rotary halves; HF keeps
// the first half of every pair, then the second. w [heads * head_dim, ...] or a bias [heads * head_dim].
at::Tensor unpermute_rows(const at::Tensor& w, int64_t heads) {
  std::vector<int64_t> split{heads, w.size(0) / heads / 2, 2};
  for (int64_t d = 1; d < w.dim(); ++d) split.push_back(w.size(d));
  return w.reshape(split).transpose(1, 2).reshape(w.sizes()).contiguous();
}

// llama.cpp tensor name -> HF name; empty if unknown.
std::string hf_name(const std::string& g) {
  static const std::map<std::string, std::string> top = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"},
  };
  static const std::map<std::string, std::string> block = {
      {"attn_norm", "input_layernorm"},       {"ffn_norm", "post_attention_layernorm"},
      {"attn_q", "self_attn.q_proj"},         {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},         {"attn_output", "self_attn.o_proj"},
      {"ffn_gate", "mlp.gate_proj"},          {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"},
  };
  if (auto it = top.find(g); it != top.end()) return it->second;
  static const std::regex blk(R"(blk\.(\d+)\.(\w+)\.(weight|bias))");
  std::smatch m;
  if (!std::regex_match(g, m, blk)) return "";
  auto it = block.find(m[2].str());
  if (it == block.end()) return "";
  return fmt::format("model.layers.{}.{}.{}", m[1].str(), it->second, m[3].str());
}

// GGUF keeps these floats in fp32: give back the shortest decimal of that float (1e-05, not
// 9.999999747378752e-06), which is what the original config said.
double f32_value(const gguf::File& f, const std::string& key) {
  return std::stod(fmt::format("{}", static_cast<float>(f.get_float(key))));
}

}  // namespace

ModelConfig ModelConfig::from_gguf(const gguf::File& f) {
  const std::string arch = f.get_string("general.architecture");
  JET_CHECK(arch == "llama" || arch == "qwen2",
            "{}: unsupported architecture '{}' (general.architecture; supported: llama, qwen2)",
            f.path(), arch);
  auto key = [&](const char* k) { return arch + "." + k; };
  auto int_or = [&](const std::string& k, int64_t def) { return f.has(k) ? f.get_int(k) : def; };
  ModelConfig c;
  c.model_type = arch;
  c.architecture = arch == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM";
  c.hidden_size = f.get_int(key("embedding_length"));
  c.intermediate_size = f.get_int(key("feed_forward_length"));
  c.num_hidden_layers = f.get_int(key("block_count"));
  c.num_attention_heads = f.get_int(key("attention.head_count"));
  c.num_key_value_heads = int_or(key("attention.head_count_kv"), c.num_attention_heads);
  c.head_dim = int_or(key("attention.key_length"), 0);  // 0: validate() derives it
  JET_CHECK(!f.has(key("attention.key_length")) || c.head_dim > 0, "{}: {} = {} must be positive", f.path(),
            key("attention.key_length"), c.head_dim);
  c.rms_norm_eps = f32_value(f, key("attention.layer_norm_rms_epsilon"));
  c.rope.theta = f.has(key("rope.freq_base")) ? f32_value(f, key("rope.freq_base")) : 10000.0;
  if (f.has(key("rope.scaling.type"))) {
    const std::string type = f.get_string(key("rope.scaling.type"));
    JET_CHECK(type == "none" || type == "linear",
              "{}: unsupported rope scaling type '{}' (supported: none, linear)", f.path(), type);
    if (type == "linear") {
      c.rope.scaling = RopeScaling::linear;
      c.rope.factor = f32_value(f, key("rope.scaling.factor"));
    }
  }
  JET_CHECK(!f.find("rope_freqs.weight"), "{}: per-frequency rope factors (rope_freqs) are not supported",
            f.path());
  c.max_position_embeddings = int_or(key("context_length"), 0);
  if (f.has(key("vocab_size"))) {
    c.vocab_size = f.get_int(key("vocab_size"));
  } else if (f.has("tokenizer.ggml.tokens")) {
    c.vocab_size = static_cast<int64_t>(f.metadata()["tokenizer.ggml.tokens"].size());
  } else {
    const auto* emb = f.find("token_embd.weight");
    JET_CHECK(emb && emb->shape.size() == 2, "{}: cannot tell the vocabulary size", f.path());
    c.vocab_size = emb->shape[0];
  }
  c.qkv_bias = arch == "qwen2";
  c.tie_word_embeddings = f.find("output.weight") == nullptr;
  c.bos_token_id = int_or("tokenizer.ggml.bos_token_id", -1);
  if (f.has("tokenizer.ggml.eos_token_id")) c.eos_token_ids = {f.get_int("tokenizer.ggml.eos_token_id")};
  c.validate_sizes(f.path());
  c.layer_types.assign(c.num_hidden_layers, "attn");
  c.validate(f.path());
  return c;
}

Checkpoint load_gguf_checkpoint(const std::string& path, const LoadOptions& opts) {
  const auto f = gguf::File::open(path);
  Checkpoint ck;
  ck.path = path;
  ck.config = ModelConfig::from_gguf(f);
  if (opts.tokenizer && f.has("tokenizer.ggml.tokens"))
    ck.tokenizer = std::make_shared<text::Tokenizer>(text::Tokenizer::from_gguf(f));
  if (!opts.weights) return ck;
  // Names and shapes are checked against the config (on meta tensors) before anything is dequantised.
  io::TensorMap shapes;
  for (const auto& t : f.tensors()) {
    const std::string name = hf_name(t.name);
    JET_CHECK(!name.empty(), "{}: unexpected tensor '{}' for a {} model", path, t.name,
              ck.config.model_type);
    shapes[name] = at::empty(t.shape, at::TensorOptions().dtype(at::kFloat).device(at::kMeta));
  }
  CausalLM(ck.config).check_weights(shapes, path);
  const bool permuted = ck.config.model_type == "llama";
  for (const auto& t : f.tensors()) {
    const std::string name = hf_name(t.name);
    int64_t heads = 0;  // rows to put back into HF's rotary order
    if (permuted && name.find(".self_attn.q_proj.") != std::string::npos) heads = ck.config.num_attention_heads;
    if (permuted && name.find(".self_attn.k_proj.") != std::string::npos) heads = ck.config.num_key_value_heads;
    if (opts.quantized && ops::qmatmul_supports(t.type) && t.shape.size() == 2) {
      JET_CHECK(t.offset <= f.size() && t.nbytes <= f.size() - t.offset, "{}: tensor '{}' lies outside the file", path,
                t.name);
      ops::QWeight q = ops::qweight_from_blocks(t.type, t.shape[0], t.shape[1], f.data(t));
      if (heads) q = ops::qweight_rows(q, unpermute_rows(at::arange(q.rows), heads));
      ck.quantized[name] = q;
      continue;
    }
    at::Tensor w = io::gguf_tensor(f, t);
    if (heads) w = unpermute_rows(w, heads);
    ck.tensors[name] = w;
  }
  return ck;
}

}  // namespace jet::model
