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
  // step() of a quantized model on raw fp32 rows (model/cpu_decode.cpp): x [B, D] → out [B, D], rows [0, B) of the
  // state updated in place, no ATen call. False (nothing done) where the block has no such path or its weights and
  // state do not fit it (not all projections quantized, state not fp32 and contiguous): the caller runs step().
  virtual bool step_cpu(const float* x, int64_t B, BlockState& state, float* out) { return false; }

  // Parameters by official name (relative to the layer: "q_proj.weight", ...). A loader copies into
  // them (or replaces them by name with set()), an optimizer trains them.
  NamedTensors& parameters() { return params_; }
  const at::Tensor& p(const std::string& name) const;
  // The weight `name` in GGUF blocks (a quantized model's loader fills it through the qslot declare() gives every
  // Linear weight; p(name) is then undefined), else undefined.
  const ops::QWeight& q(const std::string& name) const;
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
  // x [..., in] · W(weight)ᵀ (+ the parameter `bias` when named): through ops::qmatmul when the weight is in
  // blocks (x fp32 on the CPU), else dense().
  at::Tensor linear(const at::Tensor& x, const std::string& weight, const std::string& bias = {}) const;
  // Options of the block's activations and conv tails: the dtype of its first parameter outside keeps_fp32() that
  // is not in blocks (fp32 when there is none: a quantized model), the device of its parameters.
  at::TensorOptions act_options() const;
  // The quantized weights `names`, packed into one buffer on first use (pack_qweights) so that one pass of
  // ops::qmatmul_out computes them; empty when one of them is not quantized.
  std::vector<const ops::QWeight*> qweights(at::ArrayRef<std::string> names);
  // The shared raw tail of the gated delta-rule blocks' step_cpu (JetBlock, Gated DeltaNet), on B rows of y (row
  // stride ld) that hold at column offsets: q, k [H·K] (after their SiLU), v [H·V] (after its conv and SiLU), a, b
  // [H] and the output gate g [H·V] (g < 0: none, plain RMSNorm). Per row and head: q, k L2-normalised (q times
  // K^-1/2), β = σ(b), decay exp(−exp(A_log)·softplus(a + dt_bias)), the delta rule on S (rows [0, B) of [*, H, K,
  // V] fp32), RMSNorm of o with "o_norm.weight" times SiLU(g), then o_proj into out [B, D]. y is overwritten.
  struct DeltaRows {
    float* y;
    int64_t ld, q, k, v, a, b, g;
  };
  void gated_delta_rows_cpu(const DeltaRows& r, int64_t B, int64_t H, int64_t K, int64_t V, double eps,
                            BlockState& state, float* out) const;
  // state's S and conv tails are fp32, contiguous, with at least B rows (what step_cpu writes through raw pointers).
  static bool cpu_state_fits(const BlockState& state, int64_t B);
  // The values of parameter `name` for step_cpu (checked: a contiguous fp32 CPU tensor).
  const float* raw(const std::string& name) const;
  // SiLU(short_conv(x W, conv)) for W = "{n}_proj.weight", conv = "{n}_conv1d.{weight,bias}" (fla's
  // ShortConvolution). x [B, T, D] reads the tail [B, C, W−1] (or zeros) and, given new_tail, stores
  // the tail after x there; the step form (x [B, D]) updates the tail in place.
  at::Tensor proj_conv(const std::string& n, const at::Tensor& x, const at::Tensor& tail,
                       at::Tensor* new_tail = nullptr) const;
  at::Tensor proj_conv_step(const std::string& n, const at::Tensor& x, at::Tensor& tail) const;
  // o [..., H, V] → o_proj(RMSNorm_V(o) with weight `norm`, times SiLU(x W_g) when g_proj exists); `gate` is x W_g
  // [..., H·V] when the caller has it already (JetBlock's one input GEMM), else it is computed here.
  at::Tensor norm_gate_out(const at::Tensor& o, const at::Tensor& x, const std::string& norm, double eps,
                           const at::Tensor& gate = {}) const;
  // The short-conv delta-rule blocks (DeltaNet, Gated DeltaNet): q, k, v = proj_conv("q"/"k"/"v") with
  // tails conv[0..2], split into `heads` heads, the op with log decay g (undefined: none) and beta,
  // then norm_gate_out with "o_norm.weight". The forward (x [B, T, D]) and the step (x [B, D]).
  at::Tensor conv_qkv_forward(const at::Tensor& x, BlockState* state, int64_t heads, const at::Tensor& g,
                              const at::Tensor& beta, const ops::LinearAttentionOptions& opts, double eps) const;
  at::Tensor conv_qkv_step(const at::Tensor& x, BlockState& state, int64_t heads, const at::Tensor& g,
                           const at::Tensor& beta, const ops::LinearAttentionOptions& opts, double eps) const;

 private:
  NamedTensors params_;
  std::vector<ops::QWeight> qparams_;  // parallel to params_
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

// |x − int(x)| ≤ 1e-5·|x| (math.isclose(int(x), x, rel_tol=1e-5), the references' width check).
bool close_to_integer(double x);

// A Conv1d weight [C, 1, W] as the [C, W] the short-conv op takes.
at::Tensor conv_taps(const at::Tensor& weight);

}  // namespace jet::model
