// Byte-level BPE (GPT-2 family, as HF `tokenizers` runs it): added/special tokens are cut out of the
// text first (longest match), the rest is normalized (NFC where the tokenizer asks: Qwen2) and
// pre-tokenised (optional single-digit split, then a Unicode regex), each piece's bytes are mapped to
// printable code points and merged by merge rank.
#include "text/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <queue>
#include <sstream>
#include <unordered_map>

#include "core/check.h"
#include "io/gguf.h"
#include "text/unicode_nfc.h"

namespace jet::text {

namespace {

// Pre-tokeniser regexes (HF ByteLevel's GPT-2 pattern; the Llama-3 and Qwen2 Split patterns).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Length of the UTF-8 sequence starting with byte c (1 for stray continuation bytes).
int utf8_len(unsigned char c) {
  if (c < 0x80) return 1;
  if ((c >> 5) == 0x6) return 2;
  if ((c >> 4) == 0xE) return 3;
  if ((c >> 3) == 0x1E) return 4;
  return 1;
}

// GPT-2's reversible byte <-> printable code point table.
struct ByteMap {
  std::string enc[256];                           // byte -> UTF-8 of its code point
  std::unordered_map<std::string, uint8_t> dec;  // inverse
  ByteMap() {
    int n = 0;
    for (int b = 0; b < 256; ++b) {
      bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      uint32_t cp = printable ? b : 256 + n++;
      append_utf8(enc[b], cp);
      dec[enc[b]] = uint8_t(b);
    }
  }
};
const ByteMap& byte_map() {
  static const ByteMap m;
  return m;
}

// HF tokenizers runs its regexes with Oniguruma, whose \s is Unicode White_Space: \p{Z} plus
// U+0009-000D and U+0085. PCRE2's \s (with UCP) also matches U+180E (it is in PCRE2's \h list), so
// \s and \S are spelled out as that set, inside and outside character classes.
std::string onig_whitespace(const std::string& pattern) {
  static const char* kSet = R"(\t-\r\x{85}\p{Z})";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[++i];
      if (e == 's') {
        out += in_class ? std::string(kSet) : "[" + std::string(kSet) + "]";
      } else if (e == 'S') {
        JET_CHECK(!in_class, "tokenizer: \\S inside a character class is not supported: {}", pattern);
        out += "[^" + std::string(kSet) + "]";
      } else {
        out += c, out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // a leading ] is literal
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

struct Regex {
  pcre2_code* code = nullptr;
  explicit Regex(const std::string& spec) {
    const std::string pattern = onig_whitespace(spec);
    int err;
    PCRE2_SIZE off;
    code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.c_str()), pattern.size(),
                         PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK, &err, &off, nullptr);
    JET_CHECK(code, "tokenizer: cannot compile pre-tokeniser regex at offset {}: {}", off, pattern);
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);
  }
  ~Regex() { pcre2_code_free(code); }
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Isolated split: every match is a piece, and so is every gap between matches.
  void split(const std::string& s, std::vector<std::string>& out) const {
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
    size_t pos = 0, last = 0;
    while (pos <= s.size()) {
      int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), pos,
                           PCRE2_NO_UTF_CHECK, md, nullptr);
      if (rc == PCRE2_ERROR_NOMATCH) break;
      if (rc < 0) {
        pcre2_match_data_free(md);
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(rc, msg, sizeof msg);
        JET_FAIL("tokenizer: pre-tokeniser regex failed on a {}-byte text: {}", s.size(), reinterpret_cast<char*>(msg));
      }
      PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
      if (ov[0] > last) out.push_back(s.substr(last, ov[0] - last));
      if (ov[1] > ov[0]) out.push_back(s.substr(ov[0], ov[1] - ov[0]));
      last = ov[1];
      pos = ov[1] > ov[0] ? ov[1] : ov[1] + (ov[1] < s.size() ? utf8_len(s[ov[1]]) : 1);
    }
    if (last < s.size()) out.push_back(s.substr(last));
    pcre2_match_data_free(md);
  }
};

// Length of the valid UTF-8 sequence at s[i] (0 if the bytes there are not one): no overlong forms,
// no surrogates, nothing above U+10FFFF.
size_t valid_utf8_prefix(const std::string& s, size_t i) {
  const unsigned char c = s[i];
  if (c < 0x80) return 1;
  const int n = utf8_len(c);
  if (n == 1 || i + n > s.size()) return 0;
  uint32_t cp = c & (0x7F >> n);
  for (int k = 1; k < n; ++k) {
    const unsigned char d = s[i + k];
    if ((d & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (d & 0x3F);
  }
  const uint32_t min = n == 2 ? 0x80 : n == 3 ? 0x800 : 0x10000;
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return size_t(n);
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  JET_CHECK(f, "{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

constexpr int64_t kMaxVocab = int64_t(1) << 24;

struct AddedToken {
  std::string content;
  int32_t id;
  bool special;
};

struct Tokenizer::Impl {
  // Filled by a loader, then finish() derives the lookup tables.
  std::vector<std::string> vocab;  // id -> token (byte-level form; added tokens: their content)
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order, as in the file
  std::vector<AddedToken> added;
  std::string pre = "gpt2";   // gpt2 | smollm (digits + gpt2) | llama3 | qwen2 | custom
  std::string custom_pattern;
  bool split_digits = false;
  bool ignore_merges = false;
  bool nfc = false;  // NFC normalizer before pre-tokenising (Qwen2's tokenizer)
  int32_t bos = -1, eos = -1, pad = -1, unk = -1;
  bool add_bos = false;
  std::string chat_template;
  int64_t model_max_length = 0;

  // Derived by finish().
  std::unordered_map<std::string, int32_t> ids;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merge_of;  // (left id, right id) -> (rank, merged id)
  int32_t byte_id[256];                 // id of each byte's byte-level symbol, -1 if not in the vocabulary
  std::vector<std::string> bytes_of;    // id -> the bytes it decodes to
  std::vector<bool> special;            // per id
  std::vector<std::vector<int32_t>> added_by_byte = std::vector<std::vector<int32_t>>(256);  // first byte ->
                                                                    // indices into added, longest first
  std::unique_ptr<Regex> regex;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;  // short pieces -> ids

  static uint64_t pair_key(int32_t l, int32_t r) { return (uint64_t(uint32_t(l)) << 32) | uint32_t(r); }

  void finish(const std::string& where) {
    const int32_t n = int32_t(vocab.size());
    ids.clear();
    for (int32_t i = 0; i < n; ++i) ids.emplace(vocab[i], i);
    special.assign(n, false);
    std::vector<bool> is_added(n, false);
    for (auto& a : added) {
      JET_CHECK(a.id >= 0 && a.id < n, "{}: added token '{}' has id {} outside the vocabulary", where, a.content, a.id);
      special[a.id] = a.special;
      is_added[a.id] = true;
      ids[a.content] = a.id;
    }
    auto id_of = [&](const std::string& s) {
      auto it = ids.find(s);
      return it == ids.end() ? -1 : it->second;
    };
    // Later duplicates of a merge win, as in HF tokenizers.
    merge_of.clear();
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto& [l, rt] = merges[r];
      const int32_t a = id_of(l), b = id_of(rt), m = id_of(l + rt);
      JET_CHECK(a >= 0 && b >= 0 && m >= 0, "{}: merge '{} {}' names a token that is not in the vocabulary", where, l,
                rt);
      merge_of[pair_key(a, b)] = {int32_t(r), m};
    }
    const ByteMap& bm = byte_map();
    for (int b = 0; b < 256; ++b) byte_id[b] = id_of(bm.enc[b]);
    // Decoding as HF's ByteLevel decoder: a token whose characters are all byte symbols becomes those
    // bytes; any other token (and every added token) is its own text.
    bytes_of.assign(n, "");
    for (int32_t i = 0; i < n; ++i) {
      const std::string& s = vocab[i];
      if (is_added[i]) {
        bytes_of[i] = s;
        continue;
      }
      std::string out;
      bool all_bytes = true;
      for (size_t k = 0; k < s.size() && all_bytes;) {
        const int len = utf8_len(s[k]);
        auto it = bm.dec.find(s.substr(k, len));
        if (it == bm.dec.end()) all_bytes = false;
        else out += char(it->second);
        k += len;
      }
      bytes_of[i] = all_bytes ? out : s;
    }
    // Literal matching of added tokens: per first byte, longest first (leftmost-longest overall).
    for (auto& v : added_by_byte) v.clear();
    for (size_t k = 0; k < added.size(); ++k)
      if (!added[k].content.empty()) added_by_byte[uint8_t(added[k].content[0])].push_back(int32_t(k));
    for (auto& v : added_by_byte)
      std::stable_sort(v.begin(), v.end(),
                       [&](int32_t x, int32_t y) { return added[x].content.size() > added[y].content.size(); });
    const char* pat = pre == "llama3" ? kLlama3Pattern : pre == "qwen2" ? kQwen2Pattern : kGpt2Pattern;
    regex = std::make_unique<Regex>(pre == "custom" ? custom_pattern : pat);
  }

  // BPE of one pre-tokenised piece (raw bytes): symbols in a linked list, candidate merges in a heap
  // ordered by (rank, position); a popped candidate whose symbols have changed since is stale.
  void bpe(const std::string& piece, std::vector<int32_t>& out) const {
    const bool cacheable = piece.size() <= 64;
    if (cacheable) {
      std::lock_guard<std::mutex> g(cache_mu);
      auto it = cache.find(piece);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    std::vector<int32_t> res;
    if (ignore_merges) {
      std::string whole;
      for (unsigned char c : piece) whole += byte_map().enc[c];
      auto it = ids.find(whole);
      if (it != ids.end()) res.push_back(it->second);
    }
    if (res.empty()) {
      struct Sym {
        int32_t id, prev, next;
      };
      std::vector<Sym> sym;
      sym.reserve(piece.size());
      for (unsigned char c : piece) {
        // A byte without a symbol becomes the unknown token, or is dropped when there is none (as HF does).
        const int32_t id = byte_id[c] >= 0 ? byte_id[c] : unk;
        if (id < 0) continue;
        sym.push_back({id, int32_t(sym.size()) - 1, int32_t(sym.size()) + 1});
      }
      if (!sym.empty()) sym.back().next = -1;
      struct Cand {
        int32_t rank, pos, left, right, merged;
        bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
      };
      std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
      auto push = [&](int32_t pos) {
        if (pos < 0 || sym[pos].next < 0) return;
        const int32_t l = sym[pos].id, r = sym[sym[pos].next].id;
        auto it = merge_of.find(pair_key(l, r));
        if (it != merge_of.end()) heap.push({it->second.first, pos, l, r, it->second.second});
      };
      for (int32_t i = 0; i + 1 < int32_t(sym.size()); ++i) push(i);
      while (!heap.empty()) {
        const Cand c = heap.top();
        heap.pop();
        Sym& s = sym[c.pos];
        if (s.id != c.left || s.next < 0 || sym[s.next].id != c.right) continue;  // stale
        const int32_t gone = s.next;
        s.id = c.merged;
        s.next = sym[gone].next;
        if (s.next >= 0) sym[s.next].prev = c.pos;
        sym[gone].id = -1;
        push(s.prev);
        push(c.pos);
      }
      for (int32_t i = sym.empty() ? -1 : 0; i >= 0; i = sym[i].next) res.push_back(sym[i].id);
    }
    out.insert(out.end(), res.begin(), res.end());
    if (cacheable) {
      std::lock_guard<std::mutex> g(cache_mu);
      if (cache.size() > 100000) cache.clear();
      cache.emplace(piece, std::move(res));
    }
  }

  // Pre-tokenises valid UTF-8 text into pieces.
  void pretokenize(const std::string& text, std::vector<std::string>& pieces) const {
    if (split_digits) {
      // Digits(individual_digits): each digit (any script) is its own piece; the rest is split by regex.
      static const Regex digit(R"(\p{N})");
      std::vector<std::string> parts;
      digit.split(text, parts);
      for (auto& p : parts) regex->split(p, pieces);
    } else {
      regex->split(text, pieces);
    }
  }

  std::string normalized(std::string valid_utf8) const { return nfc ? text::nfc(valid_utf8) : valid_utf8; }

  void encode_plain(const std::string& text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<std::string> pieces;
    // The regex needs valid UTF-8: valid runs are pre-tokenised, each invalid byte is a piece of its own.
    size_t run = 0;
    for (size_t i = 0; i < text.size();) {
      const size_t n = valid_utf8_prefix(text, i);
      if (n > 0) {
        i += n;
        continue;
      }
      if (i > run) pretokenize(normalized(text.substr(run, i - run)), pieces);
      pieces.push_back(text.substr(i, 1));
      run = ++i;
    }
    if (run < text.size()) pretokenize(normalized(text.substr(run)), pieces);
    for (auto& p : pieces) bpe(p, out);
  }
};

namespace {

std::shared_ptr<Tokenizer::Impl> new_impl() { return std::make_shared<Tokenizer::Impl>(); }

// The pre-tokeniser of an HF tokenizer.json: ByteLevel(use_regex) alone, or a Sequence of Digits /
// Split(Regex, Isolated) / ByteLevel(use_regex false).
void parse_pre_tokenizer(const nlohmann::json& p, Tokenizer::Impl& t, const std::string& where) {
  JET_CHECK(p.is_object(), "{}: pre_tokenizer missing (only byte-level BPE tokenizers are supported)", where);
  const std::string type = p.value("type", "");
  if (type == "ByteLevel") {
    JET_CHECK(!p.value("add_prefix_space", false), "{}: ByteLevel add_prefix_space is not supported", where);
    JET_CHECK(p.value("use_regex", true), "{}: ByteLevel without regex and without a Split is not supported", where);
    return;
  }
  JET_CHECK(type == "Sequence", "{}: unsupported pre_tokenizer type '{}'", where, type);
  bool split = false;
  for (auto& e : p.at("pretokenizers")) {
    const std::string et = e.value("type", "");
    if (et == "Digits") {
      t.split_digits = e.value("individual_digits", false);
      JET_CHECK(t.split_digits, "{}: Digits without individual_digits is not supported", where);
    } else if (et == "Split") {
      JET_CHECK(e.contains("pattern") && e["pattern"].contains("Regex"), "{}: Split needs a Regex pattern", where);
      JET_CHECK(e.value("behavior", "") == "Isolated" && !e.value("invert", false),
                "{}: only Isolated, non-inverted Split is supported", where);
      const std::string pat = e["pattern"]["Regex"];
      t.pre = pat == kLlama3Pattern ? "llama3" : pat == kQwen2Pattern ? "qwen2" : "custom";
      t.custom_pattern = pat;
      split = true;
    } else if (et == "ByteLevel") {
      JET_CHECK(!e.value("add_prefix_space", false), "{}: ByteLevel add_prefix_space is not supported", where);
      if (e.value("use_regex", true)) {
        JET_CHECK(!split, "{}: a Split followed by a regex ByteLevel is not supported", where);
        t.pre = t.split_digits ? "smollm" : "gpt2";
      }
    } else {
      JET_FAIL("{}: unsupported pre-tokenizer step '{}'", where, et);
    }
  }
}

}  // namespace

Tokenizer Tokenizer::from_json_file(const std::string& path) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(path));
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: malformed JSON ({})", path, e.what());
  }
  auto t = new_impl();
  try {
    JET_CHECK(j.contains("model") && j["model"].value("type", "") == "BPE", "{}: model.type must be BPE", path);
    const auto& m = j["model"];
    if (j.contains("normalizer") && !j["normalizer"].is_null()) {
      const std::string norm = j["normalizer"].value("type", "?");
      JET_CHECK(norm == "NFC", "{}: normalizer '{}' is not supported (only NFC)", path, norm);
      t->nfc = true;
    }
    parse_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), *t, path);
    t->ignore_merges = m.value("ignore_merges", false);
    const auto& vocab = m.at("vocab");
    JET_CHECK(vocab.is_object(), "{}: model.vocab must be an object", path);
    // Every id is checked before it sizes or indexes anything.
    auto token_id = [&](const nlohmann::json& id, const std::string& what) {
      JET_CHECK(id.is_number_integer() && id.get<int64_t>() >= 0 && id.get<int64_t>() < kMaxVocab,
                "{}: {} has id {}, outside [0, {})", path, what, id.dump(), kMaxVocab);
      return id.get<int64_t>();
    };
    int64_t n = 0;
    for (auto& [tok, id] : vocab.items()) n = std::max<int64_t>(n, token_id(id, "token '" + tok + "'") + 1);
    for (auto& a : j.value("added_tokens", nlohmann::json::array()))
      n = std::max<int64_t>(n, token_id(a.at("id"), "an added token") + 1);
    JET_CHECK(n > 0, "{}: the vocabulary is empty", path);
    t->vocab.assign(n, "");
    for (auto& [tok, id] : vocab.items()) t->vocab[id.get<int64_t>()] = tok;
    for (auto& a : j.value("added_tokens", nlohmann::json::array())) {
      JET_CHECK(!a.value("lstrip", false) && !a.value("rstrip", false) && !a.value("single_word", false),
                "{}: added token {} uses lstrip/rstrip/single_word, which is not supported", path,
                a.at("content").dump());
      t->added.push_back({a.at("content"), static_cast<int32_t>(token_id(a.at("id"), "an added token")),
                          a.value("special", false)});
      t->vocab[t->added.back().id] = t->added.back().content;
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      for (int32_t i = 0; i < int32_t(n); ++i)
        if (t->vocab[i] == m["unk_token"].get<std::string>()) t->unk = i;
    }
    for (auto& mg : m.at("merges")) {
      if (mg.is_array()) {
        JET_CHECK(mg.size() == 2, "{}: a merge must have two parts", path);
        t->merges.emplace_back(mg[0], mg[1]);
      } else {
        const std::string s = mg;
        auto sp = s.find(' ');
        JET_CHECK(sp != std::string::npos, "{}: merge '{}' has no space", path, s);
        JET_CHECK(s.find(' ', sp + 1) == std::string::npos, "{}: merge '{}' has more than two parts", path, s);
        t->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
      }
    }
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: unexpected tokenizer.json layout ({})", path, e.what());
  }
  // tokenizer_config.json beside it: chat template, special token names, add_bos.
  std::string dir = path.substr(0, path.find_last_of('/') == std::string::npos ? 0 : path.find_last_of('/') + 1);
  std::ifstream cf(dir + "tokenizer_config.json");
  auto token_id = [&](const nlohmann::json& v) -> int32_t {
    std::string s = v.is_string() ? v.get<std::string>() : v.is_object() ? v.value("content", "") : "";
    for (auto& a : t->added)
      if (a.content == s) return a.id;
    return -1;
  };
  if (cf) {
    nlohmann::json c;
    try {
      std::stringstream ss;
      ss << cf.rdbuf();
      c = nlohmann::json::parse(ss.str());
    } catch (const nlohmann::json::exception& e) {
      JET_FAIL("{}tokenizer_config.json: malformed JSON ({})", dir, e.what());
    }
    try {
      JET_CHECK(c.is_object(), "{}tokenizer_config.json: not a JSON object", dir);
      if (c.contains("chat_template") && c["chat_template"].is_string()) t->chat_template = c["chat_template"];
      if (c.contains("bos_token")) t->bos = token_id(c["bos_token"]);
      if (c.contains("eos_token")) t->eos = token_id(c["eos_token"]);
      if (c.contains("pad_token")) t->pad = token_id(c["pad_token"]);
      t->add_bos = c.value("add_bos_token", false) && t->bos >= 0;
      if (c.contains("model_max_length") && c["model_max_length"].is_number_integer())
        t->model_max_length = c["model_max_length"];
    } catch (const nlohmann::json::exception& e) {
      JET_FAIL("{}tokenizer_config.json: unexpected layout ({})", dir, e.what());
    }
  }
  t->finish(path);
  Tokenizer tok;
  tok.impl_ = t;
  return tok;
}

Tokenizer Tokenizer::from_gguf(const gguf::File& f) {
  const std::string& where = f.path();
  auto t = new_impl();
  const std::string model = f.has("tokenizer.ggml.model") ? f.get_string("tokenizer.ggml.model") : "";
  JET_CHECK(model == "gpt2", "{}: tokenizer model '{}' is not supported (only byte-level BPE 'gpt2')", where, model);
  const std::string pre = f.has("tokenizer.ggml.pre") ? f.get_string("tokenizer.ggml.pre") : "default";
  if (pre == "smollm") {
    t->pre = "smollm", t->split_digits = true;
  } else if (pre == "llama-bpe" || pre == "llama3") {
    t->pre = "llama3", t->ignore_merges = true;
  } else if (pre == "qwen2") {
    t->pre = "qwen2", t->nfc = true;  // HF's Qwen2 tokenizer.json normalizes to NFC
  } else if (pre == "gpt2" || pre == "default") {
    t->pre = "gpt2";
  } else {
    JET_FAIL("{}: tokenizer pre-tokeniser '{}' is not supported (smollm, llama-bpe, qwen2, gpt2)", where, pre);
  }
  t->vocab = f.get_strings("tokenizer.ggml.tokens");
  JET_CHECK(!t->vocab.empty() && int64_t(t->vocab.size()) < kMaxVocab, "{}: {} tokens (expected 1 to {})", where,
            t->vocab.size(), kMaxVocab - 1);
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type")) {
    const auto& tt = f.metadata()["tokenizer.ggml.token_type"];
    JET_CHECK(tt.is_array(), "{}: tokenizer.ggml.token_type is not an array", where);
    for (auto& v : tt) {
      JET_CHECK(v.is_number_integer(), "{}: tokenizer.ggml.token_type holds {}, not an integer", where, v.dump());
      types.push_back(v.get<int64_t>());
    }
  }
  JET_CHECK(types.empty() || types.size() == t->vocab.size(), "{}: token_type has {} entries for {} tokens", where,
            types.size(), t->vocab.size());
  for (size_t i = 0; i < types.size(); ++i)
    if (types[i] == 3 || types[i] == 4) t->added.push_back({t->vocab[i], int32_t(i), types[i] == 3});
  for (const std::string& s : f.get_strings("tokenizer.ggml.merges")) {
    auto sp = s.find(' ');
    JET_CHECK(sp != std::string::npos, "{}: merge '{}' has no space", where, s);
    t->merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
  auto id_or = [&](const char* key) -> int32_t {
    if (!f.has(key)) return -1;
    int64_t v = f.get_int(key);
    JET_CHECK(v >= 0 && v < int64_t(t->vocab.size()), "{}: {} = {} is outside the vocabulary", where, key, v);
    return int32_t(v);
  };
  t->bos = id_or("tokenizer.ggml.bos_token_id");
  t->eos = id_or("tokenizer.ggml.eos_token_id");
  t->pad = id_or("tokenizer.ggml.padding_token_id");
  t->unk = id_or("tokenizer.ggml.unknown_token_id");
  if (f.has("tokenizer.ggml.add_bos_token")) {
    const auto& v = f.metadata()["tokenizer.ggml.add_bos_token"];
    JET_CHECK(v.is_boolean(), "{}: tokenizer.ggml.add_bos_token is not a bool", where);
    t->add_bos = v.get<bool>() && t->bos >= 0;
  }
  if (f.has("tokenizer.chat_template")) t->chat_template = f.get_string("tokenizer.chat_template");
  for (const char* k : {"llama.context_length", "qwen2.context_length"})
    if (f.has(k)) t->model_max_length = f.get_int(k);
  t->finish(where);
  Tokenizer tok;
  tok.impl_ = t;
  return tok;
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool add_special_tokens) const {
  const Impl& t = *impl_;
  std::vector<int32_t> out;
  if (add_special_tokens && t.add_bos) out.push_back(t.bos);
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    const AddedToken* hit = nullptr;
    for (int32_t k : t.added_by_byte[uint8_t(text[pos])]) {  // longest first
      const AddedToken& a = t.added[k];
      if (text.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    t.encode_plain(text.substr(start, pos - start), out);
    out.push_back(hit->id);
    pos += hit->content.size();
    start = pos;
  }
  t.encode_plain(text.substr(start), out);
  return out;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  const Impl& t = *impl_;
  std::string out;
  for (int32_t id : ids) {
    JET_CHECK(id >= 0 && id < int32_t(t.vocab.size()), "decode: token id {} outside the vocabulary (size {})", id,
              t.vocab.size());
    if (!(t.special[id] && skip_special_tokens)) out += t.bytes_of[id];
  }
  return out;
}

int32_t Tokenizer::vocab_size() const { return int32_t(impl_->vocab.size()); }
int32_t Tokenizer::bos_id() const { return impl_->bos; }
int32_t Tokenizer::eos_id() const { return impl_->eos; }
bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && id < int32_t(impl_->special.size()) && impl_->special[id];
}

std::vector<int32_t> Tokenizer::stop_ids() const {
  std::vector<int32_t> s;
  if (impl_->eos >= 0) s.push_back(impl_->eos);
  for (auto& a : impl_->added)
    if ((a.content == "<|im_end|>" || a.content == "<|eot_id|>" || a.content == "<|endoftext|>") &&
        std::find(s.begin(), s.end(), a.id) == s.end())
      s.push_back(a.id);
  return s;
}

bool Tokenizer::has_chat_template() const { return !impl_->chat_template.empty(); }

namespace {

// The default system prompt a ChatML template writes as a literal when the chat has no system turn
// ("" if it writes none, or if the text between the markers is template code, not a literal).
std::string chatml_default_system(const std::string& tpl) {
  const std::string open = "<|im_start|>system\n";
  const auto p = tpl.find(open);
  if (p == std::string::npos) return "";
  const auto e = tpl.find("<|im_end|>", p);
  if (e == std::string::npos) return "";
  const std::string body = tpl.substr(p + open.size(), e - p - open.size());
  for (const char* code : {"{{", "{%", "'", "\"", "+"})
    if (body.find(code) != std::string::npos) return "";
  return body;
}

std::string trim(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const auto b = s.find_first_not_of(ws);
  return b == std::string::npos ? "" : s.substr(b, s.find_last_not_of(ws) - b + 1);
}

// How to do without a chat template, in the errors below.
const char* kPlainPrompt = "send the prompt as plain text (--no-chat-template; generate: without --chat)";

}  // namespace

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  const std::string& tpl = impl_->chat_template;
  JET_CHECK(!tpl.empty(), "this model has no chat template; {}", kPlainPrompt);
  for (auto& m : messages)
    JET_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant", "chat: unknown role '{}'", m.role);
  std::string out;
  if (tpl.find("<|im_start|>") != std::string::npos) {
    // ChatML; the template's literal default system turn goes first when the chat starts without one.
    const std::string sys = chatml_default_system(tpl);
    if (!sys.empty() && !messages.empty() && messages[0].role != "system")
      out += "<|im_start|>system\n" + sys + "<|im_end|>\n";
    for (auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  if (tpl.find("<|start_header_id|>") != std::string::npos) {
    // Llama-3(.0): BOS, then header / content (trimmed where the template trims) / <|eot_id|> per turn.
    // Llama-3.1+ templates add a dated system block and tool sections that are not rendered here.
    JET_CHECK(tpl.find("Cutting Knowledge Date") == std::string::npos,
              "chat template: the Llama-3.1+ template (dated system block, tools) is not supported; {}",
              kPlainPrompt);
    const bool trims = tpl.find("| trim") != std::string::npos || tpl.find("|trim") != std::string::npos;
    if (impl_->bos >= 0) out += impl_->vocab[impl_->bos];
    for (auto& m : messages)
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + (trims ? trim(m.content) : m.content) +
             "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  JET_FAIL("unrecognised chat template (ChatML and Llama-3 are supported); {}", kPlainPrompt);
}

nlohmann::json Tokenizer::to_hf_json() const {
  const Impl& t = *impl_;
  nlohmann::json j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  std::vector<AddedToken> added = t.added;
  std::sort(added.begin(), added.end(), [](auto& a, auto& b) { return a.id < b.id; });
  j["added_tokens"] = nlohmann::json::array();
  for (auto& a : added)
    j["added_tokens"].push_back({{"id", a.id}, {"content", a.content}, {"single_word", false}, {"lstrip", false},
                                 {"rstrip", false}, {"normalized", false}, {"special", a.special}});
  j["normalizer"] = t.nfc ? nlohmann::json{{"type", "NFC"}} : nlohmann::json(nullptr);
  nlohmann::json bytelevel = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true},
                              {"use_regex", true}};
  if (t.pre == "gpt2") {
    j["pre_tokenizer"] = bytelevel;
  } else if (t.pre == "smollm") {
    j["pre_tokenizer"] = {{"type", "Sequence"},
                          {"pretokenizers", {{{"type", "Digits"}, {"individual_digits", true}}, bytelevel}}};
  } else {
    const std::string pat = t.pre == "llama3" ? kLlama3Pattern : t.pre == "qwen2" ? kQwen2Pattern : t.custom_pattern;
    nlohmann::json bl = bytelevel;
    bl["use_regex"] = false;
    nlohmann::json steps = nlohmann::json::array();
    if (t.split_digits) steps.push_back({{"type", "Digits"}, {"individual_digits", true}});
    steps.push_back({{"type", "Split"}, {"pattern", {{"Regex", pat}}}, {"behavior", "Isolated"}, {"invert", false}});
    steps.push_back(bl);
    j["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", steps}};
  }
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  nlohmann::json vocab = nlohmann::json::object();
  for (size_t i = 0; i < t.vocab.size(); ++i) vocab[t.vocab[i]] = i;
  nlohmann::json mj = nlohmann::json::array();
  for (auto& [l, r] : t.merges) mj.push_back({l, r});
  j["model"] = {{"type", "BPE"},
                {"dropout", nullptr},
                {"unk_token", t.unk >= 0 ? nlohmann::json(t.vocab[t.unk]) : nlohmann::json(nullptr)},
                {"continuing_subword_prefix", nullptr},
                {"end_of_word_suffix", nullptr},
                {"fuse_unk", false},
                {"byte_fallback", false},
                {"ignore_merges", t.ignore_merges},
                {"vocab", vocab},
                {"merges", mj}};
  return j;
}

nlohmann::json Tokenizer::hf_tokenizer_config() const {
  const Impl& t = *impl_;
  nlohmann::json c;
  c["tokenizer_class"] = "PreTrainedTokenizerFast";
  c["clean_up_tokenization_spaces"] = false;
  c["add_bos_token"] = t.add_bos;
  c["add_eos_token"] = false;
  auto name = [&](int32_t id) { return id >= 0 ? nlohmann::json(t.vocab[id]) : nlohmann::json(nullptr); };
  c["bos_token"] = name(t.bos);
  c["eos_token"] = name(t.eos);
  c["pad_token"] = name(t.pad);
  c["unk_token"] = name(t.unk);
  if (!t.chat_template.empty()) c["chat_template"] = t.chat_template;
  if (t.model_max_length > 0) c["model_max_length"] = t.model_max_length;
  return c;
}

std::string StreamDecoder::push(int32_t id) {
  pending_ += tok_.decode({id});
  // Emit everything up to the last complete UTF-8 sequence; keep an unfinished tail.
  size_t cut = pending_.size(), i = pending_.size();
  int back = 0;
  while (i > 0 && back < 4) {
    --i, ++back;
    unsigned char c = pending_[i];
    if ((c & 0xC0) != 0x80) {  // a lead (or ASCII) byte
      if (c >= 0x80 && utf8_len(c) > back && utf8_len(c) > 1) cut = i;
      break;
    }
  }
  std::string out = pending_.substr(0, cut);
  pending_.erase(0, cut);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(pending_);
  return out;
}

}  // namespace jet::text
