// safetensors: write/read round trip (dtypes, shapes, metadata, alignment), sharded HF directories via
// model.safetensors.index.json, and malformed headers rejected with one-line errors.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "core/check.h"
#include "../error_of.h"
#include "core/fs.h"
#include "io/hf_json.h"
#include "io/tensors.h"

namespace fs = std::filesystem;

namespace {

using jet::test::error_of;

struct TempDir {
  fs::path path = fs::temp_directory_path() / fmt::format("jet_st_{}_{}", getpid(), rand());
  TempDir() { fs::create_directories(path); }
  ~TempDir() { jet::remove_tree(path.string()); }
};

TEST(Safetensors, RoundTrip) {
  TempDir d;
  jet::io::TensorMap in = {{"a.f32", at::randn({3, 5})},
                           {"b.bf16", at::randn({7}).to(at::kBFloat16)},
                           {"c.i64", at::arange(6, at::kLong).view({2, 3})},
                           {"d.empty", at::empty({0, 4})},
                           {"e.scalar", at::scalar_tensor(2.5, at::kDouble)}};
  const std::string f = (d.path / "x.safetensors").string();
  jet::io::save_safetensors(f, in, {{"format", "pt"}});
  auto file = jet::safetensors::File::open(f);
  EXPECT_EQ(file.metadata().at("format"), "pt");
  for (const auto& t : file.tensors())
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data) % jet::safetensors::dtype_size(t.dtype), 0u) << t.name;
  auto out = jet::io::load_safetensors(f);
  ASSERT_EQ(out.size(), in.size());
  for (const auto& [name, t] : in) {
    EXPECT_EQ(out.at(name).scalar_type(), t.scalar_type()) << name;
    EXPECT_TRUE(out.at(name).equal(t)) << name;
  }
  for (const auto& e : fs::directory_iterator(d.path))
    EXPECT_EQ(e.path().filename(), "x.safetensors");  // no temp file left
}

TEST(Safetensors, ShardedDirectory) {
  TempDir d;
  jet::io::save_safetensors((d.path / "model-00001-of-00002.safetensors").string(),
                            {{"w1", at::ones({2})}, {"w2", at::zeros({3})}});
  jet::io::save_safetensors((d.path / "model-00002-of-00002.safetensors").string(), {{"w3", at::full({4}, 7.0)}});
  jet::io::write_json_file((d.path / "model.safetensors.index.json").string(),
                           {{"metadata", nlohmann::json::object()},
                            {"weight_map", {{"w1", "model-00001-of-00002.safetensors"},
                                            {"w2", "model-00001-of-00002.safetensors"},
                                            {"w3", "model-00002-of-00002.safetensors"}}}});
  auto m = jet::io::load_safetensors(d.path.string());
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m.at("w3")[3].item<float>(), 7.0f);
  jet::io::write_json_file((d.path / "model.safetensors.index.json").string(),
                           {{"weight_map", {{"w9", "model-00002-of-00002.safetensors"}}}});
  EXPECT_EQ(error_of([&] { jet::io::load_safetensors(d.path.string()); }),
            "model-00002-of-00002.safetensors: tensor 'w9' listed in the index is missing");
}

TEST(Safetensors, MalformedHeaders) {
  auto parse = [](const std::string& header, size_t data_bytes = 0) {
    std::string img(8, '\0');
    for (int i = 0; i < 8; ++i) img[i] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    img += header + std::string(data_bytes, '\0');
    jet::safetensors::File::parse(reinterpret_cast<const uint8_t*>(img.data()), img.size(), "m.st");
  };
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8); }), "no error");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4); }),
            "m.st: truncated safetensors file (tensor 'a' ends at byte 8, data has 4)");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8); }),
            "m.st: tensor 'a' has 8 bytes, shape [3] of F32 needs 12");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8); }),
            "m.st: tensor 'a' has unknown dtype 'Q4'");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8); }),
            "m.st: tensor 'a' has a bad dimension -2");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8); }),
            "m.st: tensor 'a' data_offsets [8, 0] are reversed");
  EXPECT_EQ(error_of([&] { parse(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8); }),
            "m.st: tensor 'a' shape is too large");
  EXPECT_EQ(error_of([&] { parse(R"([1, 2])"); }), "m.st: safetensors header is not a JSON object");
  EXPECT_EQ(error_of([&] { parse(R"({"a": 1})"); }), "m.st: tensor 'a' lacks dtype/shape/data_offsets");
  EXPECT_EQ(error_of([&] { parse("{\"a\":"); }).rfind("m.st: malformed safetensors header", 0), 0u);
}

}  // namespace
