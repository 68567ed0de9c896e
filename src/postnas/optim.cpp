// AdamW with fp32 masters (see optim.h).
#include "postnas/optim.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>
#include <optional>

#include "core/check.h"
#include "core/shape.h"

namespace jet::postnas {

AdamW::AdamW(const model::ParamList& params, const AdamWOptions& opts) : opts_(opts) {
  c10::NoGradGuard no_grad;
  for (const auto& p : params) {
    at::Tensor master = p.slot->detach().to(at::kFloat).clone();
    slots_.push_back({&p, master, at::zeros_like(master), at::zeros_like(master), p.slot->dim() >= 2});
  }
}

double AdamW::lr_at(int64_t step) const {
  if (opts_.warmup > 0 && step < opts_.warmup) return opts_.lr * (step + 1) / opts_.warmup;
  if (opts_.total <= opts_.warmup) return opts_.lr;
  const double t = std::min(1.0, double(step - opts_.warmup) / double(opts_.total - opts_.warmup));
  const double lo = opts_.lr * opts_.min_lr_ratio;
  return lo + 0.5 * (opts_.lr - lo) * (1.0 + std::cos(M_PI * t));
}

std::vector<at::Tensor> AdamW::fp32_grads(at::Tensor* norm) const {
  std::vector<at::Tensor> grads;
  grads.reserve(slots_.size());
  for (const auto& s : slots_) {
    const at::Tensor g = s.param->slot->grad();
    grads.push_back(!g.defined() ? at::zeros_like(s.master) : g.scalar_type() == at::kFloat ? g : g.to(at::kFloat));
  }
  // One multi-tensor norm, stacked on the device: no host sync (not one per parameter).
  *norm = at::stack(at::_foreach_norm(grads, 2)).norm();
  return grads;
}

at::Tensor AdamW::step(int64_t step) {
  c10::NoGradGuard no_grad;
  at::Tensor norm;
  std::vector<at::Tensor> grads = fp32_grads(&norm);
  if (opts_.fused)
    step_fused(step, grads, norm);
  else
    step_reference(step, grads, norm);
  for (auto& s : slots_) s.param->slot->mutable_grad() = at::Tensor();
  return norm;
}

void AdamW::step_reference(int64_t step, std::vector<at::Tensor>& grads, const at::Tensor& norm_t) {
  const double norm = norm_t.item<double>();
  const double clip = (opts_.grad_clip > 0 && norm > opts_.grad_clip) ? opts_.grad_clip / (norm + 1e-6) : 1.0;
  const double lr = lr_at(step);
  const double bc1 = 1.0 - std::pow(opts_.beta1, step + 1), bc2 = 1.0 - std::pow(opts_.beta2, step + 1);
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& s = slots_[i];
    at::Tensor g = grads[i].mul(clip);
    s.m.mul_(opts_.beta1).add_(g, 1.0 - opts_.beta1);
    s.v.mul_(opts_.beta2).addcmul_(g, g, 1.0 - opts_.beta2);
    if (s.decay && opts_.weight_decay > 0) s.master.mul_(1.0 - lr * opts_.weight_decay);
    at::Tensor denom = (s.v / bc2).sqrt_().add_(opts_.eps);
    s.master.addcdiv_(s.m, denom, -lr / bc1);
    s.param->slot->copy_(s.master);
  }
}

void AdamW::step_fused(int64_t step, std::vector<at::Tensor>& grads, const at::Tensor& norm) {
  if (slots_.empty()) return;
  // Clipping by g / max(1, (‖g‖ + 1e-6) / clip) = g · clip / (‖g‖ + 1e-6) above the clip: the kernel divides
  // the gradients by its grad_scale.
  std::optional<at::Tensor> scale;
  if (opts_.grad_clip > 0) scale = at::clamp_min((norm + 1e-6) / opts_.grad_clip, 1.0).to(at::kFloat);
  if (!step_count_.defined()) step_count_ = at::zeros({}, slots_[0].master.options());
  step_count_.fill_(static_cast<double>(step + 1));
  const double lr = lr_at(step);
  for (const bool decay : {true, false}) {
    std::vector<at::Tensor> p, g, m, v, params, steps;
    for (size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i].decay != decay) continue;
      p.push_back(slots_[i].master), g.push_back(grads[i]), m.push_back(slots_[i].m), v.push_back(slots_[i].v);
      params.push_back(*slots_[i].param->slot);
      steps.push_back(step_count_);
    }
    if (p.empty()) continue;
    at::_fused_adamw_(p, g, m, v, {}, steps, lr, opts_.beta1, opts_.beta2, decay ? opts_.weight_decay : 0.0,
                      opts_.eps, /*amsgrad=*/false, /*maximize=*/false, scale, std::nullopt);
    at::_foreach_copy_(params, p);
  }
}

io::TensorMap AdamW::state() const {
  io::TensorMap out;
  for (const auto& s : slots_) {
    out[s.param->name + ".master"] = s.master.to(at::kCPU).clone();
    out[s.param->name + ".exp_avg"] = s.m.to(at::kCPU).clone();
    out[s.param->name + ".exp_avg_sq"] = s.v.to(at::kCPU).clone();
  }
  return out;
}

void AdamW::load_state(const io::TensorMap& st, const std::string& where) {
  c10::NoGradGuard no_grad;
  for (auto& s : slots_) {
    for (auto [suffix, t] : {std::pair<const char*, at::Tensor*>{".master", &s.master}, {".exp_avg", &s.m},
                             {".exp_avg_sq", &s.v}}) {
      auto it = st.find(s.param->name + suffix);
      JET_CHECK(it != st.end(), "{}: optimizer state lacks '{}{}'", where, s.param->name, suffix);
      JET_CHECK(it->second.sizes() == t->sizes(), "{}: optimizer state '{}{}' has shape {}, expected {}", where,
                s.param->name, suffix, shape_str(it->second.sizes()), shape_str(t->sizes()));
      t->copy_(it->second);
    }
    s.param->slot->copy_(s.master);
  }
}

}  // namespace jet::postnas
