// The PostNAS steps' shared helpers (step_util.h).
#include "postnas/step_util.h"

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "data/retrieval_mix.h"
#include "data/tokens.h"
#include "io/tensors.h"
#include "postnas/dist.h"

namespace jet::postnas::detail {

void say(const std::string& s) {
  if (dist::leader()) fprintf(stderr, "\033[1m[postnas]\033[0m %s\n", s.c_str());
}

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  JET_CHECK(f, "{}: cannot read", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    JET_FAIL("{}: not valid JSON ({})", path, e.what());
  }
}

std::vector<Option> device_options() {
  return {{"device", "cpu", "cpu | cuda"}, {"dtype", "fp32", "fp32 | bf16 (the teacher's and the blocks' compute dtype)"},
          {"seed", 0, "seed of the data order, sampled sub-networks and initialisation"}};
}

std::vector<Option> train_options(int64_t steps, double lr, int64_t warmup) {
  return {{"steps", steps, "optimizer steps"},
          {"batch", 4, "sequences per step"},
          {"seq_len", 256, "tokens per sequence"},
          {"lr", lr, "peak learning rate (AdamW)"},
          {"warmup", warmup, "linear warmup steps"},
          {"min_lr_ratio", 0.1, "cosine decay to this fraction of lr"},
          {"weight_decay", 0.0, "AdamW weight decay (matrices only)"},
          {"grad_clip", 1.0, "global gradient-norm clip (0: off)"},
          {"checkpoint_every", 50, "steps between atomic checkpoints"},
          {"kl_chunk", 512, "logit rows computed at a time"},
          {"micro_batch", 0, "sequences per forward/backward, gradients accumulated over the batch (0: the whole batch)"},
          {"log_every", 10, "steps between reading the loss back from the device"},
          {"retrieval_mix", 0.0, "share of the rows made synthetic retrieval rows (keys and numbers in the text, a question at the end)"},
          {"hidden_mse", 0.0, "weight of the per-layer hidden-state loss (relative MSE of every layer's output; 0: off)"},
          {"answer_ce", 0.0, "weight of the cross-entropy on the retrieval rows' answer tokens (needs retrieval_mix; 0: off)"},
          {"resume", false, "continue from the checkpoint in the output"},
          {"stop_after", -1, "end after this many steps of this run (as if interrupted; -1: off)"}};
}

std::vector<Option> concat(std::vector<std::vector<Option>> parts) {
  std::vector<Option> out;
  for (auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

DistillOptions distill_options(const json& o, const std::string& dir, const std::string& label) {
  DistillOptions d;
  d.steps = o["steps"];
  d.adam.lr = o["lr"];
  d.adam.warmup = o["warmup"];
  d.adam.total = d.steps;
  d.adam.min_lr_ratio = o["min_lr_ratio"];
  d.adam.weight_decay = o["weight_decay"];
  d.adam.grad_clip = o["grad_clip"];
  d.checkpoint_every = o["checkpoint_every"];
  d.kl_chunk = o["kl_chunk"];
  d.micro_batch = o["micro_batch"];
  d.log_every = o["log_every"];
  JET_CHECK(d.kl_chunk > 0 && d.micro_batch >= 0 && d.log_every > 0,
            "{}: kl_chunk and log_every must be positive, micro_batch >= 0", label);
  // Data parallel: each rank takes batch / ranks rows of every step; a micro-batch must divide that.
  const int64_t batch = o["batch"];
  JET_CHECK(batch % dist::size() == 0, "{}: batch {} is not a multiple of the {} ranks", label, batch, dist::size());
  micro_batch_of(d, batch / dist::size());
  reference_from_env(d);
  d.hidden_mse = o["hidden_mse"];
  JET_CHECK(d.hidden_mse >= 0, "{}: hidden_mse must be >= 0", label);
  d.seed = o["seed"];
  d.dir = dir;
  d.resume = o["resume"];
  d.stop_after = o["stop_after"];
  d.label = label;
  JET_CHECK(o["batch"].get<int64_t>() > 0 && o["seq_len"].get<int64_t>() > 1, "{}: batch and seq_len must be positive",
            label);
  d.fingerprint = {{"steps", o["steps"]}, {"batch", o["batch"]}, {"seq_len", o["seq_len"]}, {"lr", o["lr"]},
                   {"warmup", o["warmup"]}, {"seed", o["seed"]}, {"data", o["data"]}};
  if (d.hidden_mse > 0) d.fingerprint["hidden_mse"] = d.hidden_mse;
  const double mix = o["retrieval_mix"];
  JET_CHECK(mix >= 0 && mix <= 1, "{}: retrieval_mix must be in [0, 1], got {}", label, mix);
  if (mix > 0) d.fingerprint["retrieval_mix"] = mix;
  d.answer_ce = o["answer_ce"];
  JET_CHECK(d.answer_ce >= 0, "{}: answer_ce must be >= 0, got {}", label, d.answer_ce);
  JET_CHECK(d.answer_ce == 0 || mix > 0, "{}: answer_ce {} needs retrieval rows to score (retrieval_mix > 0)", label,
            d.answer_ce);
  if (d.answer_ce > 0) d.fingerprint["answer_ce"] = d.answer_ce;
  return d;
}

std::function<Batch(int64_t)> batch_sampler(const json& o, const data::TokenSet& train, const text::Tokenizer* tok,
                                            uint64_t seed) {
  // Data parallel: rank r takes the rows [r·b, (r+1)·b) of the step's global batch, b = batch / ranks.
  const int64_t b = o["batch"].get<int64_t>() / dist::size(), first = dist::rank() * b, T = o["seq_len"];
  const double mix = o["retrieval_mix"];
  JET_CHECK(mix == 0 || tok, "retrieval_mix needs the teacher's tokenizer");
  return [&train, tok, b, first, T, mix, seed](int64_t step) {
    Batch out{data::sample_batch(train, b, T, seed, step, first), at::Tensor()};
    if (mix > 0) out.answers = data::answer_targets(out.ids, data::mix_retrieval(out.ids, *tok, mix, seed, step, first));
    return out;
  };
}

SupernetOptions supernet_options(const json& o) {
  SupernetOptions s;
  s.linear_type = o["linear_type"];
  if (!o["linear_config"].empty()) s.linear_config = o["linear_config"];
  s.swa_window = o["swa_window"];
  s.init_from_teacher = o["init_from_teacher"];
  s.seed = o["seed"];
  return s;
}

Env env_of(const json& o) { return {dist::device_of(parse_device(o["device"])), parse_dtype(o["dtype"])}; }

model::Checkpoint load_teacher(const std::string& path) {
  say("teacher " + path);
  return model::load_checkpoint(path);
}

std::string supernet_weights(const std::string& dir) { return dir + "/supernet.safetensors"; }
std::string supernet_json(const std::string& dir) { return dir + "/supernet.json"; }

void check_supernet_dir(const std::string& dir) {
  JET_CHECK(path_exists(supernet_weights(dir)) && path_exists(supernet_json(dir)),
            "{}: no trained supernet (supernet.json + supernet.safetensors; run `jet postnas supernet` first)", dir);
}

// Before any loading: a checkpoint in the way of a fresh run is an error.
void check_resume(const std::string& ckpt_dir, bool resume) {
  JET_CHECK(resume || !path_exists(ckpt_dir + "/checkpoint.json"),
            "{}/checkpoint.json exists: pass --resume to continue it (or remove the directory)", ckpt_dir);
}

// A trained supernet: the teacher with the blocks the supernet step recorded and trained.
std::unique_ptr<Supernet> load_supernet(const std::string& dir, model::Checkpoint& teacher, const Env& env) {
  check_supernet_dir(dir);
  const json meta = read_json_file(supernet_json(dir));
  SupernetOptions s = supernet_options(meta.at("options"));
  s.linear_config = meta.at("linear_config");
  auto net = std::make_unique<Supernet>(teacher.config, std::move(teacher.tensors), s, env.dtype, env.device);
  net->load_linear_weights(io::load_safetensors(supernet_weights(dir)), supernet_weights(dir));
  return net;
}

// The sub-network of a supernet step: k_full ~ U{0..max_full} full-attention layers and k_swa ~
// U{0..max_swa} window layers, uniformly among all layers, from a generator seeded by (seed, step).
Placement sample_placement(int64_t layers, int64_t max_full, int64_t max_swa, uint64_t seed, int64_t step) {
  std::seed_seq seq{static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32), static_cast<uint32_t>(step),
                    static_cast<uint32_t>(step >> 32), 0x5u};
  std::mt19937_64 rng(seq);
  std::vector<int64_t> order(layers);
  std::iota(order.begin(), order.end(), 0);
  for (int64_t i = layers - 1; i > 0; --i) std::swap(order[i], order[rng() % (i + 1)]);  // Fisher-Yates
  const int64_t kf = std::min<int64_t>(rng() % (max_full + 1), layers);
  const int64_t ks = std::min<int64_t>(rng() % (max_swa + 1), layers - kf);
  Placement p;
  p.full.assign(order.begin(), order.begin() + kf);
  p.swa.assign(order.begin() + kf, order.begin() + kf + ks);
  std::sort(p.full.begin(), p.full.end());
  std::sort(p.swa.begin(), p.swa.end());
  return p;
}

void save_hybrid(const std::string& dir, const model::ModelConfig& config, io::TensorMap tensors,
                 std::shared_ptr<text::Tokenizer> tok, bool force) {
  model::Checkpoint ck;
  ck.path = dir;
  ck.config = config;
  ck.tensors = std::move(tensors);
  ck.tokenizer = std::move(tok);
  model::save_hf_dir(dir, ck, force);
  say("wrote " + dir);
}

// A placement file: a place result (its "best"), or a placement object; or "uniform".
Placement placement_of(const json& o, int64_t layers) {
  const std::string src = o["placement"];
  if (src == "uniform") return Placement::uniform(layers, o["full"], o["swa"]);
  const json j = read_json_file(src);
  return Placement::from_json(j.contains("best") ? j["best"] : j, layers, src);
}

}  // namespace jet::postnas::detail
