// `jet serve`'s HTTP side: cpp-httplib worker threads parse and validate requests, tokenise them,
// submit them to the Scheduler (the engine thread) and answer from each request's token stream,
// whole or as server-sent events. Routes: GET /health, GET /v1/models, POST /v1/completions,
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
  int http_threads = 0;      // 0 = 2 * max_batch + 4
};

// Binds, calls on_listen(url), and serves until quit becomes true; then stops accepting, lets the
// requests in flight finish, and returns. Throws (one line) when the address cannot be bound.
void serve(Scheduler& sched, const text::Tokenizer& tok, int64_t vocab, const ServerOptions& opts,
           const std::function<void(const std::string& url)>& on_listen, const std::atomic<bool>& quit);

}  // namespace jet::server
