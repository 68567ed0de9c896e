// `jet data generate`: training text sampled from the teacher itself (through the engine), for when the
// packaged prose is too small for a distillation budget. Each sample is one document: its prompt, a
// blank line, the teacher's continuation. Samples are made in batches of max_batch; batch b is drawn
// with seed + b, and its files (gen-NNNNNN.txt, each written atomically) are skipped when they exist,
// so a killed run resumes and a rerun with the same options gives the same files. DIR/sources.json
// records the model, the sampling settings and the prompts, and `jet data prepare` copies it into the
// data set's meta.json.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace jet::data {

struct GenerateOptions {
  std::string model;                 // the teacher (GGUF file or HF directory, with its tokenizer)
  std::string out;                   // output directory of text files
  std::vector<std::string> prompts;  // empty: builtin_prompts()
  int64_t samples = 64, max_new_tokens = 256, max_batch = 16;
  double temperature = 0.8, top_p = 0.95;
  int64_t top_k = 0;
  uint64_t seed = 0;
  bool chat = true;                  // wrap each prompt in the model's chat template
  std::string device = "cpu", dtype = "fp32";
};

// Varied prompts: writing tasks over a range of topics (built in, deterministic order).
std::vector<std::string> builtin_prompts();

struct GenerateResult {
  int64_t written = 0, kept = 0, tokens = 0;  // files written now, kept from an earlier run, tokens generated now
};

GenerateResult generate_text(const GenerateOptions& o);

}  // namespace jet::data
