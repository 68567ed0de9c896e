// Test helpers: a temporary directory, and a hand-made token data set (data/tokens.h format).
#pragma once
#include <stdlib.h>

#include <string>
#include <utility>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/fs.h"
#include "data/tokens.h"

namespace jet::test {

struct TempDir {
  std::string path;
  TempDir() {
    char t[] = "/tmp/jet_test_XXXXXX";
    path = mkdtemp(t);
  }
  ~TempDir() { remove_tree(path); }
};

// DIR/meta.json + DIR/{train,holdout}/NNNNN.tok with the given shards.
inline void make_token_dir(const std::string& dir, const std::vector<std::vector<int32_t>>& train, int32_t vocab,
                           const std::vector<std::vector<int32_t>>& holdout = {{1, 2, 0}}, int32_t eos = 0) {
  nlohmann::json meta = {{"format", "jet-tokens"}, {"version", data::kMetaVersion},
                         {"tokenizer", {{"vocab_size", vocab}, {"eos_id", eos}}}};
  for (const auto& [split, list] : {std::pair{"train", &train}, std::pair{"holdout", &holdout}}) {
    make_dirs(dir + "/" + split);
    nlohmann::json entries = nlohmann::json::array();
    int64_t total = 0;
    for (size_t i = 0; i < list->size(); ++i) {
      const std::string name = fmt::format("{:05d}.tok", i);
      write_file_atomic(dir + "/" + split + "/" + name, data::encode_shard((*list)[i], vocab));
      entries.push_back({{"file", name}, {"tokens", (*list)[i].size()}});
      total += static_cast<int64_t>((*list)[i].size());
    }
    meta["splits"][split] = {{"tokens", total}, {"shards", entries}};
  }
  write_file_atomic(dir + "/meta.json", meta.dump(1));
}

}  // namespace jet::test
