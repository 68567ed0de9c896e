// Projections that read the same input, packed into one weight so that one GEMM computes them all (q, k, v
// of attention; gate and up of the SwiGLU MLP): CausalLM::load_weights copies each group into one buffer and binds the
// weights (and biases) as consecutive row blocks of it, so memory is unchanged and every weight keeps its
// name, shape and autograd use; the decode path asks for the packed view and falls back to separate GEMMs
// when the tensors are not packed (other loaders, checkpoints bound by hand).
#pragma once
#include <ATen/core/Tensor.h>

#include <utility>
#include <vector>

#include "ops/qmatmul/qmatmul.h"

namespace jet::model {

struct Linear;

// Binds each slot to a consecutive row block of one new buffer that holds the sources (converted to opts:
// one allocation, no per-tensor copies on the device). Returns false and binds nothing unless the sources
// are defined and agree on the sizes past dim 0.
bool bind_packed(const std::vector<at::Tensor*>& slots, const std::vector<at::Tensor>& sources,
                 const at::TensorOptions& opts);

// The [sum of dim 0, ...] view over tensors that are consecutive blocks of one contiguous buffer (as
// pack_rows leaves them), else an undefined tensor. All undefined (no biases) gives undefined too.
at::Tensor packed_rows(const std::vector<const at::Tensor*>& parts);

// The layers' Linear of the packed weight / bias: {ok, y}; ok false (y undefined) when the weights are not packed
// or only some of the biases exist / are packed. Quantized layers (Linear::qweight) are packed when their blocks
// are consecutive rows of one buffer (load_weights packs them so).
std::pair<bool, at::Tensor> packed_linear(const at::Tensor& x, const std::vector<const Linear*>& layers);
// The packed quantized weight of ws (their blocks are consecutive rows of one buffer, one type and width), else
// undefined; the second form of the layers' Linear::qweight.
ops::QWeight packed_qweight(const std::vector<const ops::QWeight*>& ws);
ops::QWeight packed_qweight(const std::vector<const Linear*>& layers);
// Binds ws (all defined, one type and width) to consecutive row blocks of one new buffer that holds their blocks
// (the old buffers are released; ops::qmatmul_out then multiplies them in one pass); false, nothing changed,
// otherwise.
bool pack_qweights(const std::vector<ops::QWeight*>& ws);

}  // namespace jet::model
