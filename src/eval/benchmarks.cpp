// Benchmark files -> lm-evaluation-harness requests and scores; RULER-style tasks.
#include "eval/benchmarks.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include <fmt/format.h>

#include "core/check.h"
#include "core/fs.h"
#include "core/hash.h"
#include "engine/generate.h"

namespace jet::eval {
namespace {

using nlohmann::json;

// Python's str.isspace() for ASCII, which is what the harness's strip()/rstrip() meet in these sets.
bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }

std::string strip(const std::string& s, bool left = true, bool right = true) {
  size_t a = 0, b = s.size();
  while (left && a < b && is_space(s[a])) ++a;
  while (right && b > a && is_space(s[b - 1])) --b;
  return s.substr(a, b - a);
}

std::string replace_all(std::string s, const std::string& from, const std::string& to) {
  std::string out;
  size_t pos = 0;
  for (size_t hit; (hit = s.find(from, pos)) != std::string::npos; pos = hit + from.size()) out += s.substr(pos, hit - pos) + to;
  return out + s.substr(pos);
}

int64_t utf8_chars(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; });
}

std::string ascii_lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return s;
}

// Python's str.capitalize() (ASCII letters; other characters kept).
std::string capitalize(const std::string& s) {
  std::string out = ascii_lower(s);
  if (!out.empty() && out[0] >= 'a' && out[0] <= 'z') out[0] = static_cast<char>(out[0] - 'a' + 'A');
  return out;
}

// The harness's HellaSwag preprocess: strip, " [title]" -> ". ", drop "[...]" (within a line), "  " -> " ".
std::string hellaswag_pre(const std::string& text) {
  const std::string s = replace_all(strip(text), " [title]", ". ");
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '[') {
      const size_t close = s.find_first_of("]\n", i + 1);
      if (close != std::string::npos && s[close] == ']') {
        i = close;
        continue;
      }
    }
    out += s[i];
  }
  return replace_all(out, "  ", " ");
}

// Counter-based draws: value i of stream `tag` under `seed`.
uint64_t draw(uint64_t seed, uint64_t tag, uint64_t i) { return mix64(mix64(mix64(seed) ^ tag) + i); }

uint64_t name_tag(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

// Field readers: errors name the file and line.
struct Doc {
  const json& j;
  const std::string& path;
  int64_t line;
  const json& at(const char* key) const {
    auto it = j.find(key);
    JET_CHECK(it != j.end(), "{}:{}: missing field '{}'", path, line, key);
    return *it;
  }
  std::string str(const char* key) const {
    const json& v = at(key);
    JET_CHECK(v.is_string(), "{}:{}: field '{}' must be a string", path, line, key);
    return v.get<std::string>();
  }
  int64_t integer(const char* key) const {
    const json& v = at(key);
    JET_CHECK(v.is_number_integer(), "{}:{}: field '{}' must be an integer", path, line, key);
    return v.get<int64_t>();
  }
  std::vector<std::string> strings(const char* key) const {
    const json& v = at(key);
    JET_CHECK(v.is_array() && !v.empty() && std::all_of(v.begin(), v.end(), [](const json& x) { return x.is_string(); }),
              "{}:{}: field '{}' must be a non-empty list of strings", path, line, key);
    return v.get<std::vector<std::string>>();
  }
  int32_t gold(int64_t g, size_t n) const {
    JET_CHECK(g >= 0 && g < static_cast<int64_t>(n), "{}:{}: gold index {} outside the {} choices", path, line, g, n);
    return static_cast<int32_t>(g);
  }
};

// Multiple choice with one context: the choices get the target delimiter " ".
BenchItem mc(const std::string& context, const std::vector<std::string>& choices, int32_t gold) {
  BenchItem item;
  for (const auto& c : choices) item.choices.push_back({context, " " + c, utf8_chars(c)});
  item.gold = gold;
  return item;
}

BenchItem format_item(const std::string& task, const Doc& d) {
  if (task == "hellaswag") {
    const std::string query =
        hellaswag_pre(d.str("activity_label") + ": " + d.str("ctx_a") + " " + capitalize(d.str("ctx_b")));
    std::vector<std::string> endings;
    for (const auto& e : d.strings("endings")) endings.push_back(hellaswag_pre(e));
    return mc(query, endings, d.gold(d.integer("label"), endings.size()));
  }
  if (task == "arc_easy" || task == "arc_challenge") {
    const auto choices = d.strings("choices");
    return mc("Question: " + d.str("question") + "\nAnswer:", choices, d.gold(d.integer("gold"), choices.size()));
  }
  if (task == "piqa")
    return mc("Question: " + d.str("goal") + "\nAnswer:", {d.str("sol1"), d.str("sol2")}, d.gold(d.integer("label"), 2));
  if (task == "winogrande") {
    // The option replaces "_" in the context; the rest of the sentence (stripped) is the shared continuation.
    const std::string s = d.str("sentence"), answer = d.str("answer");
    const size_t blank = s.find('_');
    JET_CHECK(blank != std::string::npos, "{}:{}: the sentence has no '_'", d.path, d.line);
    JET_CHECK(answer == "1" || answer == "2", "{}:{}: answer must be \"1\" or \"2\"", d.path, d.line);
    const std::string rest = " " + strip(s.substr(blank + 1));
    BenchItem item;
    for (const char* opt : {"option1", "option2"}) item.choices.push_back({s.substr(0, blank) + d.str(opt), rest, 0});
    item.gold = answer == "1" ? 0 : 1;
    return item;
  }
  if (task == "boolq")
    return mc(d.str("passage") + "\nQuestion: " + d.str("question") + "?\nAnswer:", {"no", "yes"},
              d.gold(d.integer("label"), 2));
  if (task == "openbookqa") {
    const auto choices = d.strings("choices");
    return mc(d.str("question_stem"), choices, d.gold(d.integer("gold"), choices.size()));
  }
  if (task == "sciq")
    return mc(strip(d.str("support"), true, false) + "\nQuestion: " + d.str("question") + "\nAnswer:",
              {d.str("distractor1"), d.str("distractor2"), d.str("distractor3"), d.str("correct_answer")}, 3);
  if (task == "lambada") {
    const std::string text = d.str("text");
    const size_t cut = text.rfind(' ');
    JET_CHECK(cut != std::string::npos && cut > 0 && cut + 1 < text.size(), "{}:{}: the text needs a last word",
              d.path, d.line);
    BenchItem item;
    item.choices.push_back({text.substr(0, cut), text.substr(cut), 0});
    return item;
  }
  JET_FAIL("no benchmark named '{}'", task);
}

std::string mmlu_question(const Doc& d) {
  const auto c = d.strings("choices");
  JET_CHECK(c.size() == 4, "{}:{}: MMLU needs 4 choices, got {}", d.path, d.line, c.size());
  return strip(d.str("question")) + "\nA. " + c[0] + "\nB. " + c[1] + "\nC. " + c[2] + "\nD. " + c[3] + "\nAnswer:";
}

// Keeps a seeded subsample of `limit` of the n items, in their order.
std::vector<int64_t> subsample(int64_t n, int64_t limit, uint64_t seed, const std::string& name) {
  std::vector<int64_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  if (limit <= 0 || limit >= n) return idx;
  const uint64_t tag = name_tag(name);
  std::sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return draw(seed, tag, a) < draw(seed, tag, b); });
  idx.resize(limit);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace

void read_jsonl(const std::string& path, const std::function<void(const json&, int64_t)>& fn) {
  JET_CHECK(path_exists(path), "{}: no such file", path);
  const std::string text = read_file(path);
  int64_t line_no = 0;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    json j;
    try {
      j = json::parse(line);
    } catch (const json::exception&) {
      JET_FAIL("{}:{}: not valid JSON", path, line_no);
    }
    JET_CHECK(j.is_object(), "{}:{}: expected a JSON object", path, line_no);
    fn(j, line_no);
  }
}

const std::vector<std::string>& benchmark_names() {
  static const std::vector<std::string> names = {"hellaswag", "arc_easy", "arc_challenge", "piqa", "winogrande",
                                                 "lambada",   "mmlu",     "boolq",         "openbookqa", "sciq"};
  return names;
}

const std::vector<std::string>& ruler_names() {
  static const std::vector<std::string> names = {"niah_single", "niah_multikey", "niah_multivalue", "vt", "qa_squad"};
  return names;
}

Benchmark load_benchmark(const std::string& name, const std::string& dir, int64_t limit, uint64_t seed) {
  const auto& names = benchmark_names();
  JET_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "no benchmark named '{}'", name);
  Benchmark b;
  b.name = name;
  b.file = dir + "/" + name + ".jsonl";
  b.acc_norm = name == "hellaswag" || name == "arc_easy" || name == "arc_challenge" || name == "piqa" ||
               name == "openbookqa" || name == "sciq";
  b.lambada = name == "lambada";
  std::vector<BenchItem> all;
  if (name == "mmlu") {
    // 5-shot: the subject's first five dev questions with their answers, after the subject's description.
    const std::string dev = dir + "/mmlu_dev.jsonl";
    std::map<std::string, std::string> shots;
    std::map<std::string, int> count;
    read_jsonl(dev, [&](const json& j, int64_t line) {
      const Doc d{j, dev, line};
      const std::string subject = d.str("subject");
      if (count[subject]++ >= 5) return;
      shots[subject] += mmlu_question(d) + " " + std::string(1, static_cast<char>('A' + d.gold(d.integer("answer"), 4))) + "\n\n";
    });
    read_jsonl(b.file, [&](const json& j, int64_t line) {
      const Doc d{j, b.file, line};
      const std::string subject = d.str("subject");
      JET_CHECK(count[subject] >= 5, "{}: subject '{}' has {} dev questions, MMLU 5-shot needs 5", dev, subject,
                count[subject]);
      const std::string context = "The following are multiple choice questions (with answers) about " +
                                  replace_all(subject, "_", " ") + ".\n\n" + shots[subject] + mmlu_question(d);
      all.push_back(mc(context, {"A", "B", "C", "D"}, d.gold(d.integer("answer"), 4)));
    });
  } else {
    read_jsonl(b.file, [&](const json& j, int64_t line) { all.push_back(format_item(name, Doc{j, b.file, line})); });
  }
  JET_CHECK(!all.empty(), "{}: no items", b.file);
  b.total = static_cast<int64_t>(all.size());
  for (int64_t i : subsample(b.total, limit, seed, name)) b.items.push_back(std::move(all[i]));
  return b;
}

LlRequest encode_pair(const text::Tokenizer& tok, const std::string& context, const std::string& continuation) {
  size_t keep = context.size();
  while (keep > 0 && is_space(context[keep - 1])) --keep;
  const std::string ctx = context.substr(0, keep), cont = context.substr(keep) + continuation;
  const auto whole = tok.encode(ctx + cont);
  LlRequest r{tok.encode(ctx), {}};
  if (r.context.size() < whole.size()) r.continuation.assign(whole.begin() + static_cast<int64_t>(r.context.size()), whole.end());
  JET_CHECK(!r.context.empty() && !r.continuation.empty(), "empty context or continuation tokens for {:?} + {:?}",
            ctx.substr(0, 60), cont.substr(0, 60));
  return r;
}

std::vector<LlRequest> encode_benchmark(const Benchmark& b, const text::Tokenizer& tok) {
  std::vector<LlRequest> reqs;
  for (const auto& item : b.items)
    for (const auto& c : item.choices) reqs.push_back(encode_pair(tok, c.context, c.continuation));
  return reqs;
}

BenchScore score_benchmark(const model::CausalLM& lm, const Benchmark& b, const std::vector<LlRequest>& reqs,
                           const OnProgress& on_progress, int64_t batch_tokens) {
  std::vector<int64_t> ends;  // the requests of item k end at ends[k]
  for (const auto& item : b.items) ends.push_back((ends.empty() ? 0 : ends.back()) + static_cast<int64_t>(item.choices.size()));
  JET_CHECK(!ends.empty() && ends.back() == static_cast<int64_t>(reqs.size()), "{}: {} requests for {} choices", b.name,
            reqs.size(), ends.empty() ? 0 : ends.back());
  const auto ll = loglikelihoods(lm, reqs, on_progress ? OnProgress([&](int64_t done) {
    on_progress(std::upper_bound(ends.begin(), ends.end(), done) - ends.begin());
  }) : OnProgress(), batch_tokens);
  BenchScore s;
  size_t r = 0;
  double sum_ll = 0;
  for (const auto& item : b.items) {
    std::vector<double> lls, norm;
    bool greedy = true;
    for (const auto& c : item.choices) {
      lls.push_back(ll[r].logprob);
      norm.push_back(ll[r].logprob / static_cast<double>(std::max<int64_t>(1, c.chars)));
      greedy = greedy && ll[r].greedy;
      ++r;
    }
    const auto pred = static_cast<int32_t>(std::max_element(lls.begin(), lls.end()) - lls.begin());
    const auto pred_norm = static_cast<int32_t>(std::max_element(norm.begin(), norm.end()) - norm.begin());
    s.correct.push_back(b.lambada ? greedy : pred == item.gold);
    s.correct_norm.push_back(!b.lambada && pred_norm == item.gold);
    s.acc += s.correct.back();
    s.acc_norm += s.correct_norm.back();
    if (b.lambada) sum_ll += lls[0];
    s.pred.push_back(pred);
    s.pred_norm.push_back(pred_norm);
    s.ll.push_back(std::move(lls));
  }
  const auto n = static_cast<double>(b.items.size());
  s.acc /= n;
  s.acc_norm /= n;
  if (b.lambada) s.ppl = std::exp(-sum_ll / n);
  return s;
}

// ---------------------------------------------------------------------------------------------------
// RULER-style tasks.

RulerData load_ruler(const std::string& dir) {
  RulerData d;
  const std::string essays = dir + "/ruler_essays.jsonl", squad = dir + "/ruler_squad.jsonl";
  std::string text;
  read_jsonl(essays, [&](const json& j, int64_t line) { text += Doc{j, essays, line}.str("text"); });
  std::set<std::string> keys;
  for (size_t pos = 0; pos < text.size();) {
    const size_t a = text.find_first_not_of(" \t\n\r\v\f", pos);
    if (a == std::string::npos) break;
    size_t e = text.find_first_of(" \t\n\r\v\f", a);
    if (e == std::string::npos) e = text.size();
    d.essay_words.push_back(text.substr(a, e - a));
    const std::string& w = d.essay_words.back();
    if (w.size() >= 4 && w.size() <= 9 && std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; }))
      keys.insert(w);
    pos = e;
  }
  JET_CHECK(d.essay_words.size() > 1000 && keys.size() > 100, "{}: the haystack text is too short", essays);
  d.key_words.assign(keys.begin(), keys.end());
  read_jsonl(squad, [&](const json& j, int64_t line) {
    const Doc doc{j, squad, line};
    if (line == 1) {
      d.squad_docs = doc.strings("docs");
      return;
    }
    RulerData::Qa qa{doc.str("query"), doc.strings("outputs"), doc.integer("context"), {}};
    for (const json& m : doc.at("more_context")) {
      JET_CHECK(m.is_number_integer(), "{}:{}: more_context must hold integers", squad, line);
      qa.more.push_back(m.get<int64_t>());
    }
    const auto D = static_cast<int64_t>(d.squad_docs.size());
    JET_CHECK(qa.context >= 0 && qa.context < D &&
                  std::all_of(qa.more.begin(), qa.more.end(), [&](int64_t m) { return m >= 0 && m < D; }),
              "{}:{}: a paragraph index outside the {} of line 1", squad, line, D);
    d.squad.push_back(std::move(qa));
  });
  JET_CHECK(!d.squad.empty(), "{}: no questions", squad);
  return d;
}

namespace {

// A sample's random choices, drawn once, so that the haystack size can be searched with them fixed.
struct Draws {
  uint64_t seed, i;
  mutable uint64_t k = 0;
  uint64_t next() const { return draw(seed, i, k++); }
  int64_t below(int64_t n) const { return static_cast<int64_t>(hash_below(next(), static_cast<uint64_t>(n))); }
  template <class T>
  void shuffle(std::vector<T>& v) const {
    for (int64_t j = static_cast<int64_t>(v.size()) - 1; j > 0; --j) std::swap(v[j], v[below(j + 1)]);
  }
};

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

// The largest size in [1, hi] whose text fits (fits(size) is monotone); 0 if none.
int64_t largest_fitting(int64_t hi, const std::function<bool(int64_t)>& fits) {
  int64_t lo = 0;
  while (lo < hi) {
    const int64_t mid = lo + (hi - lo + 1) / 2;
    if (fits(mid))
      lo = mid;
    else
      hi = mid - 1;
  }
  return lo;
}

// Sentences of a text: cut after ". ", "? " or "! " (the space dropped).
std::vector<std::string> sentences(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t i = 0; i + 1 < text.size(); ++i)
    if ((text[i] == '.' || text[i] == '?' || text[i] == '!') && text[i + 1] == ' ') {
      out.push_back(text.substr(start, i + 1 - start));
      start = i + 2;
    }
  if (start < text.size()) out.push_back(text.substr(start));
  return out;
}

struct Built {
  std::string prompt;
  std::vector<std::string> refs;
};

Built niah(const RulerData& data, const Draws& rnd, int64_t n_keys, int64_t n_values, int64_t words) {
  std::vector<std::string> keys, needles;
  std::vector<std::vector<std::string>> values;
  for (int64_t k = 0; k < n_keys; ++k) {
    const auto& kw = data.key_words;
    keys.push_back(kw[rnd.below(static_cast<int64_t>(kw.size()))] + "-" + kw[rnd.below(static_cast<int64_t>(kw.size()))]);
    values.emplace_back();
    for (int64_t v = 0; v < n_values; ++v) {
      values.back().push_back(std::to_string(1000000 + rnd.below(9000000)));
      needles.push_back(fmt::format("One of the special magic numbers for {} is: {}.", keys.back(), values.back().back()));
    }
  }
  rnd.shuffle(needles);
  const int64_t asked = rnd.below(n_keys);
  // RULER's 40 depths (round(linspace(0, 100, 40))), as many as needles without replacement, sorted.
  std::vector<int64_t> depths;
  for (int64_t d = 0; d < 40; ++d) depths.push_back(std::lround(100.0 * static_cast<double>(d) / 39.0));
  rnd.shuffle(depths);
  depths.resize(needles.size());
  const std::vector<std::string> words_used(data.essay_words.begin(), data.essay_words.begin() + words);
  const auto sents = sentences(join(words_used, " "));
  std::vector<int64_t> at;
  for (int64_t d : depths) at.push_back(static_cast<int64_t>(sents.size()) * d / 100);
  std::sort(at.begin(), at.end());
  std::vector<std::string> parts;
  size_t s = 0;
  for (size_t k = 0; k <= needles.size(); ++k) {
    const size_t end = k < needles.size() ? static_cast<size_t>(at[k]) : sents.size();
    std::vector<std::string> chunk(sents.begin() + static_cast<int64_t>(s), sents.begin() + static_cast<int64_t>(end));
    if (!chunk.empty()) parts.push_back(join(chunk, " "));
    if (k < needles.size()) parts.push_back(needles[k]);
    s = end;
  }
  std::string tmpl =
      "Some special magic {type} are hidden within the following text. Make sure to memorize it. I will quiz you "
      "about the {type} afterwards.\n{context}\nWhat are all the special magic {type} for {query} mentioned in the "
      "provided text? The special magic {type} for {query} mentioned in the provided text are";
  std::string type = "numbers";
  if (n_values == 1) {  // one answer: RULER's singular wording
    for (auto [from, to] : {std::pair{"Some", "A"}, {"are all", "is"}, {"are", "is"}}) tmpl = replace_all(tmpl, from, to);
    type = "number";
  }
  tmpl = replace_all(replace_all(tmpl, "{type}", type), "{query}", keys[asked]);
  return {replace_all(tmpl, "{context}", join(parts, " ")), values[asked]};
}

Built variable_tracking(const Draws& rnd, int64_t lines) {
  constexpr int64_t kHops = 4;
  std::vector<std::string> vars;
  while (static_cast<int64_t>(vars.size()) < kHops + 1) {
    std::string v;
    for (int c = 0; c < 5; ++c) v += static_cast<char>('A' + rnd.below(26));
    if (std::find(vars.begin(), vars.end(), v) == vars.end()) vars.push_back(v);
  }
  const std::string value = std::to_string(10000 + rnd.below(89999));
  std::vector<std::string> chain = {fmt::format("VAR {} = {}", vars[0], value)};
  for (int64_t j = 0; j < kHops; ++j) chain.push_back(fmt::format("VAR {} = VAR {} ", vars[j + 1], vars[j]));
  std::vector<std::string> sents(lines, "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again.\n");
  std::vector<int64_t> pos(lines);
  std::iota(pos.begin(), pos.end(), 0);
  rnd.shuffle(pos);
  pos.resize(std::min<size_t>(chain.size(), pos.size()));
  std::sort(pos.begin(), pos.end());
  for (size_t j = 0; j < pos.size(); ++j) sents.insert(sents.begin() + pos[j] + static_cast<int64_t>(j), chain[j]);
  const std::string context = replace_all(join(sents, " "), ". \n", ".\n");
  return {fmt::format("Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n{}\n"
                      "Question: Find all variables that are assigned the value {} in the text above. Answer: According "
                      "to the chain(s) of variable assignment in the text above, {} variables are assgined the value "
                      "{}, they are: ",
                      context, value, kHops + 1, value),
          vars};
}

Built squad_qa(const RulerData& data, const RulerData::Qa& qa, const std::vector<int64_t>& candidates,
               const Draws& rnd, int64_t docs) {
  std::vector<int64_t> used(candidates.begin(), candidates.begin() + docs);
  rnd.k = uint64_t{1} << 32;  // the same permutation stream for every size
  rnd.shuffle(used);
  std::vector<std::string> parts;
  for (size_t i = 0; i < used.size(); ++i) parts.push_back(fmt::format("Document {}:\n{}", i + 1, data.squad_docs[used[i]]));
  const char* ask =
      "Answer the question based on the given documents. Only give me the answer and do not output any other words.";
  return {fmt::format("{}\n\nThe following are given documents.\n\n{}\n\n{}\n\nQuestion: {} Answer:", ask,
                      join(parts, "\n\n"), ask, qa.query),
          qa.outputs};
}

}  // namespace

RulerTask make_ruler(const std::string& name, int64_t length, const RulerData& data, const text::Tokenizer& tok,
                     int64_t n, uint64_t seed) {
  const auto& names = ruler_names();
  JET_CHECK(std::find(names.begin(), names.end(), name) != names.end(), "no RULER task named '{}'", name);
  JET_CHECK(n > 0 && length > 0, "{}: samples and length must be positive", name);
  RulerTask t;
  t.name = name;
  t.length = length;
  t.max_new_tokens = name == "vt" ? 30 : name == "qa_squad" ? 32 : 128;
  t.match_all = name != "qa_squad";
  const uint64_t stream = mix64(seed ^ name_tag(name)) ^ static_cast<uint64_t>(length);
  const auto qa_order = subsample(static_cast<int64_t>(data.squad.size()), std::min<int64_t>(n, data.squad.size()), seed, name);
  for (int64_t i = 0; i < n; ++i) {
    const Draws rnd{stream, static_cast<uint64_t>(i)};
    std::function<Built(int64_t)> build;
    int64_t hi = 0;
    std::vector<int64_t> candidates;
    if (name == "vt") {
      hi = length;  // filler lines (each > 1 token)
      build = [&](int64_t size) {
        rnd.k = 0;
        return variable_tracking(rnd, size);
      };
    } else if (name == "qa_squad") {
      const auto& qa = data.squad[qa_order[i % qa_order.size()]];
      candidates = {qa.context};
      std::vector<int64_t> more = qa.more;
      rnd.shuffle(more);
      candidates.insert(candidates.end(), more.begin(), more.end());
      const auto D = static_cast<int64_t>(data.squad_docs.size());
      for (int64_t k = 0; k < 4 * length / 64 + 8 && static_cast<int64_t>(candidates.size()) < D; ++k) {
        const int64_t c = rnd.below(D);
        if (std::find(candidates.begin(), candidates.end(), c) == candidates.end()) candidates.push_back(c);
      }
      hi = static_cast<int64_t>(candidates.size());
      build = [&, qa](int64_t size) { return squad_qa(data, qa, candidates, rnd, size); };
    } else {
      const int64_t keys = name == "niah_multikey" ? 4 : 1, values = name == "niah_multivalue" ? 4 : 1;
      hi = std::min<int64_t>(static_cast<int64_t>(data.essay_words.size()), length);  // words (each >= 1 token)
      build = [&, keys, values](int64_t size) {
        rnd.k = 0;
        return niah(data, rnd, keys, values, size);
      };
    }
    auto tokens = [&](int64_t size) { return tok.encode(build(size).prompt, /*add_special_tokens=*/true); };
    const int64_t size = largest_fitting(hi, [&](int64_t s) {
      return static_cast<int64_t>(tokens(s).size()) + t.max_new_tokens <= length;
    });
    JET_CHECK(size > 0, "{}: length {} is too short for the prompt and {} generated tokens", name, length,
              t.max_new_tokens);
    t.prompts.push_back(tokens(size));
    t.refs.push_back(build(size).refs);
  }
  return t;
}

double ruler_score(const model::CausalLM& lm, const RulerTask& task, const text::Tokenizer& tok, int64_t max_batch,
                   const OnProgress& on_progress) {
  JET_CHECK(!task.prompts.empty() && task.prompts.size() == task.refs.size(), "{}: no samples", task.name);
  auto score = [&](const std::string& text, const std::vector<std::string>& refs) {
    const std::string pred = ascii_lower(text);
    double found = 0;
    for (const auto& r : refs) found += pred.find(ascii_lower(r)) != std::string::npos;
    return task.match_all ? found / static_cast<double>(refs.size()) : (found > 0 ? 1.0 : 0.0);
  };
  engine::GenerateOptions go;
  go.max_new_tokens = task.max_new_tokens;
  go.sampling.temperature = 0;
  go.stop_ids = tok.stop_ids();
  go.max_batch = max_batch;
  double total = 0;
  const auto n = static_cast<int64_t>(task.prompts.size());
  for (int64_t i0 = 0; i0 < n; i0 += max_batch) {
    const int64_t i1 = std::min(n, i0 + max_batch);
    const std::vector<std::vector<int32_t>> prompts(task.prompts.begin() + i0, task.prompts.begin() + i1);
    std::vector<std::vector<int32_t>> gen(prompts.size());
    engine::generate_batch(lm, prompts, go, [&](size_t k, int32_t id) {
      gen[k].push_back(id);
      // Every reference found: more tokens cannot change the score.
      return score(tok.decode(gen[k], /*skip_special_tokens=*/true), task.refs[i0 + k]) < 1.0;
    });
    for (size_t k = 0; k < gen.size(); ++k) total += score(tok.decode(gen[k], true), task.refs[i0 + k]);
    if (on_progress) on_progress(i1);
  }
  return total / static_cast<double>(n);
}

}  // namespace jet::eval
