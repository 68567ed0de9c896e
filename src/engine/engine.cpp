// Engine: slot bookkeeping on the host, the decode step on the device (eager or graph replay).
#include "engine/engine.h"

#include <ATen/ATen.h>

#include <algorithm>

#include "core/check.h"
#include "model/attention.h"
#include "model/linear_mixer.h"

namespace jet::engine {
namespace {

int64_t next_pow2(int64_t n) {
  int64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

}  // namespace

Engine::Engine(const model::CausalLM& lm, const EngineOptions& opts, const SamplingParams& sampling)
    : lm_(lm), opts_(opts), sampling_(sampling), stream_(lm.device()) {
  JET_CHECK(opts.max_batch >= 1, "engine: max batch must be >= 1, got {}", opts.max_batch);
  JET_CHECK(opts.max_len >= 1, "engine: max length must be >= 1, got {}", opts.max_len);
  JET_CHECK(opts.prefill_chunk >= 1, "engine: prefill chunk must be >= 1, got {}", opts.prefill_chunk);
  check_sampling_params(sampling);
  graphs_ = opts.cuda_graph && lm.device().is_cuda() && cuda_graphs_built() && !lm.decode_needs_host();
  EngineStream::Use use(stream_);
  cache_ = lm.new_cache(opts.max_batch, opts.max_len);
  gen_ = make_generator(lm.device(), sampling.seed);
  auto opts_long = at::TensorOptions().dtype(at::kLong).device(lm.device());
  ids_ = at::zeros({opts.max_batch}, opts_long);
  positions_ = at::zeros({opts.max_batch}, opts_long);
  row_sampling_ = {at::zeros({opts.max_batch}, opts_long.dtype(at::kFloat)), at::zeros({opts.max_batch}, opts_long),
                   at::ones({opts.max_batch}, opts_long.dtype(at::kFloat)), at::zeros({opts.max_batch}, opts_long)};
  sampled_.assign(opts.max_batch, 0);
  host_positions_.assign(opts.max_batch, 0);
  lengths_.assign(opts.max_batch, 0);
  allocated_.assign(opts.max_batch, 0);
  prefilled_.assign(opts.max_batch, 0);
}

Engine::~Engine() = default;

int64_t Engine::alloc() {
  for (int64_t s = 0; s < opts_.max_batch; ++s)
    if (!allocated_[s]) {
      allocated_[s] = 1;
      return s;
    }
  JET_FAIL("engine: all {} slots are in use", opts_.max_batch);
}

void Engine::free(int64_t slot) {
  JET_CHECK(slot >= 0 && slot < opts_.max_batch && allocated_[slot], "engine: slot {} is not allocated", slot);
  allocated_[slot] = prefilled_[slot] = sampled_[slot] = 0;
  // A free row inside a batch bucket still runs; position 0 keeps its attention reads short.
  EngineStream::Use use(stream_);
  positions_.narrow(0, slot, 1).zero_();
  host_positions_[slot] = 0;
}

bool Engine::live(int64_t slot) const {
  return slot >= 0 && slot < opts_.max_batch && allocated_[slot] && prefilled_[slot];
}

int64_t Engine::length(int64_t slot) const {
  JET_CHECK(live(slot), "engine: slot {} holds no sequence", slot);
  return lengths_[slot];
}

int64_t Engine::cache_bytes() const {
  int64_t n = 0;
  for (const auto& l : lm_.layer_cache_bytes(opts_.max_len, at::elementSize(lm_.dtype()))) n += l;
  return n * opts_.max_batch;
}

int64_t Engine::batch_bucket(int64_t rows) const { return std::min(next_pow2(rows), opts_.max_batch); }

void Engine::set_sampling(int64_t slot, const SamplingParams& p) {
  row_sampling_.temperature.narrow(0, slot, 1).fill_(p.temperature);
  row_sampling_.top_k.narrow(0, slot, 1).fill_(p.top_k);
  row_sampling_.top_p.narrow(0, slot, 1).fill_(p.top_p);
  row_sampling_.key.narrow(0, slot, 1).fill_(seed_key(p.seed));
  sampled_[slot] = p.temperature > 0;
}

int32_t Engine::prefill(int64_t slot, const std::vector<int32_t>& prompt) { return prefill(slot, prompt, sampling_); }

int32_t Engine::prefill(int64_t slot, const std::vector<int32_t>& prompt, const SamplingParams& sampling) {
  check_sampling_params(sampling);
  JET_CHECK(slot >= 0 && slot < opts_.max_batch && allocated_[slot], "engine: slot {} is not allocated", slot);
  const int64_t T = static_cast<int64_t>(prompt.size());
  JET_CHECK(T > 0, "engine: the prompt is empty");
  JET_CHECK(T < opts_.max_len, "engine: a prompt of {} tokens leaves no room in a cache of {} positions", T,
            opts_.max_len);
  at::InferenceMode guard;
  EngineStream::Use use(stream_);
  at::Tensor ids = at::tensor(std::vector<int64_t>(prompt.begin(), prompt.end()), at::kLong).unsqueeze(0);
  at::Tensor last;  // final-norm hidden state of the last prompt token [1, D]
  for (int64_t start = 0; start < T; start += opts_.prefill_chunk) {
    const int64_t n = std::min(opts_.prefill_chunk, T - start);
    last = lm_.hidden_rows(ids.narrow(1, start, n), start, cache_, slot).select(1, n - 1);
  }
  set_sampling(slot, sampling);
  const RowSampling one{row_sampling_.temperature.narrow(0, slot, 1), row_sampling_.top_k.narrow(0, slot, 1),
                        row_sampling_.top_p.narrow(0, slot, 1), row_sampling_.key.narrow(0, slot, 1)};
  at::Tensor next = sample_rows(lm_.lm_head(last), one, at::full({1}, T - 1, ids_.options()));  // [1]
  ids_.narrow(0, slot, 1).copy_(next);
  positions_.narrow(0, slot, 1).fill_(T);
  host_positions_[slot] = lengths_[slot] = T;
  prefilled_[slot] = 1;
  return static_cast<int32_t>(next.item<int64_t>());
}

void Engine::fill_synthetic(int64_t slot, int64_t length, uint64_t seed) {
  JET_CHECK(slot >= 0 && slot < opts_.max_batch && allocated_[slot], "engine: slot {} is not allocated", slot);
  JET_CHECK(length >= 1 && length < opts_.max_len, "engine: a synthetic cache of {} tokens leaves no room in {} positions",
            length, opts_.max_len);
  at::InferenceMode guard;
  EngineStream::Use use(stream_);
  at::Generator gen = make_generator(lm_.device(), seed);
  auto draw = [&](const at::Tensor& t, double std) { t.normal_(0.0, std, gen); };
  for (const auto& layer : cache_.layers) {
    if (auto* kv = dynamic_cast<model::KVState*>(layer.get())) {
      const int64_t n = std::min(length, kv->k.size(2));  // a ring holds its last `cap` tokens
      draw(kv->k.narrow(0, slot, 1).narrow(2, 0, n), 1.0);
      draw(kv->v.narrow(0, slot, 1).narrow(2, 0, n), 1.0);
    } else if (auto* lin = dynamic_cast<model::LinearState*>(layer.get())) {
      draw(lin->block.S.narrow(0, slot, 1), 0.05);
      for (const auto& t : lin->block.conv) draw(t.narrow(0, slot, 1), 1.0);
    } else {
      JET_FAIL("engine: no synthetic fill for this layer's cache state");
    }
  }
  ids_.narrow(0, slot, 1).random_(0, lm_.config().vocab_size, gen);
  set_sampling(slot, sampling_);
  positions_.narrow(0, slot, 1).fill_(length);
  host_positions_[slot] = lengths_[slot] = length;
  prefilled_[slot] = 1;
}

std::pair<at::Tensor, at::Tensor> Engine::step_body(int64_t rows, int64_t key_len, bool sampled) {
  at::Tensor ids = ids_.narrow(0, 0, rows), pos = positions_.narrow(0, 0, rows);
  std::vector<int64_t> host;  // only for models that need it, and never inside a capture
  if (lm_.decode_needs_host()) host.assign(host_positions_.begin(), host_positions_.begin() + rows);
  at::Tensor logits = lm_.decode_rows(ids, pos, cache_, key_len, host);
  at::Tensor next = sampled ? sample_rows(logits, row_sampling_.narrow(rows), pos) : logits.argmax(-1);
  ids.copy_(next);
  pos.add_(1).clamp_max_(opts_.max_len - 1);
  return {logits, next};
}

std::vector<int32_t> Engine::step() {
  int64_t top = -1;  // highest live slot
  bool sampled = false;
  for (int64_t s = 0; s < opts_.max_batch; ++s) {
    if (!live(s)) continue;
    sampled = sampled || sampled_[s];
    JET_CHECK(lengths_[s] < opts_.max_len, "engine: slot {} is full ({} tokens)", s, opts_.max_len);
    top = s;
  }
  std::vector<int32_t> out(opts_.max_batch, -1);
  if (top < 0) return out;
  const int64_t rows = batch_bucket(top + 1);
  int64_t key_len = 1 + *std::max_element(host_positions_.begin(), host_positions_.begin() + rows);
  // Graphs read a key-length bucket (a model without full attention reads none: one bucket).
  if (graphs_)
    key_len = lm_.cache_bytes_per_token(1) == 0 ? opts_.max_len : std::min(std::max<int64_t>(next_pow2(key_len), 128), opts_.max_len);

  at::InferenceMode guard;
  EngineStream::Use use(stream_);
  at::Tensor next;
  auto key = std::make_tuple(rows, key_len, sampled);
  auto it = graphs_ ? captured_.find(key) : captured_.end();
  if (it != captured_.end()) {
    it->second->graph.replay();
    logits_ = it->second->logits;
    next = it->second->next;
  } else {
    // Eager; with graphs on, this first step of a new shape is also the warm-up, and the capture
    // follows (recording launches nothing, so the state advances once).
    std::tie(logits_, next) = step_body(rows, key_len, sampled);
    if (graphs_) {
      auto c = std::make_unique<Captured>();
      c->graph.capture([&] { std::tie(c->logits, c->next) = step_body(rows, key_len, sampled); }, gen_, graph_pool_);
      captured_.emplace(key, std::move(c));
    }
  }
  at::Tensor host = next.to(at::kCPU);
  const int64_t* ids = host.data_ptr<int64_t>();
  for (int64_t s = 0; s < rows; ++s) {
    host_positions_[s] = std::min(host_positions_[s] + 1, opts_.max_len - 1);
    if (!live(s)) continue;
    ++lengths_[s];
    out[s] = static_cast<int32_t>(ids[s]);
  }
  return out;
}

}  // namespace jet::engine
