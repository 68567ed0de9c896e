// `jet tokenize --model PATH [--decode] [--add-special]`: JSON Lines on stdin -> stdout.
//   {"text": "..."} -> {"ids": [...]};  with --decode: {"ids": [...]} -> {"text": "..."}.
// One process serves many strings (the tokenizer parity test sends thousands).
#include <iostream>

#include "cli/command.h"
#include "core/check.h"
#include "core/fs.h"
#include "text/load.h"

namespace {

struct Opts {
  std::string model, export_json;
  bool decode = false, add_special = false, skip_special = false;
};

void run(const Opts& o) {
  auto tok = jet::text::load_tokenizer(o.model);
  if (!o.export_json.empty()) {
    // tokenizer.json (+ tokenizer_config.json beside it), each written to a temp file and renamed.
    auto dir = o.export_json.substr(0, o.export_json.find_last_of('/') + 1);
    jet::write_file_atomic(o.export_json, tok.to_hf_json().dump(1));
    jet::write_file_atomic(dir + "tokenizer_config.json", tok.hf_tokenizer_config().dump(1));
    return;
  }
  std::string line;
  int64_t n = 0;
  while (std::getline(std::cin, line)) {
    ++n;
    if (line.empty()) continue;
    nlohmann::json in;
    try {
      in = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      JET_FAIL("stdin line {}: not valid JSON", n);
    }
    nlohmann::json out;
    if (o.decode) {
      JET_CHECK(in.contains("ids") && in["ids"].is_array(), "stdin line {}: expected {{\"ids\": [...]}}", n);
      out["text"] = tok.decode(in["ids"].get<std::vector<int32_t>>(), o.skip_special);
    } else {
      JET_CHECK(in.contains("text") && in["text"].is_string(), "stdin line {}: expected {{\"text\": ...}}", n);
      out["ids"] = tok.encode(in["text"].get<std::string>(), o.add_special);
    }
    std::cout << out.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << '\n';
  }
  std::cout.flush();
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  app.add_option("--model", o->model, "GGUF file, HF directory or tokenizer.json")->required();
  app.add_option("--export-json", o->export_json, "write the HF tokenizer.json (and tokenizer_config.json) here");
  app.add_flag("--decode", o->decode, "decode {\"ids\"} lines instead of encoding {\"text\"} lines");
  app.add_flag("--add-special", o->add_special, "prepend BOS where the tokenizer asks for it");
  app.add_flag("--skip-special", o->skip_special, "drop special tokens when decoding");
  app.callback([o] { run(*o); });
}

}  // namespace

JET_COMMAND("tokenize", "JSON Lines tokenizer (encode, or --decode)", setup);
