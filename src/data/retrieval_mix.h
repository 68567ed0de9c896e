// Synthetic retrieval rows for distillation batches. The paper's training mix holds QA data, and a hybrid
// keeps long-range retrieval only where its training asks for it; plain text rarely does. A mixed row keeps
// its sampled training window as the haystack, gets 1–4 sentences binding a made-up key (two words) to a
// number at seeded depths, and ends with a question about one of the keys followed by its number. Distilled
// against the teacher, whose full attention finds the number, the answer tokens carry the retrieval signal.
// The sentence forms are this file's own, not the passkey or RULER forms `jet eval` scores with, and the
// haystack is training text, so no evaluation text enters training.
#pragma once
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

namespace jet::text {
class Tokenizer;
}

namespace jet::data {

struct RetrievalRow {
  std::vector<std::string> needles;  // the inserted sentences, in order of depth
  std::string question, answer;      // the row ends with question + answer
  int64_t answer_tokens = 0;         // the answer's tokens: the row's last answer_tokens ids
};

// Rewrites about fraction · B of the rows of ids [B, T] (int64, CPU) in place; which rows and their content
// depend only on (seed, step, row), row = first_row + the row's index in ids (data parallel: ids is a rank's
// slice of the global batch, from its row first_row). Rows too short to hold the sentences and a quarter of
// haystack are left alone. Returns what each rewritten row got (row index in ids → content): for tests, logs and
// answer_targets.
std::vector<std::pair<int64_t, RetrievalRow>> mix_retrieval(at::Tensor& ids, const text::Tokenizer& tok,
                                                           double fraction, uint64_t seed, int64_t step,
                                                           int64_t first_row = 0);

// The answers' next-token targets of rows made by mix_retrieval on ids [B, T]: [B, T] int64, at position t the id
// ids[t + 1] where that token belongs to a row's answer, −1 elsewhere (the targets a loss on the answers alone needs).
at::Tensor answer_targets(const at::Tensor& ids, const std::vector<std::pair<int64_t, RetrievalRow>>& rows);

}  // namespace jet::data
