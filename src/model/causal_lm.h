// Decoder-only causal LM (Llama / Qwen2 / Jet-Nemotron layout): embeddings, N decoder layers (a token
// mixer picked by layer_types + a SwiGLU MLP, pre-RMSNorm residuals), final norm, LM head (tied or
// not). Weights are held by HF name; load_weights() checks each one against the config.
#pragma once
#include <ATen/core/Tensor.h>

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "io/tensors.h"
#include "model/config.h"
#include "model/layers.h"
#include "model/mixer.h"
#include "model/params.h"

namespace jet::model {

struct DecoderLayer {
  RMSNorm input_layernorm, post_attention_layernorm;
  std::unique_ptr<Mixer> mixer;
  Mlp mlp;  // the layers run in CausalLM (causal_lm.cpp run_stack: residual adds fused into the norms)
};

// Cache bytes of one sequence taken by the layers of one type.
struct TypeCacheBytes {
  std::string type;
  int64_t layers = 0, bytes = 0;
};

// Per-sequence state of every layer for incremental decoding.
struct Cache {
  std::vector<std::unique_ptr<MixerState>> layers;
  int64_t batch = 0, max_len = 0;
  int64_t length = 0;  // tokens seen; the next forward continues at this position
};

class CausalLM {
 public:
  explicit CausalLM(ModelConfig config);
  CausalLM(const CausalLM&) = delete;
  CausalLM& operator=(const CausalLM&) = delete;

  const ModelConfig& config() const { return config_; }
  const ParamList& params() const { return params_; }
  at::ScalarType dtype() const { return dtype_; }
  at::Device device() const { return device_; }

  // Checks `weights` (and `quantized`, weights kept in GGUF blocks) against the declared parameters: missing,
  // mis-shaped, non-float and unexpected weights throw naming the weight and `where` (the checkpoint path).
  void check_weights(const io::TensorMap& weights, const std::string& where, const QuantMap* quantized = nullptr) const;
  // check_weights(), then binds every declared weight from `weights` (HF names), converted to dtype on device.
  // With `quantized` (a quantized model: CPU, fp32 activations): the embedding, the LM head, every Linear weight
  // and the linear blocks' projections stay in GGUF blocks (ops::qmatmul), those of `quantized` as they are, float
  // ones quantized to Q8_0 here (HF directories, random init); norms, biases, convs, the linear blocks' decay
  // parameters and their recurrent and conv states stay fp32.
  void load_weights(const io::TensorMap& weights, at::ScalarType dtype, at::Device device,
                    const std::string& where, const QuantMap* quantized = nullptr);
  bool quantized() const { return embed_q_.defined(); }
  // Bytes of the weights as held (GGUF blocks for quantized ones; tied embeddings counted once).
  int64_t weight_bytes() const;
  // Unique parameters (tied embeddings counted once).
  int64_t num_parameters() const;
  int64_t cache_bytes_per_token(int64_t elem_bytes) const;  // grows with each token (attention KV)
  int64_t cache_bytes_fixed(int64_t elem_bytes) const;      // per sequence (linear-layer states)

  Cache new_cache(int64_t batch, int64_t max_len) const;
  // ids [B, T] (int64) -> final-norm hidden states [B, T, D]. start_pos is the position of ids[:, 0];
  // with a cache it must not exceed cache->length, and the cache then holds start_pos + T tokens.
  // layer_outputs, if given, receives every decoder layer's output (the residual stream, [B, T, D]).
  at::Tensor hidden(const at::Tensor& ids, int64_t start_pos = 0, Cache* cache = nullptr,
                    std::vector<at::Tensor>* layer_outputs = nullptr) const;
  // [B, T, D] -> logits [B, T, V] in the model dtype.
  at::Tensor lm_head(const at::Tensor& hidden) const;
  at::Tensor forward(const at::Tensor& ids, int64_t start_pos = 0, Cache* cache = nullptr) const {
    return lm_head(hidden(ids, start_pos, cache));
  }

  // The engine's slots: a cache from new_cache(max_batch, max_len) holds one sequence per row.
  // ids [n, T] continue rows [row, row + n), which all hold start_pos tokens (0 = a fresh sequence)
  // -> final-norm hidden states [n, T, D]. cache.length is not used.
  at::Tensor hidden_rows(const at::Tensor& ids, int64_t start_pos, Cache& cache, int64_t row) const;
  // ids, positions [B] (int64, on the model's device): one token for each of rows [0, B) at its own
  // position -> logits [B, V]. Attention reads cache positions [0, key_len). No host synchronisation and
  // fixed shapes, so the step can be captured in a CUDA graph unless decode_needs_host(); then
  // host_positions must hold the positions too. ids are not range-checked here.
  at::Tensor decode_rows(const at::Tensor& ids, const at::Tensor& positions, Cache& cache, int64_t key_len,
                         const std::vector<int64_t>& host_positions = {}) const;
  // decode_rows of a quantized model on the CPU: raw rows through ops/cpu and ops/qmatmul, no per-step
  // allocation but the logits (cpu_decode.cpp); what decode_rows runs for a quantized model unless JET_CPU_STEP=0; mixers without a CPU path run their decode_rows.
  at::Tensor decode_rows_cpu(const at::Tensor& ids, const at::Tensor& positions, Cache& cache, int64_t key_len,
                             const std::vector<int64_t>& host_positions) const;
  // Whether some layer's decode step needs the positions on the host (RetNet): no CUDA graph then.
  bool decode_needs_host() const;
  // The LM head's weight [V, D] (the embedding when tied): distillation computes logits in row chunks.
  const at::Tensor& lm_head_weight() const { return lm_head_; }
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  // The token mixer of one layer, and swapping it for another (PostNAS's supernet wraps each layer's
  // mixer; the old one is returned, its declared parameter slots stay valid while it lives).
  Mixer& mixer(int64_t layer) const { return *layers_.at(layer).mixer; }
  std::unique_ptr<Mixer> replace_mixer(int64_t layer, std::unique_ptr<Mixer> mixer);
  // Cache bytes of one sequence of `context` tokens, per layer.
  std::vector<int64_t> layer_cache_bytes(int64_t context, int64_t elem_bytes) const;
  // The same summed by layer type, types in order of first appearance.
  std::vector<TypeCacheBytes> cache_bytes_by_type(int64_t context, int64_t elem_bytes) const;

 private:
  // ids [B, T] (any device) -> the device's int64 ids, after checking their range (a host sync).
  at::Tensor checked_ids(const at::Tensor& ids) const;
  // Embedding rows of ids (checked) [...] -> [..., D].
  at::Tensor embed(const at::Tensor& ids) const;
  // Binds the quantized weights (load_weights with a QuantMap); adds their names to `bound`.
  void bind_quantized(const io::TensorMap& weights, const QuantMap& quantized, std::set<std::string>& bound);

  ModelConfig config_;
  ParamList params_;
  at::Tensor embed_tokens_;  // [V, D]
  std::vector<DecoderLayer> layers_;
  RMSNorm norm_;
  at::Tensor lm_head_;  // [V, D]; the embedding when tied
  ops::QWeight embed_q_, lm_head_q_;  // a quantized model's embedding and LM head (embed_tokens_, lm_head_ undefined)
  Rope rope_;
  at::ScalarType dtype_ = at::kFloat;
  at::Device device_ = at::kCPU;
};

}  // namespace jet::model
