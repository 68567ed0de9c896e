// ModelConfig parsing: Llama, Qwen2, the official Jet-Nemotron schema, round trips and bad input.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "../error_of.h"
#include "core/fs.h"
#include "model/config.h"
#include "../gguf_builder.h"
#include "io/gguf.h"
#include "tiny_model.h"

using jet::model::ModelConfig;
using jet::model::RopeScaling;

namespace {

using jet::test::error_of;

TEST(Config, Llama) {
  auto j = jet::test::tiny_config_json();
  j["attention_bias"] = true;
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  auto c = ModelConfig::from_json(j, "cfg");
  EXPECT_EQ(c.model_type, "llama");
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.num_key_value_heads, 2);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_EQ(c.rope.scaling, RopeScaling::llama3);
  EXPECT_EQ(c.rope.original_max_position_embeddings, 8192);
  EXPECT_EQ(c.layer_types, std::vector<std::string>(4, "attn"));
  EXPECT_EQ(c.eos_token_ids, std::vector<int64_t>{2});
}

TEST(Config, Qwen2WithTransformers5RopeParameters) {
  nlohmann::json j = {{"model_type", "qwen2"}, {"vocab_size", 100}, {"hidden_size", 64},
                      {"intermediate_size", 96}, {"num_hidden_layers", 2},
                      {"num_attention_heads", 4}, {"num_key_value_heads", 2},
                      {"layer_types", {"full_attention", "full_attention"}},
                      {"rope_parameters", {{"rope_theta", 1e6}, {"rope_type", "default"}}},
                      {"eos_token_id", {5, 7}}};
  auto c = ModelConfig::from_json(j, "cfg");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_DOUBLE_EQ(c.rope.theta, 1e6);
  EXPECT_EQ(c.rope.scaling, RopeScaling::none);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.layer_types, (std::vector<std::string>{"attn", "attn"}));
  EXPECT_EQ(c.eos_token_ids, (std::vector<int64_t>{5, 7}));
  auto back = ModelConfig::from_json(c.to_json(), "back");
  EXPECT_DOUBLE_EQ(back.rope.theta, 1e6);
  EXPECT_EQ(back.to_json()["layer_types"][0], "full_attention");
}

TEST(Config, OfficialJetNemotron) {
  auto c = ModelConfig::from_file("tests/model/data/jetlm_2B.json");
  EXPECT_EQ(c.model_type, "jet_nemotron");
  EXPECT_EQ(c.architecture, "JetNemotronForCausalLM");
  ASSERT_EQ(c.layer_types.size(), 28u);
  EXPECT_EQ(std::count(c.layer_types.begin(), c.layer_types.end(), "attn"), 2);
  EXPECT_EQ(std::count(c.layer_types.begin(), c.layer_types.end(), "swa"), 2);
  EXPECT_EQ(c.layer_types[14], "attn");
  EXPECT_EQ(c.layer_types[20], "swa");
  ASSERT_TRUE(c.swa && c.jet);
  EXPECT_EQ(c.swa->window_size, 1152);
  EXPECT_EQ(c.jet->num_heads, 12);
  EXPECT_EQ(c.jet->head_dim, 96);
  EXPECT_NEAR(c.jet->expand_v, 2.6666666667, 1e-12);
  EXPECT_EQ(c.jet->conv_size, 4);
  EXPECT_EQ(c.jet->dconv_generator_reduction, 8);
  EXPECT_DOUBLE_EQ(c.jet->norm_eps, 1e-5);  // given as the string "1e-5"
  EXPECT_EQ(c.head_dim, 128);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_EQ(c.rope.scaling, RopeScaling::none);
  // Round trip keeps the parsed fields and the keys we do not interpret.
  nlohmann::json j = c.to_json();
  EXPECT_EQ(j["efficient_attention_config"]["jet"]["dconv_implementation"], "triton");
  EXPECT_EQ(j["layer_types"], c.source["layer_types"]);
  auto back = ModelConfig::from_json(j, "back");
  EXPECT_EQ(back.layer_types, c.layer_types);
  EXPECT_EQ(back.swa->window_size, 1152);
  EXPECT_DOUBLE_EQ(back.jet->norm_eps, 1e-5);
  EXPECT_EQ(back.jet->head_dim, 96);
}

TEST(Config, BadInput) {
  auto j = jet::test::tiny_config_json();
  j["model_type"] = "mamba";
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "x/config.json"); }),
            "x/config.json: unsupported architecture 'mamba' (model_type; supported: llama, qwen2, "
            "jet_nemotron)");
  j = jet::test::tiny_config_json();
  j.erase("hidden_size");
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }), "c: missing 'hidden_size'");
  j = jet::test::tiny_config_json();
  j["layer_types"] = {"attn", "attn"};
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: 'layer_types' has 2 entries, num_hidden_layers is 4");
  j = jet::test::tiny_config_json();
  j["layer_types"] = {"attn", "attn", "swa", "attn"};
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: layer_types uses 'swa' but efficient_attention_config has no 'swa'");
  j = jet::test::tiny_config_json();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of([&] { ModelConfig::from_json(j, "c"); }).find("not a multiple"), std::string::npos);
  j = jet::test::tiny_config_json();
  j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", 4.0}};
  EXPECT_NE(error_of([&] { ModelConfig::from_json(j, "c"); }).find("unsupported rope scaling type 'yarn'"),
            std::string::npos);

  const auto dir = std::filesystem::temp_directory_path() / "jet_test_config";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "config.json").string();
  std::ofstream(path) << "{\"model_type\": \"llama\", ";
  std::string e = error_of([&] { ModelConfig::from_file(path); });
  EXPECT_EQ(e.rfind(path + ": malformed JSON", 0), 0u) << e;
  EXPECT_EQ(e.find('\n'), std::string::npos);
  jet::remove_tree(dir.string());
}

// Issue 15: absurd sizes, non-finite / non-positive eps and rope values are refused with the key named,
// before anything is sized from them.
TEST(Config, RefusesAbsurdAndNonFiniteValues) {
  auto with = [](const char* key, nlohmann::json v) {
    auto j = jet::test::tiny_config_json();
    j[key] = v;
    return error_of([&] { ModelConfig::from_json(j, "c"); });
  };
  EXPECT_EQ(with("num_hidden_layers", 100000000), "c: num_hidden_layers = 100000000 is out of range [1, 1024]");
  EXPECT_EQ(with("hidden_size", 4294967295LL), "c: hidden_size = 4294967295 is out of range [1, 65536]");
  EXPECT_EQ(with("vocab_size", int64_t(1) << 40), "c: vocab_size = 1099511627776 is out of range [1, 16777216]");
  EXPECT_EQ(with("intermediate_size", int64_t(1) << 33), "c: intermediate_size = 8589934592 is out of range [1, 1048576]");
  for (nlohmann::json bad : {nlohmann::json("nan"), nlohmann::json("inf"), nlohmann::json(0), nlohmann::json(-1e-5)}) {
    EXPECT_NE(with("rms_norm_eps", bad).find("c: rms_norm_eps = "), std::string::npos) << bad;
    EXPECT_NE(with("rope_theta", bad).find("c: rope_theta = "), std::string::npos) << bad;
  }
  EXPECT_EQ(with("rms_norm_eps", "nan"), "c: rms_norm_eps = nan must be a finite number in (0, 1)");
  EXPECT_EQ(with("bos_token_id", 97), "c: bos_token_id 97 is outside the vocabulary of 97");
  EXPECT_EQ(with("max_position_embeddings", -4), "c: max_position_embeddings = -4 is out of range [0, 16777216]");
  auto j = jet::test::tiny_config_json();
  j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}, {"low_freq_factor", 4.0},
                       {"high_freq_factor", 4.0}, {"original_max_position_embeddings", 8192}};
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: rope high_freq_factor 4 must exceed low_freq_factor 4");
  j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", "nan"}};
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(j, "c"); }),
            "c: rope factor = nan must be a finite number in [1e-06, 1000000]");
  EXPECT_EQ(error_of([&] { ModelConfig::from_json(jet::test::tiny_config_json(), "c"); }), "no error");
}

// A GGUF's llama.* keys go through the same checks as config.json (they skipped the hidden / heads
// divisibility and every limit before).
TEST(Config, GgufMetadataSharesTheChecks) {
  namespace T = jet::test::gguf_types;
  auto gguf = [](uint32_t hidden, uint32_t heads, float eps, float theta) {
    jet::test::Builder b;
    b.header(0, 8);
    b.key("general.architecture", T::STRING).str("llama");
    b.key("llama.embedding_length", T::U32).put<uint32_t>(hidden);
    b.key("llama.feed_forward_length", T::U32).put<uint32_t>(48);
    b.key("llama.block_count", T::U32).put<uint32_t>(2);
    b.key("llama.attention.head_count", T::U32).put<uint32_t>(heads);
    b.key("llama.attention.layer_norm_rms_epsilon", T::F32).put<float>(eps);
    b.key("llama.rope.freq_base", T::F32).put<float>(theta);
    b.key("llama.vocab_size", T::U32).put<uint32_t>(97);
    return b;
  };
  auto err = [](const jet::test::Builder& b) {
    return error_of([&] { ModelConfig::from_gguf(b.parse("m.gguf")); });
  };
  EXPECT_EQ(err(gguf(32, 4, 1e-5f, 1e4f)), "no error");
  EXPECT_EQ(err(gguf(0xFFFFFFFFu, 4, 1e-5f, 1e4f)), "m.gguf: hidden_size = 4294967295 is out of range [1, 65536]");
  EXPECT_EQ(err(gguf(130, 4, 1e-5f, 1e4f)),
            "m.gguf: hidden_size 130 is not a multiple of num_attention_heads 4 (give head_dim)");
  EXPECT_EQ(err(gguf(32, 4, std::nanf(""), 1e4f)), "m.gguf: rms_norm_eps = nan must be a finite number in (0, 1)");
  EXPECT_EQ(err(gguf(32, 4, 1e-5f, 0.0f)), "m.gguf: rope_theta = 0 must be a finite number in [1, 1e+30]");
  EXPECT_EQ(err(gguf(32, 4, -1e-5f, 1e4f)), "m.gguf: rms_norm_eps = -1e-05 must be a finite number in (0, 1)");
}

}  // namespace
