// Synthetic retrieval rows (data/retrieval_mix.h) with the real teacher's tokenizer: the share of rows, the
// row layout (every needle inside, the question and its number at the end, the haystack kept in order),
// determinism in (seed, step) and the rows left alone.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include "core/check.h"
#include "data/retrieval_mix.h"
#include "text/load.h"

namespace jet::data {
namespace {

const char* kTeacher = "models/SmolLM2-135M-Instruct.Q4_1.gguf";

at::Tensor haystack(int64_t B, int64_t T) {
  // Token ids 45000 + t (rare tokens, none of which the inserted sentences use): the kept haystack can be told
  // apart from inserted tokens by value and order.
  return (at::arange(T, at::kLong) + 45000).repeat({B, 1});
}

TEST(RetrievalMix, RowsHoldTheNeedlesAndEndWithTheAnswer) {
  const auto tok = text::load_tokenizer(kTeacher);
  const int64_t B = 64, T = 300;
  at::Tensor ids = haystack(B, T);
  const auto rows = mix_retrieval(ids, tok, 0.5, 7, 3);
  EXPECT_GT(rows.size(), 20u);  // about half of 64 (binomial: 20..44 holds with probability > 0.999)
  EXPECT_LT(rows.size(), 44u);
  std::vector<bool> mixed(B, false);
  for (const auto& [r, row] : rows) {
    mixed[r] = true;
    ASSERT_GE(row.needles.size(), 1u);
    ASSERT_LE(row.needles.size(), 4u);
    std::vector<int32_t> v(ids[r].data_ptr<int64_t>(), ids[r].data_ptr<int64_t>() + T);
    const std::string text = tok.decode(v);
    const std::string end = row.question + row.answer;
    EXPECT_EQ(text.substr(text.size() - end.size()), end) << "row " << r;
    // The number asked for appears in one of the needles, and each needle is in the text, before the question.
    bool found = false;
    for (const auto& n : row.needles) {
      const size_t at = text.find(n.substr(1));
      EXPECT_NE(at, std::string::npos) << n;
      EXPECT_LT(at, text.size() - end.size()) << n;
      found |= n.find(row.answer.substr(1)) != std::string::npos;
    }
    EXPECT_TRUE(found) << row.answer;
    // The haystack tokens kept are a prefix of the window, in order.
    int64_t next = 45000;
    for (int64_t t = 0; t < T; ++t)
      if (v[t] >= 45000 && v[t] < 45000 + T) {
        EXPECT_EQ(v[t], next) << "row " << r << " position " << t;
        next = v[t] + 1;
      }
    EXPECT_GE(next - 45000, T / 4);
  }
  const at::Tensor plain = haystack(B, T);
  for (int64_t r = 0; r < B; ++r)
    if (!mixed[r]) EXPECT_TRUE(at::equal(ids[r], plain[r])) << "row " << r;
  // The answer targets: at position t the next id where it is an answer token (the row's last answer_tokens
  // ids decode to the answer), −1 everywhere else.
  const at::Tensor targets = answer_targets(ids, rows);
  ASSERT_EQ(targets.sizes(), ids.sizes());
  int64_t marked = 0;
  for (const auto& [r, row] : rows) {
    ASSERT_GT(row.answer_tokens, 0);
    std::vector<int32_t> tail;
    for (int64_t t = T - row.answer_tokens; t < T; ++t) tail.push_back(static_cast<int32_t>(ids[r][t].item<int64_t>()));
    EXPECT_EQ(tok.decode(tail), row.answer) << "row " << r;
    for (int64_t t = 0; t < T; ++t) {
      const int64_t want = t >= T - 1 - row.answer_tokens && t < T - 1 ? ids[r][t + 1].item<int64_t>() : -1;
      EXPECT_EQ(targets[r][t].item<int64_t>(), want) << "row " << r << " position " << t;
    }
    marked += row.answer_tokens;
  }
  EXPECT_EQ((targets >= 0).sum().item<int64_t>(), marked);  // nothing in the rows left alone
  RetrievalRow bad;
  bad.answer_tokens = T;
  EXPECT_THROW(answer_targets(ids, {{0, bad}}), Error);
}

TEST(RetrievalMix, DeterministicInSeedAndStepAndOffAtZero) {
  const auto tok = text::load_tokenizer(kTeacher);
  at::Tensor a = haystack(8, 200), b = haystack(8, 200), c = haystack(8, 200), z = haystack(8, 200);
  mix_retrieval(a, tok, 1.0, 1, 5);
  mix_retrieval(b, tok, 1.0, 1, 5);
  mix_retrieval(c, tok, 1.0, 1, 6);
  EXPECT_TRUE(at::equal(a, b));
  EXPECT_FALSE(at::equal(a, c));
  EXPECT_TRUE(mix_retrieval(z, tok, 0.0, 1, 5).empty());
  EXPECT_TRUE(at::equal(z, haystack(8, 200)));
  // Rows too short for the sentences are left alone; a bad share is an error.
  at::Tensor tiny = haystack(4, 12);
  EXPECT_TRUE(mix_retrieval(tiny, tok, 1.0, 1, 5).empty());
  EXPECT_THROW(mix_retrieval(a, tok, 1.5, 1, 5), Error);
  // Data parallel: a rank's slice of the rows, from its first row, gets what those rows of the whole batch get.
  at::Tensor whole = haystack(8, 200), part = haystack(8, 200).narrow(0, 4, 3).clone();
  const auto rows = mix_retrieval(whole, tok, 0.5, 2, 7);
  const auto part_rows = mix_retrieval(part, tok, 0.5, 2, 7, 4);
  EXPECT_TRUE(at::equal(part, whole.narrow(0, 4, 3)));
  int64_t in_slice = 0;
  for (const auto& [r, row] : rows) in_slice += r >= 4 && r < 7;
  EXPECT_GT(in_slice, 0);
  EXPECT_EQ(static_cast<int64_t>(part_rows.size()), in_slice);
}

}  // namespace
}  // namespace jet::data
