// PostNAS step 4, the hardware-aware search: (heads, d_k, d_v) of the linear block at a fixed state size
// H·d_k·d_v per layer (the decode cost is dominated by reading and writing that state), each candidate
// timed on the device (a decode step at a batch, a prefill) and distilled on one placement with the
// same budget, so accuracy can be traded against measured speed at equal cache size.
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>

#include "core/check.h"
#include "core/fs.h"
#include "core/strings.h"
#include "data/tokens.h"
#include "model/blocks/blocks.h"
#include "postnas/dist.h"
#include "postnas/step_util.h"

namespace jet::postnas::detail {
namespace {

struct Timing {
  double decode_ms = 0, prefill_tok_s = 0;
};

// Wall time of f() after the device has finished it (a scalar copied to the host waits for the device).
double seconds_of(const std::function<at::Tensor()>& f) {
  const auto t0 = std::chrono::steady_clock::now();
  f().sum().item<float>();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

Timing time_block(const std::string& type, const json& cfg, int64_t hidden, const Env& env, int64_t batch, int64_t len,
                  int64_t iters) {
  c10::NoGradGuard no_grad;
  auto block = model::make_block(type, cfg, hidden, 0.02, 7);
  block->to(env.device, env.dtype);
  const auto opts = at::TensorOptions().dtype(env.dtype).device(env.device);
  model::BlockState state = block->init_state(batch);
  const at::Tensor x = at::randn({batch, hidden}, opts.dtype(at::kFloat)).mul_(0.5).to(env.dtype);
  const at::Tensor xs = at::randn({1, len, hidden}, opts.dtype(at::kFloat)).mul_(0.5).to(env.dtype);
  Timing t;
  for (int w = 0; w < 2; ++w) seconds_of([&] { return block->step(x, state); });
  double s = 0;
  for (int64_t i = 0; i < iters; ++i) s += seconds_of([&] { return block->step(x, state); });
  t.decode_ms = 1e3 * s / iters;
  seconds_of([&] { return block->forward(xs); });
  s = 0;
  for (int64_t i = 0; i < std::max<int64_t>(1, iters / 4); ++i) s += seconds_of([&] { return block->forward(xs); });
  t.prefill_tok_s = len * std::max<int64_t>(1, iters / 4) / s;
  return t;
}

}  // namespace

void run_hwsearch(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"], type = o["linear_type"];
  JET_CHECK(type == "jet" || type == "gdn", "hwsearch: linear_type must be jet or gdn (blocks sized by num_heads, head_dim, "
            "expand_v), got '{}'", type);
  std::vector<int64_t> heads, dims;
  for (const auto& h : split_list(o["heads"])) heads.push_back(std::stoll(h));
  for (const auto& d : split_list(o["head_dims"])) dims.push_back(std::stoll(d));
  JET_CHECK(!heads.empty() && !dims.empty(), "hwsearch: --heads and --head-dims need at least one value each");
  const auto train = data::TokenSet::open(o["data"], "train");
  const auto holdout = data::TokenSet::open(o["data"], "holdout");
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  const json base = default_linear_config(teacher.config, type);
  int64_t state = o["state"];
  if (state == 0) state = base["num_heads"].get<int64_t>() * base["head_dim"].get<int64_t>() * base["head_dim"].get<int64_t>();
  const Placement p = placement_of(o, teacher.config.num_hidden_layers);
  const at::Tensor windows = data::windows(holdout, o["eval_seq_len"], o["eval_windows"]);
  const int64_t D = teacher.config.hidden_size, B = o["time_batch"], len = o["time_len"], iters = o["time_iters"];
  std::string table = fmt::format(
      "hardware-aware search, {} blocks at a state of {} elements per layer and sequence, placement {}\n"
      "timed on {} {}: decode step at batch {}, prefill of {} tokens; quality: {} steps x {} x {} tokens each\n",
      type, state, p.str(), env.device.str(), o["dtype"].get<std::string>(), B, len, o["steps"].get<int64_t>(),
      o["batch"].get<int64_t>(), o["seq_len"].get<int64_t>());
  table += fmt::format("{:>5} {:>5} {:>5} {:>12} {:>14} {:>15} {:>11} {:>12}\n", "heads", "d_k", "d_v", "params/layer",
                       "decode ms/step", "prefill tok/s", "train loss", "held-out KL");
  json rows = json::array();
  for (int64_t H : heads)
    for (int64_t K : dims) {
      if (state % (H * K) != 0) continue;
      const int64_t V = state / (H * K);
      if (V < 8 || V % 8 != 0) continue;
      json cfg = base;
      cfg["num_heads"] = H;
      cfg["head_dim"] = K;
      cfg["expand_v"] = double(V) / double(K);
      const Timing t = time_block(type, cfg, D, env, B, len, iters);
      const Candidate c = train_candidate(teacher, type, cfg, p, o, train, windows,
                                          fmt::format("{}.ckpt/h{}k{}v{}", out, H, K, V), fmt::format("hwsearch/h{}k{}v{}", H, K, V));
      json row = c.to_json();
      row["heads"] = H, row["d_k"] = K, row["d_v"] = V, row["linear_config"] = cfg;
      row["decode_ms"] = t.decode_ms, row["prefill_tok_per_s"] = t.prefill_tok_s;
      rows.push_back(row);
      table += fmt::format("{:>5} {:>5} {:>5} {:>11.3f}M {:>14.4f} {:>15.0f} {:>11.4f} {:>12.4f}\n", H, K, V,
                           c.params_per_layer / 1e6, t.decode_ms, t.prefill_tok_s, c.train_loss_last10, c.heldout_kl);
    }
  JET_CHECK(!rows.empty(), "hwsearch: no (heads, head_dim) pair of the grid divides the state {} into a d_v that is a "
            "multiple of 8", state);
  if (!dist::leader()) return;  // rank 0 writes the outputs
  printf("%s", table.c_str());
  write_file_atomic(out, json{{"placement", p.to_json()}, {"state", state}, {"options", o}, {"candidates", rows}}.dump(1) + "\n");
  remove_tree(out + ".ckpt");
  say("wrote " + out);
}

}  // namespace jet::postnas::detail
