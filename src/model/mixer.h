// Token mixers: the per-layer part of a decoder layer that moves information between positions.
// Each layer's layer_types entry picks one ("attn" now; "swa", "jet", "gdn", ... later). A mixer owns
// the format of its per-sequence cache state (KV for attention, a recurrent state for linear layers);
// adding a type means one new mixer file and one entry in make_mixer(), nothing else.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/config.h"
#include "model/params.h"

namespace jet::model {

// What every mixer of one forward call shares.
struct ForwardContext {
  int64_t start_pos = 0;  // position of the first token of x
  at::Tensor cos, sin;    // [T, head_dim] rotary tables for positions start_pos.. (attention mixers);
                          // [B, 1, 1, head_dim] in a decode_rows step (one position per row)
  // decode_rows only: the position of each row's token, [B] int64 on the model's device, and how many
  // cache positions attention reads (fixed while a CUDA graph replays; >= every position + 1).
  at::Tensor positions;
  int64_t key_len = 0;
  // decode_rows of a mixer whose decode_needs_host(): the same positions on the host (eager steps only).
  std::vector<int64_t> host_positions;
};

// One decode step of a quantized model on the CPU (model/cpu_decode.cpp) as raw rows: what decode_rows_cpu reads.
struct CpuStep {
  int64_t batch = 0;
  const int64_t* positions = nullptr;  // [batch] each row's position (host)
  int64_t key_len = 0;                 // as ForwardContext::key_len
  const float* cos = nullptr;          // [batch, head_dim] rotary tables of each row's position
  const float* sin = nullptr;
};

// Per-sequence cache state of one layer; the mixer that made it knows its contents.
struct MixerState {
  virtual ~MixerState() = default;
};

class Mixer {
 public:
  virtual ~Mixer() = default;
  // x [B, T, D] -> [B, T, D]. Without a state: a full causal pass over x. With a state: positions
  // before ctx.start_pos come from the state, and x's tokens are appended to it.
  virtual at::Tensor forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) = 0;
  // A fresh state for `batch` sequences of up to max_len tokens, tensors with `opts`.
  virtual std::unique_ptr<MixerState> new_state(int64_t batch, int64_t max_len,
                                                const at::TensorOptions& opts) const = 0;

  // The engine's slots: a state from new_state(max_batch, ...) holds one sequence per row, and rows
  // advance independently. forward_rows: x [n, T, D] continues rows [row, row + n), which all hold
  // ctx.start_pos tokens (0 = a fresh sequence: the rows' old contents are ignored).
  virtual at::Tensor forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state,
                                  int64_t row) = 0;
  // x [B, 1, D]: one token for each of rows [0, B) at its own position ctx.positions[b]. Fixed shapes
  // and no host synchronisation, so the step can be captured in a CUDA graph.
  virtual at::Tensor decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) = 0;
  // decode_rows on raw fp32 rows for a quantized model's CPU step: x [B, D] -> out [B, D] (B = step.batch, rows
  // contiguous). False (nothing done) when the mixer has no such path; the step then calls decode_rows.
  virtual bool decode_rows_cpu(const float* x, const CpuStep& step, MixerState& state, float* out) { return false; }
  // Whether decode_rows reads ctx.host_positions (then the decode step cannot be captured in a graph).
  virtual bool decode_needs_host() const { return false; }
  // Cache bytes that grow with each token, and bytes fixed per sequence, at elem_bytes per element.
  virtual int64_t cache_bytes_per_token(int64_t elem_bytes) const = 0;
  virtual int64_t cache_bytes_fixed(int64_t elem_bytes) const { return 0; }
};

// The mixer for config.layer_types[layer]; declares its parameters under
// "model.layers.{layer}.self_attn." (the official layout uses that prefix for every mixer type).
std::unique_ptr<Mixer> make_mixer(const ModelConfig& config, int64_t layer, ParamList& params);

}  // namespace jet::model
