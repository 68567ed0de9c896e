// HTTP routes over the scheduler.
#include "server/server.h"

#include <httplib.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <thread>

#include <fmt/format.h>

#include "core/check.h"
#include "server/api.h"

namespace jet::server {
namespace {

using nlohmann::json;

// Generated text may hold invalid UTF-8 (a stray byte token); it is replaced, never an exception.
std::string wire(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(wire(j), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
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

void handle_generate(Context& ctx, const httplib::Request& req, httplib::Response& res, Endpoint ep) {
  std::shared_ptr<Job> job;
  try {
    const ApiRequest r = parse_request(parse_body(req.body), ep);
    if (needs_scoring(r)) {  // logprobs / echo / several prompts: answered whole by api.cpp
      send_json(res, 200, complete_scored(r, ctx.sched, ctx.tok, ctx.vocab, fmt::format("cmpl-{}", ctx.next_id++),
                                          static_cast<int64_t>(std::time(nullptr)), ctx.model));
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
      while (job->next(piece)) text += piece;
      text += job->text.flush();
      send_json(res, 200, completion_json(ep, job->id, job->created, job->model, text, job->finish(), job->usage));
      return;
    }
  } catch (const ApiError& e) {
    send_error(res, e);
    return;
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider("text/event-stream", [job](size_t, httplib::DataSink& sink) {
    auto write = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
    bool ok = job->endpoint != Endpoint::chat ||
              write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, "", "", /*role_chunk=*/true)));
    std::string piece;
    while (ok && job->next(piece))
      if (!piece.empty()) ok = write(sse(chunk_json(job->endpoint, job->id, job->created, job->model, piece, "")));
    if (!ok) {  // the client went away
      job->stream->cancel();
      return false;
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
    sink.done();
    return true;
  });
}

}  // namespace

void serve(Scheduler& sched, const text::Tokenizer& tok, int64_t vocab, const ServerOptions& opts,
           const std::function<void(const std::string&)>& on_listen, const std::atomic<bool>& quit) {
  Context ctx{sched, tok, vocab, opts.model_name};
  httplib::Server svr;
  const int threads = opts.http_threads > 0 ? opts.http_threads : static_cast<int>(2 * sched.options().max_batch + 4);
  svr.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  svr.set_payload_max_length(16 << 20);
  svr.set_keep_alive_timeout(2);  // an idle keep-alive connection delays a shutdown by at most this

  svr.Get("/health", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"status", "ok"}, {"slots", sched.options().max_batch}, {"slots_live", sched.live()},
               {"waiting", sched.waiting()}});
  });
  svr.Get("/v1/models", [&](const httplib::Request&, httplib::Response& res) {
    send_json(res, 200,
              {{"object", "list"},
               {"data", json::array({{{"id", ctx.model}, {"object", "model"}, {"created", 0}, {"owned_by", "jet"},
                                      {"max_model_len", sched.options().ctx_size}}})}});
  });
  svr.Post("/v1/completions", [&](const httplib::Request& req, httplib::Response& res) {
    handle_generate(ctx, req, res, Endpoint::completions);
  });
  svr.Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
    handle_generate(ctx, req, res, Endpoint::chat);
  });
  svr.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body(what, "server_error", ""));
  });
  svr.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler's own error body
    const std::string msg = res.status == 404   ? fmt::format("no route {} {}", req.method, req.path)
                            : res.status == 413 ? std::string("the request body is too large")
                                                : fmt::format("HTTP {}", res.status);
    send_json(res, res.status, error_body(msg, "invalid_request_error", ""));
  });

  const int port = opts.port == 0 ? svr.bind_to_any_port(opts.host) : (svr.bind_to_port(opts.host, opts.port) ? opts.port : -1);
  JET_CHECK(port > 0, "serve: cannot listen on {}:{}", opts.host, opts.port);
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!quit && !done) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    svr.stop();
  });
  on_listen(fmt::format("http://{}:{}", opts.host, port));
  svr.listen_after_bind();  // returns after stop(), once the requests in flight are answered
  done = true;
  watcher.join();
}

}  // namespace jet::server
