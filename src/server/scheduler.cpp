// Scheduler: the waiting queue and streams are shared with the HTTP workers under mutexes; the
// engine and the slots are touched by the engine thread only.
#include "server/scheduler.h"

#include <ATen/Parallel.h>
#include <ATen/core/grad_mode.h>
#include <ATen/ops/argmax.h>
#include <ATen/ops/log_softmax.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/topk.h>

#include <algorithm>
#include <exception>

#include "core/check.h"

namespace jet::server {
namespace {

ScoreResult score_ids(const model::CausalLM& lm, const std::vector<int32_t>& ids, int64_t top_k, bool next) {
  at::NoGradGuard no_grad;
  const auto T = static_cast<int64_t>(ids.size());
  const std::vector<int64_t> v(ids.begin(), ids.end());
  const at::Tensor h = lm.hidden(at::tensor(v, at::kLong).view({1, T}).to(lm.device()))[0];
  ScoreResult r;
  constexpr int64_t kRows = 256;  // positions per LM-head call (bounds the fp32 logits)
  const int64_t P = next ? T : T - 1;  // position p predicts ids[p + 1]; with next, the last one what follows
  for (int64_t p0 = 0; p0 < P; p0 += kRows) {
    const int64_t p1 = std::min(P, p0 + kRows);
    const at::Tensor lp = at::log_softmax(lm.lm_head(h.slice(0, p0, p1)).to(at::kFloat), -1).to(at::kDouble).to(at::kCPU);
    const double* a = lp.data_ptr<double>();
    const int64_t V = lp.size(1);
    at::Tensor top_v, top_i;
    if (top_k > 0) {
      std::tie(top_v, top_i) = lp.topk(std::min(top_k, V), -1);
      top_i = top_i.contiguous();
    }
    for (int64_t p = p0; p < p1; ++p) {
      std::vector<std::pair<int32_t, double>> top;
      for (int64_t k = 0; k < (top_k > 0 ? top_i.size(1) : 0); ++k) {
        const int64_t id = top_i.data_ptr<int64_t>()[(p - p0) * top_i.size(1) + k];
        top.emplace_back(static_cast<int32_t>(id), a[(p - p0) * V + id]);
      }
      if (p + 1 == T) {  // what follows, led by greedy decoding's token: the argmax, the first of ties
        const auto g = static_cast<int32_t>(lp[p - p0].argmax().item<int64_t>());
        top.erase(std::remove_if(top.begin(), top.end(), [&](const auto& t) { return t.first == g; }), top.end());
        top.insert(top.begin(), {g, a[(p - p0) * V + g]});
        if (static_cast<int64_t>(top.size()) > std::max<int64_t>(1, top_k)) top.pop_back();
        r.next = std::move(top);
        continue;
      }
      r.logprob.push_back(a[(p - p0) * V + ids[p + 1]]);
      r.top.push_back(std::move(top));
    }
  }
  return r;
}

}  // namespace

const char* finish_str(Finish f) {
  switch (f) {
    case Finish::stop: return "stop";
    case Finish::length: return "length";
    case Finish::cancelled: return "cancelled";
    case Finish::error: return "error";
    case Finish::none: break;
  }
  return "none";
}

bool Stream::next(int32_t& id) {
  std::unique_lock<std::mutex> lk(mu_);
  cv_.wait(lk, [&] { return !ids_.empty() || finish_ != Finish::none; });
  if (ids_.empty()) return false;
  id = ids_.front();
  ids_.pop_front();
  return true;
}

Finish Stream::finish() const {
  std::lock_guard<std::mutex> g(mu_);
  return finish_;
}

std::string Stream::error() const {
  std::lock_guard<std::mutex> g(mu_);
  return error_;
}

void Stream::push(int32_t id) {
  {
    std::lock_guard<std::mutex> g(mu_);
    ids_.push_back(id);
  }
  cv_.notify_all();
}

void Stream::end(Finish f, std::string error) {
  {
    std::lock_guard<std::mutex> g(mu_);
    if (finish_ != Finish::none) return;
    finish_ = f;
    error_ = std::move(error);
  }
  cv_.notify_all();
}

Scheduler::Scheduler(const model::CausalLM& lm, const SchedulerOptions& opts, std::vector<int32_t> stop_ids)
    : lm_(lm), opts_(opts), stop_ids_(std::move(stop_ids)) {
  JET_CHECK(opts.max_batch >= 1, "--max-batch must be >= 1, got {}", opts.max_batch);
  JET_CHECK(opts.ctx_size >= 2, "--ctx-size must be >= 2, got {}", opts.ctx_size);
  slots_.resize(opts.max_batch);
  thread_ = std::thread([this] { loop(); });
  std::unique_lock<std::mutex> lk(start_mu_);
  start_cv_.wait(lk, [&] { return started_; });
  if (!start_error_.empty()) {
    lk.unlock();
    thread_.join();
    JET_FAIL("{}", start_error_);
  }
}

Scheduler::~Scheduler() { shutdown(); }

std::shared_ptr<Stream> Scheduler::submit(GenRequest req) {
  auto seq = std::make_unique<Seq>();
  seq->req = std::move(req);
  seq->stream = std::make_shared<Stream>();
  auto stream = seq->stream;
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_) {
      stream->end(Finish::cancelled);
      return stream;
    }
    waiting_.push_back(std::move(seq));
  }
  cv_.notify_all();
  return stream;
}

std::future<ScoreResult> Scheduler::score(std::vector<int32_t> ids, int64_t top_k, bool next) {
  ScoreJob job{std::move(ids), top_k, next, {}};
  auto fut = job.done.get_future();
  {
    std::lock_guard<std::mutex> g(mu_);
    if (stopping_) {
      job.done.set_exception(std::make_exception_ptr(Error("the server is shutting down")));
      return fut;
    }
    scoring_.push_back(std::move(job));
  }
  cv_.notify_all();
  return fut;
}

int64_t Scheduler::waiting() {
  std::lock_guard<std::mutex> g(mu_);
  return static_cast<int64_t>(waiting_.size());
}

void Scheduler::shutdown() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Scheduler::end(int64_t slot, Finish f, const std::string& error) {
  slots_[slot]->stream->end(f, error);
  slots_[slot].reset();
  engine_->free(slot);
  --live_count_;
}

void Scheduler::emit(int64_t slot, int32_t id) {
  Seq& s = *slots_[slot];
  s.stream->push(id);
  ++s.generated;
  if (is_stop(id))
    end(slot, Finish::stop);
  else if (s.generated >= s.req.max_tokens || engine_->length(slot) >= opts_.ctx_size)
    end(slot, Finish::length);  // max_tokens, or no room in the cache to feed this token
  else if (s.stream->cancelled())
    end(slot, Finish::cancelled);
}

void Scheduler::loop() {
  try {
    if (opts_.threads > 0) at::set_num_threads(opts_.threads);
    engine::EngineOptions eo;
    eo.max_batch = opts_.max_batch;
    eo.max_len = opts_.ctx_size;
    eo.prefill_chunk = opts_.prefill_chunk;
    eo.cuda_graph = opts_.cuda_graph;
    engine::SamplingParams greedy;
    greedy.temperature = 0;
    engine_ = std::make_unique<engine::Engine>(lm_, eo, greedy);
  } catch (const std::exception& e) {
    start_error_ = e.what();
    if (start_error_.empty()) start_error_ = "serve: the engine could not start";
  }
  {
    std::lock_guard<std::mutex> g(start_mu_);
    started_ = true;
  }
  start_cv_.notify_all();
  if (!engine_) return;

  for (;;) {
    std::vector<std::unique_ptr<Seq>> admit;
    std::deque<ScoreJob> scoring;
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !waiting_.empty() || !scoring_.empty() || live_count_ > 0; });
      if (stopping_) {
        for (auto& w : waiting_) w->stream->end(Finish::cancelled);
        waiting_.clear();
        for (auto& j : scoring_) j.done.set_exception(std::make_exception_ptr(Error("the server is shutting down")));
        scoring_.clear();
        break;
      }
      scoring.swap(scoring_);
      int64_t free_slots = opts_.max_batch - live_count_;
      while (free_slots-- > 0 && !waiting_.empty()) {
        admit.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
      }
    }
    // Scoring requests: one forward each, between decode steps.
    for (auto& j : scoring) {
      try {
        j.done.set_value(score_ids(lm_, j.ids, j.top_k, j.next));
      } catch (const std::exception&) {
        j.done.set_exception(std::current_exception());
      }
    }
    // New requests are prefilled into free slots between decode steps.
    for (auto& seq : admit) {
      if (seq->stream->cancelled()) {
        seq->stream->end(Finish::cancelled);
        continue;
      }
      const int64_t slot = engine_->alloc();
      slots_[slot] = std::move(seq);
      ++live_count_;
      try {
        emit(slot, engine_->prefill(slot, slots_[slot]->req.prompt, slots_[slot]->req.sampling));
      } catch (const std::exception& e) {
        end(slot, Finish::error, e.what());
      }
    }
    for (int64_t s = 0; s < opts_.max_batch; ++s)
      if (slots_[s] && slots_[s]->stream->cancelled()) end(s, Finish::cancelled);
    if (live_count_ == 0) continue;
    std::vector<int32_t> next;
    try {
      next = engine_->step();
    } catch (const std::exception& e) {
      for (int64_t s = 0; s < opts_.max_batch; ++s)
        if (slots_[s]) end(s, Finish::error, e.what());
      continue;
    }
    for (int64_t s = 0; s < opts_.max_batch; ++s)
      if (slots_[s]) emit(s, next[s]);
  }
  for (int64_t s = 0; s < opts_.max_batch; ++s)
    if (slots_[s]) end(s, Finish::cancelled);
  engine_.reset();
}

}  // namespace jet::server
