// Building blocks of the decoder: Linear, RMSNorm, rotary position embedding (none / linear / llama3
// scaling) and the SwiGLU MLP. Plain ATen ops, so autograd differentiates them.
#pragma once
#include <ATen/core/Tensor.h>

#include <string>

#include "model/config.h"
#include "model/params.h"

namespace jet::model {

struct Linear {
  at::Tensor weight;  // [out, in]; undefined when the weight is quantized
  at::Tensor bias;    // [out], undefined without bias
  ops::QWeight qweight;  // the weight in GGUF blocks (a quantized model, CPU fp32): ops::qmatmul
  // name: "model.layers.0.self_attn.q_proj" (".weight"/".bias" are appended).
  void declare(ParamList& params, const std::string& name, int64_t in, int64_t out, bool has_bias);
  at::Tensor operator()(const at::Tensor& x) const;  // [..., in] -> [..., out]
};

struct RMSNorm {
  at::Tensor weight;  // [D]
  double eps = 1e-6;
  void declare(ParamList& params, const std::string& name, int64_t dim, double eps);
  // [..., D] -> [..., D]; ops::rms_norm (fp32 inside, result in x's dtype).
  at::Tensor operator()(const at::Tensor& x) const;
};

// SwiGLU feed-forward: down(silu(gate(x)) * up(x)).
struct Mlp {
  Linear gate_proj, up_proj, down_proj;
  void declare(ParamList& params, const std::string& prefix, const ModelConfig& c);
  at::Tensor operator()(const at::Tensor& x) const;  // [B, T, D] -> [B, T, D]
};

// Rotary embedding in the "rotate half" layout of HF Llama/Qwen2.
class Rope {
 public:
  Rope(const RopeConfig& c, int64_t head_dim);
  // cos, sin [T, head_dim] for positions start .. start+T-1, computed in fp32, cast to dtype.
  std::pair<at::Tensor, at::Tensor> cos_sin(int64_t start, int64_t T, at::Device device,
                                            at::ScalarType dtype) const;
  // cos, sin [B, 1, 1, head_dim] for one position per row, positions [B] (int64, on the model's device).
  std::pair<at::Tensor, at::Tensor> cos_sin(const at::Tensor& positions, at::ScalarType dtype) const;
  // x [B, H, T, head_dim] rotated with cos/sin [T, head_dim].
  static at::Tensor apply(const at::Tensor& x, const at::Tensor& cos, const at::Tensor& sin);
  void to(at::Device device) { inv_freq_ = inv_freq_.to(device); }
  const at::Tensor& inv_freq() const { return inv_freq_; }  // [head_dim / 2] fp32

 private:
  at::Tensor inv_freq_;
};

}  // namespace jet::model
