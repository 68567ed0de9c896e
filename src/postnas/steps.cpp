// The PostNAS steps: their option tables, the bodies of supernet, place, export and finetune, resolve().
#include "postnas/steps.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <algorithm>
#include <cstdio>
#include <numeric>

#include "core/check.h"
#include "core/device.h"
#include "core/fs.h"
#include "core/hash.h"
#include "data/tokens.h"
#include "model/causal_lm.h"
#include "model/checkpoint.h"
#include "model/linear_mixer.h"
#include "postnas/dist.h"
#include "postnas/distill.h"
#include "postnas/objectives.h"
#include "postnas/place.h"
#include "postnas/step_util.h"
#include "postnas/supernet.h"

namespace jet::postnas {
namespace {

using namespace detail;

// ---- supernet ------------------------------------------------------------------------------------

void run_supernet(const json& o) {
  const Env env = env_of(o);
  const std::string out = o["out"];
  check_resume(out + "/ckpt", o["resume"]);
  check_resume(out + "/ckpt-transfer", o["resume"]);
  const int64_t Tt = o["transfer_seq_len"];
  JET_CHECK(Tt == 0 || Tt > 1, "supernet: transfer_seq_len must be 0 (seq_len) or more than 1, got {}", Tt);
  DistillOptions d = distill_options(o, out + "/ckpt", "supernet");  // its errors before anything is loaded or written
  d.fingerprint["linear_type"] = o["linear_type"];
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
  DistillHooks h;
  const uint64_t seed = o["seed"];
  const int64_t B = o["batch"], T = o["seq_len"];
  h.batch = batch_sampler(o, train, teacher.tokenizer.get(), seed);
  // Stage 0, attention transfer: every linear block toward its layer's attention output (teacher inputs),
  // on its own checkpoints, then the end-to-end KL from where it ended.
  const int64_t transfer_steps = o["transfer_steps"];
  int64_t transfer_tokens = transfer_steps * B * T;
  std::vector<double> transfer_losses;
  if (transfer_steps > 0) {
    DistillOptions t = d;
    t.steps = t.adam.total = transfer_steps;
    t.adam.warmup = std::min<int64_t>(d.adam.warmup, transfer_steps / 4);
    if (o["transfer_lr"].get<double>() > 0) t.adam.lr = o["transfer_lr"];
    t.dir = out + "/ckpt-transfer";
    t.label = "transfer";
    t.checkpoint_every = std::min<int64_t>(d.checkpoint_every, transfer_steps);
    t.fingerprint["transfer_steps"] = transfer_steps;
    t.fingerprint["transfer_lr"] = t.adam.lr;
    DistillHooks th;
    th.batch = h.batch;
    // Windows of transfer_seq_len tokens, as many tokens a step (and a micro-batch) as the KL's.
    int64_t transfer_micro = d.micro_batch;
    if (Tt > 0 && Tt != T) {
      const int64_t ranks = dist::size(), Bt = std::max<int64_t>(1, B / ranks * T / Tt) * ranks;
      json ot = o;
      ot["seq_len"] = Tt;
      ot["batch"] = Bt;
      th.batch = batch_sampler(ot, train, teacher.tokenizer.get(), seed);
      if (transfer_micro > 0) transfer_micro = std::max<int64_t>(1, transfer_micro * T / Tt);
      t.micro_batch = transfer_micro;
      micro_batch_of(t, Bt / ranks);  // a micro-batch that does not divide the rank's rows is an error here
      t.fingerprint["transfer_seq_len"] = Tt;
      transfer_tokens = transfer_steps * Bt * Tt;
      say(fmt::format("supernet: attention transfer on {} windows of {} tokens a step", Bt, Tt));
    }
    th.step = [&](const at::Tensor& ids, int64_t, const BeforeBackward& bb) {
      return transfer_step(net, ids, transfer_micro, bb);
    };
    const DistillResult tr = distill(net.lm(), net.linear_params(), t, th);
    if (!tr.finished) {
      say(fmt::format("supernet: attention transfer stopped after step {} (resume with --resume)", tr.steps_done));
      return;
    }
    transfer_losses = tr.losses;
    say(fmt::format("supernet: attention transfer done, loss {:.4f} -> {:.4f}, {:.0f} tok/s", tr.losses.front(),
                    tr.losses.back(), tr.tokens_per_s));
  }
  h.teacher_hidden = [&](const at::Tensor& ids, std::vector<at::Tensor>* layers) {
    net.set_teacher();
    return net.lm().hidden(ids, 0, nullptr, layers);
  };
  Placement sampled;
  h.prepare = [&](int64_t step) {
    sampled = sample_placement(L, max_full, max_swa, seed, step);
    net.set_placement(sampled);
  };
  // Data parallel: every rank must train the same sub-network in a step (checked at each loss read-back).
  h.agree = [&](int64_t) { return double(fnv1a64(sampled.str()) & 0xffffff); };
  const DistillResult r = distill(net.lm(), net.linear_params(), d, h);
  if (!r.finished) {
    say(fmt::format("supernet: stopped after step {} (resume with --resume)", r.steps_done));
    return;
  }
  if (!dist::leader()) return;  // rank 0 writes the outputs
  json meta = {{"teacher", o["teacher"]}, {"options", o}, {"linear_config", default_linear_config(net.teacher_config(), net.options().linear_type)},
               {"losses", r.losses}, {"seconds_this_run", r.seconds}, {"tokens_per_s", r.tokens_per_s},
               {"tokens", o["steps"].get<int64_t>() * B * T}};
  if (transfer_steps > 0) {
    meta["transfer_losses"] = transfer_losses;
    meta["transfer_tokens"] = transfer_tokens;
  }
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
  DistillHooks h;
  h.batch = batch_sampler(o, train, hy.tokenizer.get(), o["seed"].get<uint64_t>() + 1);
  h.teacher_hidden = [&](const at::Tensor& ids, std::vector<at::Tensor>* layers) {
    return teacher.hidden(ids, 0, nullptr, layers);
  };
  const DistillResult r = distill(student, trainable, d, h);
  if (!r.finished) {
    say(fmt::format("finetune: stopped after step {} (resume with --resume)", r.steps_done));
    return;
  }
  if (!dist::leader()) return;  // rank 0 writes the outputs
  io::TensorMap tensors;
  for (const auto& p : student.params()) tensors[p.name] = p.slot->detach().to(at::kCPU);
  model::ModelConfig c = student.config();
  c.torch_dtype = env.dtype == at::kBFloat16 ? "bfloat16" : "float32";
  c.source["postnas_finetune"] = {{"losses_first_last", {r.losses.front(), r.losses.back()}},
                                  {"tokens", o["steps"].get<int64_t>() * B * T}, {"tokens_per_s", r.tokens_per_s},
                                  {"hidden_mse", o["hidden_mse"]}, {"retrieval_mix", o["retrieval_mix"]},
                                  {"answer_ce", o["answer_ce"]}};
  save_hybrid(out, c, std::move(tensors), hy.tokenizer, o["force"]);
  remove_tree(out + ".ckpt");
  say(fmt::format("finetune: done, loss {:.4f} -> {:.4f}, {:.0f} tok/s", r.losses.front(), r.losses.back(),
                  r.tokens_per_s));
}

// The options of select and hwsearch beside their own: the placement, the held-out KL, training.
std::vector<Option> candidate_options() {
  return concat({{{"placement", "uniform", "placement JSON or 'uniform'"}, {"full", 2, "with 'uniform': full-attention layers"},
                  {"swa", 2, "with 'uniform': sliding-window layers"}, {"swa_window", 64, "sliding-window size"},
                  {"eval_windows", 8, "held-out windows for the KL"}, {"eval_seq_len", 256, "tokens per window"},
                  {"eval_batch", 4, "rows per forward"}},
                 device_options(), train_options(100, 1e-3, 10)});
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
                        {"max_swa", 2, "and 0..max_swa sliding-window layers"},
                        {"transfer_steps", 0, "attention-transfer steps before the KL (each block toward its layer's attention output)"},
                        {"transfer_lr", 0.0, "peak learning rate of the attention transfer (0: lr)"},
                        {"transfer_seq_len", 0, "tokens per attention-transfer window (0: seq_len); the batch is scaled to keep "
                         "batch × seq_len tokens a step"}},
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
                        {"linear_config", json::object(), "must stay {}: each type is sized from the teacher"},
                        {"init_from_teacher", true, "start the blocks' q/k/v/o from the teacher's projections"},
},
                       candidate_options()}),
               [](const json& o) { return o["out"].get<std::string>(); }, run_select});
  s.push_back({"hwsearch", "(heads, d_k, d_v) of the linear block at a fixed state size, timed on the device and distilled (PostNAS step 4)",
               concat({{teacher, data, {"out", nullptr, "result JSON to write"},
                        {"linear_type", "jet", "jet | gdn"}, {"heads", "3,6,9,12", "comma-separated head counts"},
                        {"head_dims", "32,64,96,128", "comma-separated d_k values"},
                        {"state", 0, "state elements H·d_k·d_v per layer (0: the default block's)"},
                        {"linear_config", json::object(), "unused (the grid sets it)"},
                        {"init_from_teacher", true, "start the blocks' q/k/v/o from the teacher's where shapes fit"},
                        {"time_batch", 64, "decode-step timing batch"}, {"time_len", 512, "prefill timing length"},
                        {"time_iters", 8, "timed decode steps"},
},
                       candidate_options()}),
               [](const json& o) { return o["out"].get<std::string>(); }, run_hwsearch});
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
