// The PostNAS steps: option tables, the step bodies, and the `run` chain.
#include "postnas/steps.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <random>

#include <fmt/ranges.h>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "data/prepare.h"
#include "data/tokens.h"
#include "eval/report.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/linear_mixer.h"
#include "postnas/distill.h"
#include "postnas/objectives.h"
#include "postnas/place.h"
#include "postnas/supernet.h"

namespace jet::postnas {
namespace {

using nlohmann::json;

void say(const std::string& s) { fprintf(stderr, "\033[1m[postnas]\033[0m %s\n", s.c_str()); }

json read_json_file(const std::string& path) {
  std::ifstream f(path);
  JET_CHECK(f, "{}: cannot read", path);
  try {
    return json::parse(f);
  } catch (const json::exception& e) {
    JET_FAIL("{}: not valid JSON ({})", path, e.what());
  }
}

// ---- option tables -------------------------------------------------------------------------------

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
  d.seed = o["seed"];
  d.dir = dir;
  d.resume = o["resume"];
  d.stop_after = o["stop_after"];
  d.label = label;
  JET_CHECK(o["batch"].get<int64_t>() > 0 && o["seq_len"].get<int64_t>() > 1, "{}: batch and seq_len must be positive",
            label);
  d.fingerprint = {{"steps", o["steps"]}, {"batch", o["batch"]}, {"seq_len", o["seq_len"]}, {"lr", o["lr"]},
                   {"warmup", o["warmup"]}, {"seed", o["seed"]}, {"data", o["data"]}};
  return d;
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

// ---- shared loading ------------------------------------------------------------------------------

struct Env {
  at::Device device = at::kCPU;
  at::ScalarType dtype = at::kFloat;
};

Env env_of(const json& o) { return {parse_device(o["device"]), parse_dtype(o["dtype"])}; }

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

// ---- supernet ------------------------------------------------------------------------------------

void run_supernet(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"];
  check_resume(out + "/ckpt", o["resume"]);
  const auto train = data::TokenSet::open(o["data"], "train");
  make_dirs(out);
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  JET_CHECK(train.vocab_size() <= teacher.config.vocab_size, "{}: token ids up to {} do not fit the teacher's vocabulary of {}",
            o["data"].get<std::string>(), train.vocab_size(), teacher.config.vocab_size);
  Supernet net(teacher.config, std::move(teacher.tensors), supernet_options(o), env.dtype, env.device);
  const int64_t L = net.num_layers(), max_full = o["max_full"], max_swa = o["max_swa"];
  JET_CHECK(max_full >= 0 && max_swa >= 0 && max_full + max_swa <= L, "supernet: max_full {} + max_swa {} exceed {} layers",
            max_full, max_swa, L);
  say(fmt::format("supernet: {} layers, each attention + {} ({} trainable tensors), {} training tokens", L,
                  net.options().linear_type, net.linear_params().size(), train.size()));
  DistillOptions d = distill_options(o, out + "/ckpt", "supernet");
  d.fingerprint["linear_type"] = o["linear_type"];
  DistillHooks h;
  const int64_t B = o["batch"], T = o["seq_len"];
  const uint64_t seed = o["seed"];
  h.batch = [&](int64_t step) { return data::sample_batch(train, B, T, seed, step); };
  h.teacher_hidden = [&](const at::Tensor& ids) {
    net.set_teacher();
    return net.lm().hidden(ids);
  };
  h.prepare = [&](int64_t step) { net.set_placement(sample_placement(L, max_full, max_swa, seed, step)); };
  const DistillResult r = distill(net.lm(), net.linear_params(), d, h);
  if (!r.finished) {
    say(fmt::format("supernet: stopped after step {} (resume with --resume)", r.steps_done));
    return;
  }
  json meta = {{"teacher", o["teacher"]}, {"options", o}, {"linear_config", default_linear_config(net.teacher_config(), net.options().linear_type)},
               {"losses", r.losses}, {"seconds_this_run", r.seconds}, {"tokens_per_s", r.tokens_per_s},
               {"tokens", o["steps"].get<int64_t>() * B * T}};
  if (!o["linear_config"].empty()) meta["linear_config"] = o["linear_config"];
  io::save_safetensors(supernet_weights(out), net.linear_weights());
  write_file_atomic(supernet_json(out), meta.dump(1) + "\n");  // last: marks the step done
  say(fmt::format("supernet: done, loss {:.4f} -> {:.4f}, {:.0f} tok/s", r.losses.front(), r.losses.back(),
                  r.tokens_per_s));
}

// ---- place ---------------------------------------------------------------------------------------

void run_place(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"];
  check_supernet_dir(o["supernet"]);
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  auto tok = teacher.tokenizer;
  auto net = load_supernet(o["supernet"], teacher, env);
  PlaceOptions p;
  p.full = o["full"];
  p.swa = o["swa"];
  p.beam = o["beam"];
  const Objective obj = make_objective(*net, o, tok.get());
  const PlaceResult r = place_search(*net, obj, p);
  const Placement uniform = Placement::uniform(net->num_layers(), p.full, p.swa);
  net->set_placement(uniform);
  const double uniform_score = obj.score(*net);
  printf("%s", r.table().c_str());
  printf("uniform %s  score %.4f\n", uniform.str().c_str(), uniform_score);
  json j = r.to_json();
  j["uniform"] = {{"placement", uniform.to_json()}, {"score", uniform_score}};
  j["options"] = o;
  const std::string dir = out.substr(0, out.find_last_of('/') == std::string::npos ? 0 : out.find_last_of('/'));
  if (!dir.empty()) make_dirs(dir);
  write_file_atomic(out, j.dump(1) + "\n");
  say("wrote " + out);
  if (!o["plot"].get<std::string>().empty()) plot_placements({out}, o["plot"]);
}

// ---- export --------------------------------------------------------------------------------------

// A placement file: a place result (its "best"), or a placement object; or "uniform".
Placement placement_of(const json& o, int64_t layers) {
  const std::string src = o["placement"];
  if (src == "uniform") return Placement::uniform(layers, o["full"], o["swa"]);
  const json j = read_json_file(src);
  return Placement::from_json(j.contains("best") ? j["best"] : j, layers, src);
}

void run_export(const json& o) {
  const Env env{at::kCPU, parse_dtype(o["dtype"])};
  model::check_hf_out_dir(o["out"], o["force"]);
  check_supernet_dir(o["supernet"]);
  model::Checkpoint teacher = load_teacher(o["teacher"]);
  auto tok = teacher.tokenizer;
  auto net = load_supernet(o["supernet"], teacher, env);
  const Placement p = placement_of(o, net->num_layers());
  say("export " + p.str());
  model::ModelConfig c = net->hybrid_config(p);
  c.torch_dtype = env.dtype == at::kBFloat16 ? "bfloat16" : "float32";
  save_hybrid(o["out"], c, net->hybrid_weights(p), tok, o["force"]);
}

// ---- finetune ------------------------------------------------------------------------------------

void run_finetune(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"];
  model::check_hf_out_dir(out, o["force"]);
  check_resume(out + ".ckpt", o["resume"]);
  const auto train = data::TokenSet::open(o["data"], "train");
  model::Checkpoint teacher_ck = load_teacher(o["teacher"]);
  model::CausalLM teacher(teacher_ck.config);
  teacher.load_weights(teacher_ck.tensors, env.dtype, env.device, teacher_ck.path);
  teacher_ck.tensors.clear();
  model::Checkpoint hy = model::load_checkpoint(o["model"]);
  JET_CHECK(hy.config.vocab_size == teacher.config().vocab_size && hy.config.hidden_size == teacher.config().hidden_size,
            "{}: not a hybrid of this teacher (vocabulary or width differ)", o["model"].get<std::string>());
  model::CausalLM student(hy.config);
  student.load_weights(hy.tensors, env.dtype, env.device, hy.path);
  hy.tensors.clear();
  // Trainable: every linear layer's mixer, and the MLPs with train_mlp.
  model::ParamList trainable;
  const bool mlp = o["train_mlp"];
  for (const auto& p : student.params()) {
    bool train_it = mlp && p.name.find(".mlp.") != std::string::npos;
    for (int64_t l = 0; l < student.num_layers(); ++l)
      train_it |= model::is_linear_type(hy.config.layer_types[l]) &&
                  p.name.rfind(fmt::format("model.layers.{}.self_attn.", l), 0) == 0;
    if (!train_it) continue;
    *p.slot = p.slot->detach().clone().set_requires_grad(true);  // its own storage (not the file's)
    trainable.push_back(p);
  }
  JET_CHECK(!trainable.empty(), "{}: no linear-attention layers to finetune", o["model"].get<std::string>());
  say(fmt::format("finetune: {} trainable tensors, {} training tokens", trainable.size(), train.size()));
  DistillOptions d = distill_options(o, out + ".ckpt", "finetune");
  d.fingerprint["model"] = o["model"];
  d.fingerprint["train_mlp"] = mlp;
  const int64_t B = o["batch"], T = o["seq_len"];
  const uint64_t seed = o["seed"];
  DistillHooks h;
  h.batch = [&](int64_t step) { return data::sample_batch(train, B, T, seed + 1, step); };
  h.teacher_hidden = [&](const at::Tensor& ids) { return teacher.hidden(ids); };
  const DistillResult r = distill(student, trainable, d, h);
  if (!r.finished) {
    say(fmt::format("finetune: stopped after step {} (resume with --resume)", r.steps_done));
    return;
  }
  io::TensorMap tensors;
  for (const auto& p : student.params()) tensors[p.name] = p.slot->detach().to(at::kCPU);
  model::ModelConfig c = student.config();
  c.torch_dtype = env.dtype == at::kBFloat16 ? "bfloat16" : "float32";
  c.source["postnas_finetune"] = {{"losses_first_last", {r.losses.front(), r.losses.back()}},
                                  {"tokens", o["steps"].get<int64_t>() * B * T}, {"tokens_per_s", r.tokens_per_s}};
  save_hybrid(out, c, std::move(tensors), hy.tokenizer, o["force"]);
  remove_tree(out + ".ckpt");
  say(fmt::format("finetune: done, loss {:.4f} -> {:.4f}, {:.0f} tok/s", r.losses.front(), r.losses.back(),
                  r.tokens_per_s));
}

// ---- select --------------------------------------------------------------------------------------

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

std::vector<Step> make_steps() {
  const Option teacher{"teacher", nullptr, "the full-attention teacher (GGUF file or HF directory)"};
  const Option data{"data", nullptr, "token data set directory (`jet data prepare`)"};
  std::vector<Step> s;
  s.push_back({"supernet", "train the once-for-all supernet by distillation (MLPs, embeddings frozen)",
               concat({{teacher, data, {"out", nullptr, "output directory"},
                        {"linear_type", "jet", "linear block of every layer's second path: jet|gdn|deltanet|gla|retnet|mamba2"},
                        {"linear_config", json::object(), "efficient_attention_config entry of the block ({}: sized from the teacher)"},
                        {"swa_window", 64, "sliding-window size of the window path"},
                        {"init_from_teacher", true, "start the blocks' q/k/v/o from the teacher's projections"},
                        {"max_full", 2, "each step samples 0..max_full full-attention layers"},
                        {"max_swa", 2, "and 0..max_swa sliding-window layers"}},
                       device_options(), train_options(200, 1e-3, 20)}),
               [](const json& o) { return supernet_json(o["out"]); }, run_supernet});
  s.push_back({"place", "beam search over attention placements with the trained supernet",
               concat({{teacher, data, {"supernet", nullptr, "supernet directory"}, {"out", nullptr, "placement JSON to write"},
                        {"full", 2, "full-attention layers to place"}, {"swa", 2, "sliding-window layers to place"},
                        {"beam", 1, "beam width"}, {"plot", "", "also write a PNG heat map (needs python3 + matplotlib)"}},
                       objective_options(), device_options()}),
               [](const json& o) { return o["out"].get<std::string>(); }, run_place});
  s.push_back({"export", "write the hybrid of a placement as an HF directory (layer_types, efficient_attention_config)",
               {teacher, {"supernet", nullptr, "supernet directory"},
                {"placement", nullptr, "placement JSON (a `place` result or {\"full\": [...], \"swa\": [...]}) or 'uniform'"},
                {"full", 2, "with 'uniform': full-attention layers"}, {"swa", 2, "with 'uniform': sliding-window layers"},
                {"out", nullptr, "output HF directory"}, {"dtype", "fp32", "saved dtype: fp32 | bf16"},
                {"force", false, "replace an existing output directory"}},
               [](const json& o) { return o["out"].get<std::string>() + "/config.json"; }, run_export});
  s.push_back({"select", "compare linear block types on one placement with the same budget (PostNAS step 2)",
               concat({{teacher, data, {"out", nullptr, "result JSON to write"},
                        {"types", "jet,gdn,deltanet,gla,retnet,mamba2", "comma-separated block types"},
                        {"placement", "uniform", "placement JSON or 'uniform'"}, {"full", 2, "with 'uniform': full-attention layers"},
                        {"swa", 2, "with 'uniform': sliding-window layers"}, {"swa_window", 64, "sliding-window size"},
                        {"linear_config", json::object(), "must stay {}: each type is sized from the teacher"},
                        {"init_from_teacher", true, "start the blocks' q/k/v/o from the teacher's projections"},
                        {"eval_windows", 8, "held-out windows for the KL"}, {"eval_seq_len", 256, "tokens per window"},
                        {"eval_batch", 4, "rows per forward"}},
                       device_options(), train_options(100, 1e-3, 10)}),
               [](const json& o) { return o["out"].get<std::string>(); }, run_select});
  s.push_back({"finetune", "distill a fixed hybrid further from the teacher (stage 2)",
               concat({{teacher, data, {"model", nullptr, "the hybrid's HF directory (`export`)"},
                        {"out", nullptr, "output HF directory"}, {"train_mlp", false, "also train the MLPs"},
                        {"force", false, "replace an existing output directory"}},
                       device_options(), train_options(100, 5e-4, 10)}),
               [](const json& o) { return o["out"].get<std::string>() + "/config.json"; }, run_finetune});
  return s;
}

}  // namespace

const std::vector<Step>& steps() {
  static const std::vector<Step> s = make_steps();
  return s;
}

const Step& step(const std::string& name) {
  for (const auto& s : steps())
    if (s.name == name) return s;
  JET_FAIL("postnas: no step '{}'", name);
}

namespace {

// A step's options from the run config: the shared keys it has, its section, then the given extras.
json step_options(const Step& s, const json& cfg, const std::string& section, const json& extra, const std::string& where) {
  json j = json::object();
  for (const char* shared : {"teacher", "device", "dtype", "seed"})
    if (cfg.contains(shared) && std::any_of(s.options.begin(), s.options.end(), [&](const Option& o) { return o.key == shared; }))
      j[shared] = cfg[shared];
  if (cfg.contains(section))
    for (const auto& [k, v] : cfg[section].items()) j[k] = v;
  for (const auto& [k, v] : extra.items()) j[k] = v;
  return resolve(s, j, where + " [" + section + "]");
}

// Runs a step unless its output exists.
void run_step(const Step& s, const json& o) {
  const std::string done = s.output(o);
  if (path_exists(done)) {
    say(fmt::format("{}: done already ({} exists)", s.name, done));
    return;
  }
  s.run(o);
  JET_CHECK(path_exists(done), "{}: did not finish ({} missing); rerun to resume", s.name, done);
}

// The teacher and the hybrids side by side (eval/report.h); the run config's "eval" section holds
// report options by their `jet eval` names.
void run_eval_step(const json& cfg, const std::string& data_dir, const std::vector<std::string>& models,
                   const std::string& out, const std::string& where) {
  if (path_exists(out)) {
    say("eval: done already (" + out + " exists)");
    return;
  }
  const json e = cfg.value("eval", json::object());
  eval::ReportOptions r;
  r.models = models;
  r.data = data_dir;
  r.device = cfg.value("device", "cpu");
  r.dtype = cfg.value("dtype", "fp32");
  r.json_out = out;
  r.seed = cfg.value("seed", 0);
  for (const auto& [k, v] : e.items()) {
    try {
      if (k == "tasks") {
        r.tasks.clear();
        const std::string t = v;
        for (size_t a = 0, b; a <= t.size(); a = b + 1) {
          b = t.find(',', a);
          if (b == std::string::npos) b = t.size();
          if (b > a) r.tasks.push_back(t.substr(a, b - a));
        }
      } else if (k == "seq_len") r.seq_len = v;
      else if (k == "ppl_windows") r.ppl_windows = v;
      else if (k == "batch") r.batch = v;
      else if (k == "samples") r.samples = v;
      else if (k == "mc_items") r.mc_items = v;
      else if (k == "passkey_lengths") r.passkey_lengths = v.get<std::vector<int64_t>>();
      else JET_FAIL("{}: eval has no option '{}' (tasks, seq_len, ppl_windows, batch, samples, mc_items, passkey_lengths)",
                    where, k);
    } catch (const json::exception&) {
      JET_FAIL("{}: eval option '{}' has the wrong type ({})", where, k, v.dump());
    }
  }
  say("eval: " + fmt::format("{}", fmt::join(models, ", ")));
  eval::run_report(r);
}

const std::vector<std::string> kRunKeys = {"teacher", "out", "device", "dtype", "seed", "data", "budget", "supernet",
                                           "place", "select", "finetune", "uniform_baseline", "eval"};

}  // namespace

void run_pipeline(const json& cfg, const std::string& where) {
  JET_CHECK(cfg.is_object(), "{}: a run config is a JSON object", where);
  for (const auto& [k, v] : cfg.items())
    JET_CHECK(std::count(kRunKeys.begin(), kRunKeys.end(), k), "{}: unknown key '{}' (known: {})", where, k,
              fmt::format("{}", fmt::join(kRunKeys, ", ")));
  for (const char* k : {"teacher", "out", "data"}) JET_CHECK(cfg.contains(k), "{}: '{}' is required", where, k);
  const std::string out = cfg["out"];
  make_dirs(out);
  const json budget = cfg.value("budget", json{{"full", 2}, {"swa", 2}});
  const int64_t full = budget.value("full", 2), swa = budget.value("swa", 0);

  // 1. Data: the token set, prepared from text when it is not there yet.
  const json& dc = cfg["data"];
  JET_CHECK(dc.is_object() && dc.contains("dir"), "{}: data needs 'dir' (and 'input' to prepare it)", where);
  const std::string data_dir = dc["dir"];
  if (path_exists(data_dir + "/meta.json")) {
    say("data: done already (" + data_dir + ")");
  } else {
    JET_CHECK(dc.contains("input"), "{}: {} has no token set and data.input is not given", where, data_dir);
    data::PrepareOptions p;
    p.inputs = dc["input"].get<std::vector<std::string>>();
    p.holdout_inputs = dc.value("holdout_input", std::vector<std::string>{});
    p.tokenizer = cfg["teacher"];
    p.out = data_dir;
    p.holdout = dc.value("holdout", 0.01);
    say("data: prepare " + data_dir);
    data::prepare(p);
  }

  // 2. Supernet.
  const std::string sn = out + "/supernet";
  run_step(step("supernet"), step_options(step("supernet"), cfg, "supernet",
                                          {{"data", data_dir}, {"out", sn}, {"max_full", full}, {"max_swa", swa}}, where));

  // 3. Placement, once per objective.
  json place_cfg = cfg.value("place", json::object());
  std::vector<std::string> objectives = place_cfg.value("objectives", std::vector<std::string>{"kl"});
  place_cfg.erase("objectives");
  std::vector<std::string> finetuned = place_cfg.value("finetune", std::vector<std::string>{objectives.front()});
  place_cfg.erase("finetune");
  json cfg_place = cfg;
  cfg_place["place"] = place_cfg;
  std::vector<std::string> place_files;
  for (const auto& obj : objectives) {
    const std::string f = out + "/place-" + obj + ".json";
    run_step(step("place"), step_options(step("place"), cfg_place, "place",
                                         {{"data", data_dir}, {"supernet", sn}, {"out", f}, {"objective", obj},
                                          {"full", full}, {"swa", swa}}, where));
    place_files.push_back(f);
  }
  if (!path_exists(out + "/placements.png")) {
    try {
      plot_placements(place_files, out + "/placements.png");
    } catch (const Error& e) {
      say(std::string("no plot: ") + e.what());
    }
  }

  // 3b. Optional: the linear block types compared on the first objective's placement (a report).
  if (cfg.contains("select"))
    run_step(step("select"), step_options(step("select"), cfg, "select",
                                          {{"data", data_dir}, {"placement", place_files.front()}, {"out", out + "/select.json"}},
                                          where));

  // 4. Export + finetune: the learned placements asked for, and the uniform baseline.
  std::vector<std::pair<std::string, std::string>> hybrids;  // name, placement source
  for (const auto& obj : finetuned) hybrids.push_back({obj, out + "/place-" + obj + ".json"});
  if (cfg.value("uniform_baseline", true)) hybrids.push_back({"uniform", "uniform"});
  std::vector<std::string> models = {cfg["teacher"]};
  for (const auto& [name, src] : hybrids) {
    const std::string init = out + "/hybrid-" + name + "-init", fin = out + "/hybrid-" + name;
    run_step(step("export"), step_options(step("export"), cfg, "export",
                                          {{"supernet", sn}, {"placement", src}, {"full", full}, {"swa", swa}, {"out", init}},
                                          where));
    run_step(step("finetune"), step_options(step("finetune"), cfg, "finetune",
                                            {{"data", data_dir}, {"model", init}, {"out", fin}}, where));
    models.push_back(fin);
  }

  // 5. Evaluation: the teacher and the hybrids side by side.
  run_eval_step(cfg, data_dir, models, out + "/eval.json", where);
}

json resolve(const Step& s, const json& given, const std::string& where) {
  JET_CHECK(given.is_object(), "{}: the options of step '{}' must be an object", where, s.name);
  json out = json::object();
  for (const auto& o : s.options) {
    if (!given.contains(o.key)) {
      JET_CHECK(!o.def.is_null(), "{}: step '{}' needs '{}' ({})", where, s.name, o.key, o.help);
      out[o.key] = o.def;
      continue;
    }
    const json& v = given[o.key];
    const bool ok = o.def.is_null() ? v.is_string()
                    : o.def.is_boolean() ? v.is_boolean()
                    : o.def.is_number_integer() ? v.is_number_integer()
                    : o.def.is_number() ? v.is_number()
                    : o.def.is_string() ? v.is_string()
                    : o.def.is_object() ? v.is_object()
                    : o.def.is_array() ? v.is_array() : true;
    JET_CHECK(ok, "{}: '{}' of step '{}' has the wrong type ({}; the default is {})", where, o.key, s.name, v.dump(),
              o.def.dump());
    out[o.key] = v;
  }
  for (const auto& [k, v] : given.items())
    JET_CHECK(std::any_of(s.options.begin(), s.options.end(), [&](const Option& o) { return o.key == k; }),
              "{}: step '{}' has no option '{}'", where, s.name, k);
  return out;
}

}  // namespace jet::postnas
