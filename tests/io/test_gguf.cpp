// GGUF reader: metadata of every value type and the tensor table of files built in memory, and bad
// input (every truncation, corrupted counts/lengths/offsets, bad magic, v1, unknown types, data past
// the end of the file, absurd counts), which must throw jet::Error and never crash.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "core/check.h"
#include "io/gguf.h"
#include "../gguf_builder.h"

namespace {

using jet::gguf::File;
using jet::gguf::Type;
using jet::test::Builder;
using namespace jet::test::gguf_types;

uint16_t f16_bits(float x) {  // exact for the small values used here
  if (x == 0) return 0;
  int e;
  float m = std::frexp(std::fabs(x), &e);  // x = m * 2^e, m in [0.5, 1)
  uint16_t man = uint16_t(std::lround((m * 2 - 1) * 1024));
  return uint16_t((x < 0 ? 0x8000 : 0) | ((e - 1 + 15) << 10) | man);
}

// A small valid file: every scalar value type, nested arrays, two tensors (F32 [2,3], Q8_0 [1,32]).
Builder small_file() {
  Builder g;
  g.header(2, 16);
  g.key("general.architecture", STRING).str("llama");
  g.key("u8", U8).put<uint8_t>(200);
  g.key("i8", I8).put<int8_t>(-100);
  g.key("u16", U16).put<uint16_t>(60000);
  g.key("i16", I16).put<int16_t>(-30000);
  g.key("u32", U32).put<uint32_t>(4000000000u);
  g.key("i32", I32).put<int32_t>(-2000000000);
  g.key("f32", F32).put<float>(0.1f);
  g.key("bool", BOOL).put<uint8_t>(1);
  g.key("u64", U64).put<uint64_t>(18000000000000000000ull);
  g.key("i64", I64).put<int64_t>(-9000000000000000000ll);
  g.key("f64", F64).put<double>(-2.5e-300);
  g.key("strs", ARRAY).put<uint32_t>(STRING).put<uint64_t>(3).str("a").str("").str("c d");
  g.key("ints", ARRAY).put<uint32_t>(I16).put<uint64_t>(2).put<int16_t>(-1).put<int16_t>(7);
  g.key("nested", ARRAY).put<uint32_t>(ARRAY).put<uint64_t>(2);
  g.put<uint32_t>(U8).put<uint64_t>(2).put<uint8_t>(1).put<uint8_t>(2);
  g.put<uint32_t>(BOOL).put<uint64_t>(1).put<uint8_t>(0);
  g.key("empty", ARRAY).put<uint32_t>(F64).put<uint64_t>(0);
  g.tensor("w", {3, 2}, Type::F32, 0);
  g.tensor("q", {32, 1}, Type::Q8_0, 32);
  g.pad();
  for (int i = 0; i < 6; ++i) g.put<float>(float(i) - 2.5f);
  g.pad();
  g.put<uint16_t>(f16_bits(0.5f));
  for (int i = 0; i < 32; ++i) g.put<int8_t>(int8_t(i * 8 - 128));
  return g;
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const jet::Error& e) {
    return e.what();
  }
  return "(no error)";
}

#define EXPECT_ERROR(stmt, substr) EXPECT_PRED_FORMAT2(::testing::IsSubstring, substr, error_of([&] { stmt; }))

TEST(Gguf, MetadataOfEveryValueType) {
  File f = small_file().parse();
  EXPECT_EQ(f.version(), 3u);
  const auto& m = f.metadata();
  EXPECT_EQ(m.size(), 16u);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("u8"), 200);
  EXPECT_EQ(f.get_int("i8"), -100);
  EXPECT_EQ(f.get_int("u16"), 60000);
  EXPECT_EQ(f.get_int("i16"), -30000);
  EXPECT_EQ(f.get_int("u32"), 4000000000ll);
  EXPECT_EQ(f.get_int("i32"), -2000000000);
  EXPECT_EQ(f.get_float("f32"), double(0.1f));
  EXPECT_EQ(m["bool"], true);
  EXPECT_EQ(m["u64"].get<uint64_t>(), 18000000000000000000ull);
  EXPECT_EQ(f.get_int("i64"), -9000000000000000000ll);
  EXPECT_EQ(f.get_float("f64"), -2.5e-300);
  EXPECT_EQ(f.get_strings("strs"), (std::vector<std::string>{"a", "", "c d"}));
  EXPECT_EQ(m["ints"], nlohmann::json::parse("[-1, 7]"));
  EXPECT_EQ(m["nested"], nlohmann::json::parse("[[1, 2], [false]]"));
  EXPECT_EQ(m["empty"], nlohmann::json::array());
  EXPECT_EQ(f.get_float("u8"), 200.0);  // integers are accepted as floats
}

TEST(Gguf, GetterErrorsNameFileKeyAndTypes) {
  File f = small_file().parse("m.gguf");
  EXPECT_ERROR(f.get_int("nope"), "m.gguf: metadata key 'nope' missing");
  EXPECT_ERROR(f.get_int("general.architecture"),
               "m.gguf: metadata key 'general.architecture' has type string, expected integer");
  EXPECT_ERROR(f.get_int("f32"), "has type float, expected integer");
  EXPECT_ERROR(f.get_int("bool"), "has type bool, expected integer");
  EXPECT_ERROR(f.get_int("u64"), "out of range");
  EXPECT_ERROR(f.get_string("u8"), "has type integer, expected string");
  EXPECT_ERROR(f.get_float("strs"), "has type array, expected float");
  EXPECT_ERROR(f.get_strings("ints"), "expected array of strings");
}

TEST(Gguf, TensorTableAndData) {
  File f = small_file().parse();
  ASSERT_EQ(f.tensors().size(), 2u);
  const auto* w = f.find("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{2, 3}));  // ne = [3, 2] reversed
  EXPECT_EQ(w->type, Type::F32);
  EXPECT_EQ(w->numel(), 6);
  EXPECT_EQ(w->nbytes, 24u);
  EXPECT_EQ(w->offset, f.data_offset());
  EXPECT_EQ(f.data_offset() % 32, 0u);
  std::vector<float> out(6);
  f.dequantize(*w, out.data());
  for (int i = 0; i < 6; ++i) EXPECT_EQ(out[i], float(i) - 2.5f);

  const auto* q = f.find("q");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{1, 32}));
  EXPECT_EQ(q->nbytes, 34u);
  EXPECT_EQ(q->offset, f.data_offset() + 32);
  std::vector<float> qo(32);
  f.dequantize(*q, qo.data());
  for (int i = 0; i < 32; ++i) EXPECT_EQ(qo[i], 0.5f * float(i * 8 - 128));
  EXPECT_EQ(f.find("missing"), nullptr);
}

TEST(Gguf, CustomAlignmentAndVersion2) {
  Builder g;
  g.header(1, 1, 2);
  g.key("general.alignment", U32).put<uint32_t>(64);
  g.tensor("t", {4}, Type::F16, 64);
  g.pad(64);
  for (int i = 0; i < 64; ++i) g.b.push_back(0);
  for (float v : {1.0f, -2.0f, 0.25f, 0.0f}) g.put<uint16_t>(f16_bits(v));
  File f = g.parse();
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  std::vector<float> out(4);
  f.dequantize(f.tensors()[0], out.data());
  EXPECT_EQ(out, (std::vector<float>{1.0f, -2.0f, 0.25f, 0.0f}));

  // A stray offset that is not a multiple of the alignment.
  Builder h;
  h.header(1, 1).key("general.alignment", U32).put<uint32_t>(64).tensor("t", {4}, Type::F16, 32);
  h.pad(64);
  for (int i = 0; i < 128; ++i) h.b.push_back(0);
  EXPECT_ERROR(h.parse(), "x.gguf: tensor 't' has offset 32, not a multiple of the alignment 64");
  Builder a;
  a.header(0, 1).key("general.alignment", U32).put<uint32_t>(48);
  EXPECT_ERROR(a.parse(), "general.alignment = 48 is not a power of two");
  Builder s;
  s.header(0, 1).key("general.alignment", STRING).str("32");
  EXPECT_ERROR(s.parse(), "general.alignment has type string");
}

TEST(Gguf, EveryTruncationThrows) {
  const Builder full = small_file();
  size_t n = full.b.size();
  ASSERT_NO_THROW(full.parse());
  for (size_t len = 0; len < n; ++len) {
    // A copy of exactly len bytes, so that reading past it is caught by ASan as well.
    std::vector<uint8_t> cut(full.b.begin(), full.b.begin() + len);
    std::string err = error_of([&] { File::parse(cut.data(), cut.size(), "cut.gguf"); });
    EXPECT_EQ(err.rfind("cut.gguf: ", 0), 0u) << "prefix " << len << ": " << err;
  }
  // Cut inside the last tensor's data.
  std::vector<uint8_t> cut(full.b.begin(), full.b.end() - 1);
  EXPECT_ERROR(File::parse(cut.data(), cut.size(), "cut.gguf"),
               "cut.gguf: tensor 'q' data (34 bytes at data offset 32) runs past the end of the file");
}

TEST(Gguf, TruncatedTensorTableNamesTheTensor) {
  Builder g;
  g.header(3, 0).tensor("a", {4}, Type::F32, 0).tensor("b", {4}, Type::F32, 32);
  g.str("c").put<uint32_t>(1);  // tensor 3 stops after n_dims
  EXPECT_ERROR(g.parse("model.gguf"), "model.gguf: truncated tensor table (tensor 3 of 3)");
}

TEST(Gguf, BadMagicVersionsAndEndianness) {
  Builder g = small_file();
  g.b[0] = 'X';
  EXPECT_ERROR(g.parse(), "x.gguf: not a GGUF file (bad magic)");
  std::vector<uint8_t> tiny = {'P', 'K'};
  EXPECT_ERROR(File::parse(tiny.data(), tiny.size(), "z"), "z: not a GGUF file (bad magic)");
  EXPECT_ERROR(File::parse(tiny.data(), 0, "z"), "z: not a GGUF file (empty)");
  Builder v1;
  v1.header(0, 0, 1);
  EXPECT_ERROR(v1.parse(), "x.gguf: GGUF v1 is not supported (only v2 and v3)");
  Builder v4;
  v4.header(0, 0, 4);
  EXPECT_ERROR(v4.parse(), "unsupported GGUF version 4");
  Builder be;
  be.header(0, 0, 0x03000000);
  EXPECT_ERROR(be.parse(), "big-endian GGUF files are not supported");
}

TEST(Gguf, BadTensorEntries) {
  auto one = [](const std::string& name, std::vector<uint64_t> ne, uint32_t type, uint64_t offset,
                size_t data_bytes) {
    Builder g;
    g.header(1, 0).tensor(name, ne, Type(type), offset).pad();
    g.b.resize(g.b.size() + data_bytes);
    return g;
  };
  EXPECT_NO_THROW(one("ok", {8}, 0, 0, 32).parse());
  EXPECT_ERROR(one("blk.0.attn_q.weight", {8}, 99, 0, 32).parse(),
               "x.gguf: tensor 'blk.0.attn_q.weight' has unknown type 99");
  EXPECT_ERROR(one("t", {8}, 0, 0, 31).parse(), "x.gguf: tensor 't' data (32 bytes at data offset 0) "
                                                "runs past the end of the file");
  EXPECT_ERROR(one("t", {8}, 0, 1ull << 62, 32).parse(), "runs past the end of the file");
  EXPECT_ERROR(one("t", {8}, 0, ~0ull << 5, 32).parse(), "runs past the end of the file");
  EXPECT_ERROR(one("t", {1ull << 40, 1ull << 40}, 0, 0, 32).parse(), "impossible shape");
  EXPECT_ERROR(one("t", {~0ull}, 0, 0, 32).parse(), "impossible shape");
  EXPECT_ERROR(one("t", {1ull << 62}, 0, 0, 32).parse(), "impossible size");
  EXPECT_ERROR(one("t", {1ull << 40}, 0, 0, 32).parse(), "runs past the end of the file");
  EXPECT_ERROR(one("t", {1, 1, 1, 1, 1}, 0, 0, 32).parse(), "tensor 't' has 5 dimensions (at most 4)");
  EXPECT_ERROR(one("t", {100}, uint32_t(Type::Q4_K), 0, 4096).parse(),
               "tensor 't' has rows of 100 elements, not a multiple of the Q4_K block size 256");
  Builder dup;
  dup.header(2, 0).tensor("t", {8}, Type::F32, 0).tensor("t", {8}, Type::F32, 32).pad();
  dup.b.resize(dup.b.size() + 64);
  EXPECT_ERROR(dup.parse(), "duplicate tensor name 't'");
  // A known type that jet parses but cannot dequantise.
  File iq = one("iq", {256}, uint32_t(Type::IQ2_XXS), 0, 66).parse();
  std::vector<float> out(256);
  EXPECT_ERROR(iq.dequantize(iq.tensors()[0], out.data()),
               "x.gguf: tensor 'iq' has type IQ2_XXS, which jet cannot dequantise");
}

TEST(Gguf, AbsurdCountsAndLengthsDoNotAllocate) {
  Builder t;
  t.header(1ull << 60, 0);
  EXPECT_ERROR(t.parse(), "tensor count 1152921504606846976 exceeds what the file can hold");
  Builder k;
  k.header(0, ~0ull);
  EXPECT_ERROR(k.parse(), "metadata count 18446744073709551615 exceeds what the file can hold");
  Builder a;
  a.header(0, 1).key("tokens", ARRAY).put<uint32_t>(STRING).put<uint64_t>(1ull << 62).str("x");
  EXPECT_ERROR(a.parse(), "x.gguf: metadata key 'tokens' has array count 4611686018427387904 but only");
  Builder s;
  s.header(0, 1).key("name", STRING).put<uint64_t>(1ull << 62).str("x");
  EXPECT_ERROR(s.parse(), "x.gguf: truncated metadata (key 1 of 1, 'name')");
  Builder kl;
  kl.header(0, 1).put<uint64_t>(~0ull).put<uint32_t>(0).put<uint8_t>(0);
  EXPECT_ERROR(kl.parse(), "x.gguf: truncated metadata (key 1 of 1)");
  Builder tn;
  tn.header(1, 0).put<uint64_t>(1ull << 50).put<uint32_t>(0).put<uint32_t>(0).put<uint64_t>(0);
  EXPECT_ERROR(tn.parse(), "x.gguf: truncated tensor table (tensor 1 of 1)");
}

TEST(Gguf, BadMetadataValues) {
  Builder u;
  u.header(0, 1).key("k", 13).put<uint32_t>(0);
  EXPECT_ERROR(u.parse(), "x.gguf: metadata key 'k' has unknown value type 13");
  Builder ua;
  ua.header(0, 1).key("k", ARRAY).put<uint32_t>(77).put<uint64_t>(0);
  EXPECT_ERROR(ua.parse(), "metadata key 'k' is an array of unknown value type 77");
  Builder b;
  b.header(0, 1).key("flag", BOOL).put<uint8_t>(2);
  EXPECT_ERROR(b.parse(), "metadata key 'flag' has bool value 2");
  Builder d;
  d.header(0, 2).key("k", U8).put<uint8_t>(1).key("k", U8).put<uint8_t>(2);
  EXPECT_ERROR(d.parse(), "duplicate metadata key 'k'");
  Builder deep;
  deep.header(0, 1).key("deep", ARRAY);
  for (int i = 0; i < 100; ++i) deep.put<uint32_t>(ARRAY).put<uint64_t>(1);
  deep.put<uint32_t>(U8).put<uint64_t>(0);
  EXPECT_ERROR(deep.parse(), "metadata key 'deep' nests arrays deeper than 8");
}

TEST(Gguf, OpenFromDisk) {
  EXPECT_ERROR(File::open("/nonexistent/m.gguf"), "/nonexistent/m.gguf: cannot open");
  std::string path = ::testing::TempDir() + "jet_test_gguf.gguf";
  Builder g = small_file();
  {
    std::ofstream o(path, std::ios::binary);
    o.write(reinterpret_cast<const char*>(g.b.data()), g.b.size());
  }
  File f = File::open(path);
  EXPECT_EQ(f.path(), path);
  EXPECT_EQ(f.size(), g.b.size());
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  std::vector<float> out(6);
  f.dequantize(*f.find("w"), out.data());
  EXPECT_EQ(out[5], 2.5f);
  { std::ofstream o(path, std::ios::trunc); }
  EXPECT_ERROR(File::open(path), ": not a GGUF file (empty)");
  std::remove(path.c_str());
}

// The real teacher (models/, from scripts/setup.sh): its facts, and truncated copies of it.
TEST(Gguf, TeacherFileAndItsPrefixes) {
  const std::string path = "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::ifstream(path)) GTEST_SKIP() << path << " missing (scripts/setup.sh downloads it)";
  File f = File::open(path);
  EXPECT_EQ(f.get_string("general.architecture"), "llama");
  EXPECT_EQ(f.get_int("llama.block_count"), 30);
  EXPECT_EQ(f.get_int("llama.embedding_length"), 576);
  EXPECT_EQ(f.get_int("llama.attention.head_count"), 9);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv"), 3);
  EXPECT_EQ(f.get_strings("tokenizer.ggml.tokens").size(), 49152u);
  ASSERT_EQ(f.tensors().size(), 272u);
  const auto* emb = f.find("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{49152, 576}));
  int n_q4_1 = 0, n_q8_0 = 0, n_f32 = 0;
  for (const auto& t : f.tensors()) {
    n_q4_1 += t.type == Type::Q4_1;
    n_q8_0 += t.type == Type::Q8_0;
    n_f32 += t.type == Type::F32;
  }
  EXPECT_EQ(n_q4_1 + n_q8_0 + n_f32, 272);
  EXPECT_GT(n_q4_1, 0);
  EXPECT_GT(n_q8_0, 0);
  EXPECT_GT(n_f32, 0);

  const uint8_t* base = f.data(f.tensors()[0]) - f.tensors()[0].offset;
  auto cut = [&](size_t len) { return error_of([&] { File::parse(base, len, "model.gguf"); }); };
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "model.gguf: truncated metadata (key ", cut(500000));
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "model.gguf: truncated tensor table (tensor 272 of 272)",
                      cut(f.data_offset() - 40));
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "runs past the end of the file", cut(f.data_offset() + 4096));
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, "runs past the end of the file", cut(f.size() - 1));
}

TEST(Gguf, DequantizeRowHalvesAndBlockChecks) {
  // fp16 specials: subnormal, -0, inf, NaN.
  std::vector<uint16_t> h = {0x0001, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x3c00, 0x03ff};
  std::vector<float> out(h.size());
  jet::gguf::dequantize_row(Type::F16, reinterpret_cast<const uint8_t*>(h.data()), out.data(), h.size());
  EXPECT_EQ(out[0], std::ldexp(1.0f, -24));
  EXPECT_TRUE(out[1] == 0.0f && std::signbit(out[1]));
  EXPECT_EQ(out[2], INFINITY);
  EXPECT_EQ(out[3], -INFINITY);
  EXPECT_TRUE(std::isnan(out[4]));
  EXPECT_EQ(out[5], 1.0f);
  EXPECT_EQ(out[6], std::ldexp(1023.0f, -24));
  // Q4_0 block: d = 2, nibbles j (low) and 15 - j (high).
  std::vector<uint8_t> q(18);
  uint16_t d = f16_bits(2.0f);
  std::memcpy(q.data(), &d, 2);
  for (int j = 0; j < 16; ++j) q[2 + j] = uint8_t(j | ((15 - j) << 4));
  std::vector<float> y(32);
  jet::gguf::dequantize_row(Type::Q4_0, q.data(), y.data(), 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 2.0f * float(j - 8));
    EXPECT_EQ(y[j + 16], 2.0f * float(7 - j));
  }
  EXPECT_ERROR(jet::gguf::dequantize_row(Type::Q4_0, q.data(), y.data(), 31), "not a multiple of the block size 32");
  EXPECT_ERROR(jet::gguf::dequantize_row(Type::I32, q.data(), y.data(), 1), "cannot dequantise type I32");
  EXPECT_STREQ(jet::gguf::type_name(Type(99)), "unknown");
  EXPECT_EQ(jet::gguf::type_block_bytes(Type::Q6_K), 210);
}

}  // namespace
