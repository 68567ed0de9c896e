// prepare(): list and hash the documents, split them, tokenise each split into shards in OUT.partial
// (resuming after the last recorded shard), then meta.json and the rename to OUT.
#include "data/prepare.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
#include "core/strings.h"
#include "data/tokens.h"
#include "text/load.h"

namespace jet::data {
namespace {

using nlohmann::json;

std::string hex(uint64_t h) { return fmt::format("{:016x}", h); }

struct Doc {
  std::string path, id;  // id: the path relative to its input directory (the file name for a file input)
  int64_t bytes = 0;
  uint64_t hash = 0;     // of the contents
  bool blank = false;    // only white space
};

bool blank(const std::string& text) { return text.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

struct Inputs {
  std::vector<Doc> docs;
  json sources = json::array();
};

std::string base_name(const std::string& p) {
  const auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

Inputs collect(const std::vector<std::string>& args, const std::string& flag, int64_t max_bytes) {
  Inputs in;
  for (const std::string& a : args) {
    JET_CHECK(!a.empty(), "{}: empty path", flag);
    JET_CHECK(path_exists(a), "{} {}: no such file or directory", flag, a);
    if (is_directory(a)) {
      int64_t n = 0;
      for (const std::string& rel : list_files(a)) {
        if (!ends_with(rel, ".txt")) continue;
        in.docs.push_back({a + "/" + rel, rel});
        ++n;
      }
      JET_CHECK(n > 0, "{} {}: no .txt files in the directory", flag, a);
      const std::string src = a + "/sources.json";
      if (path_exists(src)) {
        json s;
        try {
          s = json::parse(read_regular_file(src, max_bytes, "--max-input-bytes raises it"));
        } catch (const json::exception&) {
          JET_FAIL("{}: not valid JSON", src);
        }
        JET_CHECK(s.is_array(), "{}: expected a JSON list of sources", src);
        for (auto& e : s) in.sources.push_back(e);
      } else {
        in.sources.push_back({{"path", a}});
      }
    } else {
      in.docs.push_back({a, base_name(a)});
      in.sources.push_back({{"path", a}});
    }
  }
  for (Doc& d : in.docs) {
    const std::string text = read_regular_file(d.path, max_bytes, "--max-input-bytes raises it");
    d.bytes = static_cast<int64_t>(text.size());
    d.hash = fnv1a64(text);
    d.blank = blank(text);
  }
  return in;
}

// One split's state, as recorded in the journal OUT.partial/progress.jsonl: a first line
// {"fingerprint"}, then one line per event, appended: {"split", "shard": {...}} after each shard is
// in place, {"split", "done", "documents", "skipped_empty"} at a split's end.
struct SplitState {
  json shards = json::array();  // [{file, tokens, next_doc, next_offset, skipped_empty}]
  bool done = false;
  int64_t documents = 0, skipped_empty = 0;
};

std::string shard_name(size_t i) { return fmt::format("{:05d}.tok", i); }

class Preparer {
 public:
  Preparer(const PrepareOptions& o) : o_(o) {}
  PrepareResult run();

 private:
  void start_journal();                 // rewrites it whole: the fingerprint and state_ (once per run)
  void append_journal(const json& line);  // one event, O(1)
  bool read_journal();                  // state_ from the journal; false if absent, foreign or unreadable
  // Tokenises docs into stage/<split>/; false if stop_after_shards stopped it.
  bool tokenise(const std::string& split, const std::vector<Doc>& docs, SplitState& st, Progress* bar);

  const PrepareOptions& o_;
  text::Tokenizer tok_;
  std::string stage_, fingerprint_;
  std::map<std::string, SplitState> state_;
  int64_t shards_written_ = 0;
  PrepareResult result_;
};

std::string journal_path(const std::string& stage) { return stage + "/progress.jsonl"; }

void Preparer::start_journal() {
  std::string text = json{{"fingerprint", fingerprint_}}.dump() + "\n";
  for (auto& [name, st] : state_) {
    for (const json& sh : st.shards) text += json{{"split", name}, {"shard", sh}}.dump() + "\n";
    if (st.done)
      text += json{{"split", name}, {"done", true}, {"documents", st.documents}, {"skipped_empty", st.skipped_empty}}
                  .dump() +
              "\n";
  }
  write_file_atomic(journal_path(stage_), text);
}

void Preparer::append_journal(const json& line) {
  // Not synced: the shard it records is already durable (written, synced, renamed), so a record lost
  // to a crash only makes the next run write that shard again; a torn last line is ignored.
  const std::string path = journal_path(stage_);
  std::ofstream f(path, std::ios::binary | std::ios::app);
  f << line.dump() << '\n';
  f.flush();
  JET_CHECK(f.good(), "{}: cannot append ({})", path, std::strerror(errno));
}

bool Preparer::read_journal() {
  const std::string path = journal_path(stage_);
  if (!path_exists(path)) return false;
  std::map<std::string, SplitState> st;
  st["train"];
  st["holdout"];
  try {
    const std::string text = read_file(path);
    size_t pos = 0;
    bool first = true;
    while (pos < text.size()) {
      const size_t nl = text.find('\n', pos);
      if (nl == std::string::npos) break;  // a line cut by a kill: ignored (start_journal() rewrites the file)
      const json line = json::parse(text.substr(pos, nl - pos));
      pos = nl + 1;
      if (first) {
        if (line.value("fingerprint", "") != fingerprint_) return false;
        first = false;
        continue;
      }
      SplitState& s = st.at(line.at("split").get<std::string>());
      JET_CHECK(!s.done, "{}: a record after its split's end", path);
      if (line.contains("shard")) {
        s.shards.push_back(line["shard"]);
      } else {
        s.done = line.at("done").get<bool>();
        s.documents = line.at("documents").get<int64_t>();
        s.skipped_empty = line.at("skipped_empty").get<int64_t>();
      }
    }
    if (first) return false;
    for (const auto& [name, split] : st)
      for (const json& sh : split.shards) {
        const std::string f = stage_ + "/" + name + "/" + sh.at("file").get<std::string>();
        const int64_t want = kShardHeaderBytes + sh.at("tokens").get<int64_t>() * token_width(tok_.vocab_size());
        struct stat info;
        JET_CHECK(stat(f.c_str(), &info) == 0, "{}: listed in the progress record but missing", f);
        JET_CHECK(info.st_size == want, "{}: {} bytes, the progress record says {}", f, info.st_size, want);
      }
  } catch (const json::exception&) {
    return false;
  } catch (const Error&) {
    return false;
  }
  state_ = std::move(st);
  return true;
}

bool Preparer::tokenise(const std::string& split, const std::vector<Doc>& docs, SplitState& st, Progress* bar) {
  const int32_t eos = tok_.eos_id(), vocab = tok_.vocab_size();
  size_t first_doc = 0;
  int64_t skip = 0, skipped_empty = 0;
  if (!st.shards.empty()) {
    const json& last = st.shards.back();
    first_doc = last.at("next_doc").get<size_t>();
    skip = last.at("next_offset").get<int64_t>();
    skipped_empty = last.at("skipped_empty").get<int64_t>();
    result_.resumed_shards += static_cast<int64_t>(st.shards.size());
  }
  if (bar) bar->update(static_cast<int64_t>(first_doc));
  // Tokens not yet in a shard: buf[head..]. The consumed front is dropped only when it is the larger
  // part, so cutting many small shards off a long document stays linear.
  std::vector<int32_t> buf;
  size_t head = 0;
  auto pending = [&] { return buf.size() - head; };
  auto flush = [&](size_t n, size_t next_doc, int64_t next_offset) {
    std::vector<int32_t> shard(buf.begin() + head, buf.begin() + head + n);
    head += n;
    if (head * 2 >= buf.size()) {
      buf.erase(buf.begin(), buf.begin() + head);
      head = 0;
    }
    const std::string file = shard_name(st.shards.size());
    write_file_atomic(stage_ + "/" + split + "/" + file, encode_shard(shard, vocab));
    st.shards.push_back({{"file", file},
                         {"tokens", n},
                         {"next_doc", next_doc},
                         {"next_offset", next_offset},
                         {"skipped_empty", skipped_empty}});
    append_journal({{"split", split}, {"shard", st.shards.back()}});
    ++shards_written_;
  };
  const auto S = static_cast<size_t>(o_.shard_tokens);
  for (size_t d = first_doc; d < docs.size(); ++d) {
    const std::string text = read_regular_file(docs[d].path, o_.max_input_bytes, "--max-input-bytes raises it");
    JET_CHECK(fnv1a64(text) == docs[d].hash, "{}: changed while being tokenised", docs[d].path);
    if (blank(text)) {
      ++skipped_empty;
      if (bar) bar->update(1);
      continue;
    }
    std::vector<int32_t> ids = tok_.encode(text, /*add_special_tokens=*/false);
    ids.push_back(eos);
    const auto len = static_cast<int64_t>(ids.size());
    JET_CHECK(skip <= len, "{}: progress record points past the document's end; delete {} and rerun",
              docs[d].path, stage_);
    buf.insert(buf.end(), ids.begin() + skip, ids.end());
    skip = 0;
    // The buffer held < S tokens before this document, so whatever is left after a flush is this
    // document's tail: the next shard starts at its token len - left.
    while (pending() >= S) {
      const auto left = static_cast<int64_t>(pending() - S);
      if (left == 0)
        flush(S, d + 1, 0);
      else
        flush(S, d, len - left);
      if (o_.stop_after_shards >= 0 && shards_written_ >= o_.stop_after_shards) return false;
    }
    if (bar) bar->update(1, fmt::format("{} {}", split, docs[d].id));
  }
  if (pending() > 0) flush(pending(), docs.size(), 0);
  JET_CHECK(!st.shards.empty(), "{}: the {} documents hold no text", split, docs.size());
  st.documents = static_cast<int64_t>(docs.size()) - skipped_empty;
  st.skipped_empty = skipped_empty;
  st.done = true;
  append_journal({{"split", split}, {"done", true}, {"documents", st.documents}, {"skipped_empty", skipped_empty}});
  return !(o_.stop_after_shards >= 0 && shards_written_ >= o_.stop_after_shards);
}

PrepareResult Preparer::run() {
  // Every flag and input is checked before anything is written.
  JET_CHECK(!o_.inputs.empty(), "--input: give at least one file or directory");
  JET_CHECK(!o_.out.empty(), "--out: give the output directory");
  JET_CHECK(o_.shard_tokens > 0, "--shard-tokens must be positive, got {}", o_.shard_tokens);
  JET_CHECK(o_.max_input_bytes > 0, "--max-input-bytes must be positive, got {}", o_.max_input_bytes);
  JET_CHECK(o_.holdout_inputs.empty() ? (o_.holdout > 0 && o_.holdout <= 0.5) : true,
            "--holdout must be in (0, 0.5], got {}", o_.holdout);
  std::string out = o_.out;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  JET_CHECK(o_.force || !path_exists(out), "{}: already exists (pass --force to replace it)", out);
  Inputs train = collect(o_.inputs, "--input", o_.max_input_bytes);
  Inputs held = o_.holdout_inputs.empty() ? Inputs{} : collect(o_.holdout_inputs, "--holdout-input", o_.max_input_bytes);
  for (const Doc& h : held.docs)
    for (const Doc& t : train.docs)
      JET_CHECK(h.path != t.path, "{}: given both as --input and as --holdout-input", h.path);
  tok_ = text::load_tokenizer(o_.tokenizer);
  JET_CHECK(tok_.eos_id() >= 0, "{}: the tokenizer has no EOS token (needed between documents)", o_.tokenizer);

  std::string split_rule;
  json holdout_ids = json::array();
  if (o_.holdout_inputs.empty()) {
    // A document is held out when the hash of its relative path, as a fraction of 2^64, is below
    // --holdout: stable under adding or removing other documents. At least one is held out.
    JET_CHECK(train.docs.size() >= 2, "--input: {} document(s); a held-out fraction needs at least 2 (or give "
              "--holdout-input)", train.docs.size());
    std::vector<Doc> keep;
    size_t best = 0;
    for (size_t i = 0; i < train.docs.size(); ++i) {
      const uint64_t h = fnv1a64(train.docs[i].id);
      if (h < fnv1a64(train.docs[best].id)) best = i;
      (static_cast<double>(h) / 18446744073709551616.0 < o_.holdout ? held.docs : keep).push_back(train.docs[i]);
    }
    if (held.docs.empty()) {
      held.docs.push_back(train.docs[best]);
      keep.erase(std::find_if(keep.begin(), keep.end(), [&](const Doc& d) { return d.path == train.docs[best].path; }));
    }
    JET_CHECK(!keep.empty(), "--holdout {} leaves no training documents", o_.holdout);
    train.docs = std::move(keep);
    held.sources = train.sources;
    for (const Doc& d : held.docs) holdout_ids.push_back(d.id);
    split_rule = fmt::format("holdout = the documents whose FNV-1a-64 hash of their relative path, over 2^64, is "
                             "below {} (at least one); train = the rest", o_.holdout);
  } else {
    split_rule = "holdout = the documents of --holdout-input (a source not used for training); train = --input";
  }

  for (const auto& [name, docs] : {std::pair<const char*, const std::vector<Doc>*>{"train", &train.docs},
                                   {"holdout", &held.docs}})
    JET_CHECK(std::any_of(docs->begin(), docs->end(), [](const Doc& d) { return !d.blank; }),
              "the {} documents of the {} split hold no text (only white space)", docs->size(), name);

  const uint64_t tok_hash = fnv1a64(tok_.to_hf_json().dump());
  json fp = {{"tokenizer", hex(tok_hash)}, {"shard_tokens", o_.shard_tokens}, {"rule", split_rule}};
  for (const auto* split : {&train, &held})
    for (const Doc& d : split->docs) fp["docs"].push_back({split == &train ? "train" : "holdout", d.id, d.bytes, hex(d.hash)});
  const std::string fp_text = fp.dump();
  fingerprint_ = hex(fnv1a64(fp_text));
  uint64_t input_hash = fnv1a64(fp_text);

  // Resume from OUT.partial when its progress record has the same fingerprint; else start afresh.
  stage_ = out + ".partial";
  const bool resume = read_journal();
  if (!resume) {
    state_.clear();
    remove_tree(stage_);
    state_["train"];
    state_["holdout"];
  }
  make_dirs(stage_ + "/train");
  make_dirs(stage_ + "/holdout");
  remove_stale_temp_files(stage_);  // a killed run's half-written temp files
  start_journal();

  const int64_t total_docs = static_cast<int64_t>(train.docs.size() + held.docs.size());
  std::unique_ptr<Progress> bar;
  if (o_.progress) bar = std::make_unique<Progress>("tokenise", total_docs, "doc");
  for (const char* name : {"holdout", "train"}) {
    SplitState& st = state_[name];
    const auto& docs = std::string(name) == "train" ? train.docs : held.docs;
    if (st.done) {
      result_.resumed_shards += static_cast<int64_t>(st.shards.size());
      if (bar) bar->update(static_cast<int64_t>(docs.size()));
      continue;
    }
    if (!tokenise(name, docs, st, bar.get())) return result_;
  }
  if (bar) bar->finish();

  json meta = {{"format", "jet-tokens"},
               {"version", kMetaVersion},
               {"tokenizer",
                {{"path", o_.tokenizer}, {"vocab_size", tok_.vocab_size()}, {"eos_id", tok_.eos_id()}, {"hash", hex(tok_hash)}}},
               {"token_width", token_width(tok_.vocab_size())},
               {"document_rule", "one input file = one document, tokenised without special tokens and ended by EOS"},
               {"split_rule", split_rule},
               {"shard_tokens", o_.shard_tokens},
               {"input_hash", hex(input_hash)},
               {"sources", {{"train", train.sources}, {"holdout", held.sources}}},
               {"splits", json::object()}};
  if (!holdout_ids.empty()) meta["holdout_documents"] = holdout_ids;
  for (const char* name : {"train", "holdout"}) {
    const SplitState& st = state_[name];
    SplitSummary& sum = std::string(name) == "train" ? result_.train : result_.holdout;
    json shards = json::array();
    for (const json& sh : st.shards) {
      shards.push_back({{"file", sh["file"]}, {"tokens", sh["tokens"]}});
      sum.tokens += sh["tokens"].get<int64_t>();
    }
    sum.documents = st.documents;
    sum.shards = static_cast<int64_t>(st.shards.size());
    sum.skipped_empty = st.skipped_empty;
    meta["splits"][name] = {{"tokens", sum.tokens}, {"documents", sum.documents},
                            {"skipped_empty", sum.skipped_empty}, {"shards", shards}};
  }
  write_file_atomic(stage_ + "/meta.json", meta.dump(1) + "\n");
  std::remove(journal_path(stage_).c_str());
  remove_stale_temp_files(stage_);
  if (path_exists(out)) remove_tree(out);  // --force (checked above)
  JET_CHECK(std::rename(stage_.c_str(), out.c_str()) == 0, "{}: cannot rename {} to it ({})", out, stage_,
            std::strerror(errno));
  result_.complete = true;
  return result_;
}

}  // namespace

PrepareResult prepare(const PrepareOptions& o) { return Preparer(o).run(); }

}  // namespace jet::data
