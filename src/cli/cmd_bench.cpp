// `jet bench`: generation speed through the engine. A batch of random prompts of --context tokens is
// prefilled, then --gen tokens are decoded for all of them (greedy). Prints a machine line and a table:
// prefill and decode tok/s, ms per decode step, cache per sequence by layer type, the largest batch the
// free memory holds, and the decode step's achieved bandwidth (weights + cache bytes read per step) next
// to a device-to-device copy bandwidth measured in the same run. --json also writes the numbers.
// --config FILE --random-init measures any config without weights. --synthetic-cache skips the prompts:
// every slot's cache is filled with random K/V and random linear states as if --context tokens had been
// read (Engine::fill_synthetic), so long contexts cost no prefill; decode speed depends only on the
// bytes a step reads, not on their values. --max-batch picks the largest batch whose caches and decode
// workspace fit in the free memory.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "cli/model_args.h"
#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "engine/cuda_graph.h"
#include "engine/engine.h"
#include "model/causal_lm.h"
#include "ops/qmatmul/qmatmul.h"

namespace {

using Clock = std::chrono::steady_clock;
constexpr int64_t kMaxBatch = 4096;
double since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Opts {
  jet::cli::ModelArgs source;
  uint64_t seed = 0;
  std::string device = "cpu", dtype = "auto", json;
  int64_t batch = 1, context = 512, gen = 128, prefill_chunk = 512;
  bool max_batch = false, no_graph = false, synthetic = false;
};

// "model name" of /proc/cpuinfo, or "cpu".
std::string cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "cpu";
}

// MemAvailable of /proc/meminfo in bytes (0 if unknown).
int64_t cpu_available_bytes() {
  std::ifstream f("/proc/meminfo");
  std::string key, unit;
  int64_t kb = 0;
  while (f >> key >> kb >> unit)
    if (key == "MemAvailable:") return kb * 1024;
  return 0;
}

// Waits for the device's queued work (the engine's own steps end on a host copy already).
void sync(const at::Tensor& t) { (void)t.narrow(0, 0, 1).to(at::kCPU); }

// Device-to-device copy bandwidth, bytes read + written per second (best of 5 copies of 256 MiB).
double copy_bandwidth(at::Device device) {
  const int64_t n = int64_t(256) << 20;
  at::Tensor src = at::ones({n}, at::TensorOptions().dtype(at::kByte).device(device)), dst = at::empty_like(src);
  dst.copy_(src);
  sync(dst);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    auto t0 = Clock::now();
    dst.copy_(src);
    sync(dst);
    best = std::min(best, since(t0));
  }
  return 2.0 * n / best;
}

void run(const Opts& o) {
  const auto device = jet::parse_device(o.device);
  const auto mdtype = jet::cli::parse_model_dtype(o.dtype, device);
  const auto dtype = mdtype.scalar;
  JET_CHECK(o.context >= 1, "--context must be >= 1, got {}", o.context);
  JET_CHECK(o.gen >= 1, "--gen must be >= 1, got {}", o.gen);
  JET_CHECK(o.batch >= 1, "--batch must be >= 1, got {}", o.batch);
  auto ck = o.source.checkpoint(/*tokenizer=*/false, mdtype.quantized);
  const std::string where = ck.path;
  const auto lm_ptr = o.source.build(ck, mdtype, device, o.seed);
  const jet::model::CausalLM& lm = *lm_ptr;
  const auto& c = lm.config();

  const int64_t weight_bytes = lm.weight_bytes();
  const int64_t elem = at::elementSize(dtype), max_len = o.context + o.gen;
  const auto by_type = lm.cache_bytes_by_type(max_len, elem);
  int64_t seq_bytes = 0;
  for (const auto& t : by_type) seq_bytes += t.bytes;
  const int64_t free_bytes = device.is_cuda() ? jet::engine::cuda_free_bytes(device) : cpu_available_bytes();
  // Per sequence: its caches plus the decode step's workspace for one row (logits in the model dtype and
  // fp32, MLP and attention activations, with room to spare); 1 GiB + 5% stays for graph pools, the
  // bandwidth probe's buffers and allocator slack.
  const int64_t row_bytes = seq_bytes + 2 * (c.vocab_size * (elem + 4) + 4 * (c.intermediate_size + 8 * c.hidden_size) * 4);
  const int64_t usable = static_cast<int64_t>(0.95 * free_bytes) - (int64_t(1) << 30);
  const int64_t fits = std::max<int64_t>(0, usable / row_bytes);
  const int64_t batch = o.max_batch ? std::clamp<int64_t>(fits, 1, kMaxBatch) : o.batch;
  const double copy_bw = copy_bandwidth(device);

  jet::engine::EngineOptions eo;
  eo.max_batch = batch;
  eo.max_len = max_len;
  eo.prefill_chunk = o.prefill_chunk;
  eo.cuda_graph = !o.no_graph;
  jet::engine::SamplingParams greedy;
  greedy.temperature = 0;
  jet::engine::Engine engine(lm, eo, greedy);
  at::manual_seed(0);
  const at::Tensor prompts = o.synthetic ? at::Tensor() : at::randint(0, c.vocab_size, {batch, o.context}, at::kLong);
  auto prompt = [&](int64_t b) {
    at::Tensor row = prompts[b].contiguous();
    const int64_t* p = row.data_ptr<int64_t>();
    return std::vector<int32_t>(p, p + o.context);
  };
  // One pass: prefill (or synthetically fill) every slot, then decode until each holds max_len tokens;
  // returns (prefill s, decode s).
  auto pass = [&](int64_t steps) {
    auto t0 = Clock::now();
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t slot = engine.alloc();
      if (o.synthetic)
        engine.fill_synthetic(slot, o.context, o.seed * 1000003 + b);
      else
        engine.prefill(slot, prompt(b));
    }
    if (o.synthetic) engine.step();  // the first step of a pass is the prefill's share elsewhere
    const double prefill = since(t0);
    auto t1 = Clock::now();
    for (int64_t s = 0; s < steps; ++s) engine.step();
    const double decode = since(t1);
    for (int64_t b = 0; b < batch; ++b) engine.free(b);
    return std::make_pair(prefill, decode);
  };
  // Warm-up: with graphs, a whole pass (every shape gets captured before timing); eagerly, two steps.
  pass(engine.uses_graphs() ? o.gen - 1 : std::min<int64_t>(2, o.gen - 1));
  const auto [prefill_s, decode_s] = pass(o.gen - 1);
  const int64_t steps = o.gen - 1;
  const double prefill_tps = o.synthetic ? 0 : batch * o.context / prefill_s;
  const double ms_step = steps > 0 ? 1e3 * decode_s / steps : 0;
  const double decode_tps = steps > 0 ? batch * steps / decode_s : 0;
  // Bytes a decode step must read: the weights once, and per sequence its attention KV at the mean
  // length of the run plus the fixed-size states.
  const double mean_len = o.context + 0.5 * o.gen;
  const double step_bytes = weight_bytes + batch * (lm.cache_bytes_per_token(elem) * mean_len + lm.cache_bytes_fixed(elem));
  const double gbps = ms_step > 0 ? step_bytes / (ms_step * 1e-3) / 1e9 : 0;

  const std::string machine = device.is_cuda() ? jet::engine::cuda_device_name(device)
                                               : fmt::format("{} ({} threads)", cpu_name(), at::get_num_threads());
  const std::string mode = device.is_cuda() ? (engine.uses_graphs() ? "cuda graph" : "eager")
                           : mdtype.quantized ? "eager, " + jet::ops::qmatmul_kernel_name() + " kernels"
                                              : "eager";
  fmt::print("machine: {} | {} {} | {} | copy bandwidth {:.1f} GB/s\n", machine, device.str(), mdtype.name(),
             mode, copy_bw / 1e9);
  fmt::print("model:   {} ({:.1f}M parameters, {:.1f} MB weights, {} layers)\n", where, lm.num_parameters() / 1e6,
             weight_bytes / 1e6, c.num_hidden_layers);
  fmt::print("\n| batch | context | gen | prefill tok/s | decode tok/s | ms/step | GB/s | of copy |\n");
  fmt::print("|---:|---:|---:|---:|---:|---:|---:|---:|\n");
  const std::string prefill_cell = o.synthetic ? "synthetic" : fmt::format("{:.1f}", prefill_tps);
  fmt::print("| {} | {} | {} | {} | {:.1f} | {:.3f} | {:.1f} | {:.0f}% |\n\n", batch, o.context, o.gen,
             prefill_cell, decode_tps, ms_step, gbps, 100 * gbps * 1e9 / copy_bw);
  if (o.synthetic)
    fmt::print("cache: synthetic (random K/V and linear states for {} tokens per sequence, no prefill; a decode "
               "step's cost depends only on the bytes it reads)\n", o.context);
  fmt::print("cache per sequence at {} tokens: {:.2f} MB", max_len, seq_bytes / 1e6);
  for (size_t i = 0; i < by_type.size(); ++i)
    fmt::print("{} {} x{} {:.2f} MB", i == 0 ? " =" : " +", by_type[i].type, by_type[i].layers, by_type[i].bytes / 1e6);
  fmt::print("\nlargest batch that fits: {} ({:.1f} GB free after the weights; {:.2f} MB per sequence with its decode "
             "workspace){}\n", fits, free_bytes / 1e9, row_bytes / 1e6,
             o.max_batch ? fmt::format(", --max-batch ran {}", batch) : "");

  if (!o.json.empty()) {
    nlohmann::json j = {{"machine", machine},       {"device", device.str()},
                        {"dtype", mdtype.name()}, {"mode", mode},
                        {"threads", at::get_num_threads()}, {"model", where},
                        {"batch", batch},           {"context", o.context},
                        {"gen", o.gen},             {"prefill_tok_per_s", prefill_tps},
                        {"decode_tok_per_s", decode_tps}, {"ms_per_step", ms_step},
                        {"weight_bytes", weight_bytes}, {"step_bytes", step_bytes},
                        {"achieved_gb_per_s", gbps}, {"copy_gb_per_s", copy_bw / 1e9},
                        {"cache_bytes_per_sequence", seq_bytes}, {"largest_batch", fits},
                        {"synthetic_cache", o.synthetic}, {"max_batch", o.max_batch}};
    for (const auto& t : by_type) j["cache_bytes_by_type"][t.type] = {{"layers", t.layers}, {"bytes", t.bytes}};
    jet::write_file_atomic(o.json, j.dump(2) + "\n");
  }
}

void setup(CLI::App& app) {
  auto o = std::make_shared<Opts>();
  o->source.add_to(app);
  app.add_option("--seed", o->seed, "seed of --random-init (default 0)");
  auto* batch = app.add_option("--batch", o->batch, "sequences decoded together (default 1)");
  app.add_flag("--max-batch", o->max_batch, fmt::format("use the largest batch that fits (at most {})", kMaxBatch))
      ->excludes(batch);
  app.add_flag("--synthetic-cache", o->synthetic,
               "fill each sequence's cache with random K/V and states of --context tokens instead of a prefill");
  app.add_option("--context", o->context, "prompt tokens per sequence (default 512)");
  app.add_option("--gen", o->gen, "tokens generated per sequence (default 128)");
  jet::cli::add_device_options(app, o->device, o->dtype);
  jet::cli::add_engine_options(app, o->prefill_chunk, o->no_graph);
  app.add_option("--json", o->json, "also write the numbers to this JSON file");
  app.callback([o] { run(*o); });
}

JET_COMMAND("bench", "prefill/decode speed, cache per sequence and bandwidth through the engine", setup);

}  // namespace
