// Supernet: the teacher CausalLM with every layer's mixer wrapped in a SuperMixer.
#include "postnas/supernet.h"

#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <map>

#include "core/check.h"
#include "core/shape.h"
#include "model/attention.h"
#include "model/linear_mixer.h"
#include "postnas/distill.h"

namespace jet::postnas {

using model::ForwardContext;
using model::MixerState;

SuperMixer::SuperMixer(std::unique_ptr<model::Mixer> swa, std::unique_ptr<model::Mixer> linear)
    : swa_(std::move(swa)), linear_(std::move(linear)) {}

model::Mixer& SuperMixer::current() const {
  switch (path) {
    case Path::full: return *full_;
    case Path::swa: return *swa_;
    case Path::linear: return *linear_;
  }
  JET_FAIL("supernet: bad path");
}

at::Tensor SuperMixer::forward(const at::Tensor& x, const ForwardContext& ctx, MixerState* state) {
  if (!transfer) return current().forward(x, ctx, state);
  at::Tensor y;
  {
    c10::NoGradGuard no_grad;
    y = full_->forward(x, ctx, state);
  }
  const at::Tensor t = y.to(at::kFloat), s = linear_->forward(x.detach(), ctx, nullptr).to(at::kFloat);
  transfer_loss = (s - t).square().sum() / t.square().sum().clamp_min(1e-30);
  return y;
}
std::unique_ptr<MixerState> SuperMixer::new_state(int64_t batch, int64_t max_len, const at::TensorOptions& opts) const {
  return current().new_state(batch, max_len, opts);
}
at::Tensor SuperMixer::forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state, int64_t row) {
  return current().forward_rows(x, ctx, state, row);
}
at::Tensor SuperMixer::decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) {
  return current().decode_rows(x, ctx, state);
}
bool SuperMixer::decode_needs_host() const { return current().decode_needs_host(); }
int64_t SuperMixer::cache_bytes_per_token(int64_t e) const { return current().cache_bytes_per_token(e); }
int64_t SuperMixer::cache_bytes_fixed(int64_t e) const { return current().cache_bytes_fixed(e); }

nlohmann::json default_linear_config(const model::ModelConfig& t, const std::string& type) {
  const int64_t H = t.num_attention_heads, hd = t.head_dim;
  if (type == "jet")
    return {{"num_heads", H}, {"head_dim", hd}, {"expand_v", 1.0}, {"conv_size", 4},
            {"dconv_generator_reduction", 8}, {"norm_eps", 1e-5}};
  if (type == "gdn") return {{"num_heads", H}, {"head_dim", hd}, {"expand_v", 1.0}, {"conv_size", 4}};
  // The candidates sized by expand_k/expand_v of the hidden size (fla's layers): q/k/v/o fit the
  // teacher's when hidden_size = heads · head_dim.
  if (type == "deltanet" || type == "retnet") return {{"num_heads", H}, {"expand_k", 1.0}, {"expand_v", 1.0}};
  if (type == "gla") return {{"num_heads", H}, {"expand_k", 0.5}, {"expand_v", 1.0}};
  if (type == "mamba2") return {{"head_dim", hd}, {"state_size", 64}, {"expand", 2}};
  JET_FAIL("postnas: unknown linear block type '{}' (jet, gdn, deltanet, gla, retnet, mamba2)", type);
}

namespace {

// The teacher config with some layer_types and the efficient_attention_config of the hybrid.
model::ModelConfig with_layer_types(const model::ModelConfig& teacher, const std::vector<std::string>& types,
                                    const std::string& linear_type, const nlohmann::json& linear_config,
                                    int64_t window, bool rename) {
  nlohmann::json j = teacher.to_json();
  j["layer_types"] = types;
  nlohmann::json eac = nlohmann::json::object();
  eac[linear_type] = linear_config;
  if (std::count(types.begin(), types.end(), "swa")) eac["swa"] = {{"window_size", window}};
  j["efficient_attention_config"] = eac;
  if (rename && teacher.model_type == "qwen2") {  // the official schema is Qwen2's plus the hybrid keys
    j["model_type"] = "jet_nemotron";
    j["architectures"] = {"JetNemotronForCausalLM"};
    j.erase("sliding_window");
    j.erase("use_sliding_window");
  }
  return model::ModelConfig::from_json(j, "hybrid config");
}

// The teacher tensor that fills a linear block's `name` (q/k/v/o projections), K/V heads repeated
// for grouped-query attention; undefined when no teacher tensor has that shape.
at::Tensor teacher_init(const model::ModelConfig& c, const std::map<std::string, at::Tensor>& attn,
                        const std::string& name, at::IntArrayRef shape) {
  static const std::map<std::string, std::string> kSource = {
      {"q_proj.weight", "q_proj.weight"}, {"k_proj.weight", "k_proj.weight"},
      {"v_proj.weight", "v_proj.weight"}, {"o_proj.weight", "o_proj.weight"}};
  auto src = kSource.find(name);
  if (src == kSource.end()) return {};
  auto it = attn.find(src->second);
  if (it == attn.end()) return {};
  at::Tensor t = it->second.to(at::kFloat);
  if (t.sizes() == shape) return t;
  const int64_t rep = c.num_attention_heads / c.num_key_value_heads;
  if ((name == "k_proj.weight" || name == "v_proj.weight") && rep > 1) {
    t = t.view({c.num_key_value_heads, c.head_dim, -1}).repeat_interleave(rep, 0).reshape({-1, t.size(1)});
    if (t.sizes() == shape) return t;
  }
  return {};
}

}  // namespace

Supernet::Supernet(const model::ModelConfig& teacher, io::TensorMap weights, const SupernetOptions& opts,
                   at::ScalarType dtype, at::Device device)
    : opts_(opts) {
  JET_CHECK(std::all_of(teacher.layer_types.begin(), teacher.layer_types.end(),
                        [](const std::string& t) { return t == "attn"; }),
            "postnas: the teacher must be a full-attention model (its layer_types are not all 'attn')");
  JET_CHECK(model::is_linear_type(opts.linear_type), "postnas: '{}' is not a linear block type (jet, gdn, "
            "deltanet, gla, retnet, mamba2)", opts.linear_type);
  JET_CHECK(opts.swa_window > 0, "postnas: the sliding window must be positive, got {}", opts.swa_window);
  linear_config_ = opts.linear_config.is_null() ? default_linear_config(teacher, opts.linear_type) : opts.linear_config;

  lm_ = std::make_unique<model::CausalLM>(teacher);
  lm_->load_weights(weights, dtype, device, "teacher");
  std::map<std::string, at::Tensor*> teacher_slots;
  for (const auto& p : lm_->params()) teacher_slots[p.name] = p.slot;

  const int64_t L = lm_->num_layers();
  const std::vector<std::string> linear_types(L, opts.linear_type);
  const model::ModelConfig lc =
      with_layer_types(teacher, linear_types, opts.linear_type, linear_config_, opts.swa_window, false);
  for (int64_t i = 0; i < L; ++i) {
    const std::string attn_prefix = fmt::format("model.layers.{}.self_attn.", i);
    // The windowed path: a second Attention whose slots are bound to the teacher's tensors.
    model::ParamList scratch;
    auto swa = std::make_unique<model::Attention>(teacher, attn_prefix, scratch, opts.swa_window);
    std::map<std::string, at::Tensor> attn;  // the teacher's attention tensors by short name
    for (const auto& p : scratch) {
      *p.slot = *teacher_slots.at(p.name);
      attn[p.name.substr(attn_prefix.size())] = *p.slot;
    }
    // The linear path, declared under linear_attn., drawn as its layer's constructor does.
    const std::string prefix = fmt::format("model.layers.{}.linear_attn.", i);
    const size_t first = linear_params_.size();
    auto linear = std::make_unique<model::LinearMixer>(lc, i, prefix, linear_params_);
    auto drawn = model::make_layer_block(lc, i, opts.seed * 1000003 + i);
    for (size_t k = first; k < linear_params_.size(); ++k) {
      const model::Param& p = linear_params_[k];
      const std::string name = p.name.substr(prefix.size());
      at::Tensor init = opts.init_from_teacher ? teacher_init(teacher, attn, name, drawn->p(name).sizes()) : at::Tensor();
      if (!init.defined()) init = drawn->p(name);
      // A copy: the teacher's own tensors stay frozen and untouched.
      *p.slot = init.to(device, p.keep_fp32 ? at::kFloat : dtype).clone().set_requires_grad(true);
    }
    auto sm = std::make_unique<SuperMixer>(std::move(swa), std::move(linear));
    SuperMixer* raw = sm.get();
    raw->set_full(lm_->replace_mixer(i, std::move(sm)));
    mixers_.push_back(raw);
  }
}

void Supernet::set_placement(const Placement& p) {
  for (int64_t l : p.full) JET_CHECK(l >= 0 && l < num_layers(), "placement: layer {} outside [0, {})", l, num_layers());
  for (int64_t l : p.swa) JET_CHECK(l >= 0 && l < num_layers(), "placement: layer {} outside [0, {})", l, num_layers());
  for (SuperMixer* m : mixers_) m->path = Path::linear;
  for (int64_t l : p.full) mixers_[l]->path = Path::full;
  for (int64_t l : p.swa) mixers_[l]->path = Path::swa;
}

void Supernet::set_teacher() {
  for (SuperMixer* m : mixers_) m->path = Path::full;
}

void Supernet::set_transfer(bool on) {
  set_teacher();
  for (SuperMixer* m : mixers_) {
    m->transfer = on;
    m->transfer_loss = at::Tensor();
  }
}

at::Tensor Supernet::transfer_loss() const {
  at::Tensor sum;
  for (const SuperMixer* m : mixers_) {
    JET_CHECK(m->transfer && m->transfer_loss.defined(), "supernet: no attention-transfer forward to take a loss of");
    sum = sum.defined() ? sum + m->transfer_loss : m->transfer_loss;
  }
  return sum / static_cast<double>(mixers_.size());
}

at::Tensor transfer_step(Supernet& net, const at::Tensor& ids, int64_t micro_batch,
                         const std::function<void(const at::Tensor&)>& before_backward) {
  net.set_transfer(true);
  at::Tensor total;
  for_micro_batches(ids, micro_batch, net.lm().lm_head_weight().is_cuda(), "transfer",
                    [&](const at::Tensor& part, double share, bool last) {
                      net.lm().hidden(part, 0, nullptr, nullptr);
                      const at::Tensor loss = net.transfer_loss();
                      const at::Tensor root = loss * share;
                      if (before_backward && last) before_backward(root);
                      root.backward();
                      const at::Tensor l = loss.detach().to(at::kDouble) * share;
                      total = total.defined() ? total + l : l;
                    });
  net.set_transfer(false);
  return total;
}

io::TensorMap Supernet::linear_weights() const {
  io::TensorMap out;
  for (const auto& p : linear_params_) out[p.name] = p.slot->detach().to(at::kCPU, at::kFloat).clone();
  return out;
}

void Supernet::load_linear_weights(const io::TensorMap& w, const std::string& where) {
  for (const auto& p : linear_params_) {
    auto it = w.find(p.name);
    JET_CHECK(it != w.end(), "{}: missing weight '{}'", where, p.name);
    JET_CHECK(it->second.sizes() == p.slot->sizes(), "{}: weight '{}' has shape {}, expected {}", where, p.name,
              shape_str(it->second.sizes()), shape_str(p.slot->sizes()));
    c10::NoGradGuard no_grad;
    p.slot->copy_(it->second);
  }
}

model::ModelConfig Supernet::hybrid_config(const Placement& p) const {
  return with_layer_types(teacher_config(), p.layer_types(num_layers(), opts_.linear_type), opts_.linear_type,
                          linear_config_, opts_.swa_window, true);
}

io::TensorMap Supernet::hybrid_weights(const Placement& p) const {
  io::TensorMap out;
  auto layer_of = [](const std::string& name) -> int64_t {  // "model.layers.{i}.self_attn..." -> i, else -1
    static const std::string pre = "model.layers.";
    if (name.compare(0, pre.size(), pre) != 0) return -1;
    const size_t dot = name.find('.', pre.size());
    if (name.compare(dot, 11, ".self_attn.") != 0) return -1;
    return std::stoll(name.substr(pre.size(), dot - pre.size()));
  };
  for (const auto& q : lm_->params()) {
    const int64_t l = layer_of(q.name);
    if (l >= 0 && !p.uses(l)) continue;  // a linear layer: its attention is dropped
    out[q.name] = q.slot->detach().to(at::kCPU);
  }
  for (const auto& q : linear_params_) {
    const size_t at = q.name.find(".linear_attn.");
    const int64_t l = std::stoll(q.name.substr(13, at - 13));
    if (p.uses(l)) continue;
    out[q.name.substr(0, at) + ".self_attn." + q.name.substr(at + 13)] = q.slot->detach().to(at::kCPU);
  }
  return out;
}

}  // namespace jet::postnas
