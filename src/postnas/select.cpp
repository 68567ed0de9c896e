// PostNAS step 2, block selection: every linear block type trained on one placement with the same
// budget and seed, then compared (parameters, state, training loss, held-out KL, speed).
#include <ATen/ATen.h>

#include <numeric>

#include "core/check.h"
#include "core/fs.h"
#include "data/tokens.h"
#include "model/linear_mixer.h"
#include "postnas/place.h"
#include "postnas/step_util.h"

namespace jet::postnas::detail {

// PostNAS step 2: the linear block types compared on one placement with the same budget and seed.
void run_select(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"];
  std::vector<std::string> types;
  for (size_t a = 0, b; a <= o["types"].get<std::string>().size(); a = b + 1) {
    const std::string all = o["types"];
    b = all.find(',', a);
    if (b == std::string::npos) b = all.size();
    if (b > a) types.push_back(all.substr(a, b - a));
  }
  JET_CHECK(!types.empty(), "select: no block types given");
  for (const auto& t : types) JET_CHECK(model::is_linear_type(t), "select: '{}' is not a linear block type", t);
  const auto train = data::TokenSet::open(o["data"], "train");
  const auto holdout = data::TokenSet::open(o["data"], "holdout");
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  const Placement p = placement_of(o, teacher.config.num_hidden_layers);
  const at::Tensor windows = data::windows(holdout, o["eval_seq_len"], o["eval_windows"]);
  const int64_t B = o["batch"], T = o["seq_len"];
  const uint64_t seed = o["seed"];
  json rows = json::array();
  std::string table = fmt::format("block selection on {} ({} steps x {} x {} tokens each, seed {})\n", p.str(),
                                  o["steps"].get<int64_t>(), B, T, seed);
  table += fmt::format("{:<9} {:>10} {:>14} {:>12} {:>12} {:>9}\n", "block", "params/layer", "state KB/layer",
                       "train loss", "held-out KL", "tok/s");
  for (const auto& type : types) {
    json so = o;
    so["linear_type"] = type;
    Supernet net(teacher.config, teacher.tensors, supernet_options(so), env.dtype, env.device);  // shares the frozen tensors
    DistillOptions d = distill_options(o, out + ".ckpt/" + type, "select/" + type);
    d.fingerprint["linear_type"] = type;
    DistillHooks h;
    h.batch = [&](int64_t step) { return data::sample_batch(train, B, T, seed, step); };
    h.teacher_hidden = [&](const at::Tensor& ids) {
      net.set_teacher();
      return net.lm().hidden(ids);
    };
    h.prepare = [&](int64_t) { net.set_placement(p); };
    const DistillResult r = distill(net.lm(), net.linear_params(), d, h);
    JET_CHECK(r.finished, "select: {} stopped after step {} (resume with --resume)", type, r.steps_done);
    const Objective kl_obj = kl_objective(net, windows, o["eval_batch"]);  // (computes the teacher's side)
    net.set_placement(p);
    const double kl = -kl_obj.score(net);
    int64_t params = 0;
    for (const auto& q : net.linear_params())
      if (q.name.rfind("model.layers.0.", 0) == 0) params += q.slot->numel();
    net.set_placement(Placement{});
    const int64_t state = net.lm().mixer(0).cache_bytes_fixed(2);
    const double tail = std::accumulate(r.losses.end() - std::min<size_t>(10, r.losses.size()), r.losses.end(), 0.0) /
                        std::min<size_t>(10, r.losses.size());
    rows.push_back({{"type", type}, {"params_per_layer", params}, {"state_bytes_per_layer", state},
                    {"train_loss_last10", tail}, {"heldout_kl", kl}, {"tokens_per_s", r.tokens_per_s},
                    {"losses", r.losses}});
    table += fmt::format("{:<9} {:>10.3f}M {:>14.1f} {:>12.4f} {:>12.4f} {:>9.0f}\n", type, params / 1e6, state / 1024.0,
                         tail, kl, r.tokens_per_s);
  }
  printf("%s", table.c_str());
  write_file_atomic(out, json{{"placement", p.to_json()}, {"options", o}, {"blocks", rows}}.dump(1) + "\n");
  remove_tree(out + ".ckpt");
  say("wrote " + out);
}

}  // namespace jet::postnas::detail
