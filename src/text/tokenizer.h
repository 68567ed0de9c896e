// Byte-level BPE tokenizer (GPT-2 style) with added/special tokens and the model's chat template.
// Loaded from an HF tokenizer.json or from GGUF metadata (tokenizer.ggml.*); can write tokenizer.json.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace jet::gguf {
class File;
}

namespace jet::text {

struct ChatMessage {
  std::string role, content;  // role: system | user | assistant
};

class Tokenizer {
 public:
  static Tokenizer from_json_file(const std::string& path);   // HF tokenizer.json (+ sibling
                                                               // tokenizer_config.json if present)
  static Tokenizer from_gguf(const gguf::File& f);

  // Special/added tokens written literally in text are recognised; add_bos prepends BOS if the
  // tokenizer defines one and asks for it.
  std::vector<int32_t> encode(const std::string& text, bool add_special_tokens = false) const;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens = false) const;

  int32_t vocab_size() const;
  int32_t bos_id() const;   // -1 if none
  int32_t eos_id() const;   // -1 if none
  std::vector<int32_t> stop_ids() const;  // eos + chat end-of-turn tokens
  bool is_special(int32_t id) const;

  bool has_chat_template() const;
  // Renders messages with the model's template (ChatML and Llama-3 style are recognised; a default
  // system prompt is added where the template does so).
  std::string apply_chat_template(const std::vector<ChatMessage>& messages,
                                  bool add_generation_prompt = true) const;

  nlohmann::json to_hf_json() const;          // tokenizer.json
  nlohmann::json hf_tokenizer_config() const; // tokenizer_config.json (chat_template, special tokens)

  struct Impl;
 private:
  std::shared_ptr<const Impl> impl_;
};

// Incremental detokenizer for streaming: feeds ids, returns the text that is complete UTF-8 so far.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tok) : tok_(tok) {}
  std::string push(int32_t id);
  std::string flush();

 private:
  const Tokenizer& tok_;
  std::string pending_;
};

}  // namespace jet::text
