// prepare(): list and hash the documents, split them, tokenise each split into shards in OUT.partial
// (resuming after the last recorded shard), then meta.json and the rename to OUT.
#include "data/prepare.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "core/check.h"
#include "core/fs.h"
#include "core/hash.h"
#include "core/progress.h"
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
};

struct Inputs {
  std::vector<Doc> docs;
  json sources = json::array();
};

std::string base_name(const std::string& p) {
  const auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

bool ends_with(const std::string& s, const std::string& suf) {
  return s.size() >= suf.size() && s.compare(s.size() - suf.size(), suf.size(), suf) == 0;
}

Inputs collect(const std::vector<std::string>& args, const std::string& flag) {
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
          s = json::parse(read_file(src));
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
    const std::string text = read_file(d.path);
    d.bytes = static_cast<int64_t>(text.size());
    d.hash = fnv1a64(text);
  }
  return in;
}

// One split's state, as recorded in OUT.partial/progress.json after every shard.
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
  void write_progress();
  // Tokenises docs into stage/<split>/; false if stop_after_shards stopped it.
  bool tokenise(const std::string& split, const std::vector<Doc>& docs, SplitState& st, Progress* bar);

  const PrepareOptions& o_;
  text::Tokenizer tok_;
  std::string stage_, fingerprint_;
  std::map<std::string, SplitState> state_;
  int64_t shards_written_ = 0;
  PrepareResult result_;
};

void Preparer::write_progress() {
  json p = {{"fingerprint", fingerprint_}, {"splits", json::object()}};
  for (auto& [name, st] : state_)
    p["splits"][name] = {{"shards", st.shards}, {"done", st.done}, {"documents", st.documents},
                         {"skipped_empty", st.skipped_empty}};
  write_file_atomic(stage_ + "/progress.json", p.dump(1));
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
  std::vector<int32_t> buf;
  auto flush = [&](size_t n, size_t next_doc, int64_t next_offset) {
    std::vector<int32_t> shard(buf.begin(), buf.begin() + n);
    buf.erase(buf.begin(), buf.begin() + n);
    const std::string file = shard_name(st.shards.size());
    write_file_atomic(stage_ + "/" + split + "/" + file, encode_shard(shard, vocab));
    st.shards.push_back({{"file", file},
                         {"tokens", n},
                         {"next_doc", next_doc},
                         {"next_offset", next_offset},
                         {"skipped_empty", skipped_empty}});
    write_progress();
    ++shards_written_;
  };
  const auto S = static_cast<size_t>(o_.shard_tokens);
  for (size_t d = first_doc; d < docs.size(); ++d) {
    const std::string text = read_file(docs[d].path);
    JET_CHECK(fnv1a64(text) == docs[d].hash, "{}: changed while being tokenised", docs[d].path);
    if (text.find_first_not_of(" \t\r\n\f\v") == std::string::npos) {
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
    while (buf.size() >= S) {
      const auto left = static_cast<int64_t>(buf.size() - S);
      if (left == 0)
        flush(S, d + 1, 0);
      else
        flush(S, d, len - left);
      if (o_.stop_after_shards >= 0 && shards_written_ >= o_.stop_after_shards) return false;
    }
    if (bar) bar->update(1, fmt::format("{} {}", split, docs[d].id));
  }
  if (!buf.empty()) flush(buf.size(), docs.size(), 0);
  JET_CHECK(!st.shards.empty(), "{}: the {} documents hold no text", split, docs.size());
  st.documents = static_cast<int64_t>(docs.size()) - skipped_empty;
  st.skipped_empty = skipped_empty;
  st.done = true;
  write_progress();
  return !(o_.stop_after_shards >= 0 && shards_written_ >= o_.stop_after_shards);
}

PrepareResult Preparer::run() {
  // Every flag and input is checked before anything is written.
  JET_CHECK(!o_.inputs.empty(), "--input: give at least one file or directory");
  JET_CHECK(!o_.out.empty(), "--out: give the output directory");
  JET_CHECK(o_.shard_tokens > 0, "--shard-tokens must be positive, got {}", o_.shard_tokens);
  JET_CHECK(o_.holdout_inputs.empty() ? (o_.holdout > 0 && o_.holdout <= 0.5) : true,
            "--holdout must be in (0, 0.5], got {}", o_.holdout);
  std::string out = o_.out;
  while (out.size() > 1 && out.back() == '/') out.pop_back();
  JET_CHECK(o_.force || !path_exists(out), "{}: already exists (pass --force to replace it)", out);
  Inputs train = collect(o_.inputs, "--input");
  Inputs held = o_.holdout_inputs.empty() ? Inputs{} : collect(o_.holdout_inputs, "--holdout-input");
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

  const uint64_t tok_hash = fnv1a64(tok_.to_hf_json().dump());
  json fp = {{"tokenizer", hex(tok_hash)}, {"shard_tokens", o_.shard_tokens}, {"rule", split_rule}};
  for (const auto* split : {&train, &held})
    for (const Doc& d : split->docs) fp["docs"].push_back({split == &train ? "train" : "holdout", d.id, d.bytes, hex(d.hash)});
  const std::string fp_text = fp.dump();
  fingerprint_ = hex(fnv1a64(fp_text));
  uint64_t input_hash = fnv1a64(fp_text);

  // Resume from OUT.partial when its progress record has the same fingerprint; else start afresh.
  stage_ = out + ".partial";
  bool resume = false;
  if (path_exists(stage_ + "/progress.json")) {
    try {
      const json p = json::parse(read_file(stage_ + "/progress.json"));
      if (p.value("fingerprint", "") == fingerprint_) {
        for (const char* name : {"train", "holdout"}) {
          SplitState st;
          if (p.at("splits").contains(name)) {
            const json& s = p["splits"][name];
            st.shards = s.at("shards");
            st.done = s.at("done").get<bool>();
            st.documents = s.at("documents").get<int64_t>();
            st.skipped_empty = s.at("skipped_empty").get<int64_t>();
          }
          for (const json& sh : st.shards) {
            const std::string f = stage_ + "/" + name + "/" + sh.at("file").get<std::string>();
            const int64_t want = kShardHeaderBytes + sh.at("tokens").get<int64_t>() * token_width(tok_.vocab_size());
            FILE* fh = std::fopen(f.c_str(), "rb");
            JET_CHECK(fh, "{}: listed in the progress record but missing", f);
            std::fseek(fh, 0, SEEK_END);
            const long size = std::ftell(fh);
            std::fclose(fh);
            JET_CHECK(size == want, "{}: {} bytes, the progress record says {}", f, size, want);
          }
          state_[name] = st;
        }
        resume = true;
      }
    } catch (const json::exception&) {
      resume = false;
    } catch (const Error&) {
      resume = false;
    }
  }
  if (!resume) {
    state_.clear();
    remove_tree(stage_);
    state_["train"];
    state_["holdout"];
  }
  make_dirs(stage_ + "/train");
  make_dirs(stage_ + "/holdout");
  write_progress();

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
  std::remove((stage_ + "/progress.json").c_str());
  if (path_exists(out)) remove_tree(out);  // --force (checked above)
  JET_CHECK(std::rename(stage_.c_str(), out.c_str()) == 0, "{}: cannot rename {} to it ({})", out, stage_,
            std::strerror(errno));
  result_.complete = true;
  return result_;
}

}  // namespace

PrepareResult prepare(const PrepareOptions& o) { return Preparer(o).run(); }

}  // namespace jet::data
