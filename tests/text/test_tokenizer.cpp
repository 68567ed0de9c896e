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

TEST(Tokenizer, StreamDecoderNeverSplitsUtf8) {
  auto tok = jet::text::load_tokenizer(kTeacher);
  const std::string text = "a😀b東京é👨‍👩‍👧c";
  auto ids = tok.encode(text);
  jet::text::StreamDecoder sd(tok);
  std::string out;
  for (int32_t id : ids) {
    std::string piece = sd.push(id);
    // Every emitted piece is whole UTF-8: it re-encodes to itself through a std::string round trip
    // only if no lead byte is left dangling at its end.
    if (!piece.empty()) {
      unsigned char last = piece.back();
      EXPECT_TRUE(last < 0x80 || (last & 0xC0) == 0x80) << "piece ends in a lead byte";
    }
    out += piece;
  }
  out += sd.flush();
  EXPECT_EQ(out, text);
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
  std::string dir = write_tmp("placeholder", "");
  dir = dir.substr(0, dir.find_last_of('/'));
  std::string empty_dir = dir + "/emptydir";
  ASSERT_EQ(system(("mkdir -p " + empty_dir).c_str()), 0);
  expect_error(empty_dir, "missing tokenizer.json");
}

}  // namespace
