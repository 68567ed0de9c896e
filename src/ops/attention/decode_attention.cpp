// Decode attention: the shape checks, the dispatcher and the ATen path (the float64 reference is in
// decode_attention_ref.cpp, the CUDA kernels in decode_attention.cu).
#include "ops/attention/decode_attention.h"

#include <ATen/ATen.h>

#include <cmath>

#include "core/check.h"
#include "core/shape.h"

namespace jet::ops {

void check_decode_attention_shapes(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                   const at::Tensor& positions) {
  JET_CHECK(q.dim() == 3 && k.dim() == 4 && v.sizes() == k.sizes() && k.size(0) == q.size(0) &&
                k.size(3) == q.size(2) && k.size(1) > 0 && q.size(1) % k.size(1) == 0 && k.size(2) > 0,
            "decode_attention: q {} and k/v {}, {} must be [B, H, D] and [B, Hkv, S, D] with Hkv dividing H",
            shape_str(q.sizes()), shape_str(k.sizes()), shape_str(v.sizes()));
  if (positions.defined())
    JET_CHECK(positions.dim() == 1 && positions.size(0) == q.size(0),
              "decode_attention: positions {} must be [B] for q {}", shape_str(positions.sizes()),
              shape_str(q.sizes()));
}

at::Tensor decode_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                            const at::Tensor& positions) {
  check_decode_attention_shapes(q, k, v, positions);
#ifdef JET_CUDA
  if (decode_attention_cuda_supports(q, k, v)) return decode_attention_cuda(q, k, v, positions);
#endif
  return decode_attention_aten(q, k, v, positions);
}

at::Tensor decode_attention_aten(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                 const at::Tensor& positions) {
  check_decode_attention_shapes(q, k, v, positions);
  // Each group's query heads become the query length, so K and V are used in place. Written out rather
  // than through SDPA: on CUDA, SDPA's cuDNN backend builds a plan for every new key length.
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2), Hkv = k.size(1), S = k.size(2);
  at::Tensor qg = q.reshape({B, Hkv, H / Hkv, D});                          // [B, Hkv, rep, D]
  at::Tensor scores = at::matmul(qg, k.transpose(-1, -2)).to(at::kFloat);  // [B, Hkv, rep, S]
  if (positions.defined()) {
    at::Tensor j = at::arange(S, positions.options().dtype(at::kLong));
    at::Tensor hidden = (j.unsqueeze(0) > positions.to(at::kLong).unsqueeze(1)).view({B, 1, 1, S});
    scores = scores.masked_fill(hidden, -INFINITY);
  }
  at::Tensor probs = at::softmax(scores / std::sqrt(static_cast<double>(D)), -1);
  return at::matmul(probs.to(v.scalar_type()), v).reshape({B, H, D});
}

#ifndef JET_CUDA
bool decode_attention_cuda_supports(const at::Tensor&, const at::Tensor&, const at::Tensor&, DecodeKernel) {
  return false;
}
at::Tensor decode_attention_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                 DecodeKernel) {
  JET_FAIL("decode_attention_cuda needs a build with -DJET_CUDA=ON");
}
bool rope_kv_write_cuda_supports(const at::Tensor&, const at::Tensor&) { return false; }
at::Tensor rope_kv_write_cuda(const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&,
                              const at::Tensor&, const at::Tensor&, const at::Tensor&, const at::Tensor&, bool) {
  JET_FAIL("rope_kv_write_cuda needs a build with -DJET_CUDA=ON");
}
#endif

}  // namespace jet::ops
