// ATen bridge for safetensors: load one file, an HF directory (single file or sharded with
// model.safetensors.index.json) into a TensorMap, and save a TensorMap atomically.
#include "io/tensors.h"

#include <ATen/ATen.h>

#include <cstring>
#include <filesystem>
#include <set>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "io/hf_json.h"

namespace jet::io {
namespace fs = std::filesystem;
namespace {

struct DTypePair {
  safetensors::DType st;
  at::ScalarType at;
};
constexpr DTypePair kPairs[] = {
    {safetensors::DType::BOOL, at::kBool},        {safetensors::DType::U8, at::kByte},
    {safetensors::DType::I8, at::kChar},          {safetensors::DType::I16, at::kShort},
    {safetensors::DType::U16, at::kUInt16},       {safetensors::DType::I32, at::kInt},
    {safetensors::DType::U32, at::kUInt32},       {safetensors::DType::I64, at::kLong},
    {safetensors::DType::U64, at::kUInt64},       {safetensors::DType::F16, at::kHalf},
    {safetensors::DType::BF16, at::kBFloat16},    {safetensors::DType::F32, at::kFloat},
    {safetensors::DType::F64, at::kDouble},       {safetensors::DType::F8_E4M3, at::kFloat8_e4m3fn},
    {safetensors::DType::F8_E5M2, at::kFloat8_e5m2},
};

void load_file_into(const std::string& path, TensorMap& out,
                    const std::set<std::string>* only = nullptr) {
  auto f = safetensors::File::open(path);
  for (const auto& v : f.tensors()) {
    if (only && !only->count(v.name)) continue;
    JET_CHECK(!out.count(v.name), "{}: tensor '{}' appears twice", path, v.name);
    out[v.name] = to_tensor(v);
  }
}

}  // namespace

at::Tensor to_tensor(const safetensors::TensorView& v) {
  for (const auto& p : kPairs) {
    if (p.st != v.dtype) continue;
    at::Tensor t = at::empty(v.shape, at::TensorOptions().dtype(p.at));
    if (v.nbytes) std::memcpy(t.data_ptr(), v.data, v.nbytes);
    return t;
  }
  JET_FAIL("tensor '{}': dtype {} has no ATen equivalent", v.name,
           safetensors::dtype_name(v.dtype));
}

TensorMap load_safetensors(const std::string& path) {
  TensorMap out;
  if (!fs::is_directory(path)) {
    load_file_into(path, out);
    return out;
  }
  const fs::path dir(path);
  const fs::path index = dir / "model.safetensors.index.json";
  const fs::path single = dir / "model.safetensors";
  if (fs::exists(index)) {
    nlohmann::json j = read_json_file(index.string());
    JET_CHECK(j.contains("weight_map") && j["weight_map"].is_object(), "{}: no weight_map object",
              index.string());
    std::map<std::string, std::set<std::string>> by_file;
    for (const auto& [name, file] : j["weight_map"].items()) {
      JET_CHECK(file.is_string(), "{}: weight_map['{}'] is not a file name", index.string(), name);
      by_file[file.get<std::string>()].insert(name);
    }
    for (const auto& [file, names] : by_file) {
      load_file_into((dir / file).string(), out, &names);
      for (const auto& n : names)
        JET_CHECK(out.count(n), "{}: tensor '{}' listed in the index is missing", file, n);
    }
    return out;
  }
  JET_CHECK(fs::exists(single), "{}: no model.safetensors or model.safetensors.index.json", path);
  load_file_into(single.string(), out);
  return out;
}

void save_safetensors(const std::string& path, const TensorMap& tensors,
                      const std::map<std::string, std::string>& metadata) {
  std::vector<at::Tensor> keep;  // owns the contiguous CPU copies while writing
  std::vector<safetensors::TensorView> views;
  for (const auto& [name, t0] : tensors) {
    at::Tensor t = t0.detach().to(at::kCPU).contiguous();
    keep.push_back(t);
    safetensors::TensorView v;
    v.name = name;
    const auto* p = std::find_if(std::begin(kPairs), std::end(kPairs),
                                 [&](const DTypePair& q) { return q.at == t.scalar_type(); });
    JET_CHECK(p != std::end(kPairs), "{}: tensor '{}' has dtype {} that safetensors cannot hold",
              path, name, c10::toString(t.scalar_type()));
    v.dtype = p->st;
    v.shape = t.sizes().vec();
    v.data = static_cast<const uint8_t*>(t.data_ptr());
    v.nbytes = t.nbytes();
    views.push_back(std::move(v));
  }
  safetensors::write(path, views, metadata);
}

}  // namespace jet::io
