// io::gguf_tensor: a GGUF tensor as a dequantised fp32 at::Tensor (its blocks split across threads).
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "core/check.h"
#include "io/tensors.h"

namespace jet::io {

at::Tensor gguf_tensor(const gguf::File& f, const gguf::TensorInfo& t) {
  JET_CHECK(gguf::type_supported(t.type), "{}: tensor '{}' has type {}, which jet cannot dequantise",
            f.path(), t.name, gguf::type_name(t.type));
  JET_CHECK(t.offset <= f.size() && t.nbytes <= f.size() - t.offset, "{}: tensor '{}' lies outside the file",
            f.path(), t.name);
  at::Tensor out = at::empty(t.shape, at::kFloat);  // shape as in the file, e.g. [out, in]
  const int64_t be = gguf::type_block_elems(t.type), bb = gguf::type_block_bytes(t.type);
  const int64_t n_blocks = t.numel() / be;
  const uint8_t* src = f.data(t);
  float* dst = out.data_ptr<float>();
  const int64_t grain = std::max<int64_t>(1, (int64_t(1) << 16) / be);
  at::parallel_for(0, n_blocks, grain, [&](int64_t b0, int64_t b1) {
    gguf::dequantize_row(t.type, src + b0 * bb, dst + b0 * be, (b1 - b0) * be);
  });
  return out;
}

}  // namespace jet::io
