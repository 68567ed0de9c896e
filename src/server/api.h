// The OpenAI-compatible API of `jet serve` at its edge: request JSON -> validated structs (ApiError
// with the HTTP status and the offending field otherwise), completion text assembly (special tokens
// dropped, stop strings cut, UTF-8-safe streaming pieces) and the response / stream-chunk JSON.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/sampler.h"
#include "server/scheduler.h"
#include "text/tokenizer.h"

namespace jet::server {

// An error answered as {"error": {"message", "type", "param", "code"}} with status.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = {}, std::string type = "invalid_request_error");
  int status;
  std::string param, type;
};
nlohmann::json error_body(const std::string& message, const std::string& type, const std::string& param);

// Parses a request body; invalid JSON or a non-object is a 400.
nlohmann::json parse_body(const std::string& body);

enum class Endpoint { completions, chat };

struct ApiRequest {
  Endpoint endpoint = Endpoint::completions;
  std::string prompt_text;              // completions with a string prompt
  std::vector<int32_t> prompt_ids;      // completions with token ids (else filled by tokenize())
  // completions with a list of prompts (strings or token-id lists): all of them, one choice each
  std::vector<std::string> batch_text;
  std::vector<std::vector<int32_t>> batch_ids;
  std::optional<int64_t> logprobs;      // completions: log-probabilities with this many top alternatives
  bool echo = false;                    // completions: the prompt is part of the text (and of logprobs)
  std::vector<text::ChatMessage> messages;  // chat
  std::optional<int64_t> max_tokens;
  engine::SamplingParams sampling;
  std::vector<std::string> stop;
  bool stream = false, include_usage = false;
};

// Validates the fields of a /v1/completions or /v1/chat/completions body (types and ranges; unknown
// fields are ignored). Sampling defaults are OpenAI's: temperature 1, top_p 1, top_k off.
ApiRequest parse_request(const nlohmann::json& body, Endpoint endpoint);

// The prompt's ids (string prompts tokenised, chat messages rendered with the chat template first),
// checked against the model's vocabulary and the context; resolves max_tokens (completions: 16, chat:
// the rest of the context) and errors when prompt + max_tokens exceed ctx_size.
struct Prepared {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 0;
};
Prepared prepare(const ApiRequest& r, const text::Tokenizer& tok, int64_t vocab, int64_t ctx_size);

// Requests that need complete_scored(): logprobs, echo or several prompts.
bool needs_scoring(const ApiRequest& r);
// Such a request, answered whole (not streamed): every prompt is generated from as usual (max_tokens may
// be 0 with echo), then prompt + completion are scored by the scheduler (a greedy one-token completion with
// logprobs is not generated: its token is read from the prompt's scoring forward); choice i is prompt i, with
// "logprobs": {tokens, token_logprobs, top_logprobs, text_offset} (OpenAI's completions format; with echo
// they start at the prompt's first token, whose log-probability is null). Every generation it started ends
// with it (an error included); nullopt when client_gone() turns true while it generates (the client left).
std::optional<nlohmann::json> complete_scored(const ApiRequest& r, Scheduler& sched, const text::Tokenizer& tok,
                                              int64_t vocab, const std::string& id, int64_t created,
                                              const std::string& model, const std::function<bool()>& client_gone);

// Completion text from generated ids: special tokens give no text, pieces are whole UTF-8, and
// the text ends before the first stop string (held back while it may still be one's beginning).
class TextAssembler {
 public:
  TextAssembler(const text::Tokenizer& tok, std::vector<std::string> stop);
  // The text that is final after id; sets stopped() once a stop string appeared.
  std::string push(int32_t id);
  std::string flush();  // what was held back, at the end
  bool stopped() const { return stopped_; }
  const std::string& text() const { return text_; }  // everything so far (stop string excluded)

 private:
  std::string release(bool final);
  const text::Tokenizer& tok_;
  text::StreamDecoder dec_;
  std::vector<std::string> stop_;
  std::string text_;  // decoded so far
  size_t sent_ = 0;   // bytes of text_ returned
  bool stopped_ = false;
};

// Response JSON. id: "cmpl-N" / "chatcmpl-N"; finish: "stop" | "length"; usage counts.
struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0;
};
nlohmann::json usage_json(const Usage& u);
nlohmann::json completion_json(Endpoint e, const std::string& id, int64_t created, const std::string& model,
                               const std::string& text, const std::string& finish, const Usage& u);
// A stream chunk: text (a piece), or with finish set the last chunk (empty delta); role_chunk: the
// first chat chunk ({"role": "assistant"}).
nlohmann::json chunk_json(Endpoint e, const std::string& id, int64_t created, const std::string& model,
                          const std::string& text, const std::string& finish, bool role_chunk = false);

}  // namespace jet::server
