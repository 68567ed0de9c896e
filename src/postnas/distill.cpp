// Distillation loop with chunked KL and atomic, resumable checkpoints (see distill.h).
#include "postnas/distill.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "core/check.h"
#include "core/fs.h"
#include "core/progress.h"
#include "core/strings.h"
#include "ops/kl/kl_rows.h"
#include "postnas/dist.h"

namespace jet::postnas {

at::Tensor chunked_kl(const at::Tensor& h_student, const at::Tensor& h_teacher, const at::Tensor& W, int64_t chunk_rows,
                      at::Tensor* grad, double temperature, bool reference) {
  JET_CHECK(h_student.dim() == 2 && h_student.sizes() == h_teacher.sizes() && h_student.size(1) == W.size(1),
            "chunked_kl: hidden states [N, D] and W [V, D] do not match");
  JET_CHECK(chunk_rows > 0, "chunked_kl: chunk_rows must be positive");
  c10::NoGradGuard no_grad;
  const int64_t N = h_student.size(0);
  const at::Tensor hs = h_student.detach();
  // fp32 logits even for a bf16 model: bf16 rounding of logits near 20 is 0.125, larger than the KL
  // differences between placements that the search has to tell apart.
  const bool tensor_cores = !reference && hs.is_cuda() && hs.scalar_type() == at::kBFloat16 &&
                            h_teacher.scalar_type() == at::kBFloat16 && W.scalar_type() == at::kBFloat16;
  const at::Tensor Wf = tensor_cores ? W : W.to(at::kFloat);
  auto logits = [&](const at::Tensor& h) {
    at::Tensor z = tensor_cores ? at::mm(h, W.t(), at::kFloat) : at::matmul(h.to(at::kFloat), Wf.t());
    return temperature == 1.0 ? z : z.div_(temperature);
  };
  if (grad) *grad = at::empty_like(hs);
  at::Tensor total = at::zeros({}, hs.options().dtype(at::kDouble));
  for (int64_t r = 0; r < N; r += chunk_rows) {
    const int64_t n = std::min(chunk_rows, N - r);
    const at::Tensor zs = logits(hs.narrow(0, r, n)), zt = logits(h_teacher.narrow(0, r, n));
    // ∂/∂zs of Σ KL / N = (softmax(zs) − softmax(zt)) / N; through z = h Wᵀ / τ.
    at::Tensor gz;
    total += ops::kl_rows(zs, zt, 1.0 / (double(N) * temperature), grad ? &gz : nullptr,
                          tensor_cores ? at::kBFloat16 : at::kFloat)
                 .sum(at::kDouble);
    if (grad) {
      at::Tensor g = grad->narrow(0, r, n);
      if (tensor_cores)
        at::mm_out(g, gz, W);
      else
        g.copy_(at::matmul(gz, Wf));
    }
  }
  return total / double(N);
}

namespace {

int64_t micro_batch_size(int64_t micro_batch, int64_t batch, const std::string& label) {
  if (micro_batch <= 0) return batch;
  JET_CHECK(batch % micro_batch == 0, "{}: micro_batch {} does not divide batch {}", label, micro_batch, batch);
  return micro_batch;
}

}  // namespace

int64_t micro_batch_of(const DistillOptions& opts, int64_t batch) {
  return micro_batch_size(opts.micro_batch, batch, opts.label);
}

void for_micro_batches(const at::Tensor& ids, int64_t micro_batch, bool pin, const std::string& label,
                       const std::function<void(const at::Tensor& part, double share, bool last)>& fn) {
  const int64_t B = ids.size(0), mb = micro_batch_size(micro_batch, B, label);
  for (int64_t m = 0; m < B; m += mb) {
    at::Tensor part = ids.narrow(0, m, mb).contiguous();
    if (pin) part = part.pin_memory();
    fn(part, double(mb) / double(B), m + mb == B);
  }
}

namespace {

std::string checkpoint_json(const std::string& dir) { return dir + "/checkpoint.json"; }

nlohmann::json read_json(const std::string& path) {
  std::ifstream f(path);
  JET_CHECK(f, "{}: cannot read", path);
  try {
    return nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    JET_FAIL("{}: not valid JSON ({})", path, e.what());
  }
}

void save_checkpoint(const std::string& dir, int64_t step, const std::vector<double>& losses, const AdamW& adam,
                     const nlohmann::json& fingerprint) {
  make_dirs(dir);
  const std::string name = fmt::format("checkpoint-{}.safetensors", step);
  io::save_safetensors(dir + "/" + name, adam.state());
  nlohmann::json j = {{"step", step}, {"tensors", name}, {"losses", losses}, {"fingerprint", fingerprint}};
  write_file_atomic(checkpoint_json(dir), j.dump(1) + "\n");
  // Every other state file goes: the one this replaces, and any a run killed between its two writes left behind.
  for (const std::string& f : list_files(dir))
    if (f != name && f.find('/') == std::string::npos && f.rfind("checkpoint-", 0) == 0 && ends_with(f, ".safetensors"))
      std::remove((dir + "/" + f).c_str());
}

// Data parallel: rank 0's resume state (step, loss curve, optimizer state) on every rank.
int64_t share_resume(dist::Group& g, int64_t start, std::vector<double>& losses, AdamW& adam) {
  at::Tensor head = at::tensor({double(start), double(losses.size())}, at::kDouble);
  g.broadcast(head);
  start = static_cast<int64_t>(head[0].item<double>());
  if (start == 0) return 0;
  const auto n = static_cast<int64_t>(head[1].item<double>());
  at::Tensor l = g.leader() ? at::tensor(losses, at::kDouble) : at::empty({n}, at::kDouble);
  g.broadcast(l);
  losses.assign(l.data_ptr<double>(), l.data_ptr<double>() + l.numel());
  io::TensorMap st = adam.state();  // a std::map: the same order on every rank
  for (auto& [name, t] : st) g.broadcast(t);
  if (!g.leader()) adam.load_state(st, "rank 0's checkpoint");
  return start;
}

}  // namespace

at::Tensor layer_mse(const std::vector<at::Tensor>& student, const std::vector<at::Tensor>& teacher) {
  JET_CHECK(!student.empty() && student.size() == teacher.size(), "layer_mse: {} student layers vs {} teacher layers",
            student.size(), teacher.size());
  at::Tensor sum;
  for (size_t l = 0; l < student.size(); ++l) {
    const at::Tensor t = teacher[l].detach().to(at::kFloat);
    const at::Tensor r = (student[l].to(at::kFloat) - t).square().sum() / t.square().sum().clamp_min(1e-30);
    sum = l == 0 ? r : sum + r;
  }
  return sum / static_cast<double>(student.size());
}

void reference_from_env(DistillOptions& opts) {
  const char* ref = std::getenv("JET_DISTILL_REFERENCE");
  for (const std::string& part : split_list(ref ? ref : "")) {
    JET_CHECK(part == "1" || part == "kl" || part == "adam" || part == "sync",
              "JET_DISTILL_REFERENCE: '{}' is not 1, kl, adam or sync", part);
    opts.reference_kl = opts.reference_kl || part == "1" || part == "kl";
    opts.reference_adam = opts.reference_adam || part == "1" || part == "adam";
    opts.sync_steps = opts.sync_steps || part == "sync";
  }
}

at::Tensor answer_ce_loss(const at::Tensor& h_s, const at::Tensor& answers, const at::Tensor& W) {
  JET_CHECK(h_s.dim() == 3 && answers.dim() == 2 && answers.size(0) == h_s.size(0) && answers.size(1) == h_s.size(1) &&
                answers.scalar_type() == at::kLong && answers.device().is_cpu() && W.size(1) == h_s.size(2),
            "answer_ce_loss: h_s [B, T, D], answers [B, T] int64 (CPU) and W [V, D] do not match");
  const at::Tensor flat = answers.reshape({-1});
  const at::Tensor at_pos = (flat >= 0).nonzero().squeeze(1);  // on the host: nothing waits for the device
  if (at_pos.numel() == 0) return {};
  const at::Tensor labels = flat.index_select(0, at_pos);
  JET_CHECK(labels.max().item<int64_t>() < W.size(0), "answer_ce_loss: an answer id is outside the vocabulary of {}",
            W.size(0));
  const at::Device dev = h_s.device();
  const at::Tensor rows = h_s.reshape({-1, h_s.size(2)}).index_select(0, at_pos.to(dev)).to(at::kFloat);
  const at::Tensor logp = at::log_softmax(at::matmul(rows, W.detach().to(at::kFloat).t()), -1);
  return -logp.gather(1, labels.to(dev).unsqueeze(1)).mean();
}

at::Tensor distill_loss_backward(const model::CausalLM& student, const at::Tensor& ids, const at::Tensor& answers,
                                 const at::Tensor& h_teacher, const std::vector<at::Tensor>& teacher_layers,
                                 const DistillOptions& opts, double weight, const BeforeBackward& before_backward) {
  const int64_t B = ids.size(0), T = ids.size(1), D = h_teacher.size(-1);
  std::vector<at::Tensor> layers_s;
  at::Tensor h_s = student.hidden(ids, 0, nullptr, opts.hidden_mse > 0 ? &layers_s : nullptr);
  at::Tensor grad;
  const at::Tensor kl = chunked_kl(h_s.reshape({B * T, D}), h_teacher.reshape({B * T, D}), student.lm_head_weight(),
                                   opts.kl_chunk, &grad, 1.0, opts.reference_kl);
  if (weight != 1.0) grad.mul_(weight);
  const at::Tensor ce = opts.answer_ce > 0 && answers.defined() ? answer_ce_loss(h_s, answers, student.lm_head_weight())
                                                                : at::Tensor();
  // A sub-network without a trainable layer (every layer attention) has nothing to learn: no backward.
  if (opts.hidden_mse <= 0 && !ce.defined()) {
    if (before_backward) before_backward(h_s);
    if (h_s.requires_grad()) h_s.backward(grad.view({B, T, D}));
    return kl;
  }
  // One backward for all terms: d/dh_s of sum(h_s ⊙ grad) is the KL's gradient.
  at::Tensor root = (h_s * grad.view({B, T, D})).sum().to(at::kFloat), loss = kl;
  if (opts.hidden_mse > 0) {
    const at::Tensor mse = layer_mse(layers_s, teacher_layers);
    root = root + mse * (opts.hidden_mse * weight);
    loss = loss + opts.hidden_mse * mse.detach().to(at::kDouble);
  }
  if (ce.defined()) {
    root = root + ce * (opts.answer_ce * weight);
    loss = loss + opts.answer_ce * ce.detach().to(at::kDouble);
  }
  if (before_backward) before_backward(root);
  if (root.requires_grad()) root.backward();
  return loss;
}

at::Tensor distill_step(const model::CausalLM& student, const Batch& batch, int64_t step, const DistillOptions& opts,
                        const DistillHooks& hooks, const BeforeBackward& before_backward) {
  at::Tensor loss;
  int64_t row = 0;  // the micro-batch's first row in batch.ids
  for_micro_batches(batch.ids, opts.micro_batch, student.lm_head_weight().is_cuda(), opts.label,
                    [&](const at::Tensor& part, double share, bool last) {
                      at::Tensor h_t;
                      std::vector<at::Tensor> layers_t;
                      {
                        c10::NoGradGuard no_grad;
                        h_t = hooks.teacher_hidden(part, opts.hidden_mse > 0 ? &layers_t : nullptr);
                      }
                      if (hooks.prepare) hooks.prepare(step);
                      const at::Tensor answers =
                          batch.answers.defined() ? batch.answers.narrow(0, row, part.size(0)) : at::Tensor();
                      row += part.size(0);
                      const at::Tensor l = distill_loss_backward(student, part, answers, h_t, layers_t, opts, share,
                                                                 last ? before_backward : BeforeBackward()) *
                                           share;
                      loss = loss.defined() ? loss + l : l;
                    });
  return loss;
}

DistillResult distill(model::CausalLM& student, const model::ParamList& trainable, const DistillOptions& opts,
                      const DistillHooks& hooks) {
  JET_CHECK(opts.steps > 0, "distill: steps must be positive");
  JET_CHECK(!opts.dir.empty(), "distill: no checkpoint directory");
  AdamWOptions adam_opts = opts.adam;
  adam_opts.fused = adam_opts.fused && !opts.reference_adam;
  // Data parallel: gradients averaged over the ranks (constructed before the optimizer: it gives every rank rank 0's
  // weights, which the optimizer's masters copy).
  dist::Group* group = dist::current();
  std::unique_ptr<dist::GradSync> sync;
  if (group) sync = std::make_unique<dist::GradSync>(*group, trainable);
  const BeforeBackward before_backward = sync ? BeforeBackward([&](const at::Tensor& root) { sync->arm(root); })
                                              : BeforeBackward();
  const bool leader = dist::leader();
  AdamW adam(trainable, adam_opts);
  DistillResult res;
  int64_t start = 0;
  if (leader) remove_stale_temp_files(opts.dir);  // a checkpoint write cut by a kill (up to the optimizer state's size)
  if (leader && path_exists(checkpoint_json(opts.dir))) {
    const std::string where = checkpoint_json(opts.dir);
    JET_CHECK(opts.resume, "{} exists: pass --resume to continue it (or remove the directory)", where);
    nlohmann::json j = read_json(where);
    JET_CHECK(j.value("fingerprint", nlohmann::json()) == opts.fingerprint,
              "{}: made with other options ({}), not {}", where, j.value("fingerprint", nlohmann::json()).dump(),
              opts.fingerprint.dump());
    start = j.at("step").get<int64_t>();
    res.losses = j.at("losses").get<std::vector<double>>();
    adam.load_state(io::load_safetensors(opts.dir + "/" + j.at("tensors").get<std::string>()), where);
    fprintf(stderr, "%s: resumed at step %lld of %lld (%s)\n", opts.label.c_str(), static_cast<long long>(start),
            static_cast<long long>(opts.steps), opts.dir.c_str());
  }
  if (group) start = share_resume(*group, start, res.losses, adam);
  const int64_t end = opts.stop_after >= 0 ? std::min(opts.steps, start + opts.stop_after) : opts.steps;
  std::optional<Progress> bar;  // rank 0's
  if (leader) bar.emplace(opts.label, opts.steps, "step");
  if (start > 0 && bar) bar->update(start);  // the resume itself is said once, above
  const auto t0 = std::chrono::steady_clock::now();
  int64_t tokens = 0;
  // The losses and gradient norms stay on the device until read back (every log_every steps, before a
  // checkpoint and at the end): the host queues steps without waiting for them.
  std::vector<at::Tensor> pending;
  at::Tensor gnorm;
  std::string shown;
  double agree = 0;  // data parallel: the sum of hooks.agree since the last read-back
  auto read_back = [&](int64_t steps_done) {
    if (pending.empty()) return;
    const auto n = static_cast<int64_t>(pending.size());
    at::Tensor host = at::stack(pending);
    if (group) {  // the ranks' mean losses, and their agreement, in one collective
      host = group->allreduce_sum(at::cat({host, at::full({1}, agree, host.options())})).to(at::kCPU);
      JET_CHECK(host[n].item<double>() == agree * group->size(), "{}: rank {} disagrees with the others about steps "
                "{}..{} (e.g. another sampled sub-network; every rank must draw them from (seed, step) alone)",
                opts.label, group->rank(), steps_done - n, steps_done - 1);
      host = host.narrow(0, 0, n) / double(group->size());
      agree = 0;
    }
    host = host.to(at::kCPU);
    pending.clear();
    for (int64_t i = 0; i < n; ++i) {
      const double loss = host[i].item<double>();
      JET_CHECK(std::isfinite(loss), "{}: the loss is {} at step {} (lower the learning rate?)", opts.label, loss,
                steps_done - n + i);
      res.losses.push_back(loss);
    }
    shown = fmt::format("loss {:.4f} | gnorm {:.2f} | lr {:.2e}", res.losses.back(), gnorm.item<double>(),
                        adam.lr_at(steps_done - 1));
  };
  for (int64_t step = start; step < end; ++step) {
    const Batch batch = hooks.batch(step);
    const at::Tensor& ids = batch.ids;
    pending.push_back(hooks.step ? hooks.step(ids, step, before_backward)
                                 : distill_step(student, batch, step, opts, hooks, before_backward));
    if (group && hooks.agree) agree += hooks.agree(step);
    if (sync) sync->finish();
    gnorm = adam.step(step);
    if (opts.sync_steps) (void)gnorm.item<double>();
    tokens += ids.numel() * dist::size();
    const bool last = step + 1 == end;
    const bool ckpt = (opts.checkpoint_every > 0 && (step + 1) % opts.checkpoint_every == 0) || last;
    if (ckpt || static_cast<int64_t>(pending.size()) >= std::max<int64_t>(opts.log_every, 1)) read_back(step + 1);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (bar)
      bar->update(1, fmt::format("{}{}{:.0f} tok/s", shown, shown.empty() ? "" : " | ", tokens / std::max(secs, 1e-9)));
    if (ckpt && leader) save_checkpoint(opts.dir, step + 1, res.losses, adam, opts.fingerprint);
  }
  if (bar) bar->finish();
  if (sync && leader)
    fprintf(stderr, "%s: data parallel over %d ranks, %zu gradient bucket(s), %.0f%% of them started during the "
            "backward\n", opts.label.c_str(), group->size(), sync->buckets(), 100 * sync->overlapped());
  res.steps_done = end;
  res.finished = end == opts.steps;
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  res.tokens_per_s = tokens / std::max(res.seconds, 1e-9);
  return res;
}

}  // namespace jet::postnas
