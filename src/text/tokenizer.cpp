// Byte-level BPE (GPT-2 family, as HF `tokenizers` runs it): added/special tokens are cut out of the
// text first (longest match), the rest is pre-tokenised (optional single-digit split, then a Unicode
// regex), each piece's bytes are mapped to printable code points and merged by merge rank.
#include "text/tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <climits>
#include <fstream>
#include <mutex>
#include <sstream>
#include <unordered_map>

#include "core/check.h"
#include "io/gguf.h"

namespace jet::text {

namespace {

// Pre-tokeniser regexes (HF ByteLevel's GPT-2 pattern; the Llama-3 and Qwen2 Split patterns).
const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

void append_utf8(std::string& s, uint32_t cp) {
  if (cp < 0x80) {
    s += char(cp);
  } else if (cp < 0x800) {
    s += char(0xC0 | (cp >> 6)), s += char(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += char(0xE0 | (cp >> 12)), s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  } else {
    s += char(0xF0 | (cp >> 18)), s += char(0x80 | ((cp >> 12) & 0x3F));
    s += char(0x80 | ((cp >> 6) & 0x3F)), s += char(0x80 | (cp & 0x3F));
  }
}

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

struct Regex {
  pcre2_code* code = nullptr;
  explicit Regex(const std::string& pattern) {
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
      if (rc < 0) break;
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

// Valid UTF-8 or not (pcre2 needs valid input; invalid text is handled byte-wise).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = s[i];
    int n = utf8_len(c);
    if (c >= 0x80 && n == 1) return false;
    if (i + n > s.size()) return false;
    for (int k = 1; k < n; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80) return false;
    i += n;
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  JET_CHECK(f, "{}: cannot open", path);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

}  // namespace

struct AddedToken {
  std::string content;
  int32_t id;
  bool special;
};

struct Tokenizer::Impl {
  std::vector<std::string> vocab;  // id -> token (byte-level form; added tokens: their content)
  std::unordered_map<std::string, int32_t> ids;
  std::unordered_map<std::string, int32_t> merge_rank;  // "left right" -> rank
  std::vector<AddedToken> added;
  std::vector<bool> special;  // per id
  std::vector<bool> is_added;  // per id: decoded as its literal content
  std::string pre = "gpt2";   // gpt2 | smollm (digits + gpt2) | llama3 | qwen2 | custom
  std::string custom_pattern;
  bool split_digits = false;
  bool ignore_merges = false;
  int32_t bos = -1, eos = -1, pad = -1, unk = -1;
  bool add_bos = false;
  std::string chat_template;
  int64_t model_max_length = 0;
  std::unique_ptr<Regex> regex;
  mutable std::mutex cache_mu;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  void finish(const std::string& where) {
    for (size_t i = 0; i < vocab.size(); ++i) ids.emplace(vocab[i], int32_t(i));
    special.assign(vocab.size(), false);
    is_added.assign(vocab.size(), false);
    for (auto& a : added) {
      JET_CHECK(a.id >= 0 && a.id < int32_t(vocab.size()), "{}: added token '{}' has id {} outside the vocabulary",
                where, a.content, a.id);
      special[a.id] = a.special;
      is_added[a.id] = true;
    }
    // Longest first, so that matching picks the longest added token at a position.
    std::stable_sort(added.begin(), added.end(),
                     [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
    const char* pat = pre == "llama3" ? kLlama3Pattern : pre == "qwen2" ? kQwen2Pattern : kGpt2Pattern;
    regex = std::make_unique<Regex>(pre == "custom" ? custom_pattern : pat);
  }

  void add_merge(const std::string& l, const std::string& r, const std::string& where) {
    JET_CHECK(ids.count(l) && ids.count(r) && ids.count(l + r),
              "{}: merge '{} {}' names a token that is not in the vocabulary", where, l, r);
    merge_rank.emplace(l + " " + r, int32_t(merge_rank.size()));
  }

  // BPE of one pre-tokenised piece (raw bytes).
  void bpe(const std::string& piece, std::vector<int32_t>& out) const {
    {
      std::lock_guard<std::mutex> g(cache_mu);
      auto it = cache.find(piece);
      if (it != cache.end()) {
        out.insert(out.end(), it->second.begin(), it->second.end());
        return;
      }
    }
    const ByteMap& bm = byte_map();
    std::vector<std::string> sym;
    std::string whole;
    for (unsigned char c : piece) sym.push_back(bm.enc[c]), whole += bm.enc[c];
    std::vector<int32_t> res;
    auto direct = ids.find(whole);
    if (ignore_merges && direct != ids.end()) {
      res.push_back(direct->second);
    } else {
      while (sym.size() > 1) {
        int32_t best = INT32_MAX;
        size_t at = 0;
        for (size_t i = 0; i + 1 < sym.size(); ++i) {
          auto it = merge_rank.find(sym[i] + " " + sym[i + 1]);
          if (it != merge_rank.end() && it->second < best) best = it->second, at = i;
        }
        if (best == INT32_MAX) break;
        const std::string l = sym[at], r = sym[at + 1];
        std::vector<std::string> next;
        for (size_t i = 0; i < sym.size(); ++i) {
          if (i + 1 < sym.size() && sym[i] == l && sym[i + 1] == r) {
            next.push_back(l + r);
            ++i;
          } else {
            next.push_back(sym[i]);
          }
        }
        sym.swap(next);
      }
      for (auto& s : sym) {
        auto it = ids.find(s);
        if (it != ids.end()) {
          res.push_back(it->second);
        } else {
          JET_CHECK(unk >= 0, "tokenizer: piece '{}' has no token and there is no unknown token", s);
          res.push_back(unk);
        }
      }
    }
    out.insert(out.end(), res.begin(), res.end());
    std::lock_guard<std::mutex> g(cache_mu);
    if (cache.size() > 200000) cache.clear();
    cache.emplace(piece, std::move(res));
  }

  void encode_plain(const std::string& text, std::vector<int32_t>& out) const {
    if (text.empty()) return;
    std::vector<std::string> pieces;
    if (!valid_utf8(text)) {
      pieces.push_back(text);  // no regex over invalid UTF-8: one piece, BPE over its bytes
    } else if (split_digits) {
      // Digits(individual_digits): each ASCII/Unicode digit becomes its own piece; the rest is split by regex.
      static const Regex digit(R"(\p{N})");
      std::vector<std::string> parts;
      digit.split(text, parts);
      for (auto& p : parts) regex->split(p, pieces);
    } else {
      regex->split(text, pieces);
    }
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
    JET_CHECK(!j.contains("normalizer") || j["normalizer"].is_null(),
              "{}: normalizers are not supported (found {})", path, j["normalizer"].value("type", "?"));
    parse_pre_tokenizer(j.value("pre_tokenizer", nlohmann::json()), *t, path);
    t->ignore_merges = m.value("ignore_merges", false);
    const auto& vocab = m.at("vocab");
    int64_t n = 0;
    for (auto& [tok, id] : vocab.items()) n = std::max<int64_t>(n, id.get<int64_t>() + 1);
    for (auto& a : j.value("added_tokens", nlohmann::json::array()))
      n = std::max<int64_t>(n, a.at("id").get<int64_t>() + 1);
    JET_CHECK(n > 0 && n < (1 << 24), "{}: vocabulary size {} is out of range", path, n);
    t->vocab.assign(n, "");
    for (auto& [tok, id] : vocab.items()) t->vocab[id.get<int64_t>()] = tok;
    for (auto& a : j.value("added_tokens", nlohmann::json::array())) {
      t->added.push_back({a.at("content"), a.at("id").get<int32_t>(), a.value("special", false)});
      t->vocab[t->added.back().id] = t->added.back().content;
    }
    if (m.contains("unk_token") && m["unk_token"].is_string()) {
      for (int32_t i = 0; i < int32_t(n); ++i)
        if (t->vocab[i] == m["unk_token"].get<std::string>()) t->unk = i;
    }
    for (auto& [tok, id] : vocab.items()) t->ids.emplace(tok, id.get<int32_t>());
    for (auto& a : t->added) t->ids.emplace(a.content, a.id);
    for (auto& mg : m.at("merges")) {
      if (mg.is_array()) {
        JET_CHECK(mg.size() == 2, "{}: a merge must have two parts", path);
        t->add_merge(mg[0], mg[1], path);
      } else {
        const std::string s = mg;
        auto sp = s.find(' ');
        JET_CHECK(sp != std::string::npos, "{}: merge '{}' has no space", path, s);
        t->add_merge(s.substr(0, sp), s.substr(sp + 1), path);
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
    if (c.contains("chat_template") && c["chat_template"].is_string()) t->chat_template = c["chat_template"];
    if (c.contains("bos_token")) t->bos = token_id(c["bos_token"]);
    if (c.contains("eos_token")) t->eos = token_id(c["eos_token"]);
    if (c.contains("pad_token")) t->pad = token_id(c["pad_token"]);
    t->add_bos = c.value("add_bos_token", false) && t->bos >= 0;
    if (c.contains("model_max_length") && c["model_max_length"].is_number_integer())
      t->model_max_length = c["model_max_length"];
  }
  t->ids.clear();
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
    t->pre = "qwen2";
  } else if (pre == "gpt2" || pre == "default") {
    t->pre = "gpt2";
  } else {
    JET_FAIL("{}: tokenizer pre-tokeniser '{}' is not supported (smollm, llama-bpe, qwen2, gpt2)", where, pre);
  }
  t->vocab = f.get_strings("tokenizer.ggml.tokens");
  std::vector<int64_t> types;
  if (f.has("tokenizer.ggml.token_type"))
    for (auto& v : f.metadata()["tokenizer.ggml.token_type"]) types.push_back(v.get<int64_t>());
  JET_CHECK(types.empty() || types.size() == t->vocab.size(), "{}: token_type has {} entries for {} tokens", where,
            types.size(), t->vocab.size());
  for (size_t i = 0; i < types.size(); ++i)
    if (types[i] == 3 || types[i] == 4) t->added.push_back({t->vocab[i], int32_t(i), types[i] == 3});
  for (size_t i = 0; i < t->vocab.size(); ++i) t->ids.emplace(t->vocab[i], int32_t(i));
  for (const std::string& s : f.get_strings("tokenizer.ggml.merges")) {
    auto sp = s.find(' ');
    JET_CHECK(sp != std::string::npos, "{}: merge '{}' has no space", where, s);
    t->add_merge(s.substr(0, sp), s.substr(sp + 1), where);
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
  t->add_bos = f.has("tokenizer.ggml.add_bos_token") && f.metadata()["tokenizer.ggml.add_bos_token"].get<bool>() &&
               t->bos >= 0;
  if (f.has("tokenizer.chat_template")) t->chat_template = f.get_string("tokenizer.chat_template");
  for (const char* k : {"llama.context_length", "qwen2.context_length"})
    if (f.has(k)) t->model_max_length = f.get_int(k);
  t->ids.clear();
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
    for (auto& a : t.added)  // longest first
      if (!a.content.empty() && text.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
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
  const ByteMap& bm = byte_map();
  std::string out;
  for (int32_t id : ids) {
    JET_CHECK(id >= 0 && id < int32_t(t.vocab.size()), "decode: token id {} outside the vocabulary (size {})", id,
              t.vocab.size());
    if (t.special[id] && skip_special_tokens) continue;
    const std::string& s = t.vocab[id];
    if (t.is_added[id]) {
      out += s;
      continue;
    }
    for (size_t i = 0; i < s.size();) {
      int n = utf8_len(s[i]);
      auto it = bm.dec.find(s.substr(i, n));
      if (it != bm.dec.end())
        out += char(it->second);
      else
        out += s.substr(i, n);  // not a byte-level symbol: keep the text as is
      i += n;
    }
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

std::string Tokenizer::apply_chat_template(const std::vector<ChatMessage>& messages,
                                           bool add_generation_prompt) const {
  const std::string& tpl = impl_->chat_template;
  JET_CHECK(!tpl.empty(), "this model has no chat template (use --no-chat-template and a plain prompt)");
  for (auto& m : messages)
    JET_CHECK(m.role == "system" || m.role == "user" || m.role == "assistant", "chat: unknown role '{}'", m.role);
  std::string out;
  if (tpl.find("<|im_start|>") != std::string::npos) {
    // ChatML. A default system turn when the template writes one and the chat has none.
    const std::string key = "<|im_start|>system\n";
    auto p = tpl.find(key);
    if (p != std::string::npos && (messages.empty() || messages[0].role != "system")) {
      auto e = tpl.find("<|im_end|>", p);
      if (e != std::string::npos) out += tpl.substr(p, e - p) + "<|im_end|>\n";
    }
    for (auto& m : messages) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
    if (add_generation_prompt) out += "<|im_start|>assistant\n";
    return out;
  }
  if (tpl.find("<|start_header_id|>") != std::string::npos) {
    // Llama-3: BOS, then header/content/eot per turn.
    if (impl_->bos >= 0) out += impl_->vocab[impl_->bos];
    for (auto& m : messages)
      out += "<|start_header_id|>" + m.role + "<|end_header_id|>\n\n" + m.content + "<|eot_id|>";
    if (add_generation_prompt) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
    return out;
  }
  JET_FAIL("unrecognised chat template (ChatML and Llama-3 are supported); use --no-chat-template");
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
  j["normalizer"] = nullptr;
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
  std::vector<std::pair<int32_t, std::string>> merges;
  for (auto& [k, r] : t.merge_rank) merges.push_back({r, k});
  std::sort(merges.begin(), merges.end());
  nlohmann::json mj = nlohmann::json::array();
  for (auto& [r, k] : merges) {
    auto sp = k.find(' ');
    mj.push_back({k.substr(0, sp), k.substr(sp + 1)});
  }
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
