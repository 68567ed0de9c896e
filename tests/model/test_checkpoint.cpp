// HF-directory checkpoints: load + forward, the KV-cache decode path against the full forward, and
// bad input (missing config, unsupported architecture, missing / mis-shaped weights, truncated
// safetensors, unknown --device / --dtype values) with one-line errors; save_hf_dir's overwrite rules.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "../error_of.h"
#include "core/device.h"
#include "core/fs.h"
#include "io/hf_json.h"
#include "model/checkpoint.h"
#include "tiny_model.h"

namespace fs = std::filesystem;
using jet::model::CausalLM;
using jet::model::load_checkpoint;
using jet::model::ModelConfig;

namespace {

using jet::test::error_of;

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / fmt::format("jet_ckpt_{}_{}", getpid(),
                                                   ::testing::UnitTest::GetInstance()->current_test_info()->name());
    jet::remove_tree(dir_.string());
    fs::create_directories(dir_);
    write(jet::test::tiny_config_json(), nullptr);
  }
  void TearDown() override { jet::remove_tree(dir_.string()); }

  // Writes config.json and model.safetensors (random weights, edited by `edit` if given).
  void write(const nlohmann::json& config, const std::function<void(jet::io::TensorMap&)>& edit) {
    jet::io::write_json_file((dir_ / "config.json").string(), config);
    auto w = jet::test::random_weights(ModelConfig::from_json(config, "cfg"), 3);
    if (edit) edit(w);
    jet::io::save_safetensors((dir_ / "model.safetensors").string(), w);
  }
  std::string dir() const { return dir_.string(); }
  fs::path dir_;
};

TEST_F(CheckpointTest, PrefillThenDecodeEqualsFullForward) {
  auto ck = load_checkpoint(dir());
  CausalLM lm(ck.config);
  lm.load_weights(ck.tensors, at::kFloat, at::kCPU, dir());
  at::InferenceMode guard;
  at::manual_seed(11);
  at::Tensor ids = at::randint(0, 97, {2, 13}, at::kLong);
  at::Tensor full = lm.forward(ids);  // [2, 13, V]
  auto cache = lm.new_cache(2, 13);
  std::vector<at::Tensor> parts{lm.forward(ids.narrow(1, 0, 5), 0, &cache)};
  parts.push_back(lm.forward(ids.narrow(1, 5, 3), 5, &cache));  // a multi-token chunk after a prefix
  for (int64_t t = 8; t < 13; ++t) parts.push_back(lm.forward(ids.narrow(1, t, 1), t, &cache));
  EXPECT_EQ(cache.length, 13);
  // fp32 rounding: relative to the largest logit.
  const float tol = 1e-5f * full.abs().max().item<float>();
  EXPECT_LT((at::cat(parts, 1) - full).abs().max().item<float>(), tol);
  // Each batch row alone gives the same logits as in the batch.
  EXPECT_LT((lm.forward(ids.narrow(0, 1, 1)) - full.narrow(0, 1, 1)).abs().max().item<float>(), tol);
  // bf16 stays close to fp32.
  CausalLM bf(ck.config);
  bf.load_weights(ck.tensors, at::kBFloat16, at::kCPU, dir());
  at::Tensor b = bf.forward(ids).to(at::kFloat);
  EXPECT_LT((b - full).abs().max().item<float>(), 0.1 * full.abs().max().item<float>());
}

TEST_F(CheckpointTest, ParameterCountAndCacheBytes) {
  auto ck = load_checkpoint(dir());
  CausalLM lm(ck.config);
  int64_t n = 0;
  for (const auto& [name, t] : ck.tensors) n += t.numel();
  EXPECT_EQ(lm.num_parameters(), n);
  EXPECT_EQ(lm.cache_bytes_per_token(4), 4 /*layers*/ * 2 * 2 /*kv heads*/ * 8 /*head_dim*/ * 4);
}

TEST_F(CheckpointTest, MissingConfig) {
  fs::remove(dir_ / "config.json");
  EXPECT_EQ(error_of([&] { load_checkpoint(dir()); }),
            dir() + ": missing config.json (expected an HF model directory)");
  EXPECT_EQ(error_of([&] { load_checkpoint(dir() + "/nope"); }),
            dir() + "/nope: no such file or directory");
}

TEST_F(CheckpointTest, UnsupportedArchitecture) {
  auto j = jet::test::tiny_config_json();
  j["model_type"] = "gpt2";
  jet::io::write_json_file((dir_ / "config.json").string(), j);
  EXPECT_NE(error_of([&] { load_checkpoint(dir()); }).find("unsupported architecture 'gpt2'"),
            std::string::npos);
}

TEST_F(CheckpointTest, MisShapedWeight) {
  write(jet::test::tiny_config_json(), [](jet::io::TensorMap& w) {
    w["model.layers.3.mlp.up_proj.weight"] = at::zeros({48, 31});
  });
  EXPECT_EQ(error_of([&] { load_checkpoint(dir()); }),
            dir() + ": weight 'model.layers.3.mlp.up_proj.weight' has shape [48, 31], expected [48, 32]");
}

TEST_F(CheckpointTest, MissingAndUnexpectedWeight) {
  write(jet::test::tiny_config_json(),
        [](jet::io::TensorMap& w) { w.erase("model.layers.2.self_attn.k_proj.weight"); });
  EXPECT_EQ(error_of([&] { load_checkpoint(dir()); }),
            dir() + ": missing weight 'model.layers.2.self_attn.k_proj.weight'");
  write(jet::test::tiny_config_json(),
        [](jet::io::TensorMap& w) { w["model.layers.9.mlp.up_proj.weight"] = at::zeros({2}); });
  EXPECT_NE(error_of([&] { load_checkpoint(dir()); }).find("unexpected weight 'model.layers.9.mlp.up_proj.weight'"),
            std::string::npos);
}

TEST_F(CheckpointTest, TruncatedSafetensors) {
  const fs::path f = dir_ / "model.safetensors";
  const auto size = fs::file_size(f);
  fs::resize_file(f, size - 100);
  std::string e = error_of([&] { load_checkpoint(dir()); });
  EXPECT_EQ(e.rfind(f.string() + ": truncated safetensors file", 0), 0u) << e;
  fs::resize_file(f, 5);
  e = error_of([&] { load_checkpoint(dir()); });
  EXPECT_EQ(e, f.string() + ": truncated safetensors file (5 bytes, no header)");
  // A header length beyond the file.
  std::ofstream(f, std::ios::binary) << std::string("\xff\x00\x00\x00\x00\x00\x00\x00{}", 10);
  e = error_of([&] { load_checkpoint(dir()); });
  EXPECT_EQ(e.rfind(f.string() + ": truncated safetensors file (header of 255 bytes", 0), 0u) << e;
}

TEST_F(CheckpointTest, SaveHfDirRefusesNonEmptyUnlessForced) {
  auto ck = load_checkpoint(dir());
  const std::string out = dir() + "/out";
  jet::model::save_hf_dir(out, ck, false);
  EXPECT_TRUE(fs::exists(out + "/config.json") && fs::exists(out + "/model.safetensors") &&
              fs::exists(out + "/generation_config.json"));
  EXPECT_EQ(error_of([&] { jet::model::save_hf_dir(out, ck, false); }),
            out + ": directory exists and is not empty (use --force to replace it)");
  jet::model::save_hf_dir(out + "/", ck, true);  // a trailing slash names the same directory
  auto again = load_checkpoint(out);
  EXPECT_TRUE(again.tensors.at("model.norm.weight").equal(ck.tensors.at("model.norm.weight")));
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

TEST(DeviceFlags, UnknownValues) {
  EXPECT_EQ(error_of([] { jet::parse_device("tpu"); }), "unknown device 'tpu' (expected cpu or cuda)");
  EXPECT_EQ(error_of([] { jet::parse_dtype("int3"); }), "unknown dtype 'int3' (expected fp32 or bf16)");
  EXPECT_EQ(jet::parse_device("cpu"), c10::Device(c10::kCPU));
  EXPECT_EQ(jet::parse_dtype("bf16"), c10::kBFloat16);
}

}  // namespace
