// Tokenizer unit tests: BPE on hand-made vocabularies (tokenizer.json and GGUF), round trips, streaming
// UTF-8, the chat templates, bad input. (Parity with HF tokenizers on thousands of strings:
// tests/py/test_tokenizer_parity.py.)
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "../error_of.h"
#include "../gguf_builder.h"
#include "core/check.h"
#include "text/load.h"

namespace {

using jet::test::error_of;
using jet::text::ChatMessage;
using jet::text::Tokenizer;
using Ids = std::vector<int32_t>;

const char* kTeacher = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

// Writes body to <tmp>/jet_tok_<pid>/<sub>/<name> and returns the path.
std::string write_tmp(const std::string& sub, const std::string& name, const std::string& body) {
  const std::string dir = testing::TempDir() + "jet_tok_" + std::to_string(getpid()) + "/" + sub;
  EXPECT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  const std::string path = dir + "/" + name;
  std::ofstream(path) << body;
  return path;
}

// A byte-level BPE in tokenizer.json form: h e l o he hel Ġ, merges as given, <eot> special.
std::string tiny_json(const std::string& merges, const std::string& pre = R"({"type":"ByteLevel"})") {
  return R"({"model":{"type":"BPE","vocab":{"h":0,"e":1,"l":2,"o":3,"he":4,"hel":5,"Ġ":6},"merges":)" + merges +
         R"(},"added_tokens":[{"id":7,"content":"<eot>","special":true}],"pre_tokenizer":)" + pre + "}";
}

// tokenizer.json with the given vocabulary/merges/added tokens, plus tokenizer_config.json beside it.
Tokenizer json_tokenizer(const std::string& sub, const nlohmann::json& vocab, const nlohmann::json& merges,
                         const nlohmann::json& added, const nlohmann::json& config = nullptr) {
  nlohmann::json j = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", merges}}},
                      {"added_tokens", added},
                      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}}}};
  if (!config.is_null()) write_tmp(sub, "tokenizer_config.json", config.dump());
  return jet::text::load_tokenizer(write_tmp(sub, "tokenizer.json", j.dump()));
}

// A GGUF image with a tokenizer: tokens a b c Ġ ab abc Ġa <eot> (control) <user> (user-defined),
// merges "a b", "ab c", "Ġ a".
jet::test::Builder tokenizer_gguf(const std::string& model, const std::string& pre,
                                  std::vector<std::string> merges = {"a b", "ab c", "Ġ a"},
                                  std::vector<int32_t> types = {1, 1, 1, 1, 1, 1, 1, 3, 4}) {
  using namespace jet::test::gguf_types;
  const std::vector<std::string> tokens = {"a", "b", "c", "Ġ", "ab", "abc", "Ġa", "<eot>", "<user>"};
  jet::test::Builder g;
  g.header(0, 6);
  g.key("tokenizer.ggml.model", STRING).str(model);
  g.key("tokenizer.ggml.pre", STRING).str(pre);
  g.key("tokenizer.ggml.tokens", ARRAY).put<uint32_t>(STRING).put<uint64_t>(tokens.size());
  for (auto& t : tokens) g.str(t);
  g.key("tokenizer.ggml.token_type", ARRAY).put<uint32_t>(I32).put<uint64_t>(types.size());
  for (int32_t t : types) g.put<int32_t>(t);
  g.key("tokenizer.ggml.merges", ARRAY).put<uint32_t>(STRING).put<uint64_t>(merges.size());
  for (auto& m : merges) g.str(m);
  g.key("tokenizer.ggml.eos_token_id", U32).put<uint32_t>(7);
  return g;
}

bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const unsigned char c = s[i];
    const size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST(Tokenizer, TinyJsonEncodesDecodesAndRecognisesSpecials) {
  auto tok = jet::text::load_tokenizer(write_tmp("tiny", "tokenizer.json", tiny_json(R"(["h e", ["he", "l"]])")));
  EXPECT_EQ(tok.vocab_size(), 8);
  EXPECT_EQ(tok.encode("hello"), (Ids{5, 2, 3}));
  EXPECT_EQ(tok.encode("hel<eot>he"), (Ids{5, 7, 4}));
  EXPECT_EQ(tok.decode({5, 7, 4}), "hel<eot>he");
  EXPECT_EQ(tok.decode({5, 7, 4}, /*skip_special_tokens=*/true), "helhe");
  EXPECT_TRUE(tok.is_special(7));
  EXPECT_FALSE(tok.is_special(5));
}

TEST(Tokenizer, MergesApplyByRankThenLeftmost) {
  // "a a" has the best rank; in "aaa" the leftmost pair merges first, "aaaa" becomes two "aa".
  auto tok = json_tokenizer("ranks", {{"a", 0}, {"b", 1}, {"aa", 2}, {"ab", 3}, {"aab", 4}},
                            {"a a", "a b", "aa b"}, nlohmann::json::array());
  EXPECT_EQ(tok.encode("aaa"), (Ids{2, 0}));
  EXPECT_EQ(tok.encode("aaaa"), (Ids{2, 2}));
  EXPECT_EQ(tok.encode("aab"), (Ids{4}));   // a a -> aa, then aa b
  EXPECT_EQ(tok.encode("ab"), (Ids{3}));
  EXPECT_EQ(tok.encode("aaab"), (Ids{2, 3}));  // (a a) first, then a b
}

// Pairs formed by a merge compete at once: "a b" (rank 1) makes "ab", then "ab a" (rank 0) beats the
// second "a b": "abab" -> aba|b (a pass that merged every "a b" first would give ab|ab).
TEST(Tokenizer, MergeOrderFollowsRankThenPosition) {
  auto tok = json_tokenizer("order", {{"a", 0}, {"b", 1}, {"ab", 2}, {"aba", 3}}, {"ab a", "a b"},
                            nlohmann::json::array());
  EXPECT_EQ(tok.encode("abab"), (Ids{3, 1}));
  EXPECT_EQ(tok.encode("ab"), (Ids{2}));
}

TEST(Tokenizer, LongPieceRoundTrips) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  std::string word;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) word += char('a' + (x = x * 1103515245u + 12345u) % 26);
  auto ids = tok.encode(word);
  EXPECT_LT(ids.size(), word.size());
  EXPECT_EQ(tok.decode(ids), word);
}

TEST(Tokenizer, GgufVocabularyWithControlAndUserTokens) {
  const auto g = tokenizer_gguf("gpt2", "gpt2");
  const Tokenizer tok = Tokenizer::from_gguf(g.parse());
  EXPECT_EQ(tok.vocab_size(), 9);
  EXPECT_EQ(tok.eos_id(), 7);
  EXPECT_EQ(tok.bos_id(), -1);
  // " ab": "a b" (rank 0) beats "Ġ a" (rank 2), leaving Ġ + ab.
  EXPECT_EQ(tok.encode("abc ab"), (Ids{5, 3, 4}));
  EXPECT_EQ(tok.encode(" a<eot>c<user>"), (Ids{6, 7, 2, 8}));
  EXPECT_TRUE(tok.is_special(7));
  EXPECT_FALSE(tok.is_special(8));  // user-defined: matched literally, not special
  EXPECT_EQ(tok.decode({6, 7, 2, 8}, /*skip_special_tokens=*/true), " ac<user>");
  EXPECT_EQ(tok.stop_ids(), (Ids{7}));
}

TEST(Tokenizer, TeacherRoundTripsAndRendersChatML) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  EXPECT_EQ(tok.vocab_size(), 49152);
  for (const std::string& s : std::vector<std::string>{"Hello, world!", "naïve café — 東京 😀👍🏽", "  x\t\n\n 12345 ",
                                                     "<|im_start|>user\nhi", "",
                                                     std::string("broken \x80 utf8 \xc3 \xe6\x9d"), std::string(5000, 'z')})
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  EXPECT_EQ(tok.encode("2024"), (Ids{34, 32, 34, 36}));  // digits split one by one
  // Bytes that never occur in UTF-8 have no symbol in this vocabulary: the unknown token, as in HF.
  EXPECT_EQ(tok.encode("\xff"), (Ids{0}));
  ASSERT_TRUE(tok.has_chat_template());
  const std::string sys =
      "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";
  EXPECT_EQ(tok.apply_chat_template({{"user", "Hi"}}), sys + "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tok.apply_chat_template({{"system", "S"}, {"user", "U"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
  EXPECT_EQ(tok.apply_chat_template({}), "<|im_start|>assistant\n");  // the template's loop.first never runs
  EXPECT_EQ(tok.apply_chat_template({{"user", "a"}, {"assistant", "b"}, {"user", "c"}}),
            sys + "<|im_start|>user\na<|im_end|>\n<|im_start|>assistant\nb<|im_end|>\n<|im_start|>user\nc<|im_end|>\n"
                  "<|im_start|>assistant\n");
  auto stops = tok.stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 2), stops.end());  // <|im_end|>
  EXPECT_NE(error_of([&] { tok.apply_chat_template({{"tool", "x"}}); }).find("unknown role 'tool'"),
            std::string::npos);
}

TEST(Tokenizer, OtherChatTemplates) {
  const nlohmann::json added = {{{"id", 3}, {"content", "<|begin_of_text|>"}, {"special", true}},
                                {{"id", 4}, {"content", "<|eot_id|>"}, {"special", true}},
                                {{"id", 5}, {"content", "<|start_header_id|>"}, {"special", true}},
                                {{"id", 6}, {"content", "<|end_header_id|>"}, {"special", true}},
                                {{"id", 7}, {"content", "<|im_start|>"}, {"special", true}},
                                {{"id", 8}, {"content", "<|im_end|>"}, {"special", true}}};
  const nlohmann::json vocab = {{"a", 0}, {"b", 1}, {"Ġ", 2}};
  auto with_template = [&](const std::string& sub, const std::string& tpl) {
    return json_tokenizer(sub, vocab, nlohmann::json::array(), added,
                          {{"chat_template", tpl}, {"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}});
  };
  // Llama-3.0 style (trims each message).
  const auto llama = with_template(
      "llama3",
      "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = '<|start_header_id|>' + "
      "message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 "
      "%}{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}{% if add_generation_prompt %}{{ "
      "'<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}");
  EXPECT_EQ(llama.bos_id(), 3);
  EXPECT_EQ(llama.apply_chat_template({{"system", " S "}, {"user", "U\n"}}),
            "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|><|start_header_id|>user"
            "<|end_header_id|>\n\nU<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n");
  // ChatML whose system text is template code, not a literal default: no system turn is invented.
  const auto chatml = with_template("chatml",
                                    "{% for message in messages %}{{'<|im_start|>system\n' + message['content'] + "
                                    "'<|im_end|>'}}{% endfor %}");
  EXPECT_EQ(chatml.apply_chat_template({{"user", "U"}}, false), "<|im_start|>user\nU<|im_end|>\n");
  EXPECT_EQ(chatml.stop_ids(), (Ids{4, 8}));
  // Unrecognised and unsupported templates name the way out.
  const auto other = with_template("other", "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}");
  EXPECT_NE(error_of([&] { other.apply_chat_template({{"user", "U"}}); }).find("--no-chat-template"),
            std::string::npos);
  const auto llama31 = with_template("llama31", "<|start_header_id|>system Cutting Knowledge Date: December 2023");
  EXPECT_NE(error_of([&] { llama31.apply_chat_template({{"user", "U"}}); }).find("Llama-3.1+"), std::string::npos);
  const auto none = json_tokenizer("none", vocab, nlohmann::json::array(), added);
  EXPECT_FALSE(none.has_chat_template());
  EXPECT_NE(error_of([&] { none.apply_chat_template({{"user", "U"}}); }).find("no chat template"), std::string::npos);
}

TEST(Tokenizer, StreamDecoderNeverSplitsUtf8) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  const std::string text = "a😀b東京é👨‍👩‍👧c🧑🏿‍💻";
  int held_back = 0;  // tokens that end inside a character
  jet::text::StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : tok.encode(text)) {
    const std::string piece = sd.push(id);
    EXPECT_TRUE(valid_utf8(piece)) << "broken UTF-8 emitted after id " << id;
    held_back += !valid_utf8(tok.decode({id}));
    out += piece;
  }
  out += sd.flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(held_back, 0) << "no token of the test text ends inside a character";
  // One byte token at a time (invalid UTF-8 alone encodes to single-byte tokens): nothing until the
  // character is complete.
  const std::string emoji = "\xF0\x9F\x98\x80";
  jet::text::StreamDecoder bytes(tok);
  for (int k = 0; k < 4; ++k) {
    const Ids id = tok.encode(emoji.substr(k, 1));
    ASSERT_EQ(id.size(), 1u);
    EXPECT_EQ(bytes.push(id[0]), k < 3 ? "" : emoji) << "byte " << k;
  }
  // A sequence that never completes is passed through once the next character arrives.
  EXPECT_EQ(bytes.push(tok.encode("\xE6")[0]), "");
  EXPECT_EQ(bytes.push(tok.encode("x")[0]), "\xE6x");
  EXPECT_EQ(bytes.push(tok.encode("\xC3")[0]), "");
  EXPECT_EQ(bytes.flush(), "\xC3");
}

TEST(Tokenizer, BadInputIsOneLineError) {
  auto load_error = [](const std::string& path) { return error_of([&] { jet::text::load_tokenizer(path); }); };
  auto has = [](const std::string& msg, const std::string& needle) {
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  };
  has(load_error("/nonexistent/tokenizer.json"), "no such file");
  has(load_error(write_tmp("bad", "broken.json", "{\"model\": {")), "malformed JSON");
  has(load_error(write_tmp("bad", "layout.json", R"({"model": {"type": "BPE", "vocab": {"a": 0}}, "pre_tokenizer": {"type": "ByteLevel"}})")),
      "unexpected tokenizer.json layout");
  has(load_error(write_tmp("bad", "unknown_merge.json", tiny_json(R"(["h x"])"))), "merge 'h x' names a token");
  has(load_error(write_tmp("bad", "bad_pre.json", tiny_json(R"(["h e"])", R"({"type":"Metaspace"})"))),
      "unsupported pre_tokenizer type 'Metaspace'");
  const std::string empty_dir = testing::TempDir() + "jet_tok_" + std::to_string(getpid()) + "/emptydir";
  ASSERT_EQ(system(("mkdir -p " + empty_dir).c_str()), 0);
  has(load_error(empty_dir), "missing tokenizer.json");
  has(load_error(write_tmp("bad", "lstrip.json", R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[]},)"
                                                 R"("added_tokens":[{"id":1,"content":"<m>","lstrip":true}],)"
                                                 R"("pre_tokenizer":{"type":"ByteLevel"}})")),
      "added token \"<m>\" uses lstrip");
  // Ids are checked before they size or index the vocabulary (a negative one wrote out of bounds).
  has(load_error(write_tmp("bad", "neg_id.json", R"({"model":{"type":"BPE","vocab":{"a":0,"b":-3},"merges":[]},)"
                                                 R"("pre_tokenizer":{"type":"ByteLevel"}})")),
      "token 'b' has id -3, outside [0, 16777216)");
  has(load_error(write_tmp("bad", "neg_added.json", R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[]},)"
                                                   R"("added_tokens":[{"id":-1,"content":"<m>"}],)"
                                                   R"("pre_tokenizer":{"type":"ByteLevel"}})")),
      "an added token has id -1");
  has(load_error(write_tmp("bad", "huge_id.json", R"({"model":{"type":"BPE","vocab":{"a":4000000000},"merges":[]},)"
                                                 R"("pre_tokenizer":{"type":"ByteLevel"}})")),
      "token 'a' has id 4000000000");

  auto gguf_error = [](const jet::test::Builder& g) { return error_of([&] { Tokenizer::from_gguf(g.parse()); }); };
  has(gguf_error(tokenizer_gguf("gpt2", "no-such-pre")), "pre-tokeniser 'no-such-pre' is not supported");
  has(gguf_error(tokenizer_gguf("llama", "default")), "tokenizer model 'llama' is not supported");
  has(gguf_error(tokenizer_gguf("gpt2", "gpt2", {"a b", "b zz"})), "merge 'b zz' names a token");
  has(gguf_error(tokenizer_gguf("gpt2", "gpt2", {"a b"}, {1, 1})), "token_type has 2 entries for 9 tokens");

  auto tok = jet::text::load_tokenizer(write_tmp("tiny", "tokenizer.json", tiny_json(R"(["h e"])")));
  has(error_of([&] { tok.decode({3, 99}); }), "token id 99 outside the vocabulary");
}

}  // namespace
