// `jet eval --model PATH[,PATH...] --tasks ppl,passkey[,mc] [--data DIR] ...`: the flags of
// eval::run_report (eval/report.h), which prints the side-by-side table and writes --json.
#include "cli/command.h"
#include "eval/report.h"

namespace {

void setup(CLI::App& app) {
  auto o = std::make_shared<jet::eval::ReportOptions>();
  app.add_option("--model", o->models, "GGUF files or HF directories, comma-separated")->required()->delimiter(',');
  app.add_option("--tasks", o->tasks,
                 "comma-separated: ppl, passkey, mc; hellaswag, arc_easy, arc_challenge, piqa, winogrande, lambada, "
                 "mmlu, boolq, openbookqa, sciq; niah_single, niah_multikey, niah_multivalue, vt, qa_squad "
                 "(default ppl,passkey)")
      ->delimiter(',');
  app.add_option("--data", o->data, "a jet data set (jet data prepare); its holdout split is used");
  app.add_option("--seq-len", o->seq_len, "perplexity window length (default 512)");
  app.add_option("--ppl-windows", o->ppl_windows, "perplexity windows, -1 = all that fit (default 64)");
  app.add_option("--batch", o->batch, "perplexity windows per forward (default 4)");
  app.add_option("--passkey-lengths", o->passkey_lengths, "passkey context lengths (default 512,1024,2048,4096)")
      ->delimiter(',');
  app.add_option("--samples", o->samples, "passkey and RULER samples per length (default 20)");
  app.add_option("--mc-items", o->mc_items, "holdout-cloze-4 items (default 100)");
  app.add_option("--mc-context-tokens", o->mc_context, "holdout-cloze-4 context tokens (default 96)");
  app.add_option("--mc-choice-tokens", o->mc_choice, "holdout-cloze-4 choice tokens (default 24)");
  app.add_option("--mc-jsonl", o->mc_jsonl, "a multiple-choice set in JSON Lines instead of holdout-cloze-4");
  app.add_option("--eval-dir", o->eval_dir, "benchmark files of scripts/eval_data.sh (default data/eval)");
  app.add_option("--limit", o->limit, "benchmark items per task, a seeded subsample (default 0 = all)");
  app.add_option("--batch-tokens", o->batch_tokens, "benchmark scoring: tokens per forward (default 0: 16384 on CUDA, 512 on the CPU)");
  app.add_option("--lengths", o->lengths, "RULER task lengths in tokens (default 1024,2048,4096,8192)")->delimiter(',');
  app.add_option("--seed", o->seed, "seed of the passkey, cloze and RULER tasks and of --limit (default 0)");
  app.add_option("--device", o->device, "cpu | cuda (default cpu)");
  app.add_option("--dtype", o->dtype, "fp32 | bf16 (default fp32)");
  app.add_option("--json", o->json_out, "also write the numbers to this file");
  app.callback([o] { jet::eval::run_report(*o); });
}

}  // namespace

JET_COMMAND("eval", "perplexity, passkey, lm-evaluation-harness benchmarks and RULER tasks, models side by side", setup);
