// Synthetic retrieval rows (retrieval_mix.h).
#include "data/retrieval_mix.h"

#include <ATen/ATen.h>

#include <algorithm>

#include <fmt/format.h>

#include "core/check.h"
#include "core/hash.h"
#include "text/tokenizer.h"

namespace jet::data {
namespace {

const std::vector<std::string> kFirst = {"amber", "brisk", "cobalt", "dusty", "eastern", "frosty", "golden", "hollow",
                                         "ivory", "jagged", "keen", "lunar", "mossy", "narrow", "olive", "pale",
                                         "quiet", "rusty", "silver", "tidal", "upper", "velvet", "windy", "young"};
const std::vector<std::string> kSecond = {"harbor", "falcon", "meadow", "lantern", "orchard", "canyon", "beacon",
                                          "willow", "garnet", "summit", "thicket", "quarry", "ridge", "cellar",
                                          "ferry", "glacier", "marsh", "pavilion", "sparrow", "tower", "valley"};
const std::vector<std::string> kKind = {"code", "account number", "locker number", "serial number", "ticket number"};

// Needle and question forms; {k}: the key, {c}: the kind, {v}: the number.
std::string needle_text(uint64_t h, const std::string& key, const std::string& kind, const std::string& v) {
  switch (hash_below(h, 4)) {
    case 0: return fmt::format(" The {} of the {} is {}.", kind, key, v);
    case 1: return fmt::format(" Records list {} as the {} of the {}.", v, kind, key);
    case 2: return fmt::format(" (Note: {} {} = {}.)", key, kind, v);
    default: return fmt::format(" For the {}, use {} {}.", key, kind, v);
  }
}

std::string question_text(uint64_t h, const std::string& key, const std::string& kind) {
  switch (hash_below(h, 3)) {
    case 0: return fmt::format("\n\nQuestion: What is the {} of the {}?\nAnswer:", kind, key);
    case 1: return fmt::format("\n\nQ: Which {} belongs to the {}?\nA:", kind, key);
    default: return fmt::format("\n\nLooking back at the text above, the {} of the {} is", kind, key);
  }
}

}  // namespace

std::vector<std::pair<int64_t, RetrievalRow>> mix_retrieval(at::Tensor& ids, const text::Tokenizer& tok,
                                                           double fraction, uint64_t seed, int64_t step,
                                                           int64_t first_row) {
  JET_CHECK(fraction >= 0 && fraction <= 1, "retrieval_mix must be in [0, 1], got {}", fraction);
  JET_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong && ids.device().is_cpu(),
            "retrieval_mix: ids must be [B, T] int64 on the CPU");
  std::vector<std::pair<int64_t, RetrievalRow>> out;
  if (fraction == 0) return out;
  const int64_t B = ids.size(0), T = ids.size(1);
  auto acc = ids.accessor<int64_t, 2>();
  for (int64_t r = 0; r < B; ++r) {
    uint64_t h = mix64(mix64(seed ^ 0x52455452ull) ^ mix64(static_cast<uint64_t>(step) * 4096 + first_row + r));
    auto draw = [&h]() { return h = mix64(h); };
    if (hash_unit(draw()) >= fraction) continue;
    const int64_t n = 1 + static_cast<int64_t>(hash_below(draw(), 4));
    const std::string kind = kKind[hash_below(draw(), kKind.size())];
    RetrievalRow row;
    std::vector<std::string> keys, values;
    while (static_cast<int64_t>(keys.size()) < n) {
      const std::string key = kFirst[hash_below(draw(), kFirst.size())] + " " + kSecond[hash_below(draw(), kSecond.size())];
      if (std::find(keys.begin(), keys.end(), key) != keys.end()) continue;
      const int64_t digits = 4 + static_cast<int64_t>(hash_below(draw(), 4));
      std::string v = std::to_string(1 + hash_below(draw(), 9));
      while (static_cast<int64_t>(v.size()) < digits) v += std::to_string(hash_below(draw(), 10));
      keys.push_back(key);
      values.push_back(v);
    }
    std::vector<std::vector<int32_t>> needles;
    int64_t inserted = 0;
    for (int64_t i = 0; i < n; ++i) {
      row.needles.push_back(needle_text(draw(), keys[i], kind, values[i]));
      needles.push_back(tok.encode(row.needles.back()));
      inserted += static_cast<int64_t>(needles.back().size());
    }
    const int64_t asked = static_cast<int64_t>(hash_below(draw(), n));
    row.question = question_text(draw(), keys[asked], kind);
    row.answer = " " + values[asked];
    std::vector<int32_t> tail = tok.encode(row.question);
    const std::vector<int32_t> answer = tok.encode(row.answer);
    tail.insert(tail.end(), answer.begin(), answer.end());
    row.answer_tokens = static_cast<int64_t>(answer.size());
    inserted += static_cast<int64_t>(tail.size());
    const int64_t hay = T - inserted;
    if (hay < T / 4) continue;
    // Depths: n sorted cut points in the haystack [0, hay]; needle i goes in at cut i.
    std::vector<int64_t> cuts;
    for (int64_t i = 0; i < n; ++i) cuts.push_back(static_cast<int64_t>(hash_below(draw(), hay + 1)));
    std::sort(cuts.begin(), cuts.end());
    std::vector<int64_t> haystack(T);
    for (int64_t t = 0; t < T; ++t) haystack[t] = acc[r][t];
    int64_t pos = 0, src = 0;
    auto put = [&](int64_t v) { acc[r][pos++] = v; };
    for (int64_t i = 0; i < n; ++i) {
      while (src < cuts[i]) put(haystack[src++]);
      for (int32_t t : needles[i]) put(t);
    }
    while (src < hay) put(haystack[src++]);
    for (int32_t t : tail) put(t);
    JET_CHECK(pos == T, "retrieval_mix: row {} has {} tokens, not {}", r, pos, T);
    out.push_back({r, std::move(row)});
  }
  return out;
}

at::Tensor answer_targets(const at::Tensor& ids, const std::vector<std::pair<int64_t, RetrievalRow>>& rows) {
  JET_CHECK(ids.dim() == 2 && ids.scalar_type() == at::kLong && ids.device().is_cpu(),
            "answer_targets: ids must be [B, T] int64 on the CPU");
  const int64_t B = ids.size(0), T = ids.size(1);
  at::Tensor out = at::full({B, T}, -1, at::kLong);
  auto src = ids.accessor<int64_t, 2>();
  auto dst = out.accessor<int64_t, 2>();
  for (const auto& [r, row] : rows) {
    JET_CHECK(r >= 0 && r < B && row.answer_tokens > 0 && row.answer_tokens < T,
              "answer_targets: row {} with {} answer tokens does not fit [{}, {}]", r, row.answer_tokens, B, T);
    for (int64_t t = T - 1 - row.answer_tokens; t < T - 1; ++t) dst[r][t] = src[r][t + 1];
  }
  return out;
}

}  // namespace jet::data
