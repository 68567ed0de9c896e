// The interface every linear-attention mixer block implements (JetBlock and the five PostNAS
// candidates), its per-sequence state, and the helpers the blocks share (named parameters, seeded
// initialisation, head reshapes). A block maps hidden states [B, T, D] to [B, T, D]; forward() is the
// chunked path (training, prefill), step() the recurrent one-token path (decode).
#pragma once
#include <ATen/ATen.h>
#include <c10/core/GradMode.h>

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "model/params.h"
#include "ops/linear_attention/linear_attention.h"

namespace jet::model {

// A block's own storage of its parameters (name relative to the layer → tensor). The model sees them
// through its ParamList (declare()); this is the owning side of those slots.
using NamedTensors = std::vector<std::pair<std::string, at::Tensor>>;

// Decode state of one block for B sequences. Zero-initialised by LinearBlock::init_state.
struct BlockState {
  at::Tensor S;                  // [B, H, K, V] fp32 linear-attention state
  std::vector<at::Tensor> conv;  // conv tails [B, C, W−1], one per conv of the block (block-specific order)
  int64_t offset = 0;            // tokens consumed so far (RetNet's rotary positions)
};

class LinearBlock {
 public:
  virtual ~LinearBlock() = default;

  // Layer type as in config.json's layer_types: jet, gdn, deltanet, gla, retnet, mamba2.
  virtual std::string type() const = 0;
  // Zero state for `batch` sequences: S fp32, conv tails in the parameters' dtype, on their device.
  virtual BlockState init_state(int64_t batch) const = 0;
  // x [B, T, D] → y [B, T, D]. With a state: starts from it and leaves it at the end of x.
  virtual at::Tensor forward(const at::Tensor& x, BlockState* state = nullptr) = 0;
  // x [B, D] → y [B, D]; updates state in place (S and tails).
  virtual at::Tensor step(const at::Tensor& x, BlockState& state) = 0;

  // Parameters by official name (relative to the layer: "q_proj.weight", ...). A loader copies into
  // them (or replaces them by name with set()), an optimizer trains them.
  NamedTensors& parameters() { return params_; }
  const at::Tensor& p(const std::string& name) const;
  void set(const std::string& name, const at::Tensor& value);  // same shape required
  // Moves/casts every parameter (those keeps_fp32() names stay fp32 when dtype is reduced).
  void to(at::Device device, at::ScalarType dtype);
  // Declares every parameter in a model's ParamList as prefix + name (e.g. "model.layers.3.self_attn."),
  // the slot being this block's tensor: the model's loader then fills the block directly.
  void declare(ParamList& params, const std::string& prefix);
  // A_log, dt_bias, D and the norms: kept in fp32 in a reduced-precision model (the references do).
  static bool keeps_fp32(const std::string& name);
  // Whether a parameter belongs to an nn.Linear of the reference layer (weight or bias): the official
  // model initialisation (PreTrainedModel._init_weights) re-draws exactly those.
  static bool is_linear(const std::string& name);

 protected:
  void add(const std::string& name, at::Tensor value);
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  // SiLU(short_conv(x W, conv)) for W = "{n}_proj.weight", conv = "{n}_conv1d.{weight,bias}" (fla's
  // ShortConvolution). x [B, T, D] reads the tail [B, C, W−1] (or zeros) and, given new_tail, stores
  // the tail after x there; the step form (x [B, D]) updates the tail in place.
  at::Tensor proj_conv(const std::string& n, const at::Tensor& x, const at::Tensor& tail,
                       at::Tensor* new_tail = nullptr) const;
  at::Tensor proj_conv_step(const std::string& n, const at::Tensor& x, at::Tensor& tail) const;
  // o [..., H, V] → o_proj(RMSNorm_V(o) with weight `norm`, times SiLU(x W_g) when g_proj exists).
  at::Tensor norm_gate_out(const at::Tensor& o, const at::Tensor& x, const std::string& norm, double eps) const;
  // The short-conv delta-rule blocks (DeltaNet, Gated DeltaNet): q, k, v = proj_conv("q"/"k"/"v") with
  // tails conv[0..2], split into `heads` heads, the op with log decay g (undefined: none) and beta,
  // then norm_gate_out with "o_norm.weight". The forward (x [B, T, D]) and the step (x [B, D]).
  at::Tensor conv_qkv_forward(const at::Tensor& x, BlockState* state, int64_t heads, const at::Tensor& g,
                              const at::Tensor& beta, const ops::LinearAttentionOptions& opts, double eps) const;
  at::Tensor conv_qkv_step(const at::Tensor& x, BlockState& state, int64_t heads, const at::Tensor& g,
                           const at::Tensor& beta, const ops::LinearAttentionOptions& opts, double eps) const;

 private:
  NamedTensors params_;
  std::unordered_map<std::string, size_t> index_;
};

// make_block()'s seed for a block whose tensors are only allocated, not drawn (a model that loads or
// draws its weights afterwards: no time spent, no memory touched).
constexpr uint64_t kUninitialised = ~uint64_t{0};

// Seeded initialisation on CPU fp32 (a block is built on CPU, then moved with to()).
class Init {
 public:
  explicit Init(uint64_t seed);  // kUninitialised: every tensor below comes back allocated but undrawn
  at::Tensor zeros(at::IntArrayRef shape);
  at::Tensor ones(at::IntArrayRef shape);
  at::Tensor normal(at::IntArrayRef shape, double std);
  at::Tensor uniform(at::IntArrayRef shape, double lo, double hi);
  // A_log = log U(lo, hi) per head (Mamba2 / GDN / JetBlock).
  at::Tensor a_log(int64_t heads, double lo, double hi);
  // dt_bias = softplus⁻¹(dt), dt log-uniform in [dt_min, dt_max], floored at dt_floor.
  at::Tensor dt_bias(int64_t heads, double dt_min = 1e-3, double dt_max = 0.1, double dt_floor = 1e-4);
  // nn.Conv1d's default depthwise init: U(±1/√W) (weight [C, 1, W]; bias [C] the same bound).
  at::Tensor conv_weight(int64_t channels, int64_t width);
  at::Tensor conv_bias(int64_t channels, int64_t width);

 private:
  bool draw_;
  at::Generator gen_;
};

// [..., H·X] → [..., H, X] and back.
at::Tensor split_heads(const at::Tensor& x, int64_t heads);
at::Tensor merge_heads(const at::Tensor& x);

// x [..., in] · weightᵀ (+ bias): a bias-free nn.Linear unless bias is given.
at::Tensor dense(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias = {});

// Log decay of Mamba2-style gates, fp32: −exp(A_log) · softplus(a + dt_bias); a [..., H], A_log, dt_bias [H].
at::Tensor ssm_log_decay(const at::Tensor& a, const at::Tensor& A_log, const at::Tensor& dt_bias);

// |x − int(x)| ≤ 1e-5·|x| (math.isclose(int(x), x, rel_tol=1e-5), the references' width check).
bool close_to_integer(double x);

// A Conv1d weight [C, 1, W] as the [C, W] the short-conv op takes.
at::Tensor conv_taps(const at::Tensor& weight);

}  // namespace jet::model
