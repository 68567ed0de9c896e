// AdamW with fp32 masters (see optim.h).
#include "postnas/optim.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cmath>

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

double AdamW::step(int64_t step) {
  c10::NoGradGuard no_grad;
  std::vector<at::Tensor> grads, squares;
  for (auto& s : slots_) {
    at::Tensor g = s.param->slot->grad();
    g = g.defined() ? g.to(at::kFloat) : at::zeros_like(s.master);
    squares.push_back(g.pow(2).sum().to(at::kDouble));
    grads.push_back(g);
  }
  // One host sync for the global norm (not one per parameter: hundreds per step on a GPU).
  const double norm = std::sqrt(at::stack(squares).sum().item<double>());
  const double clip = (opts_.grad_clip > 0 && norm > opts_.grad_clip) ? opts_.grad_clip / (norm + 1e-6) : 1.0;
  const double lr = lr_at(step);
  const double bc1 = 1.0 - std::pow(opts_.beta1, step + 1), bc2 = 1.0 - std::pow(opts_.beta2, step + 1);
  for (size_t i = 0; i < slots_.size(); ++i) {
    auto& s = slots_[i];
    at::Tensor g = grads[i].mul_(clip);
    s.m.mul_(opts_.beta1).add_(g, 1.0 - opts_.beta1);
    s.v.mul_(opts_.beta2).addcmul_(g, g, 1.0 - opts_.beta2);
    if (s.decay && opts_.weight_decay > 0) s.master.mul_(1.0 - lr * opts_.weight_decay);
    at::Tensor denom = (s.v / bc2).sqrt_().add_(opts_.eps);
    s.master.addcdiv_(s.m, denom, -lr / bc1);
    at::Tensor& p = *s.param->slot;
    p.copy_(s.master);
    p.mutable_grad() = at::Tensor();
  }
  return norm;
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
