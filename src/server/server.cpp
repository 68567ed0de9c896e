// HTTP routes over the scheduler (the transport is server/http.h).
#include "server/server.h"

#include <ctime>
#include <memory>

#include <fmt/format.h>

#include "core/check.h"
#include "server/api.h"
#include "server/http.h"

namespace jet::server {
namespace {

using nlohmann::json;

// Generated text may hold invalid UTF-8 (a stray byte token); it is replaced, never an exception.
std::string wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(http::Reply& res, int status, const json& j) { res.send(status, "application/json", wire(j)); }

void send_error(http::Reply& res, const ApiError& e) {
  send_json(res, e.status, error_body(e.what(), e.type, e.param));
}

std::string sse(const json& j) { return "data: " + wire(j) + "\n\n"; }

struct Context {
  Scheduler& sched;
  const text::Tokenizer& tok;
  int64_t vocab;
  std::string model;
  std::atomic<int64_t> next_id{0};
};

// One generation's state, shared by the handler and (streaming) the content provider.
struct Job {
  Endpoint endpoint;
  std::string id, model;
  int64_t created;
  Usage usage;
  std::shared_ptr<Stream> stream;
  TextAssembler text;
  bool include_usage;
  Job(const text::Tokenizer& tok, std::vector<std::string> stop) : text(tok, std::move(stop)) {}
  // Whatever ends the answer (its end, an error, a stream never read), the sequence ends with it.
  ~Job() {
    if (stream) stream->cancel();
  }

  // Reads the next token and returns the text it makes final; false at the end (stream ended or
  // a stop string appeared: then the engine is asked to end the sequence).
  bool next(std::string& piece) {
    int32_t t;
    if (text.stopped() || !stream->next(t)) return false;
    ++usage.completion_tokens;
    piece = text.push(t);
    if (text.stopped()) stream->cancel();
    return true;
  }
  // "stop" | "length", or an ApiError for a failed or cancelled sequence.
  std::string finish() const {
    if (text.stopped()) return "stop";
    const Finish f = stream->finish();
    if (f == Finish::stop || f == Finish::length) return finish_str(f);
    if (f == Finish::error) throw ApiError(500, "generation failed: " + stream->error(), "", "server_error");
    throw ApiError(503, "the server is shutting down", "", "server_error");
  }
};

void handle_generate(Context& ctx, const http::Request& req, http::Reply& res, Endpoint ep) {
  std::shared_ptr<Job> job;
  try {
    const ApiRequest r = parse_request(parse_body(req.body), ep);
    if (needs_scoring(r)) {  // logprobs / echo / several prompts: answered whole by api.cpp
      const auto answer = complete_scored(r, ctx.sched, ctx.tok, ctx.vocab, fmt::format("cmpl-{}", ctx.next_id++),
                                          static_cast<int64_t>(std::time(nullptr)), ctx.model,
                                          [&res] { return res.client_gone(); });
      if (answer) send_json(res, 200, *answer);
      return;
    }
    const Prepared p = prepare(r, ctx.tok, ctx.vocab, ctx.sched.options().ctx_size);
    job = std::make_shared<Job>(ctx.tok, r.stop);
    job->endpoint = ep;
    job->id = fmt::format("{}-{}", ep == Endpoint::chat ? "chatcmpl" : "cmpl", ctx.next_id++);
    job->model = ctx.model;
    job->created = static_cast<int64_t>(std::time(nullptr));
    job->usage.prompt_tokens = static_cast<int64_t>(p.prompt.size());
    job->include_usage = r.include_usage;
    job->stream = ctx.sched.submit({p.prompt, p.max_tokens, r.sampling});
    if (!r.stream) {
      std::string piece, text;
      while (job->next(piece)) {
        text += piece;
        if (res.client_gone()) return;  // the client left: ~Job cancels the generation
      }
      text += job->text.flush();
      send_json(res, 200, completion_json(ep, job->id, job->created, job->model, text, job->finish(), job->usage));
      return;
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  }
  // Streamed: server-sent events as the tokens come (chunked; close-delimited for HTTP/1.0 clients).
  res.start(200, "text/event-stream", {{"Cache-Control", "no-cache"}});
  auto write = [&](const std::string& s) { return res.write(s); };
  bool ok = job->endpoint != Endpoint::chat ||
            write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, "", "", /*role_chunk=*/true)));
  std::string piece;
  while (ok && job->next(piece))
    if (!piece.empty()) ok = write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, piece, "")));
  if (!ok) {  // the client went away
    job->stream->cancel();
    return;
  }
  piece = job->text.flush();
  if (!piece.empty()) write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, piece, "")));
  try {
    write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, "", job->finish())));
    if (job->include_usage) {
      json u = chunk_json(job->endpoint, job->id, job->created, job->model, "", "");
      u["choices"] = json::array();
      u["usage"] = usage_json(job->usage);
      write(sse(u));
    }
  } catch (const ApiError& e) {
    write(sse(error_body(e.what(), e.type, e.param)));
  }
  write("data: [DONE]\n\n");
  res.end();
}

}  // namespace

void serve(Scheduler& sched, const text::Tokenizer& tok, int64_t vocab, const ServerOptions& opts,
           const std::function<void(const std::string&)>& on_listen, const std::atomic<bool>& quit) {
  Context ctx{sched, tok, vocab, opts.model_name};
  http::Options ho;
  ho.host = opts.host;
  ho.port = opts.port;
  ho.workers = opts.http_threads > 0 ? opts.http_threads : static_cast<int>(2 * sched.options().max_batch + 4);
  ho.max_connections = opts.max_connections;
  ho.max_queue = opts.max_queue;
  ho.request_timeout = opts.request_timeout;
  ho.drain_timeout = opts.shutdown_timeout;
  http::Server svr(ho);
  svr.set_error_body([](int status, const std::string& message) {
    return wire(error_body(message, status >= 500 ? "server_error" : "invalid_request_error", ""));
  });
  // /health and /v1/models answer on the I/O thread: even with every worker busy.
  svr.route("GET", "/health", [&](const http::Request&, http::Reply& res) {
    send_json(res, 200,
              {{"status", "ok"}, {"slots", sched.options().max_batch}, {"slots_live", sched.live()},
               {"waiting", sched.waiting()}});
  }, true);
  svr.route("GET", "/v1/models", [&](const http::Request&, http::Reply& res) {
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", ctx.model}, {"object", "model"}, {"created", 0}, {"owned_by", "jet"},
                                      {"max_model_len", sched.options().ctx_size}}})}});
  }, true);
  svr.route("POST", "/v1/completions", [&](const http::Request& req, http::Reply& res) {
    handle_generate(ctx, req, res, Endpoint::completions);
  });
  svr.route("POST", "/v1/chat/completions", [&](const http::Request& req, http::Reply& res) {
    handle_generate(ctx, req, res, Endpoint::chat);
  });
  const int port = svr.bind();
  on_listen(fmt::format("http://{}:{}", opts.host, port));
  // After quit, requests in flight get shutdown_timeout to finish; then their generations are cancelled
  // (non-streamed ones are answered 503, streams end with an error event).
  svr.run(quit, [&] { sched.shutdown(); });
}

}  // namespace jet::server
