// `jet data prepare`: text files -> a token data set directory (data/tokens.h).
//
// Documents: one input file is one document (scripts/corpus.sh writes one file per book, play, chapter
// or page). A directory input means every *.txt file under it, in byte order of the relative path.
// Inputs must be regular files (not FIFOs or devices) of at most max_input_bytes; each split needs a
// document with text. All of that is checked before anything is written.
// Each document is tokenised without special tokens and ended by the tokenizer's EOS id.
// Held-out split: the documents of --holdout-input (a source not used for training), or else the
// documents whose FNV-1a hash of their relative path falls below `holdout` (at least one).
// Sources: a file sources.json (a JSON list) in an input directory is copied into meta.json.
// Deterministic: the same inputs and options give the same bytes. Resumable: the run works in
// OUT.partial/, writes each finished shard atomically and then a progress record; a rerun with the same
// inputs and options continues after the last recorded shard. The progress record
// (OUT.partial/progress.jsonl) is a journal: one line appended per shard, O(1) however many shards.
// Temp files of a killed run are removed on the next. OUT appears only when complete
// (meta.json is written, then OUT.partial is renamed to OUT).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace jet::data {

struct PrepareOptions {
  std::vector<std::string> inputs;          // files or directories (training documents)
  std::vector<std::string> holdout_inputs;  // files or directories (held-out documents); may be empty
  std::string tokenizer;                    // GGUF file, HF directory or tokenizer.json
  std::string out;
  double holdout = 0.01;                    // fraction of documents held out when holdout_inputs is empty
  int64_t shard_tokens = int64_t(1) << 22;  // tokens per shard (the last one of a split holds the rest)
  int64_t max_input_bytes = int64_t(1) << 30;  // an input file larger than this is refused
  bool force = false;                       // replace an existing OUT
  bool progress = true;                     // progress bar on stderr
  int64_t stop_after_shards = -1;           // (tests) return after writing this many shards, as if killed
};

struct SplitSummary {
  int64_t tokens = 0, documents = 0, shards = 0, skipped_empty = 0;
};

struct PrepareResult {
  SplitSummary train, holdout;
  int64_t resumed_shards = 0;  // shards kept from an earlier, interrupted run
  bool complete = false;       // false only when stop_after_shards stopped the run
};

PrepareResult prepare(const PrepareOptions& o);

}  // namespace jet::data
