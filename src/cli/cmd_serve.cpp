// `jet serve`: an OpenAI-compatible HTTP server (src/server) over the generation engine. Prints the
// URL it listens on; SIGINT / SIGTERM stop accepting, answer the requests in flight, and exit 0.
#include <ATen/Parallel.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include <fmt/format.h>

#include "cli/command.h"
#include "cli/model_args.h"
#include "core/check.h"
#include "core/device.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "server/scheduler.h"
#include "server/server.h"

namespace {

std::atomic<bool> g_quit{false};
// The first signal asks for a clean stop; a second one, while requests still finish, exits at once.
extern "C" void on_signal(int) {
  if (g_quit.exchange(true)) std::_Exit(130);
}

struct Opts {
  std::string model, device = "cpu", dtype = "fp32";
  jet::server::ServerOptions server;
  jet::server::SchedulerOptions sched;
  bool no_graph = false;
};

void run(const Opts& o) {
  const auto device = jet::parse_device(o.device);
  const auto dtype = jet::cli::parse_model_dtype(o.dtype, device);
  JET_CHECK(!o.model.empty(), "--model is required");
  JET_CHECK(o.server.port >= 0 && o.server.port <= 65535, "--port must be in [0, 65535], got {}", o.server.port);
  JET_CHECK(o.sched.threads >= 0, "--threads must be >= 0, got {}", o.sched.threads);
  JET_CHECK(o.server.http_threads >= 0, "--http-threads must be >= 0, got {}", o.server.http_threads);
  JET_CHECK(o.server.max_connections >= 1 && o.server.max_queue >= 1, "--max-connections and --max-queue must be >= 1");
  JET_CHECK(o.server.request_timeout > 0 && o.server.request_timeout <= 3600, "--request-timeout must be in (0, 3600]");
  JET_CHECK(o.server.shutdown_timeout >= 0 && o.server.shutdown_timeout <= 3600, "--shutdown-timeout must be in [0, 3600]");
  if (o.sched.threads > 0) at::set_num_threads(o.sched.threads);
  jet::model::LoadOptions load;
  load.quantized = dtype.quantized;
  auto ck = jet::model::load_checkpoint(o.model, load);
  JET_CHECK(ck.tokenizer, "{}: no tokenizer (an HF directory needs tokenizer.json)", ck.path);
  auto lm = jet::cli::build_model(ck, dtype, device);

  std::vector<int32_t> stop_ids;
  for (int64_t id : ck.config.eos_token_ids) stop_ids.push_back(static_cast<int32_t>(id));
  for (int32_t id : ck.tokenizer->stop_ids()) stop_ids.push_back(id);
  jet::server::SchedulerOptions so = o.sched;
  so.cuda_graph = !o.no_graph;
  jet::server::ServerOptions sv = o.server;
  if (sv.model_name.empty()) {
    auto p = std::filesystem::path(o.model);
    sv.model_name = (p.has_filename() ? p.filename() : p.parent_path().filename()).string();
  }

  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  jet::server::Scheduler sched(*lm, so, stop_ids);
  jet::server::serve(sched, *ck.tokenizer, ck.config.vocab_size, sv,
                     [&](const std::string& url) {
                       fmt::print("jet serve: {} on {} ({} {}, max batch {}, ctx {}) listening on {}\n",
                                  sv.model_name, device.str(), dtype.name(), o.device, so.max_batch,
                                  so.ctx_size, url);
                       std::fflush(stdout);
                     },
                     g_quit);
  sched.shutdown();
  fmt::print("jet serve: stopped\n");
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "GGUF file or HF directory (with a tokenizer)");
  app.add_option("--host", o->server.host, "address to listen on (default 127.0.0.1)");
  app.add_option("--port", o->server.port, "port, 0 = a free one (default 8080)");
  app.add_option("--model-name", o->server.model_name, "model id in /v1/models and responses (default: the path's name)");
  app.add_option("--max-batch", o->sched.max_batch, "sequences decoded together (default 8)");
  app.add_option("--ctx-size", o->sched.ctx_size, "tokens per sequence, prompt + completion (default 2048)");
  jet::cli::add_device_options(app, o->device, o->dtype);
  app.add_option("--threads", o->sched.threads, "intra-op CPU threads, 0 = default (default 0)");
  app.add_option("--http-threads", o->server.http_threads, "HTTP worker threads (default 2 * max batch + 4)");
  app.add_option("--max-connections", o->server.max_connections, "open connections at most (default 256)");
  app.add_option("--max-queue", o->server.max_queue, "requests waiting for a worker at most, beyond: 503 (default 64)");
  app.add_option("--request-timeout", o->server.request_timeout,
                 "seconds for a request to arrive whole, and for a stalled write (default 30)");
  app.add_option("--shutdown-timeout", o->server.shutdown_timeout,
                 "seconds requests in flight get after SIGTERM before they are cancelled (default 8)");
  jet::cli::add_engine_options(app, o->sched.prefill_chunk, o->no_graph);
  app.callback([o] { run(*o); });
}

JET_COMMAND("serve", "OpenAI-compatible HTTP server (/v1/completions, /v1/chat/completions)", setup);

}  // namespace
