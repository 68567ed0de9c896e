// Token data sets: the shard format, reading a split (mmap), and the deterministic batch samplers that
// distillation and evaluation use.
//
// A data set directory DIR holds
//   DIR/meta.json            format, version, tokenizer, sources (with licences), splits with their shard
//                            files and token counts, the document and split rules (written last)
//   DIR/train/NNNNN.tok      training shards
//   DIR/holdout/NNNNN.tok    held-out shards (a source not used for training, or a fraction of documents)
// A shard is a 32-byte header then `count` little-endian unsigned tokens of `width` bytes:
//   magic "JETTOKS\0" | u32 version (1) | u32 width (2|4) | u64 count | u32 vocab_size | u32 reserved (0)
// Documents follow each other in a split, each ended by the tokenizer's EOS id; shards are cut at a
// fixed token count, so a document may continue into the next shard.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace jet::data {

constexpr char kShardMagic[8] = {'J', 'E', 'T', 'T', 'O', 'K', 'S', '\0'};
constexpr uint32_t kShardVersion = 1;
constexpr size_t kShardHeaderBytes = 32;
constexpr int kMetaVersion = 1;

// The token width a vocabulary needs: 2 bytes up to 65536 ids, else 4.
int token_width(int32_t vocab_size);

// The bytes of one shard (header + tokens). Every token must be in [0, vocab_size).
std::string encode_shard(const std::vector<int32_t>& tokens, int32_t vocab_size);

class TokenSet {
 public:
  // Opens DIR/<split> as listed in DIR/meta.json ("train" | "holdout"). Each problem is one line naming
  // the file: missing meta.json or shard, bad magic, unknown version, bad width, truncated or oversized
  // shard, count or vocabulary different from meta.json.
  static TokenSet open(const std::string& dir, const std::string& split);

  int64_t size() const { return size_; }              // tokens in the split
  int32_t vocab_size() const { return vocab_size_; }
  int32_t eos_id() const { return eos_id_; }          // from meta.json; -1 if not recorded
  const std::string& dir() const { return dir_; }
  const std::string& split() const { return split_; }

  // Tokens [start, start + n) across shard boundaries: int64 [n] on the CPU. A token >= vocab_size
  // (a corrupt shard) is an error naming the shard.
  at::Tensor read(int64_t start, int64_t n) const;

  struct Shard;

 private:
  std::string dir_, split_;
  std::vector<std::shared_ptr<const Shard>> shards_;
  std::vector<int64_t> starts_;  // first token of each shard in the split
  int64_t size_ = 0;
  int32_t vocab_size_ = 0, eos_id_ = -1;
};

// Training batches: int64 [batch, seq_len], row r of `step` is the window at an offset drawn uniformly
// from [0, size - seq_len] by a counter-based hash of (seed, step, r): the same batch on any machine and
// thread count, and any step can be drawn without drawing the ones before it (resume). first_row: the rows
// [first_row, first_row + batch) of that step's batch (data parallel: each rank's slice of the global batch).
at::Tensor sample_batch(const TokenSet& set, int64_t batch, int64_t seq_len, uint64_t seed, int64_t step,
                        int64_t first_row = 0);

// Evaluation windows: int64 [count', seq_len], consecutive and non-overlapping from token `first`;
// count' = min(count, what fits) (count < 0: all that fit). Zero windows fitting is an error.
at::Tensor windows(const TokenSet& set, int64_t seq_len, int64_t count, int64_t first = 0);

}  // namespace jet::data
