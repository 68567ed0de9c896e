// `jet tensors` (dev tool): lists the tensors of a GGUF or safetensors file (name, type, shape), prints
// GGUF metadata as JSON (--meta), and writes every tensor as F32 to a safetensors file (--out).
#include <ATen/ATen.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli/command.h"
#include "core/check.h"
#include "core/shape.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "io/tensors.h"

namespace {

bool is_gguf(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  JET_CHECK(in, "{}: cannot open", path);
  char magic[4] = {};
  in.read(magic, 4);
  return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

void run(const std::string& model, const std::string& out, bool meta) {
  if (!out.empty()) {
    auto dir = std::filesystem::absolute(out).parent_path();
    JET_CHECK(std::filesystem::is_directory(dir), "{}: directory {} does not exist", out, dir.string());
  }
  jet::io::TensorMap tensors;
  if (is_gguf(model)) {
    auto f = jet::gguf::File::open(model);
    if (meta) {
      printf("%s\n", f.metadata().dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      printf("# %s: GGUF v%u, %zu metadata keys, %zu tensors, alignment %llu\n", model.c_str(),
             f.version(), f.metadata().size(), f.tensors().size(),
             static_cast<unsigned long long>(f.alignment()));
      for (const auto& t : f.tensors())
        printf("%-48s %-8s %s\n", t.name.c_str(), jet::gguf::type_name(t.type),
               jet::shape_str(t.shape).c_str());
    }
    if (!out.empty()) {
      auto t0 = std::chrono::steady_clock::now();
      for (const auto& t : f.tensors()) tensors[t.name] = jet::io::gguf_tensor(f, t);
      double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      printf("# dequantised %zu tensors in %.1f ms\n", tensors.size(), ms);
    }
  } else {
    JET_CHECK(!meta, "{}: --meta is for GGUF files", model);
    auto f = jet::safetensors::File::open(model);
    printf("# %s: safetensors, %zu tensors\n", model.c_str(), f.tensors().size());
    for (const auto& t : f.tensors())
      printf("%-48s %-8s %s\n", t.name.c_str(), jet::safetensors::dtype_name(t.dtype),
             jet::shape_str(t.shape).c_str());
    if (!out.empty())
      for (const auto& t : f.tensors()) tensors[t.name] = jet::io::to_tensor(t).to(at::kFloat);
  }
  if (!out.empty()) {
    jet::io::save_safetensors(out, tensors);
    printf("# wrote %zu tensors (F32) to %s\n", tensors.size(), out.c_str());
  }
}

void setup(CLI::App& app) {
  app.group("");  // hidden from `jet --help`: a developer tool
  auto model = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>();
  auto meta = std::make_shared<bool>(false);
  app.add_option("--model", *model, "a .gguf or .safetensors file")->required();
  app.add_option("--out", *out, "write every tensor, as F32, to this .safetensors file");
  app.add_flag("--meta", *meta, "print the GGUF metadata as one JSON object instead of the list");
  app.callback([model, out, meta] { run(*model, *out, *meta); });
}

}  // namespace

JET_COMMAND("tensors", "(dev) list a GGUF/safetensors file's tensors; --out dumps them as F32", setup);
