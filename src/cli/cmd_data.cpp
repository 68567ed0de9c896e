// `jet data prepare --input FILES|DIR [--holdout-input FILES|DIR] --tokenizer MODEL --out DIR
//   [--holdout 0.01] [--shard-tokens N] [--force]`: text files -> token shards (data/prepare.h says how).
// `jet data info DIR`: the splits, token counts and sources of a data set.
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "core/check.h"
#include "core/fs.h"
#include "data/generate.h"
#include "data/prepare.h"
#include "data/tokens.h"

namespace {

void print_summary(const jet::data::PrepareResult& r, const std::string& out) {
  auto line = [](const char* name, const jet::data::SplitSummary& s) {
    fmt::print("{:8} {:>10} tokens  {:>6} documents  {:>3} shard(s){}\n", name, s.tokens, s.documents, s.shards,
               s.skipped_empty ? fmt::format("  ({} empty skipped)", s.skipped_empty) : "");
  };
  line("train", r.train);
  line("holdout", r.holdout);
  fmt::print("wrote {}{}\n", out,
             r.resumed_shards ? fmt::format(" (resumed: {} shard(s) kept from an earlier run)", r.resumed_shards) : "");
}

void setup_prepare(CLI::App& app) {
  auto o = std::make_shared<jet::data::PrepareOptions>();
  auto holdout = app.add_option("--holdout", o->holdout,
                                "fraction of documents held out when --holdout-input is not given (default 0.01)");
  app.add_option("--input", o->inputs, "text files or directories (*.txt under them); one file = one document")
      ->required()
      ->delimiter(',');
  app.add_option("--holdout-input", o->holdout_inputs,
                 "held-out text files or directories: a source not used for training (preferred)")
      ->delimiter(',')
      ->excludes(holdout);
  app.add_option("--tokenizer", o->tokenizer, "GGUF file, HF directory or tokenizer.json")->required();
  app.add_option("--out", o->out, "output directory (appears only when complete)")->required();
  app.add_option("--shard-tokens", o->shard_tokens, "tokens per shard (default 4194304)");
  app.add_option("--max-input-bytes", o->max_input_bytes, "largest input file read (default 1073741824 = 1 GiB)");
  app.add_flag("--force", o->force, "replace an existing output directory");
  app.add_flag("!--no-progress", o->progress, "no progress bar");
  app.add_option("--stop-after-shards", o->stop_after_shards, "(tests) stop after writing N shards, as if killed");
  app.callback([o] {
    const auto r = jet::data::prepare(*o);
    if (!r.complete) {
      fmt::print("stopped after {} shard(s) as asked; rerun to resume\n", o->stop_after_shards);
      return;
    }
    print_summary(r, o->out);
  });
}

void setup_generate(CLI::App& app) {
  auto o = std::make_shared<jet::data::GenerateOptions>();
  auto prompts = std::make_shared<std::string>();
  app.add_option("--model", o->model, "the teacher: GGUF file or HF directory")->required();
  app.add_option("--out", o->out, "output directory of text files (one per sample)")->required();
  app.add_option("--prompts", *prompts, "a text file, one prompt per line (default: built-in varied prompts)");
  app.add_option("--samples", o->samples, "documents to generate (default 64)");
  app.add_option("--max-new-tokens", o->max_new_tokens, "tokens per sample (default 256)");
  app.add_option("--max-batch", o->max_batch, "samples decoded together (default 16)");
  app.add_option("--temperature", o->temperature, "sampling temperature (default 0.8)");
  app.add_option("--top-p", o->top_p, "nucleus (default 0.95)");
  app.add_option("--top-k", o->top_k, "top-k, 0 = off (default 0)");
  app.add_option("--seed", o->seed, "seed; batch b uses seed + b (default 0)");
  app.add_flag("!--no-chat", o->chat, "plain continuation instead of the chat template");
  app.add_option("--device", o->device, "cpu | cuda");
  app.add_option("--dtype", o->dtype, "fp32 | bf16");
  app.callback([o, prompts] {
    if (!prompts->empty()) {
      const std::string text = jet::read_file(*prompts);
      for (size_t a = 0, b; a < text.size(); a = b + 1) {
        b = text.find('\n', a);
        if (b == std::string::npos) b = text.size();
        if (b > a) o->prompts.push_back(text.substr(a, b - a));
      }
      JET_CHECK(!o->prompts.empty(), "{}: no prompts (one per line)", *prompts);
    }
    const auto r = jet::data::generate_text(*o);
    fmt::print("wrote {} sample(s) to {} ({} kept from an earlier run), {} tokens generated\n", r.written, o->out,
               r.kept, r.tokens);
  });
}

void setup_info(CLI::App& app) {
  auto dir = std::make_shared<std::string>();
  app.add_option("dir", *dir, "a jet data directory")->required();
  app.callback([dir] {
    for (const char* split : {"train", "holdout"}) {
      const auto s = jet::data::TokenSet::open(*dir, split);
      fmt::print("{:8} {:>10} tokens  vocabulary {}  eos {}\n", split, s.size(), s.vocab_size(), s.eos_id());
    }
    const auto meta = nlohmann::json::parse(jet::read_file(*dir + "/meta.json"));
    fmt::print("split rule: {}\n", meta.value("split_rule", ""));
    for (const char* split : {"train", "holdout"})
      for (const auto& src : meta["sources"][split])
        fmt::print("{:8} source: {}\n", split, src.dump());
  });
}

void setup(CLI::App& app) {
  app.require_subcommand(1);
  setup_prepare(*app.add_subcommand("prepare", "tokenise text files into shards + a held-out split"));
  setup_info(*app.add_subcommand("info", "splits, token counts and sources of a data set"));
  setup_generate(*app.add_subcommand("generate", "training text sampled from the teacher through the engine"));
}

}  // namespace

JET_COMMAND("data", "token data sets for distillation and evaluation (prepare, info)", setup);
