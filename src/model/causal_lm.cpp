// CausalLM: parameter declaration, weight binding with shape checks, forward with an optional cache.
#include "model/causal_lm.h"

#include <ATen/ATen.h>

#include <set>

#include "core/check.h"
#include "core/shape.h"

namespace jet::model {

at::Tensor DecoderLayer::forward(const at::Tensor& x, const ForwardContext& ctx,
                                 MixerState* state) const {
  at::Tensor h = x + mixer->forward(input_layernorm(x), ctx, state);
  return h + mlp(post_attention_layernorm(h));
}

CausalLM::CausalLM(ModelConfig config)
    : config_(std::move(config)), rope_(config_.rope, config_.head_dim) {
  const auto& c = config_;
  params_.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, &embed_tokens_});
  layers_.resize(c.num_hidden_layers);
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) {
    const std::string p = fmt::format("model.layers.{}.", i);
    auto& l = layers_[i];
    l.input_layernorm.declare(params_, p + "input_layernorm", c.hidden_size, c.rms_norm_eps);
    l.mixer = make_mixer(c, i, params_);
    l.post_attention_layernorm.declare(params_, p + "post_attention_layernorm", c.hidden_size,
                                       c.rms_norm_eps);
    l.mlp.declare(params_, p + "mlp.", c);
  }
  norm_.declare(params_, "model.norm", c.hidden_size, c.rms_norm_eps);
  if (!c.tie_word_embeddings)
    params_.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, &lm_head_});
}

void CausalLM::check_weights(const io::TensorMap& weights, const std::string& where) const {
  for (const auto& p : params_) {
    auto it = weights.find(p.name);
    JET_CHECK(it != weights.end(), "{}: missing weight '{}'", where, p.name);
    const at::Tensor& t = it->second;
    JET_CHECK(t.sizes() == c10::IntArrayRef(p.shape), "{}: weight '{}' has shape {}, expected {}",
              where, p.name, shape_str(t.sizes()), shape_str(p.shape));
    JET_CHECK(at::isFloatingType(t.scalar_type()), "{}: weight '{}' has non-float dtype {}", where,
              p.name, c10::toString(t.scalar_type()));
  }
  std::set<std::string> declared;
  for (const auto& p : params_) declared.insert(p.name);
  const std::string rotary = "rotary_emb.inv_freq";
  for (const auto& [name, t] : weights) {
    if (declared.count(name)) continue;
    // Tied heads are sometimes saved anyway; old checkpoints carry rotary buffers.
    if (name == "lm_head.weight" && config_.tie_word_embeddings) continue;
    if (name.size() >= rotary.size() &&
        name.compare(name.size() - rotary.size(), rotary.size(), rotary) == 0)
      continue;
    JET_FAIL("{}: unexpected weight '{}' (not part of this {} config)", where, name,
             config_.model_type);
  }
}

void CausalLM::load_weights(const io::TensorMap& weights, at::ScalarType dtype, at::Device device,
                            const std::string& where) {
  check_weights(weights, where);
  for (const auto& p : params_) *p.slot = weights.at(p.name).to(device, p.keep_fp32 ? at::kFloat : dtype);
  if (config_.tie_word_embeddings) lm_head_ = embed_tokens_;
  rope_.to(device);
  dtype_ = dtype;
  device_ = device;
}

int64_t CausalLM::num_parameters() const {
  int64_t n = 0;
  for (const auto& p : params_) {
    int64_t k = 1;
    for (int64_t d : p.shape) k *= d;
    n += k;
  }
  return n;
}

int64_t CausalLM::cache_bytes_per_token(int64_t elem_bytes) const {
  int64_t n = 0;
  for (const auto& l : layers_) n += l.mixer->cache_bytes_per_token(elem_bytes);
  return n;
}

int64_t CausalLM::cache_bytes_fixed(int64_t elem_bytes) const {
  int64_t n = 0;
  for (const auto& l : layers_) n += l.mixer->cache_bytes_fixed(elem_bytes);
  return n;
}

Cache CausalLM::new_cache(int64_t batch, int64_t max_len) const {
  Cache c;
  c.batch = batch;
  c.max_len = max_len;
  auto opts = at::TensorOptions().dtype(dtype_).device(device_);
  for (const auto& l : layers_) c.layers.push_back(l.mixer->new_state(batch, max_len, opts));
  return c;
}

at::Tensor CausalLM::hidden(const at::Tensor& ids, int64_t start_pos, Cache* cache) const {
  JET_CHECK(embed_tokens_.defined(), "model weights are not loaded");
  JET_CHECK(ids.dim() == 2, "token ids must be [B, T], got {}", shape_str(ids.sizes()));
  const int64_t T = ids.size(1);
  JET_CHECK(T > 0, "empty input");
  if (cache) JET_CHECK(start_pos <= cache->length, "cache holds {} tokens, cannot continue at {}",
                       cache->length, start_pos);
  // Checked where the ids are (the CPU, from the engine), before they move: no device sync.
  auto [lo_t, hi_t] = at::aminmax(ids);
  const int64_t lo = lo_t.item<int64_t>(), hi = hi_t.item<int64_t>();
  JET_CHECK(lo >= 0 && hi < config_.vocab_size, "token id out of range [0, {}): {}",
            config_.vocab_size, lo < 0 ? lo : hi);
  at::Tensor ids_dev = ids.to(device_, at::kLong);
  ForwardContext ctx;
  ctx.start_pos = start_pos;
  std::tie(ctx.cos, ctx.sin) = rope_.cos_sin(start_pos, T, device_, dtype_);
  at::Tensor x = at::embedding(embed_tokens_, ids_dev);
  for (size_t i = 0; i < layers_.size(); ++i)
    x = layers_[i].forward(x, ctx, cache ? cache->layers[i].get() : nullptr);
  if (cache) cache->length = start_pos + T;
  return norm_(x);
}

at::Tensor CausalLM::lm_head(const at::Tensor& hidden) const { return at::linear(hidden, lm_head_); }

}  // namespace jet::model
