// `jet serve`'s HTTP side: the transport (server/http.h: one event-driven I/O thread, a worker pool)
// hands complete requests to workers that validate them, tokenise them, submit them to the Scheduler
// (the engine thread) and answer from each request's token stream, whole or as server-sent events. Routes: GET /health, GET /v1/models, POST /v1/completions,
// POST /v1/chat/completions; errors are OpenAI-style JSON bodies.
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "server/scheduler.h"
#include "text/tokenizer.h"

namespace jet::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;           // 0 = a free port
  std::string model_name;    // the id /v1/models lists and responses carry
  int http_threads = 0;      // workers; 0 = 2 * max_batch + 4
  size_t max_connections = 256;  // open connections (the one waiting longest for a request makes room)
  size_t max_queue = 64;         // complete requests waiting for a worker; beyond: 503
  double request_timeout = 30;   // seconds for a request's header and body to arrive (and a write to progress)
  double shutdown_timeout = 8;   // seconds requests in flight get after quit before they are cancelled
};

// Binds, calls on_listen(url), and serves until quit becomes true; then stops accepting, answers 503
// to requests not yet started, lets the requests in flight finish for up to shutdown_timeout (then
// cancels them: sched.shutdown()), and returns. Throws (one line) when the address cannot be bound.
void serve(Scheduler& sched, const text::Tokenizer& tok, int64_t vocab, const ServerOptions& opts,
           const std::function<void(const std::string& url)>& on_listen, const std::atomic<bool>& quit);

}  // namespace jet::server
