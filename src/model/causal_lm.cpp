// CausalLM: parameter declaration, weight binding with shape checks, forward with an optional cache.
#include "model/causal_lm.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/check.h"
#include "core/shape.h"
#include "core/strings.h"
#include "model/packed_rows.h"
#include "ops/norms/norms.h"

namespace jet::model {
namespace {

std::pair<at::Tensor, at::Tensor> add_norm(const RMSNorm& norm, const at::Tensor& x, const at::Tensor& y) {
  return ops::add_rms_norm(x, y, norm.weight, norm.eps);
}

// The decoder stack over embeddings x with each residual add fused into the RMSNorm that follows it (the
// next layer's input norm, the final norm after the last layer): mix(i, input_layernorm_i(x)) is layer i's
// mixer output. Returns norm_(last residual); outputs, if given, receives each layer's output (the residual
// stream after it).
template <typename Mix>
at::Tensor run_stack(const std::vector<DecoderLayer>& layers, const RMSNorm& final_norm, at::Tensor x,
                     const Mix& mix, std::vector<at::Tensor>* outputs = nullptr) {
  if (layers.empty()) return final_norm(x);
  at::Tensor normed = layers[0].input_layernorm(x);
  for (size_t i = 0; i < layers.size(); ++i) {
    const DecoderLayer& l = layers[i];
    auto [h, n2] = add_norm(l.post_attention_layernorm, x, mix(i, l, normed));
    const RMSNorm& next = i + 1 < layers.size() ? layers[i + 1].input_layernorm : final_norm;
    std::tie(x, normed) = add_norm(next, h, l.mlp(n2));
    if (outputs) outputs->push_back(x);
  }
  return normed;
}

}  // namespace

CausalLM::CausalLM(ModelConfig config)
    : config_(std::move(config)), rope_(config_.rope, config_.head_dim) {
  const auto& c = config_;
  params_.push_back({"model.embed_tokens.weight", {c.vocab_size, c.hidden_size}, &embed_tokens_, false, &embed_q_});
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
    params_.push_back({"lm_head.weight", {c.vocab_size, c.hidden_size}, &lm_head_, false, &lm_head_q_});
}

void CausalLM::check_weights(const io::TensorMap& weights, const std::string& where, const QuantMap* quantized) const {
  for (const auto& p : params_) {
    if (quantized && quantized->count(p.name)) {
      const ops::QWeight& q = quantized->at(p.name);
      const bool shape_ok = p.shape.size() == 2 && p.shape[0] == q.rows && p.shape[1] == q.cols;
      JET_CHECK(p.qslot && shape_ok, "{}: quantized weight '{}' has shape [{}, {}], expected {}",
                where, p.name, q.rows, q.cols, shape_str(p.shape));
      continue;
    }
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
  std::vector<std::string> names;
  for (const auto& kv : weights) names.push_back(kv.first);
  if (quantized)
    for (const auto& kv : *quantized) names.push_back(kv.first);
  for (const auto& name : names) {
    if (declared.count(name)) continue;
    // Tied heads are sometimes saved anyway; old checkpoints carry rotary buffers.
    if (name == "lm_head.weight" && config_.tie_word_embeddings) continue;
    if (ends_with(name, rotary)) continue;
    JET_FAIL("{}: unexpected weight '{}' (not part of this {} config)", where, name,
             config_.model_type);
  }
}

namespace {

// The projections that read one input, packed into one buffer at load (model/packed_rows.h): calls
// fn(prefix, parts) for every group of the model's parameters ("model.layers.3.self_attn.", {q_proj, k_proj, v_proj}).
template <class Fn>
void for_each_group(const ParamList& params, const Fn& fn) {
  static const std::vector<std::pair<std::string, std::vector<const char*>>> groups = {
      {"q_proj.weight", {"q_proj", "k_proj", "v_proj"}}, {"gate_proj.weight", {"gate_proj", "up_proj"}}};
  for (const auto& p : params)
    for (const auto& [first, parts] : groups)
      if (ends_with(p.name, first))
        fn(p.name.substr(0, p.name.size() - first.size()), parts);
}

}  // namespace

void CausalLM::bind_quantized(const io::TensorMap& weights, const QuantMap& quantized, std::set<std::string>& bound) {
  std::map<std::string, const Param*> by_name;
  for (const auto& p : params_) {
    by_name[p.name] = &p;
    if (!p.qslot) continue;
    if (auto it = quantized.find(p.name); it != quantized.end()) {
      *p.qslot = it->second;
    } else {
      const at::Tensor& t = weights.at(p.name);
      if (t.dim() != 2) continue;  // stays a float tensor
      *p.qslot = ops::quantize_q8_0(t);
    }
    *p.slot = at::Tensor();
    bound.insert(p.name);
  }
  // Groups of one type and width go into one buffer, each weight a row block of it.
  for_each_group(params_, [&](const std::string& prefix, const std::vector<const char*>& parts) {
    std::vector<ops::QWeight*> qs;
    for (const char* part : parts) {
      auto it = by_name.find(prefix + part + ".weight");
      if (it == by_name.end() || !bound.count(it->first)) return;
      qs.push_back(it->second->qslot);
    }
    pack_qweights(qs);
  });
}

void CausalLM::load_weights(const io::TensorMap& weights, at::ScalarType dtype, at::Device device,
                            const std::string& where, const QuantMap* quantized) {
  check_weights(weights, where, quantized);
  JET_CHECK(!quantized || (device.is_cpu() && dtype == at::kFloat),
            "{}: a quantized model runs on the CPU with fp32 activations", where);
  std::set<std::string> bound;
  if (quantized) bind_quantized(weights, *quantized, bound);
  // q/k/v and gate/up of a layer go into one buffer each (model/packed_rows.h: one GEMM on the decode path).
  std::map<std::string, const Param*> by_name;
  for (const auto& p : params_) by_name[p.name] = &p;
  auto pack = [&](const std::string& prefix, const std::vector<const char*>& parts, const char* suffix) {
    std::vector<at::Tensor*> slots;
    std::vector<at::Tensor> sources;
    for (const char* part : parts) {
      auto it = by_name.find(prefix + part + suffix);
      if (it == by_name.end() || it->second->keep_fp32 || bound.count(it->first)) return;
      slots.push_back(it->second->slot);
      sources.push_back(weights.at(it->first));
    }
    if (!bind_packed(slots, sources, at::TensorOptions().dtype(dtype).device(device))) return;
    for (const char* part : parts) bound.insert(prefix + part + suffix);
  };
  for_each_group(params_, [&](const std::string& prefix, const std::vector<const char*>& parts) {
    pack(prefix, parts, ".weight");
    pack(prefix, parts, ".bias");
  });
  for (const auto& p : params_)
    if (!bound.count(p.name)) *p.slot = weights.at(p.name).to(device, p.keep_fp32 ? at::kFloat : dtype);
  if (config_.tie_word_embeddings) {
    lm_head_ = embed_tokens_;
    lm_head_q_ = embed_q_;
  }
  rope_.to(device);
  dtype_ = dtype;
  device_ = device;
}

int64_t CausalLM::weight_bytes() const {
  int64_t n = 0;
  for (const auto& p : params_) {
    if (p.qslot && p.qslot->defined()) n += p.qslot->nbytes();
    if (p.slot->defined()) n += p.slot->numel() * p.slot->element_size();
  }
  return n;
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

at::Tensor CausalLM::checked_ids(const at::Tensor& ids) const {
  JET_CHECK(embed_tokens_.defined() || embed_q_.defined(), "model weights are not loaded");
  JET_CHECK(ids.dim() == 2, "token ids must be [B, T], got {}", shape_str(ids.sizes()));
  JET_CHECK(ids.size(1) > 0, "empty input");
  // Checked where the ids are (the CPU, from the engine), before they move: no device sync.
  auto [lo_t, hi_t] = at::aminmax(ids);
  const int64_t lo = lo_t.item<int64_t>(), hi = hi_t.item<int64_t>();
  JET_CHECK(lo >= 0 && hi < config_.vocab_size, "token id out of range [0, {}): {}",
            config_.vocab_size, lo < 0 ? lo : hi);
  // Pinned ids (the distillation loop's) move without waiting for the work queued on the device.
  return ids.to(device_, at::kLong, /*non_blocking=*/ids.is_pinned());
}

at::Tensor CausalLM::hidden(const at::Tensor& ids, int64_t start_pos, Cache* cache,
                            std::vector<at::Tensor>* layer_outputs) const {
  at::Tensor ids_dev = checked_ids(ids);
  const int64_t T = ids.size(1);
  if (cache) JET_CHECK(start_pos <= cache->length, "cache holds {} tokens, cannot continue at {}",
                       cache->length, start_pos);
  ForwardContext ctx;
  ctx.start_pos = start_pos;
  std::tie(ctx.cos, ctx.sin) = rope_.cos_sin(start_pos, T, device_, dtype_);
  if (layer_outputs) layer_outputs->clear();
  at::Tensor out = run_stack(
      layers_, norm_, embed(ids_dev),
      [&](size_t i, const DecoderLayer& l, const at::Tensor& n) {
        return l.mixer->forward(n, ctx, cache ? cache->layers[i].get() : nullptr);
      },
      layer_outputs);
  if (cache) cache->length = start_pos + T;
  return out;
}

at::Tensor CausalLM::hidden_rows(const at::Tensor& ids, int64_t start_pos, Cache& cache, int64_t row) const {
  at::Tensor ids_dev = checked_ids(ids);
  const int64_t n = ids.size(0), T = ids.size(1);
  JET_CHECK(row >= 0 && row + n <= cache.batch, "cache rows [{}, {}) outside its {} rows", row, row + n,
            cache.batch);
  JET_CHECK(start_pos >= 0 && start_pos + T <= cache.max_len, "{} tokens at position {} exceed the cache's {}",
            T, start_pos, cache.max_len);
  ForwardContext ctx;
  ctx.start_pos = start_pos;
  std::tie(ctx.cos, ctx.sin) = rope_.cos_sin(start_pos, T, device_, dtype_);
  return run_stack(layers_, norm_, embed(ids_dev),
                   [&](size_t i, const DecoderLayer& l, const at::Tensor& n) {
                     return l.mixer->forward_rows(n, ctx, *cache.layers[i], row);
                   });
}

bool CausalLM::decode_needs_host() const {
  return std::any_of(layers_.begin(), layers_.end(), [](const DecoderLayer& l) { return l.mixer->decode_needs_host(); });
}

at::Tensor CausalLM::decode_rows(const at::Tensor& ids, const at::Tensor& positions, Cache& cache, int64_t key_len,
                                 const std::vector<int64_t>& host_positions) const {
  JET_CHECK(ids.dim() == 1 && positions.sizes() == ids.sizes() && ids.size(0) <= cache.batch,
            "decode_rows: ids {} and positions {} must be [B] with B <= {}", shape_str(ids.sizes()),
            shape_str(positions.sizes()), cache.batch);
  // JET_CPU_STEP=0 keeps a quantized model on the ATen path below (benchmarks and tests compare the two).
  static const bool cpu_step = !std::getenv("JET_CPU_STEP") || std::string(std::getenv("JET_CPU_STEP")) != "0";
  if (quantized() && device_.is_cpu() && cpu_step)
    return decode_rows_cpu(ids, positions, cache, key_len, host_positions);
  ForwardContext ctx;
  ctx.positions = positions;
  ctx.key_len = key_len;
  ctx.host_positions = host_positions;
  std::tie(ctx.cos, ctx.sin) = rope_.cos_sin(positions, dtype_);
  const at::Tensor x = embed(ids.unsqueeze(1));  // [B, 1, D]
  return lm_head(run_stack(layers_, norm_, x, [&](size_t i, const DecoderLayer& l, const at::Tensor& n) {
                   return l.mixer->decode_rows(n, ctx, *cache.layers[i]);
                 }).squeeze(1));
}

std::vector<int64_t> CausalLM::layer_cache_bytes(int64_t context, int64_t elem_bytes) const {
  std::vector<int64_t> out;
  for (const auto& l : layers_)
    out.push_back(l.mixer->cache_bytes_per_token(elem_bytes) * context + l.mixer->cache_bytes_fixed(elem_bytes));
  return out;
}

std::vector<TypeCacheBytes> CausalLM::cache_bytes_by_type(int64_t context, int64_t elem_bytes) const {
  std::vector<TypeCacheBytes> out;
  const auto per_layer = layer_cache_bytes(context, elem_bytes);
  for (size_t i = 0; i < per_layer.size(); ++i) {
    const std::string& t = config_.layer_types[i];
    auto it = std::find_if(out.begin(), out.end(), [&](const TypeCacheBytes& x) { return x.type == t; });
    if (it == out.end()) it = out.insert(out.end(), {t, 0, 0});
    it->layers += 1;
    it->bytes += per_layer[i];
  }
  return out;
}

std::unique_ptr<Mixer> CausalLM::replace_mixer(int64_t layer, std::unique_ptr<Mixer> mixer) {
  JET_CHECK(layer >= 0 && layer < num_layers() && mixer, "replace_mixer: bad layer {} or no mixer", layer);
  std::swap(layers_[layer].mixer, mixer);
  return mixer;
}

at::Tensor CausalLM::lm_head(const at::Tensor& hidden) const {
  return lm_head_q_.defined() ? ops::qmatmul(hidden, lm_head_q_) : at::linear(hidden, lm_head_);
}

at::Tensor CausalLM::embed(const at::Tensor& ids) const {
  if (!embed_q_.defined()) return at::embedding(embed_tokens_, ids);
  const at::Tensor flat = ids.reshape({-1}).to(at::kLong).contiguous();
  const int64_t n = flat.numel(), D = embed_q_.cols;
  at::Tensor out = at::empty({n, D}, at::kFloat);
  const int64_t* id = flat.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    JET_CHECK(id[i] >= 0 && id[i] < embed_q_.rows, "token id out of range [0, {}): {}", embed_q_.rows, id[i]);
    ops::dequantize_row(embed_q_, id[i], out.data_ptr<float>() + i * D);
  }
  std::vector<int64_t> shape(ids.sizes().begin(), ids.sizes().end());
  shape.push_back(D);
  return out.view(shape);
}

}  // namespace jet::model
