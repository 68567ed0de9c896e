// PostNAS step 2, block selection: every linear block type trained on one placement with the same
// budget and seed, then compared (parameters, state, training loss, held-out KL, speed).
#include <ATen/ATen.h>

#include <numeric>

#include "core/check.h"
#include "core/fs.h"
#include "core/strings.h"
#include "data/tokens.h"
#include "eval/eval.h"
#include "model/linear_mixer.h"
#include "postnas/place.h"
#include "postnas/dist.h"
#include "postnas/step_util.h"

namespace jet::postnas::detail {

Candidate train_candidate(const model::Checkpoint& teacher, const std::string& type, const json& linear_config,
                          const Placement& p, const json& o, const data::TokenSet& train, const at::Tensor& windows,
                          const std::string& ckpt_dir, const std::string& label) {
  const Env env = env_of(o);
  json so = o;
  so["linear_type"] = type;
  so["linear_config"] = linear_config;
  Supernet net(teacher.config, teacher.tensors, supernet_options(so), env.dtype, env.device);  // shares the frozen tensors
  DistillOptions d = distill_options(o, ckpt_dir, label);
  d.fingerprint["linear_type"] = type;
  d.fingerprint["linear_config"] = linear_config;
  DistillHooks h;
  h.batch = batch_sampler(o, train, teacher.tokenizer.get(), o["seed"]);
  h.teacher_hidden = [&](const at::Tensor& ids, std::vector<at::Tensor>* layers) {
    net.set_teacher();
    return net.lm().hidden(ids, 0, nullptr, layers);
  };
  h.prepare = [&](int64_t) { net.set_placement(p); };
  const DistillResult r = distill(net.lm(), net.linear_params(), d, h);
  JET_CHECK(r.finished, "{}: stopped after step {} (resume with --resume)", label, r.steps_done);
  const Objective kl_obj = kl_objective(net, windows, o["eval_batch"]);  // (computes the teacher's side)
  net.set_placement(p);
  Candidate c;
  c.heldout_kl = -kl_obj.score(net);
  c.heldout_ppl = eval::perplexity(net.lm(), windows, o["eval_batch"]).ppl;
  for (const auto& q : net.linear_params())
    if (q.name.rfind("model.layers.0.", 0) == 0) c.params_per_layer += q.slot->numel();
  net.set_placement(Placement{});
  c.state_bytes_per_layer = net.lm().mixer(0).cache_bytes_fixed(2);
  const size_t n = std::min<size_t>(10, r.losses.size());
  c.train_loss_last10 = std::accumulate(r.losses.end() - n, r.losses.end(), 0.0) / n;
  c.tokens_per_s = r.tokens_per_s;
  c.losses = r.losses;
  return c;
}

json Candidate::to_json() const {
  return {{"params_per_layer", params_per_layer}, {"state_bytes_per_layer", state_bytes_per_layer},
          {"train_loss_last10", train_loss_last10}, {"heldout_kl", heldout_kl}, {"heldout_ppl", heldout_ppl}, {"tokens_per_s", tokens_per_s},
          {"losses", losses}};
}

// PostNAS step 2: the linear block types compared on one placement with the same budget and seed.
void run_select(const json& o) {
  const std::string out = o["out"];
  const std::vector<std::string> types = split_list(o["types"]);
  JET_CHECK(!types.empty(), "select: no block types given");
  for (const auto& t : types) JET_CHECK(model::is_linear_type(t), "select: '{}' is not a linear block type", t);
  JET_CHECK(o["linear_config"].empty(), "select: linear_config must stay {{}} (each type is sized from the teacher)");
  const auto train = data::TokenSet::open(o["data"], "train");
  const auto holdout = data::TokenSet::open(o["data"], "holdout");
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  const Placement p = placement_of(o, teacher.config.num_hidden_layers);
  const at::Tensor windows = data::windows(holdout, o["eval_seq_len"], o["eval_windows"]);
  json rows = json::array();
  std::string table = fmt::format("block selection on {} ({} steps x {} x {} tokens each, seed {})\n", p.str(),
                                  o["steps"].get<int64_t>(), o["batch"].get<int64_t>(), o["seq_len"].get<int64_t>(),
                                  o["seed"].get<uint64_t>());
  table += fmt::format("{:<9} {:>10} {:>14} {:>12} {:>12} {:>12} {:>9}\n", "block", "params/layer", "state KB/layer",
                       "train loss", "held-out KL", "held-out ppl", "tok/s");
  for (const auto& type : types) {
    const Candidate c = train_candidate(teacher, type, default_linear_config(teacher.config, type), p, o, train, windows,
                                        out + ".ckpt/" + type, "select/" + type);
    json row = c.to_json();
    row["type"] = type;
    rows.push_back(row);
    table += fmt::format("{:<9} {:>10.3f}M {:>14.1f} {:>12.4f} {:>12.4f} {:>12.3f} {:>9.0f}\n", type, c.params_per_layer / 1e6,
                         c.state_bytes_per_layer / 1024.0, c.train_loss_last10, c.heldout_kl, c.heldout_ppl, c.tokens_per_s);
  }
  if (!dist::leader()) return;  // rank 0 writes the outputs
  printf("%s", table.c_str());
  write_file_atomic(out, json{{"placement", p.to_json()}, {"options", o}, {"blocks", rows}}.dump(1) + "\n");
  remove_tree(out + ".ckpt");
  say("wrote " + out);
}

}  // namespace jet::postnas::detail
