// run_report(): checks, task preparation, one model at a time, the table and the JSON.
#include "eval/report.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/progress.h"
#include "data/tokens.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"

namespace jet::eval {
namespace {

using nlohmann::json;


std::string base_name(std::string p) {
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  return p.substr(p.find_last_of('/') + 1);
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// A progress callback (units done so far) that advances bar.
OnProgress advance(Progress& bar) {
  auto shown = std::make_shared<int64_t>(0);
  return [&bar, shown](int64_t done) {
    bar.update(done - *shown);
    *shown = done;
  };
}

struct Row {
  std::string metric;
  std::vector<std::string> cells;
};

void print_table(const std::vector<std::string>& names, const std::vector<Row>& rows) {
  size_t w0 = 6;
  for (const auto& r : rows) w0 = std::max(w0, r.metric.size());
  std::vector<size_t> w(names.size());
  for (size_t c = 0; c < names.size(); ++c) {
    w[c] = std::max<size_t>(8, names[c].size());
    for (const auto& r : rows) w[c] = std::max(w[c], r.cells[c].size());
  }
  std::string line = fmt::format("| {:<{}} |", "metric", w0), rule = fmt::format("|{:-<{}}|", "", w0 + 2);
  for (size_t c = 0; c < names.size(); ++c) {
    line += fmt::format(" {:>{}} |", names[c], w[c]);
    rule += fmt::format("{:-<{}}:|", "", w[c] + 1);
  }
  fmt::print("{}\n{}\n", line, rule);
  for (const auto& r : rows) {
    std::string l = fmt::format("| {:<{}} |", r.metric, w0);
    for (size_t c = 0; c < names.size(); ++c) l += fmt::format(" {:>{}} |", r.cells[c], w[c]);
    fmt::print("{}\n", l);
  }
}

}  // namespace

nlohmann::json run_report(const ReportOptions& o) {
  // 1. Flags, data set and tasks, before any model loads.
  std::vector<std::string> known = {"ppl", "passkey", "mc"};
  known.insert(known.end(), benchmark_names().begin(), benchmark_names().end());
  known.insert(known.end(), ruler_names().begin(), ruler_names().end());
  std::set<std::string> tasks;
  std::vector<std::string> bench_tasks, ruler_tasks;  // in --tasks order
  for (const auto& t : o.tasks) {
    JET_CHECK(std::find(known.begin(), known.end(), t) != known.end(), "--tasks: unknown task '{}' ({})", t,
              fmt::join(known, ", "));
    if (!tasks.insert(t).second) continue;
    auto in = [&](const std::vector<std::string>& v) { return std::find(v.begin(), v.end(), t) != v.end(); };
    if (in(benchmark_names())) bench_tasks.push_back(t);
    if (in(ruler_names())) ruler_tasks.push_back(t);
  }
  JET_CHECK(!tasks.empty(), "--tasks: give at least one of ppl, passkey, mc");
  JET_CHECK(!o.models.empty(), "--model: give at least one model");
  for (const auto& m : o.models) JET_CHECK(path_exists(m), "--model {}: no such file or directory", m);
  const auto device = parse_device(o.device);
  const auto dtype = parse_dtype(o.dtype);
  // Rows are padded to the longest of their batch: a GPU hides that in parallel work, a CPU pays for every
  // padded token (measured on 2 cores: 100 PIQA items took 3x as long in batches of 16384 as of 512).
  const int64_t batch_tokens = o.batch_tokens > 0 ? o.batch_tokens : device.is_cuda() ? 16384 : 512;
  JET_CHECK(o.seq_len >= 2, "--seq-len must be >= 2, got {}", o.seq_len);
  JET_CHECK(o.ppl_windows != 0, "--ppl-windows must be positive (or -1 for all), got 0");
  JET_CHECK(o.batch > 0, "--batch must be positive, got {}", o.batch);
  JET_CHECK(o.samples > 0, "--samples must be positive, got {}", o.samples);
  JET_CHECK(o.mc_items > 0, "--mc-items must be positive, got {}", o.mc_items);
  JET_CHECK(!tasks.count("passkey") || !o.passkey_lengths.empty(), "--passkey-lengths: give at least one length");
  for (int64_t L : o.passkey_lengths) JET_CHECK(L > 0, "--passkey-lengths: {} is not a positive length", L);
  const bool mc_cloze = tasks.count("mc") && o.mc_jsonl.empty();
  JET_CHECK(!(tasks.count("ppl") || mc_cloze) || !o.data.empty(),
            "--data DIR is needed for {} (a jet data set; its holdout split is used)",
            tasks.count("ppl") ? "ppl" : "mc (holdout-cloze-4; or give --mc-jsonl)");
  JET_CHECK(o.mc_jsonl.empty() || path_exists(o.mc_jsonl), "--mc-jsonl {}: no such file", o.mc_jsonl);
  if (!o.json_out.empty()) {
    const auto slash = o.json_out.find_last_of('/');
    const std::string dir = slash == std::string::npos ? "." : o.json_out.substr(0, slash);
    JET_CHECK(dir.empty() || is_directory(dir), "--json {}: directory {} does not exist", o.json_out, dir);
  }
  JET_CHECK(o.limit >= 0, "--limit must be >= 0 (0 = all items), got {}", o.limit);
  JET_CHECK(o.batch_tokens >= 0, "--batch-tokens must be positive (or 0 = by device), got {}", o.batch_tokens);
  JET_CHECK(ruler_tasks.empty() || !o.lengths.empty(), "--lengths: give at least one length");
  for (int64_t L : o.lengths) JET_CHECK(L > 0, "--lengths: {} is not a positive length", L);
  JET_CHECK((bench_tasks.empty() && ruler_tasks.empty()) || is_directory(o.eval_dir),
            "--eval-dir {}: no such directory (scripts/eval_data.sh makes data/eval)", o.eval_dir);
  std::vector<Benchmark> benches;
  for (const auto& t : bench_tasks) benches.push_back(load_benchmark(t, o.eval_dir, o.limit, o.seed));
  std::optional<RulerData> ruler;
  if (!ruler_tasks.empty()) ruler = load_ruler(o.eval_dir);
  std::optional<data::TokenSet> holdout;
  at::Tensor windows;
  McTask cloze;
  if (!o.data.empty()) {
    holdout = data::TokenSet::open(o.data, "holdout");
    if (tasks.count("ppl")) windows = data::windows(*holdout, o.seq_len, o.ppl_windows);
    if (mc_cloze) cloze = make_holdout_cloze(*holdout, o.mc_items, o.seed, o.mc_context, o.mc_choice);
  }

  // Each model's config and tokenizer (no weights yet): vocabulary checks and the tokenised tasks.
  struct Prepared {
    model::ModelConfig config;
    std::vector<PasskeyTask> passkey;
    McTask mc;
    std::shared_ptr<text::Tokenizer> tok;
    std::vector<std::vector<LlRequest>> bench;  // per benchmark
    std::vector<RulerTask> ruler;               // per RULER task and length
  };
  std::vector<Prepared> prepared;
  for (const auto& path : o.models) {
    model::LoadOptions meta_only;
    meta_only.weights = false;
    meta_only.tokenizer = tasks.count("passkey") || !o.mc_jsonl.empty() || !benches.empty() || ruler;
    const auto ck = model::load_checkpoint(path, meta_only);
    Prepared pr{ck.config, {}, cloze, ck.tokenizer, {}, {}};
    if (holdout)
      JET_CHECK(holdout->vocab_size() <= ck.config.vocab_size,
                "{}: vocabulary of {} but the data set {} has ids up to {} (another tokenizer?)", path,
                ck.config.vocab_size, o.data, holdout->vocab_size());
    if (meta_only.tokenizer)
      JET_CHECK(ck.tokenizer, "{}: no tokenizer (an HF directory needs tokenizer.json) for the tasks", path);
    if (tasks.count("passkey"))
      for (int64_t L : o.passkey_lengths) pr.passkey.push_back(make_passkey(*ck.tokenizer, L, o.samples, o.seed));
    if (tasks.count("mc") && !o.mc_jsonl.empty()) pr.mc = load_mc_jsonl(o.mc_jsonl, *ck.tokenizer);
    for (const auto& b : benches) pr.bench.push_back(encode_benchmark(b, *ck.tokenizer));
    for (const auto& t : ruler_tasks)
      for (int64_t L : o.lengths) pr.ruler.push_back(make_ruler(t, L, *ruler, *ck.tokenizer, o.samples, o.seed));
    prepared.push_back(std::move(pr));
  }

  // 2. Each model in turn: load, run the tasks, free.
  std::vector<std::string> names;
  std::map<std::string, int> seen;
  for (const auto& m : o.models) ++seen[base_name(m)];
  for (const auto& m : o.models) names.push_back(seen[base_name(m)] > 1 ? m : base_name(m));
  std::vector<Row> rows;
  auto cell = [&](const std::string& metric, size_t model, const std::string& v) {
    auto it = std::find_if(rows.begin(), rows.end(), [&](const Row& r) { return r.metric == metric; });
    if (it == rows.end()) it = rows.insert(rows.end(), Row{metric, std::vector<std::string>(names.size(), "-")});
    it->cells[model] = v;
  };
  json out_models = json::array();
  bool beyond_any = false;
  for (size_t mi = 0; mi < o.models.size(); ++mi) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string& path = o.models[mi];
    fmt::print(stderr, "[{}/{}] {}\n", mi + 1, o.models.size(), path);
    model::LoadOptions load;
    load.tokenizer = false;
    auto ck = model::load_checkpoint(path, load);
    const Prepared& pr = prepared[mi];
    auto lm = std::make_unique<model::CausalLM>(ck.config);
    lm->load_weights(ck.tensors, dtype, device, path);
    ck.tensors.clear();
    const int64_t max_pos = ck.config.max_position_embeddings;
    json jm = {{"path", path}, {"name", names[mi]}, {"parameters", lm->num_parameters()},
               {"max_position_embeddings", max_pos}, {"metrics", json::object()}};
    cell("parameters (M)", mi, fmt::format("{:.1f}", lm->num_parameters() / 1e6));
    if (tasks.count("ppl")) {
      Progress bar("ppl", windows.size(0), "win");
      const auto p = perplexity(*lm, windows, o.batch, advance(bar));
      bar.finish();
      const std::string label = fmt::format("ppl holdout ({}x{})", windows.size(0), windows.size(1));
      cell(label, mi, fmt::format("{:.3f}", p.ppl));
      cell("nll holdout (nats/token)", mi, fmt::format("{:.4f}", p.nll));
      jm["metrics"]["ppl"] = {{"ppl", p.ppl}, {"nll", p.nll}, {"tokens", p.tokens}, {"windows", windows.size(0)},
                              {"seq_len", windows.size(1)}, {"data", o.data}};
    }
    if (tasks.count("passkey")) {
      json pk = json::array();
      for (const auto& task : pr.passkey) {
        const int64_t L = task.length;
        Progress bar(fmt::format("passkey {}", L), o.samples, "sample");
        const auto score = passkey_score(*lm, task, advance(bar));
        const double acc = score.accuracy;
        bar.finish();
        const bool beyond = max_pos > 0 && L > max_pos;
        beyond_any |= beyond;
        cell(fmt::format("passkey {} ({} samples)", L, o.samples), mi, fmt::format("{:.2f}{}", acc, beyond ? "*" : ""));
        pk.push_back({{"length", L}, {"accuracy", acc}, {"answer_logprob", score.answer_logprob},
                      {"samples", o.samples}, {"beyond_max_position", beyond}});
      }
      jm["metrics"]["passkey"] = pk;
    }
    if (tasks.count("mc")) {
      const McTask& mc_task = pr.mc;
      Progress bar(fmt::format("mc {}", mc_task.name), static_cast<int64_t>(mc_task.items.size()), "item");
      const auto scores = mc_scores(*lm, mc_task, advance(bar));
      bar.finish();
      const double acc = mc_accuracy(scores, mc_task);
      cell(fmt::format("mc {} ({} items)", mc_task.name, mc_task.items.size()), mi, fmt::format("{:.3f}", acc));
      jm["metrics"]["mc"] = {{"task", mc_task.name}, {"items", mc_task.items.size()}, {"accuracy", acc},
                             {"context_tokens", o.mc_jsonl.empty() ? o.mc_context : 0},
                             {"choice_tokens", o.mc_jsonl.empty() ? o.mc_choice : 0},
                             {"rule", "argmax of the mean log-probability per choice token"}};
    }
    for (size_t bi = 0; bi < benches.size(); ++bi) {
      const Benchmark& b = benches[bi];
      const auto n = static_cast<int64_t>(b.items.size());
      Progress bar(b.name, n, "item");
      const auto sc = score_benchmark(*lm, b, pr.bench[bi], advance(bar), batch_tokens);
      bar.finish();
      const std::string what = fmt::format("{} ({}{})", b.name, n == b.total ? fmt::format("{}", n) :
                                           fmt::format("{} of {}", n, b.total), b.name == "mmlu" ? ", 5-shot" : "");
      cell(what + " acc", mi, fmt::format("{:.4f}", sc.acc));
      json jb = {{"file", b.file}, {"items", n}, {"total", b.total}, {"acc", sc.acc}, {"ll", sc.ll}, {"pred", sc.pred},
                 {"correct", sc.correct}};
      if (b.acc_norm) {
        cell(what + " acc_norm", mi, fmt::format("{:.4f}", sc.acc_norm));
        jb["acc_norm"] = sc.acc_norm;
        jb["pred_norm"] = sc.pred_norm;
        jb["correct_norm"] = sc.correct_norm;
      }
      if (b.lambada) {
        cell(what + " ppl", mi, fmt::format("{:.3f}", sc.ppl));
        jb["ppl"] = sc.ppl;
      }
      jm["metrics"][b.name] = jb;
    }
    const int64_t gen_batch = device.is_cuda() ? 16 : 4;
    for (const auto& t : pr.ruler) {
      Progress bar(fmt::format("{} {}", t.name, t.length), static_cast<int64_t>(t.prompts.size()), "sample");
      const double score = ruler_score(*lm, t, *pr.tok, gen_batch, advance(bar));
      bar.finish();
      const bool beyond = max_pos > 0 && t.length > max_pos;
      beyond_any |= beyond;
      cell(fmt::format("{} {} ({} samples)", t.name, t.length, t.prompts.size()), mi,
           fmt::format("{:.3f}{}", score, beyond ? "*" : ""));
      jm["metrics"][t.name].push_back({{"length", t.length}, {"score", score}, {"samples", t.prompts.size()},
                                       {"beyond_max_position", beyond}});
    }
    const double secs = seconds_since(t0);
    cell("seconds", mi, fmt::format("{:.1f}", secs));
    jm["seconds"] = secs;
    out_models.push_back(jm);
  }

  // 3. The table and the JSON.
  print_table(names, rows);
  if (beyond_any) fmt::print("* context length beyond the model's max_position_embeddings\n");
  const json settings = {{"tasks", o.tasks},       {"data", o.data},         {"seq_len", o.seq_len},
                         {"ppl_windows", o.ppl_windows}, {"passkey_lengths", o.passkey_lengths},
                         {"samples", o.samples},   {"mc_items", o.mc_items}, {"mc_jsonl", o.mc_jsonl},
                         {"seed", o.seed},         {"device", o.device},     {"dtype", o.dtype},
                         {"batch", o.batch},       {"eval_dir", o.eval_dir}, {"limit", o.limit},
                         {"batch_tokens", batch_tokens}, {"lengths", o.lengths}};
  json report = {{"settings", settings}, {"models", out_models}};
  if (!o.json_out.empty()) write_file_atomic(o.json_out, report.dump(1) + "\n");
  return report;
}

}  // namespace jet::eval
