// Shard encoding, TokenSet (meta.json + mmap'd shards), sample_batch and windows.
#include "data/tokens.h"

#include <ATen/ops/empty.h>

#include <algorithm>
#include <cstring>

#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/mmap.h"

namespace jet::data {

struct TokenSet::Shard {
  std::string path;
  MappedFile file;
  int width = 2;
  int64_t count = 0;
  const uint8_t* tokens() const { return file.data + kShardHeaderBytes; }
};

namespace {

template <typename T>
T load_le(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);  // the format is little-endian, as are the hosts jet runs on
  return v;
}

template <typename T>
void store_le(std::string& out, T v) {
  char b[sizeof v];
  std::memcpy(b, &v, sizeof v);
  out.append(b, sizeof v);
}

std::shared_ptr<const TokenSet::Shard> open_shard(const std::string& path, int32_t vocab_size) {
  auto s = std::make_shared<TokenSet::Shard>();
  s->path = path;
  s->file = map_file(path);
  const uint8_t* p = s->file.data;
  const size_t n = s->file.size;
  JET_CHECK(n >= sizeof kShardMagic && std::memcmp(p, kShardMagic, sizeof kShardMagic) == 0,
            "{}: not a jet token shard (bad magic)", path);
  JET_CHECK(n >= kShardHeaderBytes, "{}: truncated header ({} of {} bytes)", path, n, kShardHeaderBytes);
  const auto version = load_le<uint32_t>(p + 8);
  JET_CHECK(version == kShardVersion, "{}: unsupported shard version {} (this jet reads {})", path, version,
            kShardVersion);
  const auto width = load_le<uint32_t>(p + 12);
  JET_CHECK(width == 2 || width == 4, "{}: token width {} (must be 2 or 4)", path, width);
  const auto count = load_le<uint64_t>(p + 16);
  const auto vocab = load_le<uint32_t>(p + 24);
  JET_CHECK(vocab == static_cast<uint32_t>(vocab_size), "{}: vocabulary size {} but meta.json says {}", path,
            vocab, vocab_size);
  JET_CHECK(static_cast<int>(width) == token_width(vocab_size), "{}: token width {} for a vocabulary of {}",
            path, width, vocab_size);
  const size_t body = n - kShardHeaderBytes;
  JET_CHECK(count <= body / width && body == count * width,
            "{}: header says {} tokens of {} bytes but the file holds {} bytes after the header ({})", path,
            count, width, body, body < count * width ? "truncated" : "trailing bytes");
  s->width = static_cast<int>(width);
  s->count = static_cast<int64_t>(count);
  return s;
}

nlohmann::json read_meta(const std::string& dir) {
  const std::string path = dir + "/meta.json";
  JET_CHECK(path_exists(path), "{}: missing (not a jet data directory, or `jet data prepare` did not finish)",
            path);
  const std::string text = read_file(path);
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception&) {
    JET_FAIL("{}: not valid JSON", path);
  }
  JET_CHECK(j.is_object() && j.value("format", "") == "jet-tokens", "{}: not a jet token data set", path);
  JET_CHECK(j.value("version", -1) == kMetaVersion, "{}: unsupported version {} (this jet reads {})", path,
            j.value("version", -1), kMetaVersion);
  return j;
}

}  // namespace

int token_width(int32_t vocab_size) { return vocab_size <= 65536 ? 2 : 4; }

std::string encode_shard(const std::vector<int32_t>& tokens, int32_t vocab_size) {
  JET_CHECK(vocab_size > 0, "shard: vocabulary size must be positive, got {}", vocab_size);
  const int width = token_width(vocab_size);
  std::string out(kShardMagic, sizeof kShardMagic);
  store_le<uint32_t>(out, kShardVersion);
  store_le<uint32_t>(out, static_cast<uint32_t>(width));
  store_le<uint64_t>(out, tokens.size());
  store_le<uint32_t>(out, static_cast<uint32_t>(vocab_size));
  store_le<uint32_t>(out, 0);
  out.reserve(out.size() + tokens.size() * width);
  for (int32_t t : tokens) {
    JET_CHECK(t >= 0 && t < vocab_size, "shard: token {} outside the vocabulary [0, {})", t, vocab_size);
    if (width == 2)
      store_le<uint16_t>(out, static_cast<uint16_t>(t));
    else
      store_le<uint32_t>(out, static_cast<uint32_t>(t));
  }
  return out;
}

TokenSet TokenSet::open(const std::string& dir, const std::string& split) {
  JET_CHECK(split == "train" || split == "holdout", "{}: unknown split '{}' (train | holdout)", dir, split);
  const auto meta = read_meta(dir);
  const std::string where = dir + "/meta.json";
  TokenSet s;
  s.dir_ = dir;
  s.split_ = split;
  try {
    s.vocab_size_ = meta.at("tokenizer").at("vocab_size").get<int32_t>();
    s.eos_id_ = meta.at("tokenizer").value("eos_id", -1);
    const auto& sp = meta.at("splits").at(split);
    for (const auto& sh : sp.at("shards")) {
      const std::string path = dir + "/" + split + "/" + sh.at("file").get<std::string>();
      auto shard = open_shard(path, s.vocab_size_);
      const int64_t listed = sh.at("tokens").get<int64_t>();
      JET_CHECK(shard->count == listed, "{}: holds {} tokens but meta.json says {}", path, shard->count, listed);
      s.starts_.push_back(s.size_);
      s.size_ += shard->count;
      s.shards_.push_back(std::move(shard));
    }
    JET_CHECK(s.size_ == sp.at("tokens").get<int64_t>(), "{}: split {} lists {} tokens but its shards hold {}",
              where, split, sp.at("tokens").get<int64_t>(), s.size_);
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: missing or malformed field ({})", where, e.what());
  }
  JET_CHECK(s.vocab_size_ > 0, "{}: vocabulary size must be positive", where);
  JET_CHECK(s.size_ > 0, "{}: split {} has no tokens", where, split);
  return s;
}

at::Tensor TokenSet::read(int64_t start, int64_t n) const {
  JET_CHECK(start >= 0 && n >= 0 && start <= size_ - n, "{}/{}: read of [{}, {}) outside the {} tokens", dir_,
            split_, start, start + n, size_);
  at::Tensor out = at::empty({n}, at::kLong);
  int64_t* o = out.data_ptr<int64_t>();
  // The shard holding `start`: the last one whose first token is <= start.
  size_t i = std::upper_bound(starts_.begin(), starts_.end(), start) - starts_.begin() - 1;
  int64_t done = 0;
  while (done < n) {
    const Shard& sh = *shards_[i];
    const int64_t from = start + done - starts_[i];
    const int64_t take = std::min(n - done, sh.count - from);
    const uint8_t* p = sh.tokens() + from * sh.width;
    for (int64_t k = 0; k < take; ++k)
      o[done + k] = sh.width == 2 ? load_le<uint16_t>(p + 2 * k) : load_le<uint32_t>(p + 4 * k);
    for (int64_t k = 0; k < take; ++k)
      JET_CHECK(o[done + k] < vocab_size_, "{}: token {} at position {} is outside the vocabulary of {}", sh.path,
                o[done + k], from + k, vocab_size_);
    done += take;
    ++i;
  }
  return out;
}

at::Tensor sample_batch(const TokenSet& set, int64_t batch, int64_t seq_len, uint64_t seed, int64_t step,
                        int64_t first_row) {
  JET_CHECK(batch > 0 && seq_len > 0, "sample_batch: batch and seq_len must be positive, got {} and {}", batch,
            seq_len);
  JET_CHECK(step >= 0 && first_row >= 0, "sample_batch: step and first_row must be >= 0, got {} and {}", step,
            first_row);
  JET_CHECK(set.size() >= seq_len, "{}/{}: {} tokens, fewer than one window of {}", set.dir(), set.split(),
            set.size(), seq_len);
  const uint64_t range = static_cast<uint64_t>(set.size() - seq_len) + 1;  // offsets 0 .. size - seq_len
  at::Tensor out = at::empty({batch, seq_len}, at::kLong);
  const uint64_t base = mix64(mix64(seed) ^ static_cast<uint64_t>(step));
  for (int64_t r = 0; r < batch; ++r) {
    const uint64_t h = mix64(base + static_cast<uint64_t>(first_row + r));
    const auto off = static_cast<int64_t>(hash_below(h, range));
    out[r].copy_(set.read(off, seq_len));
  }
  return out;
}

at::Tensor windows(const TokenSet& set, int64_t seq_len, int64_t count, int64_t first) {
  JET_CHECK(seq_len > 0, "windows: seq_len must be positive, got {}", seq_len);
  JET_CHECK(first >= 0 && first <= set.size(), "windows: first token {} outside the {} tokens", first, set.size());
  const int64_t fit = (set.size() - first) / seq_len;
  JET_CHECK(fit > 0, "{}/{}: no window of {} tokens fits after token {} ({} tokens)", set.dir(), set.split(),
            seq_len, first, set.size());
  const int64_t n = count < 0 ? fit : std::min(count, fit);
  JET_CHECK(n > 0, "windows: count must be positive (or < 0 for all), got {}", count);
  return set.read(first, n * seq_len).view({n, seq_len});
}

}  // namespace jet::data
