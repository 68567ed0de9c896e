// Tokenizer unit tests: round trips, streaming UTF-8, the teacher's chat template, bad input.
// (Parity with HF tokenizers on thousands of strings: tests/py/test_tokenizer_parity.py.)
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "core/check.h"
#include "text/load.h"

namespace {

const char* kTeacher = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

std::string write_tmp(const std::string& name, const std::string& body) {
  std::string dir = testing::TempDir() + "jet_tok_" + std::to_string(getpid());
  std::string cmd = "mkdir -p " + dir;
  EXPECT_EQ(system(cmd.c_str()), 0);
  std::string path = dir + "/" + name;
  std::ofstream(path) << body;
  return path;
}

// A two-merge byte-level BPE in tokenizer.json form ("h e", "he l").
std::string tiny_json(const std::string& merges, const std::string& pre = R"({"type":"ByteLevel"})") {
  return R"({"model":{"type":"BPE","vocab":{"h":0,"e":1,"l":2,"o":3,"he":4,"hel":5,"Ġ":6},"merges":)" + merges +
         R"(},"added_tokens":[{"id":7,"content":"<eot>","special":true}],"pre_tokenizer":)" + pre + "}";
}

TEST(Tokenizer, TinyJsonEncodesDecodesAndRecognisesSpecials) {
  auto tok = jet::text::load_tokenizer(write_tmp("tokenizer.json", tiny_json(R"(["h e", ["he", "l"]])")));
  EXPECT_EQ(tok.vocab_size(), 8);
  EXPECT_EQ(tok.encode("hello"), (std::vector<int32_t>{5, 2, 3}));
  EXPECT_EQ(tok.encode("hel<eot>he"), (std::vector<int32_t>{5, 7, 4}));
  EXPECT_EQ(tok.decode({5, 7, 4}), "hel<eot>he");
  EXPECT_EQ(tok.decode({5, 7, 4}, /*skip_special_tokens=*/true), "helhe");
  EXPECT_TRUE(tok.is_special(7));
  EXPECT_FALSE(tok.is_special(5));
}

// Merges run as HF runs them: lowest (rank, position) first, with pairs formed by a merge competing at
// once. Here "a b" (rank 1) makes "ab", then "ab a" (rank 0) beats the second "a b": "abab" -> aba|b
// (a pass that merged every "a b" first would give ab|ab).
TEST(Tokenizer, MergeOrderFollowsRankThenPosition) {
  auto tok = jet::text::load_tokenizer(write_tmp(
      "order.json", R"({"model":{"type":"BPE","vocab":{"a":0,"b":1,"ab":2,"aba":3},"merges":["ab a","a b"]},)"
                    R"("pre_tokenizer":{"type":"ByteLevel"}})"));
  EXPECT_EQ(tok.encode("abab"), (std::vector<int32_t>{3, 1}));
  EXPECT_EQ(tok.encode("ab"), (std::vector<int32_t>{2}));
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

TEST(Tokenizer, TeacherRoundTripsAndRendersChatML) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  EXPECT_EQ(tok.vocab_size(), 49152);
  for (std::string s : {"Hello, world!", "naïve café — 東京 😀👍🏽", "  x\t\n\n 12345 ", "<|im_start|>user\nhi"})
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  EXPECT_EQ(tok.encode("2024"), (std::vector<int32_t>{34, 32, 34, 36}));  // digits split one by one
  ASSERT_TRUE(tok.has_chat_template());
  EXPECT_EQ(tok.apply_chat_template({{"user", "Hi"}}),
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_EQ(tok.apply_chat_template({{"system", "S"}, {"user", "U"}}, false),
            "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n");
  auto stops = tok.stop_ids();
  EXPECT_NE(std::find(stops.begin(), stops.end(), 2), stops.end());  // <|im_end|>
}

// True when s is a sequence of whole UTF-8 characters.
bool whole_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    unsigned char c = s[i];
    size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

TEST(Tokenizer, StreamDecoderNeverSplitsUtf8) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  const std::string text = "a😀b東京é👨‍👩‍👧c🧑🏿‍💻";
  auto ids = tok.encode(text);
  int held_back = 0;  // tokens that ended inside a character
  jet::text::StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    EXPECT_TRUE(whole_utf8(piece)) << "piece of token " << id << " splits a character";
    held_back += !whole_utf8(tok.decode({id}));
    out += piece;
  }
  out += sd.flush();
  EXPECT_EQ(out, text);
  EXPECT_GT(held_back, 0) << "no token of the test text ends inside a character";
}

// Chat templates come from tokenizer_config.json beside tokenizer.json.
jet::text::Tokenizer with_template(const std::string& name, const std::string& tpl, const std::string& added) {
  std::string dir = write_tmp(name + "_placeholder", "");
  dir = dir.substr(0, dir.find_last_of('/')) + "/" + name;
  EXPECT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/tokenizer.json")
      << R"({"model":{"type":"BPE","vocab":{"a":0,"b":1},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"},)"
      << R"("added_tokens":)" << added << "}";
  nlohmann::json cfg = {{"chat_template", tpl}, {"bos_token", "<|begin_of_text|>"}, {"eos_token", "<|eot_id|>"}};
  std::ofstream(dir + "/tokenizer_config.json") << cfg.dump();
  return jet::text::load_tokenizer(dir);
}

TEST(Tokenizer, Llama3ChatTemplateAndStops) {
  auto tok = with_template(
      "llama3",
      "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
      "{{ m['content'] }}<|eot_id|>{% endfor %}",
      R"([{"id":2,"content":"<|begin_of_text|>","special":true},{"id":3,"content":"<|eot_id|>","special":true},)"
      R"({"id":4,"content":"<|start_header_id|>","special":true},{"id":5,"content":"<|end_header_id|>","special":true}])");
  EXPECT_EQ(tok.bos_id(), 2);
  EXPECT_EQ(tok.eos_id(), 3);
  EXPECT_EQ(tok.apply_chat_template({{"user", "ab"}}),
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nab<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(tok.stop_ids(), (std::vector<int32_t>{3}));
}

TEST(Tokenizer, UnknownChatTemplateNamesTheFallbackFlag) {
  auto tok = with_template("inst", "{% for m in messages %}[INST] {{ m['content'] }} [/INST]{% endfor %}", "[]");
  ASSERT_TRUE(tok.has_chat_template());
  try {
    tok.apply_chat_template({{"user", "ab"}});
    ADD_FAILURE() << "no error for an unrecognised template";
  } catch (const jet::Error& e) {
    EXPECT_NE(std::string(e.what()).find("--no-chat-template"), std::string::npos) << e.what();
  }
}

TEST(Tokenizer, BadInputIsOneLineError) {
  auto expect_error = [](const std::string& path, const std::string& needle) {
    try {
      jet::text::load_tokenizer(path);
      ADD_FAILURE() << "no error for " << path;
    } catch (const jet::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  };
  expect_error("/nonexistent/tokenizer.json", "no such file");
  expect_error(write_tmp("broken.json", "{\"model\": {"), "malformed JSON");
  expect_error(write_tmp("unknown_merge.json", tiny_json(R"(["h x"])")), "not in the vocabulary");
  expect_error(write_tmp("bad_pre.json", tiny_json(R"(["h e"])", R"({"type":"Metaspace"})")),
               "unsupported pre_tokenizer type 'Metaspace'");
  expect_error(write_tmp("lstrip.json", R"({"model":{"type":"BPE","vocab":{"a":0},"merges":[]},)"
                                        R"("added_tokens":[{"id":1,"content":"<m>","lstrip":true}],)"
                                        R"("pre_tokenizer":{"type":"ByteLevel"}})"),
               "added token \"<m>\" uses lstrip");
  std::string dir = write_tmp("placeholder", "");
  dir = dir.substr(0, dir.find_last_of('/'));
  std::string empty_dir = dir + "/emptydir";
  ASSERT_EQ(system(("mkdir -p " + empty_dir).c_str()), 0);
  expect_error(empty_dir, "missing tokenizer.json");
}

}  // namespace
