// Counts the ATen operators one engine decode step issues (each is at least one kernel launch on CUDA,
// so with a CUDA graph the step costs about count x the per-kernel floor of a few microseconds when
// the model is small). Runs on the CPU: bench_decode_ops CONFIG.json [batch] [context]
// Prints the total and the operators by name, most frequent first.
#include <ATen/ATen.h>
#include <ATen/record_function.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <string>

#include <fmt/format.h>

#include "engine/engine.h"
#include "model/causal_lm.h"
#include "model/config.h"
#include "model/random_init.h"

namespace {
thread_local int depth = 0;
std::map<std::string, int64_t> counts;
bool counting = false;
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: bench_decode_ops CONFIG.json [batch] [context]\n");
    return 2;
  }
  const int64_t batch = argc > 2 ? std::stoll(argv[2]) : 1, context = argc > 3 ? std::stoll(argv[3]) : 64;
  try {
    jet::model::CausalLM lm(jet::model::ModelConfig::from_file(argv[1]));
    lm.load_weights(jet::model::random_weights(lm, 0), at::kFloat, at::kCPU, argv[1]);
    jet::engine::EngineOptions eo;
    eo.max_batch = batch;
    eo.max_len = context + 8;
    jet::engine::SamplingParams greedy;
    greedy.temperature = 0;
    jet::engine::Engine engine(lm, eo, greedy);
    for (int64_t b = 0; b < batch; ++b) engine.fill_synthetic(engine.alloc(), context, b);
    engine.step();
    at::addGlobalCallback(at::RecordFunctionCallback(
                              [](const at::RecordFunction& fn) -> std::unique_ptr<at::ObserverContext> {
                                if (counting && depth == 0) ++counts[fn.name()];
                                ++depth;
                                return nullptr;
                              },
                              [](const at::RecordFunction&, at::ObserverContext*) { --depth; })
                              .scopes({at::RecordScope::FUNCTION}));
    counting = true;
    engine.step();
    counting = false;
    std::vector<std::pair<int64_t, std::string>> by;
    int64_t total = 0;
    for (const auto& [n, c] : counts) by.push_back({c, n}), total += c;
    std::sort(by.rbegin(), by.rend());
    fmt::print("{}: {} layers, batch {}, context {}: {} top-level ATen ops per decode step ({:.1f} per layer)\n",
               argv[1], lm.config().num_hidden_layers, batch, context, total,
               double(total) / lm.config().num_hidden_layers);
    for (const auto& [c, n] : by) fmt::print("  {:6d}  {}\n", c, n);
  } catch (const std::exception& e) {
    fmt::print(stderr, "jet: error: {}\n", e.what());
    return 1;
  }
  return 0;
}
