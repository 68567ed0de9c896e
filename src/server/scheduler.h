// The engine thread of `jet serve`: it alone owns the model's Engine (its slots and caches) and runs
// continuous batching. HTTP workers submit() tokenised requests and read each one's tokens back from
// its Stream; between decode steps the thread prefills waiting requests into free slots, then decodes
// every live slot together, and frees a slot when its sequence stops (a stop id), reaches max_tokens
// or the context, or is cancelled.
#pragma once
#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <future>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "engine/engine.h"
#include "engine/sampler.h"
#include "model/causal_lm.h"

namespace jet::server {

enum class Finish { none, stop, length, cancelled, error };
const char* finish_str(Finish f);  // "stop" | "length" | "cancelled" | "error"

// One request's tokens, from the engine thread to the HTTP worker that waits on them.
class Stream {
 public:
  // Waits for the next token; false when the sequence has ended (then finish() says why).
  bool next(int32_t& id);
  Finish finish() const;
  std::string error() const;  // what failed, for Finish::error
  // Asks the engine thread to end the sequence (a stop string was found, the client went away).
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  // Engine side.
  void push(int32_t id);
  void end(Finish f, std::string error = {});

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<int32_t> ids_;
  Finish finish_ = Finish::none;
  std::string error_;
  std::atomic<bool> cancelled_{false};
};

struct GenRequest {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;  // >= 1
  engine::SamplingParams sampling;
};

// Log-probabilities of a token sequence (the prompt-scoring side of the completions API).
struct ScoreResult {
  std::vector<double> logprob;                               // [i]: log p(ids[i + 1] | ids[0..i])
  std::vector<std::vector<std::pair<int32_t, double>>> top;  // [i]: the top_k tokens there, most likely first
  std::vector<std::pair<int32_t, double>> next;               // score(next = true): what may follow the last id
};

struct SchedulerOptions {
  int64_t max_batch = 8;
  int64_t ctx_size = 2048;  // cache positions per sequence: prompt + generated tokens
  int64_t prefill_chunk = 512;
  bool cuda_graph = true;
  int threads = 0;  // intra-op threads of the engine thread (0 = ATen's default)
};

class Scheduler {
 public:
  // stop_ids end a sequence (finish "stop"); they are passed on to the stream like any token.
  Scheduler(const model::CausalLM& lm, const SchedulerOptions& opts, std::vector<int32_t> stop_ids);
  ~Scheduler();  // shutdown()
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a request (validated by the caller: 0 < prompt < ctx_size); its tokens come through the stream.
  std::shared_ptr<Stream> submit(GenRequest req);
  // Scores ids (>= 2 tokens, or >= 1 with next; < ctx_size; ids checked by the caller) with one forward of the
  // model on the engine thread, between decode steps; the future throws what failed (a shutdown included).
  // next: also the top_k tokens (at least one) after the last id, led by greedy decoding's (argmax, first of ties).
  std::future<ScoreResult> score(std::vector<int32_t> ids, int64_t top_k, bool next = false);
  // Ends the thread: waiting and live sequences end as cancelled. Idempotent.
  void shutdown();

  const SchedulerOptions& options() const { return opts_; }
  bool is_stop(int32_t id) const { return std::find(stop_ids_.begin(), stop_ids_.end(), id) != stop_ids_.end(); }
  int64_t live() const { return live_count_; }  // sequences in slots
  int64_t waiting();                             // requests waiting for a slot

 private:
  struct Seq {
    GenRequest req;
    std::shared_ptr<Stream> stream;
    int64_t generated = 0;
  };
  void loop();
  // Records token id of the sequence in slot; ends and frees it when it is done.
  void emit(int64_t slot, int32_t id);
  void end(int64_t slot, Finish f, const std::string& error = {});

  const model::CausalLM& lm_;
  SchedulerOptions opts_;
  std::vector<int32_t> stop_ids_;
  std::unique_ptr<engine::Engine> engine_;  // made on the engine thread
  std::vector<std::unique_ptr<Seq>> slots_;
  std::atomic<int64_t> live_count_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Seq>> waiting_;
  struct ScoreJob {
    std::vector<int32_t> ids;
    int64_t top_k = 0;
    bool next = false;
    std::promise<ScoreResult> done;
  };
  std::deque<ScoreJob> scoring_;
  bool stopping_ = false;
  std::thread thread_;
  std::mutex start_mu_;
  std::condition_variable start_cv_;
  bool started_ = false;
  std::string start_error_;
};

}  // namespace jet::server
