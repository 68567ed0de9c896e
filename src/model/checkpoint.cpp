// Checkpoint loading (HF directory; GGUF in checkpoint_gguf.cpp) and the HF directory writer.
#include "model/checkpoint.h"

#include <unistd.h>

#include <filesystem>

#include "core/check.h"
#include "core/fs.h"
#include "core/strings.h"
#include "io/hf_json.h"
#include "model/causal_lm.h"
#include "text/load.h"

namespace jet::model {
namespace fs = std::filesystem;
namespace {

Checkpoint load_hf_dir(const std::string& path, const LoadOptions& opts) {
  Checkpoint ck;
  ck.path = path;
  const fs::path config = fs::path(path) / "config.json";
  JET_CHECK(fs::exists(config), "{}: missing config.json (expected an HF model directory)", path);
  ck.config = ModelConfig::from_file(config.string());
  if (opts.weights) {
    ck.tensors = io::load_safetensors(path);
    CausalLM(ck.config).check_weights(ck.tensors, path);
  }
  if (opts.tokenizer && fs::exists(fs::path(path) / "tokenizer.json"))
    ck.tokenizer = std::make_shared<text::Tokenizer>(text::load_tokenizer(path));
  return ck;
}

const char* default_architecture(const std::string& model_type) {
  if (model_type == "llama") return "LlamaForCausalLM";
  if (model_type == "qwen2") return "Qwen2ForCausalLM";
  return "JetNemotronForCausalLM";
}

std::string hf_dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kBFloat16: return "bfloat16";
    case at::kHalf: return "float16";
    default: JET_FAIL("cannot save weights of dtype {} in an HF directory", c10::toString(t));
  }
}

}  // namespace

Checkpoint load_checkpoint(const std::string& path, const LoadOptions& opts) {
  JET_CHECK(fs::exists(path), "{}: no such file or directory", path);
  if (fs::is_directory(path)) return load_hf_dir(path, opts);
  JET_CHECK(ends_with(path, ".gguf"), "{}: not a model (expected a .gguf file or an HF directory)",
            path);
  return load_gguf_checkpoint(path, opts);
}

void check_hf_out_dir(const std::string& dir, bool force) {
  const fs::path out(dir);
  const bool exists = fs::exists(out);
  JET_CHECK(!exists || fs::is_directory(out), "{}: exists and is not a directory", dir);
  JET_CHECK(!exists || fs::is_empty(out) || force,
            "{}: directory exists and is not empty (use --force to replace it)", dir);
}

void save_hf_dir(const std::string& dir, const Checkpoint& ck, bool force) {
  check_hf_out_dir(dir, force);
  fs::path out = fs::path(dir).lexically_normal();
  if (out.filename().empty()) out = out.parent_path();  // "out/" names the directory "out"
  const bool exists = fs::exists(out);
  const fs::path tmp = fmt::format("{}.tmp.{}", out.string(), getpid());
  try {
    remove_tree(tmp.string());
    fs::create_directories(tmp);
    nlohmann::json config = ck.config.to_json();
    if (!config.contains("architectures")) config["architectures"] = {default_architecture(ck.config.model_type)};
    io::TensorMap tensors = ck.tensors;
    if (ck.config.tie_word_embeddings) tensors.erase("lm_head.weight");
    if (!tensors.empty()) config["torch_dtype"] = hf_dtype_name(tensors.begin()->second.scalar_type());
    io::write_json_file((tmp / "config.json").string(), config);
    nlohmann::json gen = {{"bos_token_id", config["bos_token_id"]}, {"eos_token_id", config["eos_token_id"]}};
    io::write_json_file((tmp / "generation_config.json").string(), gen);
    io::save_safetensors((tmp / "model.safetensors").string(), tensors, {{"format", "pt"}});
    if (ck.tokenizer) {
      io::write_json_file((tmp / "tokenizer.json").string(), ck.tokenizer->to_hf_json());
      io::write_json_file((tmp / "tokenizer_config.json").string(), ck.tokenizer->hf_tokenizer_config());
    }
    if (exists) remove_tree(out.string());
    fs::rename(tmp, out);
  } catch (...) {
    try {
      remove_tree(tmp.string());
    } catch (const Error&) {
    }
    throw;
  }
}

}  // namespace jet::model
