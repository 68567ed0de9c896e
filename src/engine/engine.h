// The generation engine: per-sequence slots over caches allocated once for max_batch sequences of up
// to max_len tokens (every mixer's state: attention KV, sliding-window rings, linear states), chunked
// prefill of one slot, and one decode token for all slots at their own positions. On CUDA the decode
// step (model + sampling + feeding the sampled ids back) is captured as a CUDA graph per (batch
// bucket, attention key-length bucket) and replayed; on the CPU, without graphs, or for a model whose
// decode needs the positions on the host (RetNet layers), it runs eagerly with the same code.
#pragma once
#include <ATen/core/Generator.h>
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

#include "engine/cuda_graph.h"
#include "engine/sampler.h"
#include "model/causal_lm.h"

namespace jet::engine {

struct EngineOptions {
  int64_t max_batch = 1;        // slots (sequences decoded together)
  int64_t max_len = 0;          // cache positions per sequence (prompt + generated tokens)
  int64_t prefill_chunk = 512;  // prompt tokens per prefill forward
  bool cuda_graph = true;       // capture the decode step on CUDA (the CPU always runs eagerly)
};

class Engine {
 public:
  Engine(const model::CausalLM& lm, const EngineOptions& opts, const SamplingParams& sampling);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // The lowest free slot; throws when all max_batch slots are taken.
  int64_t alloc();
  // Returns a slot; its cache rows are reused by a later alloc().
  void free(int64_t slot);
  bool live(int64_t slot) const;       // allocated and prefilled
  int64_t length(int64_t slot) const;  // tokens in the slot's cache
  // Prefills an allocated slot with prompt (in chunks of prefill_chunk tokens, from position 0) and
  // returns the first sampled token, which the next step() feeds. The slot samples with `sampling`
  // (its own seed and settings, until it is freed), or with the engine's.
  int32_t prefill(int64_t slot, const std::vector<int32_t>& prompt);
  int32_t prefill(int64_t slot, const std::vector<int32_t>& prompt, const SamplingParams& sampling);
  // Benchmarks: marks an allocated slot as holding `length` tokens without running them: every layer's
  // state for the slot is drawn at random (attention K/V in slots [0, length), the whole ring of a
  // sliding window once length reaches it, linear states and conv tails), the next input is a random
  // token and decoding continues at position `length`. A decode step's cost depends only on what it
  // reads, so this measures long-context decoding without a long prefill. Not a model's real state.
  // The slot samples with the engine's parameters.
  void fill_synthetic(int64_t slot, int64_t length, uint64_t seed);
  // One token for every live slot: result[slot] is its next token (-1 for slots that are not live).
  // A slot whose cache is full (length == max_len) must be freed first.
  std::vector<int32_t> step();

  const EngineOptions& options() const { return opts_; }
  bool uses_graphs() const { return graphs_; }
  int64_t graphs_captured() const { return static_cast<int64_t>(captured_.size()); }
  // Logits [rows, V] of the last step() for rows [0, rows) (rows = the batch bucket it ran).
  const at::Tensor& last_logits() const { return logits_; }
  // Cache bytes held for all slots.
  int64_t cache_bytes() const;

  // The batch bucket for the first `rows` slots: the next power of two, capped at max_batch.
  int64_t batch_bucket(int64_t rows) const;

 private:
  struct Captured {
    DecodeGraph graph;
    at::Tensor logits, next;  // the graph's output buffers
  };
  // The decode step for rows [0, rows) with attention over key_len positions: the model, sampling
  // (argmax for all rows unless `sampled`), and on the device: ids <- the sampled tokens,
  // positions <- positions + 1 (kept inside the cache).
  std::pair<at::Tensor, at::Tensor> step_body(int64_t rows, int64_t key_len, bool sampled);
  // Writes the slot's row of row_sampling_ and sampled_.
  void set_sampling(int64_t slot, const SamplingParams& p);

  const model::CausalLM& lm_;
  EngineOptions opts_;
  SamplingParams sampling_;
  bool graphs_ = false;
  EngineStream stream_;
  model::Cache cache_;
  at::Generator gen_;
  at::Tensor ids_, positions_;  // [max_batch] int64 on the device: each row's next input and its position
  RowSampling row_sampling_;     // [max_batch] each: the slots' sampling parameters on the device
  std::vector<uint8_t> sampled_;  // slots with temperature > 0
  std::vector<int64_t> host_positions_;  // what positions_ holds (the host follows every update)
  std::vector<int64_t> lengths_;         // tokens in each live slot's cache
  std::vector<uint8_t> allocated_, prefilled_;
  at::Tensor logits_;
  DecodeGraphs graph_pool_;
  std::map<std::tuple<int64_t, int64_t, bool>, std::unique_ptr<Captured>> captured_;  // (rows, key_len, sampled)
};

}  // namespace jet::engine
