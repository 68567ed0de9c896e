// Request validation and response formatting of the OpenAI-compatible API.
#include "server/api.h"

#include <algorithm>
#include <random>

#include <fmt/format.h>

#include "core/check.h"
#include "io/hf_json.h"

namespace jet::server {
namespace {

using nlohmann::json;

// Beyond it sampling is uniform for any logits; larger values only risk overflow in fp32.
constexpr double kMaxTemperature = 100;

ApiError bad(const std::string& param, const std::string& what) {
  return ApiError(400, fmt::format("'{}' {}", param, what), param);
}

// The field, or nullptr when it is absent or null.
const json* field(const json& body, const char* name) {
  auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double def) {
  const json* v = field(body, name);
  if (!v) return def;
  if (!v->is_number()) throw bad(name, "must be a number");
  return v->get<double>();
}

std::optional<int64_t> integer(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return std::nullopt;
  if (!v->is_number_integer()) throw bad(name, "must be an integer");
  return v->get<int64_t>();
}

bool boolean(const json& body, const char* name) {
  const json* v = field(body, name);
  if (!v) return false;
  if (!v->is_boolean()) throw bad(name, "must be a boolean");
  return v->get<bool>();
}

std::string message_content(const json& m, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  const json* c = field(m, "content");
  if (!c) throw bad(param, "is required");
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) throw bad(param, "must be a string or a list of text parts");
  std::string out;
  for (const json& part : *c) {
    const json* text = part.is_object() ? field(part, "text") : nullptr;
    if (!text || !text->is_string() || part.value("type", std::string("text")) != "text")
      throw bad(param, "parts must be {\"type\": \"text\", \"text\": string}");
    out += text->get<std::string>();
  }
  return out;
}

}  // namespace

ApiError::ApiError(int status_, std::string message, std::string param_, std::string type_)
    : std::runtime_error(std::move(message)), status(status_), param(std::move(param_)), type(std::move(type_)) {}

json error_body(const std::string& message, const std::string& type, const std::string& param) {
  return {{"error",
           {{"message", message}, {"type", type}, {"param", param.empty() ? json(nullptr) : json(param)}, {"code", nullptr}}}};
}

json parse_body(const std::string& body) {
  constexpr int kMaxDepth = 64;  // no valid request nests deeper than a few levels
  if (io::json_depth(body, kMaxDepth + 1) > kMaxDepth)
    throw ApiError(400, fmt::format("the request body nests JSON deeper than {} levels", kMaxDepth));
  json j;
  try {
    j = json::parse(body);
  } catch (const json::exception& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON ({})", e.what()));
  }
  if (!j.is_object()) throw ApiError(400, "the request body must be a JSON object");
  return j;
}

ApiRequest parse_request(const json& body, Endpoint endpoint) {
  ApiRequest r;
  r.endpoint = endpoint;
  if (const json* m = field(body, "model"); m && !m->is_string()) throw bad("model", "must be a string");
  if (endpoint == Endpoint::completions) {
    const json* p = field(body, "prompt");
    if (!p) throw bad("prompt", "is required");
    if (p->is_array() && p->size() == 1 && ((*p)[0].is_string() || (*p)[0].is_array())) p = &(*p)[0];  // [one]
    auto ids_of = [](const json& list) {
      std::vector<int32_t> ids;
      for (const json& v : list) {
        const int64_t id = v.get<int64_t>();
        if (id < 0 || id > INT32_MAX) throw bad("prompt", fmt::format("holds token id {} out of range", id));
        ids.push_back(static_cast<int32_t>(id));
      }
      return ids;
    };
    auto is_ids = [](const json& v) {
      return v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_number_integer(); });
    };
    if (p->is_array() && p->size() > 1 && p->size() <= 256 && std::all_of(p->begin(), p->end(), [](const json& v) { return v.is_string(); })) {
      for (const json& v : *p) r.batch_text.push_back(v.get<std::string>());
      r.prompt_text = r.batch_text[0];
    } else if (p->is_array() && p->size() > 1 && p->size() <= 256 && std::all_of(p->begin(), p->end(), is_ids)) {
      for (const json& v : *p) r.batch_ids.push_back(ids_of(v));
      r.prompt_ids = r.batch_ids[0];
    } else if (p->is_string()) {
      r.prompt_text = p->get<std::string>();
    } else if (is_ids(*p)) {
      r.prompt_ids = ids_of(*p);
    } else {
      throw bad("prompt", "must be a string, a non-empty list of token ids, or a list of up to 256 of either");
    }
    r.echo = boolean(body, "echo");
    r.logprobs = integer(body, "logprobs");
    if (r.logprobs && (*r.logprobs < 0 || *r.logprobs > 20)) throw bad("logprobs", "must be in [0, 20]");
  } else {
    const json* ms = field(body, "messages");
    if (!ms || !ms->is_array() || ms->empty()) throw bad("messages", "must be a non-empty list of messages");
    for (size_t i = 0; i < ms->size(); ++i) {
      const json& m = (*ms)[i];
      if (!m.is_object()) throw bad(fmt::format("messages[{}]", i), "must be an object");
      const json* role = field(m, "role");
      if (!role || !role->is_string()) throw bad(fmt::format("messages[{}].role", i), "must be a string");
      const std::string rs = role->get<std::string>();
      if (rs != "system" && rs != "user" && rs != "assistant")
        throw bad(fmt::format("messages[{}].role", i), "must be system, user or assistant");
      r.messages.push_back({rs, message_content(m, i)});
    }
  }
  r.max_tokens = integer(body, "max_tokens");
  if (!r.max_tokens && endpoint == Endpoint::chat) r.max_tokens = integer(body, "max_completion_tokens");
  if (r.max_tokens && *r.max_tokens < (r.echo ? 0 : 1)) throw bad("max_tokens", r.echo ? "must be >= 0" : "must be >= 1 (0 only with echo)");
  if (auto n = integer(body, "n"); n && *n != 1) throw bad("n", "must be 1 (one choice per request)");

  r.sampling.temperature = number(body, "temperature", 1.0);
  if (!(r.sampling.temperature >= 0 && r.sampling.temperature <= kMaxTemperature))
    throw bad("temperature", fmt::format("must be in [0, {}]", kMaxTemperature));
  r.sampling.top_p = number(body, "top_p", 1.0);
  if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) throw bad("top_p", "must be in (0, 1]");
  r.sampling.top_k = integer(body, "top_k").value_or(0);
  if (r.sampling.top_k < 0) throw bad("top_k", "must be >= 0 (0 = off)");
  if (auto seed = integer(body, "seed")) {
    r.sampling.seed = static_cast<uint64_t>(*seed);
  } else {
    static std::random_device rd;
    r.sampling.seed = (static_cast<uint64_t>(rd()) << 32) ^ rd();
  }

  if (const json* s = field(body, "stop")) {
    if (s->is_string()) {
      r.stop.push_back(s->get<std::string>());
    } else if (s->is_array() && s->size() <= 16 &&
               std::all_of(s->begin(), s->end(), [](const json& v) { return v.is_string(); })) {
      for (const json& v : *s) r.stop.push_back(v.get<std::string>());
    } else {
      throw bad("stop", "must be a string or a list of at most 16 strings");
    }
    if (std::any_of(r.stop.begin(), r.stop.end(), [](const std::string& x) { return x.empty(); }))
      throw bad("stop", "strings must not be empty");
  }
  r.stream = boolean(body, "stream");
  if (r.stream && needs_scoring(r)) throw bad("stream", "is not supported with logprobs, echo or several prompts");
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "must be an object");
    r.include_usage = boolean(*so, "include_usage");
  }
  return r;
}

Prepared prepare(const ApiRequest& r, const text::Tokenizer& tok, int64_t vocab, int64_t ctx_size) {
  Prepared p;
  if (r.endpoint == Endpoint::chat) {
    if (!tok.has_chat_template()) throw ApiError(400, "this model has no chat template; use /v1/completions", "messages");
    std::string rendered;
    try {
      rendered = tok.apply_chat_template(r.messages, /*add_generation_prompt=*/true);
    } catch (const Error& e) {
      throw ApiError(400, e.what(), "messages");
    }
    p.prompt = tok.encode(rendered, /*add_special_tokens=*/false);  // the template holds any BOS
  } else if (!r.prompt_ids.empty()) {
    p.prompt = r.prompt_ids;
    for (int32_t id : p.prompt)
      if (id >= vocab) throw bad("prompt", fmt::format("holds token id {}, outside the vocabulary of {}", id, vocab));
  } else {
    p.prompt = tok.encode(r.prompt_text, /*add_special_tokens=*/true);
  }
  const int64_t n = static_cast<int64_t>(p.prompt.size());
  if (n == 0) throw bad(r.endpoint == Endpoint::chat ? "messages" : "prompt", "gives no tokens");
  if (n >= ctx_size)
    throw ApiError(400,
                   fmt::format("the prompt has {} tokens; the context (--ctx-size) holds {}, prompt and completion",
                               n, ctx_size),
                   r.endpoint == Endpoint::chat ? "messages" : "prompt");
  if (r.max_tokens && *r.max_tokens > ctx_size - n)  // (n + max_tokens could overflow)
    throw ApiError(400,
                   fmt::format("{} prompt tokens + max_tokens {} exceed the context of {} tokens", n, *r.max_tokens,
                               ctx_size),
                   "max_tokens");
  p.max_tokens = r.max_tokens ? *r.max_tokens
                              : r.endpoint == Endpoint::completions ? std::min<int64_t>(16, ctx_size - n) : ctx_size - n;
  return p;
}

bool needs_scoring(const ApiRequest& r) {
  return r.logprobs.has_value() || r.echo || !r.batch_text.empty() || !r.batch_ids.empty();
}

std::optional<json> complete_scored(const ApiRequest& r, Scheduler& sched, const text::Tokenizer& tok, int64_t vocab,
                                    const std::string& id, int64_t created, const std::string& model,
                                    const std::function<bool()>& client_gone) {
  const size_t n = std::max<size_t>(1, std::max(r.batch_text.size(), r.batch_ids.size()));
  const int64_t ctx_size = sched.options().ctx_size;
  std::vector<Prepared> prepared;
  for (size_t i = 0; i < n; ++i) {  // every prompt checked before any work
    ApiRequest one = r;
    if (!r.batch_text.empty()) one.prompt_text = r.batch_text[i];
    if (!r.batch_ids.empty()) one.prompt_ids = r.batch_ids[i];
    prepared.push_back(prepare(one, tok, vocab, ctx_size));
  }
  // A greedy one-token completion with logprobs (what lm-evaluation-harness's local-completions sends for
  // log-likelihoods) is not generated: its token is the most likely after the prompt, which the prompt's
  // scoring forward reads anyway (the same forward, once instead of a prefill and a scoring).
  auto from_score = [&](size_t i) { return r.logprobs && r.sampling.temperature == 0 && prepared[i].max_tokens == 1; };
  auto score = [&](std::vector<int32_t> ids, int64_t top_k, bool next) {
    try {
      return sched.score(std::move(ids), top_k, next).get();
    } catch (const std::exception& e) {
      throw ApiError(500, fmt::format("scoring failed: {}", e.what()), "", "server_error");
    }
  };
  std::vector<std::shared_ptr<Stream>> streams(n);
  struct CancelAll {  // however this returns (an error, the client gone), no generation of it runs on
    std::vector<std::shared_ptr<Stream>>& s;
    ~CancelAll() {
      for (auto& x : s)
        if (x) x->cancel();
    }
  } cancel_all{streams};
  for (size_t i = 0; i < n; ++i)
    if (prepared[i].max_tokens > 0 && !from_score(i))
      streams[i] = sched.submit({prepared[i].prompt, prepared[i].max_tokens, r.sampling});
  json choices = json::array();
  Usage usage;
  for (size_t i = 0; i < n; ++i) {
    const auto& prompt = prepared[i].prompt;
    std::vector<int32_t> gen;
    std::string finish = "length";
    TextAssembler text(tok, r.stop);
    ScoreResult sc;
    if (from_score(i)) {
      sc = score(prompt, *r.logprobs, /*next=*/true);
      const auto [next_id, next_logprob] = sc.next.front();
      gen.push_back(next_id);
      text.push(next_id);
      if (text.stopped() || sched.is_stop(next_id)) finish = "stop";
      sc.logprob.push_back(next_logprob);
      sc.next.resize(std::min(sc.next.size(), static_cast<size_t>(*r.logprobs)));  // logprobs: 0 asks for none
      sc.top.push_back(std::move(sc.next));
    } else if (streams[i]) {
      for (int32_t t; !text.stopped() && streams[i]->next(t);) {
        gen.push_back(t);
        text.push(t);
        if (client_gone()) return std::nullopt;
      }
      streams[i]->cancel();
      const Finish f = streams[i]->finish();
      if (f == Finish::error) throw ApiError(500, "generation failed: " + streams[i]->error(), "", "server_error");
      if (f == Finish::cancelled && !text.stopped()) throw ApiError(503, "the server is shutting down", "", "server_error");
      if (text.stopped() || f == Finish::stop) finish = "stop";
    }
    text.flush();
    usage.prompt_tokens += static_cast<int64_t>(prompt.size());
    usage.completion_tokens += static_cast<int64_t>(gen.size());
    json choice = {{"index", i}, {"finish_reason", finish}, {"logprobs", nullptr},
                   {"text", (r.echo ? tok.decode(prompt, /*skip_special_tokens=*/true) : std::string()) + text.text()}};
    if (r.logprobs) {
      std::vector<int32_t> all(prompt);
      all.insert(all.end(), gen.begin(), gen.end());
      if (!from_score(i) && all.size() >= 2) sc = score(all, *r.logprobs, /*next=*/false);
      // Positions reported: the prompt's (with echo) and the generated tokens'.
      const size_t first = r.echo ? 0 : prompt.size();
      json tokens = json::array(), lps = json::array(), tops = json::array(), offsets = json::array();
      int64_t offset = 0;
      for (size_t p = first; p < all.size(); ++p) {
        const std::string piece = tok.decode({all[p]});
        tokens.push_back(piece);
        offsets.push_back(offset);
        offset += static_cast<int64_t>(piece.size());
        if (p == 0) {
          lps.push_back(nullptr);
          tops.push_back(nullptr);
          continue;
        }
        lps.push_back(sc.logprob[p - 1]);
        json top = json::object();
        for (const auto& [tid, lp] : sc.top[p - 1]) {
          const std::string key = tok.decode({tid});
          if (!top.contains(key)) top[key] = lp;
        }
        tops.push_back(top);
      }
      choice["logprobs"] = {{"tokens", tokens}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offsets}};
    }
    choices.push_back(choice);
  }
  return json{{"id", id}, {"object", "text_completion"}, {"created", created}, {"model", model},
              {"choices", choices}, {"usage", usage_json(usage)}};
}

TextAssembler::TextAssembler(const text::Tokenizer& tok, std::vector<std::string> stop)
    : tok_(tok), dec_(tok), stop_(std::move(stop)) {}

std::string TextAssembler::release(bool final) {
  size_t longest = 0;
  for (const auto& s : stop_) longest = std::max(longest, s.size());
  // The first stop string (a match cannot start before sent_: its beginning was held back).
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, text_.find(s, sent_));
  if (cut != std::string::npos) {
    text_.resize(cut);
    stopped_ = true;
    final = true;
  }
  size_t hold = 0;  // the longest tail that is the beginning of a stop string
  if (!final)
    for (const auto& s : stop_)
      for (size_t k = std::min(s.size() - 1, text_.size() - sent_); k > hold; --k)
        if (text_.compare(text_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
  const size_t end = text_.size() - hold;
  std::string out = text_.substr(sent_, end - sent_);
  sent_ = end;
  return out;
}

std::string TextAssembler::push(int32_t id) {
  if (stopped_) return {};
  if (!tok_.is_special(id)) text_ += dec_.push(id);
  return release(false);
}

std::string TextAssembler::flush() {
  if (stopped_) return {};
  text_ += dec_.flush();
  return release(true);
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens}};
}

json completion_json(Endpoint e, const std::string& id, int64_t created, const std::string& model,
                     const std::string& text, const std::string& finish, const Usage& u) {
  json choice = {{"index", 0}, {"finish_reason", finish}};
  if (e == Endpoint::chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", e == Endpoint::chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})},
          {"usage", usage_json(u)}};
}

json chunk_json(Endpoint e, const std::string& id, int64_t created, const std::string& model, const std::string& text,
                const std::string& finish, bool role_chunk) {
  json choice = {{"index", 0}, {"finish_reason", finish.empty() ? json(nullptr) : json(finish)}};
  if (e == Endpoint::chat) {
    json delta = json::object();
    if (role_chunk) delta["role"] = "assistant";
    if (!text.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
    choice["logprobs"] = nullptr;
  }
  return {{"id", id},
          {"object", e == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", model},
          {"choices", json::array({choice})}};
}

}  // namespace jet::server
