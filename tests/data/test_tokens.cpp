// Token data sets: shard round trip, reads across shard boundaries, sample_batch and windows, and one
// error line naming the file for every corrupt or missing piece.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <random>
#include <set>

#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/tokens.h"
#include "../error_of.h"
#include "token_dir.h"

namespace jet::data {
namespace {

using test::error_of;

using test::TempDir;

void make_set(const std::string& dir, const std::vector<std::vector<int32_t>>& shards, int32_t vocab) {
  test::make_token_dir(dir, shards, vocab);
}

std::vector<int32_t> random_tokens(size_t n, int32_t vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_int_distribution<int32_t> d(0, vocab - 1);
  std::vector<int32_t> v(n);
  for (auto& x : v) x = d(g);
  return v;
}

std::vector<int64_t> to_vec(const at::Tensor& t) {
  auto c = t.contiguous();
  return {c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel()};
}

TEST(Tokens, RoundTripAndReadsAcrossShards) {
  for (int32_t vocab : {50, 49152, 70000}) {  // 2-byte and 4-byte tokens
    TempDir t;
    const std::vector<size_t> sizes = {5, 1, 7, 2};
    std::vector<std::vector<int32_t>> shards;
    std::vector<int64_t> all;
    for (size_t i = 0; i < sizes.size(); ++i) {
      shards.push_back(random_tokens(sizes[i], vocab, 17 + i));
      if (i == 0) shards[0][0] = vocab - 1;  // the largest id survives the width
      all.insert(all.end(), shards.back().begin(), shards.back().end());
    }
    make_set(t.path, shards, vocab);
    const auto s = TokenSet::open(t.path, "train");
    EXPECT_EQ(s.size(), 15);
    EXPECT_EQ(s.vocab_size(), vocab);
    EXPECT_EQ(s.eos_id(), 0);
    for (int64_t start = 0; start <= s.size(); ++start)
      for (int64_t n = 0; start + n <= s.size(); ++n) {
        const auto r = s.read(start, n);
        ASSERT_EQ(r.scalar_type(), at::kLong);
        ASSERT_EQ(r.dim(), 1);
        ASSERT_EQ(to_vec(r), std::vector<int64_t>(all.begin() + start, all.begin() + start + n))
            << "vocab " << vocab << " start " << start << " n " << n;
      }
    EXPECT_NE(error_of([&] { s.read(10, 6); }).find("outside the 15 tokens"), std::string::npos);
    EXPECT_NE(error_of([&] { s.read(-1, 2); }).find("outside"), std::string::npos);
    EXPECT_EQ(TokenSet::open(t.path, "holdout").size(), 3);
  }
}

TEST(Tokens, EncodeShardHeader) {
  const std::string b = encode_shard({1, 2, 3}, 300);
  ASSERT_EQ(b.size(), kShardHeaderBytes + 6);
  EXPECT_EQ(b.substr(0, 8), std::string("JETTOKS\0", 8));
  EXPECT_EQ(static_cast<uint8_t>(b[12]), 2);        // width
  EXPECT_EQ(static_cast<uint8_t>(b[16]), 3);        // count
  EXPECT_EQ(static_cast<uint8_t>(b[24]), 300 % 256);  // vocab, little-endian
  EXPECT_EQ(static_cast<uint8_t>(b[25]), 300 / 256);
  EXPECT_EQ(static_cast<uint8_t>(b[kShardHeaderBytes + 2]), 2);
  EXPECT_NE(error_of([] { encode_shard({1, 300}, 300); }).find("outside the vocabulary"), std::string::npos);
  EXPECT_EQ(token_width(65536), 2);
  EXPECT_EQ(token_width(65537), 4);
}

// Tokens 0..n-1 (unique), so a window's first token is its offset.
std::string iota_set(const TempDir& t, int32_t n, std::vector<size_t> cuts) {
  std::vector<std::vector<int32_t>> shards;
  int32_t next = 0;
  cuts.push_back(n);
  for (size_t c : cuts) {
    std::vector<int32_t> s;
    while (next < static_cast<int32_t>(c)) s.push_back(next++);
    shards.push_back(s);
  }
  make_set(t.path, shards, n);
  return t.path;
}

TEST(Tokens, SampleBatchDeterministicContiguousInRange) {
  TempDir t;
  const auto s = TokenSet::open(iota_set(t, 1000, {100, 101, 555}), "train");
  const int64_t B = 8, T = 33;
  std::set<int64_t> offsets;
  for (int64_t step = 0; step < 50; ++step) {
    const auto a = sample_batch(s, B, T, 7, step);
    ASSERT_EQ(a.sizes(), (std::vector<int64_t>{B, T}));
    ASSERT_TRUE(at::equal(a, sample_batch(s, B, T, 7, step)));  // same (seed, step): same batch
    for (int64_t r = 0; r < B; ++r) {
      const int64_t off = a[r][0].item<int64_t>();
      ASSERT_GE(off, 0);
      ASSERT_LE(off, 1000 - T);
      ASSERT_TRUE(at::equal(a[r], at::arange(off, off + T, at::kLong)));
      offsets.insert(off);
    }
  }
  EXPECT_GT(offsets.size(), 300u);  // 400 draws over 968 offsets: mostly distinct
  EXPECT_FALSE(at::equal(sample_batch(s, B, T, 7, 0), sample_batch(s, B, T, 7, 1)));
  EXPECT_FALSE(at::equal(sample_batch(s, B, T, 7, 0), sample_batch(s, B, T, 8, 0)));
  // Independent of the thread count.
  const int threads = at::get_num_threads();
  const auto one = sample_batch(s, B, T, 3, 9);
  at::set_num_threads(2);
  EXPECT_TRUE(at::equal(one, sample_batch(s, B, T, 3, 9)));
  at::set_num_threads(threads);
  // Every offset reachable, including the last: a set only 3 tokens longer than the window.
  std::set<int64_t> small;
  for (int64_t step = 0; step < 40; ++step) small.insert(sample_batch(s, 1, 997, 1, step)[0][0].item<int64_t>());
  EXPECT_EQ(small, (std::set<int64_t>{0, 1, 2, 3}));
  EXPECT_NE(error_of([&] { sample_batch(s, 1, 1001, 0, 0); }).find("fewer than one window"), std::string::npos);
  EXPECT_NE(error_of([&] { sample_batch(s, 0, 4, 0, 0); }).find("must be positive"), std::string::npos);
  // Data parallel: the rows [first_row, first_row + b) of a step's batch, the same as slicing the whole batch.
  const auto whole = sample_batch(s, B, T, 7, 3);
  for (int64_t first : {0, 2, 5})
    EXPECT_TRUE(at::equal(sample_batch(s, 3, T, 7, 3, first), whole.narrow(0, first, 3))) << "first_row " << first;
}

TEST(Tokens, Windows) {
  TempDir t;
  const auto s = TokenSet::open(iota_set(t, 100, {7, 50}), "train");
  auto w = windows(s, 16, 3, 5);
  ASSERT_EQ(w.sizes(), (std::vector<int64_t>{3, 16}));
  EXPECT_TRUE(at::equal(w.reshape({-1}), at::arange(5, 53, at::kLong)));
  EXPECT_EQ(windows(s, 16, 100).size(0), 6);   // clipped to what fits
  EXPECT_EQ(windows(s, 16, -1, 4).size(0), 6);  // all: (100 - 4) / 16
  EXPECT_EQ(windows(s, 16, -1, 5).size(0), 5);
  EXPECT_EQ(windows(s, 100, 1).size(0), 1);
  EXPECT_NE(error_of([&] { windows(s, 101, 1); }).find("no window of 101 tokens fits"), std::string::npos);
  EXPECT_NE(error_of([&] { windows(s, 10, 0); }).find("count must be positive"), std::string::npos);
  EXPECT_NE(error_of([&] { windows(s, 0, 1); }).find("seq_len must be positive"), std::string::npos);
}

void patch(const std::string& path, size_t at, const std::string& bytes) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekp(static_cast<std::streamoff>(at));
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

void truncate_to(const std::string& path, off_t n) { ASSERT_EQ(::truncate(path.c_str(), n), 0); }

TEST(Tokens, CorruptShardsAreOneLineErrorsNamingTheFile) {
  struct Case {
    const char* what;
    std::function<void(const std::string& dir, const std::string& shard)> damage;
    const char* expect;
    bool names_meta = false;  // the error names meta.json (else the shard)
  };
  const std::vector<Case> cases = {
      {"bad magic", [](auto&, auto& f) { patch(f, 0, "XETTOKS"); }, "bad magic"},
      {"empty file", [](auto&, auto& f) { truncate_to(f, 0); }, "bad magic"},
      {"truncated header", [](auto&, auto& f) { truncate_to(f, 20); }, "truncated header"},
      {"version", [](auto&, auto& f) { patch(f, 8, std::string("\x02", 1)); }, "unsupported shard version 2"},
      {"width 3", [](auto&, auto& f) { patch(f, 12, std::string("\x03", 1)); }, "token width 3"},
      {"width 4 for a small vocabulary", [](auto&, auto& f) { patch(f, 12, std::string("\x04", 1)); },
       "token width 4 for a vocabulary of 50"},
      {"truncated tokens", [](auto&, auto& f) { truncate_to(f, kShardHeaderBytes + 5); }, "truncated"},
      {"trailing bytes", [](auto&, auto& f) { std::ofstream(f, std::ios::app | std::ios::binary) << "xy"; },
       "trailing bytes"},
      {"count", [](auto&, auto& f) { patch(f, 16, std::string("\x09", 1)); }, "header says 9 tokens"},
      {"vocabulary", [](auto&, auto& f) { patch(f, 24, std::string("\x33", 1)); }, "vocabulary size 51"},
      {"missing shard", [](auto&, auto& f) { std::remove(f.c_str()); }, "cannot open"},
      {"missing meta", [](auto& d, auto&) { std::remove((d + "/meta.json").c_str()); }, "meta.json: missing", true},
      {"meta not JSON", [](auto& d, auto&) { write_file_atomic(d + "/meta.json", "{"); }, "not valid JSON", true},
      {"meta count", [](auto& d, auto&) {
         auto m = nlohmann::json::parse(read_file(d + "/meta.json"));
         m["splits"]["train"]["shards"][1]["tokens"] = 6;
         write_file_atomic(d + "/meta.json", m.dump());
       }, "holds 7 tokens but meta.json says 6"},
      {"meta field", [](auto& d, auto&) {
         auto m = nlohmann::json::parse(read_file(d + "/meta.json"));
         m["splits"].erase("train");
         write_file_atomic(d + "/meta.json", m.dump());
       }, "missing or malformed field", true},
  };
  for (const auto& c : cases) {
    TempDir t;
    make_set(t.path, {random_tokens(5, 50, 1), random_tokens(7, 50, 2)}, 50);
    const std::string shard = t.path + "/train/00001.tok";
    c.damage(t.path, shard);
    const std::string e = error_of([&] { TokenSet::open(t.path, "train"); });
    EXPECT_NE(e.find(c.expect), std::string::npos) << c.what << ": " << e;
    EXPECT_NE(e.find(c.names_meta ? t.path + "/meta.json" : shard), std::string::npos) << c.what << ": " << e;
  }
  // A token outside the vocabulary is found when it is read.
  TempDir t;
  make_set(t.path, {random_tokens(5, 50, 1)}, 50);
  patch(t.path + "/train/00000.tok", kShardHeaderBytes + 4, std::string("\x40", 1));
  const auto s = TokenSet::open(t.path, "train");
  const std::string e = error_of([&] { s.read(0, 5); });
  EXPECT_NE(e.find("00000.tok: token 64 at position 2 is outside the vocabulary of 50"), std::string::npos) << e;
  EXPECT_NE(error_of([&] { TokenSet::open(t.path, "valid"); }).find("unknown split"), std::string::npos);
}

}  // namespace
}  // namespace jet::data
