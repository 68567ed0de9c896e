// ops/qmatmul: weights, dispatch between the int8 kernel, the bf16 GEMM and the fallback, threads.
#include "ops/qmatmul/qmatmul.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <vector>

#include "core/check.h"
#include "core/shape.h"
#include "ops/cpu/isa.h"
#include "ops/qmatmul/qmatmul_kernels.h"

namespace jet::ops {

int64_t QWeight::block_cols() const {
  const int64_t be = gguf::type_block_elems(type);
  return (cols + be - 1) / be * be;
}

int64_t QWeight::row_bytes() const { return block_cols() / gguf::type_block_elems(type) * gguf::type_block_bytes(type); }

bool qmatmul_supports(gguf::Type t) {
  using T = gguf::Type;
  return t == T::Q4_0 || t == T::Q4_1 || t == T::Q5_0 || t == T::Q5_1 || t == T::Q8_0 || t == T::Q4_K ||
         t == T::Q5_K || t == T::Q6_K;
}

QWeight qweight_from_blocks(gguf::Type t, int64_t rows, int64_t cols, const uint8_t* src) {
  JET_CHECK(qmatmul_supports(t), "quantized matmul: type {} is not supported", gguf::type_name(t));
  const int64_t be = gguf::type_block_elems(t);
  JET_CHECK(rows >= 0 && cols > 0 && cols % be == 0, "quantized matmul: {} columns is not a multiple of {}'s block of {}",
            cols, gguf::type_name(t), be);
  QWeight w{t, rows, cols, {}};
  w.data = at::empty({rows, w.row_bytes()}, at::kByte);
  if (rows > 0) std::memcpy(w.data.data_ptr<uint8_t>(), src, size_t(w.nbytes()));
  return w;
}

QWeight quantize_q8_0(const at::Tensor& w) {
  JET_CHECK(w.dim() == 2 && w.size(1) >= 1, "quantize to Q8_0: weight {} needs [N, K] with K >= 1",
            shape_str(w.sizes()));
  const int64_t N = w.size(0), K = w.size(1), nb = (K + 31) / 32, bb = gguf::type_block_bytes(gguf::Type::Q8_0);
  // Rows padded with zeros to whole blocks.
  const at::Tensor f = at::constant_pad_nd(w.to(at::kCPU, at::kFloat), {0, nb * 32 - K}).contiguous();
  QWeight q{gguf::Type::Q8_0, N, K, at::empty({N, nb * bb}, at::kByte)};
  const float* src = f.data_ptr<float>();
  uint8_t* dst = q.data.data_ptr<uint8_t>();
  at::parallel_for(0, N * nb, 1024, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) {
      const float* x = src + b * 32;
      uint8_t* blk = dst + b * bb;
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(x[i]));
      const float d = amax / 127.f, id = amax > 0 ? 127.f / amax : 0.f;
      const uint16_t h = c10::Half(d).x;  // the scale as stored (fp16, round to nearest)
      std::memcpy(blk, &h, 2);
      for (int i = 0; i < 32; ++i) blk[2 + i] = uint8_t(int8_t(std::nearbyint(x[i] * id)));
    }
  });
  return q;
}

QWeight qweight_rows(const QWeight& w, const at::Tensor& idx) {
  QWeight r = w;
  r.data = w.data.index_select(0, idx.to(at::kLong)).contiguous();
  r.rows = r.data.size(0);
  return r;
}

void dequantize_row(const QWeight& w, int64_t row, float* out) {
  const uint8_t* src = w.data.data_ptr<uint8_t>() + row * w.row_bytes();
  const int64_t be = gguf::type_block_elems(w.type), full = w.cols / be * be;
  gguf::dequantize_row(w.type, src, out, full);
  if (full == w.cols) return;
  float last[256];  // the padded last block (block_elems <= 256)
  gguf::dequantize_row(w.type, src + full / be * gguf::type_block_bytes(w.type), last, be);
  std::copy(last, last + (w.cols - full), out + full);
}

namespace {

void dequantize_into(const QWeight& w, float* o) {
  at::parallel_for(0, w.rows, std::max<int64_t>(1, 8192 / w.cols), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) dequantize_row(w, r, o + r * w.cols);
  });
}

}  // namespace

at::Tensor dequantize(const QWeight& w) {
  at::Tensor out = at::empty({w.rows, w.cols}, at::kFloat);
  dequantize_into(w, out.data_ptr<float>());
  return out;
}

bool qmatmul_int8_available() { return cpu::isa() != cpu::Isa::portable; }

std::string qmatmul_kernel_name() {
  const cpu::Isa i = cpu::isa();
  return i == cpu::Isa::avx512 ? "avx512-vnni" : i == cpu::Isa::avx2 ? "avx2" : "fallback";
}

namespace {

void check_args(const QWeight& w, int64_t K) {
  JET_CHECK(w.defined() && qmatmul_supports(w.type), "quantized matmul: no weight, or type {} is not supported",
            gguf::type_name(w.type));
  JET_CHECK(K == w.cols, "quantized matmul: x has {} columns, the weight {}", K, w.cols);
}

// The per-thread scratch of the quantized activations (grows, never shrinks: no allocation per step).
uint8_t* act_scratch(size_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

// The int8 kernel on N rows of blocks of type t at wd (K columns each).
void int8_path(const float* x, int64_t M, int64_t ldx, gguf::Type t, int64_t N, int64_t K, const uint8_t* wd, float* y,
               int64_t ldy) {
  uint8_t* act = act_scratch(size_t(M * qk::act_row_bytes(K)));
  const bool avx512 = cpu::isa() == cpu::Isa::avx512;
  (avx512 ? qk::quantize_rows_avx512 : qk::quantize_rows_avx2)(x, M, ldx, K, act);
  const auto gemm_rows = avx512 ? qk::gemm_rows_avx512 : qk::gemm_rows_avx2;
  const QWeight shape{t, N, K, {}};
  const int64_t rb = shape.row_bytes(), Kb = shape.block_cols();
  // Rows of the weight split across the pool; each thread reads its rows once for all M.
  const int64_t grain = std::max<int64_t>(16, (int64_t(1) << 14) / std::max<int64_t>(rb, 1));
  at::parallel_for(0, N, grain, [&](int64_t n0, int64_t n1) { gemm_rows(t, wd, rb, Kb, n0, n1, act, M, y, ldy); });
}

QKernel pick(QKernel which, int64_t M) {
  if (which != QKernel::automatic) return which;
  return !qmatmul_int8_available() ? QKernel::fallback : M >= kQMatmulGemmRows ? QKernel::gemm : QKernel::int8;
}

}  // namespace

void qmatmul_out(const float* x, int64_t M, int64_t ldx, const QWeight& w, float* y, int64_t ldy, QKernel which) {
  check_args(w, w.cols);
  which = pick(which, M);
  if (which == QKernel::int8) {
    JET_CHECK(qmatmul_int8_available(), "quantized matmul: the int8 kernel needs AVX2 or AVX-512 VNNI, which this CPU lacks");
    return int8_path(x, M, ldx, w.type, w.rows, w.cols, w.data.data_ptr<uint8_t>(), y, ldy);
  }
  // Dequantize into per-thread buffers that grow once (no fresh pages per call), then one ATen GEMM (bf16 on the
  // gemm path, fp32 in the fallback).
  // Normal tensors even when first made under InferenceMode (an inference tensor refuses in-place writes outside it).
  thread_local at::Tensor wf, wb;
  c10::InferenceMode normal(false);
  if (!wf.defined() || wf.numel() < w.rows * w.cols) wf = at::empty({w.rows * w.cols}, at::kFloat);
  dequantize_into(w, wf.data_ptr<float>());
  at::Tensor wt = wf.narrow(0, 0, w.rows * w.cols).view({w.rows, w.cols});
  if (which == QKernel::gemm) {
    if (!wb.defined() || wb.numel() < w.rows * w.cols) wb = at::empty({w.rows * w.cols}, at::kBFloat16);
    wt = wb.narrow(0, 0, w.rows * w.cols).view({w.rows, w.cols}).copy_(wt);
  }
  const at::Tensor xt = at::from_blob(const_cast<float*>(x), {M, w.cols}, {ldx, 1}, at::kFloat);
  const at::Tensor yt = at::from_blob(y, {M, w.rows}, {ldy, 1}, at::kFloat);
  yt.copy_(at::mm(xt.to(wt.scalar_type()), wt.t()));
}

bool qweights_consecutive(at::ArrayRef<const QWeight*> ws) {
  if (ws.empty() || !ws[0]->defined()) return false;
  const uint8_t* next = ws[0]->data.data_ptr<uint8_t>();
  for (const QWeight* w : ws) {
    if (!w->defined() || w->type != ws[0]->type || w->cols != ws[0]->cols || w->data.data_ptr<uint8_t>() != next)
      return false;
    next += w->nbytes();
  }
  return true;
}

void qmatmul_out(const float* x, int64_t M, int64_t ldx, at::ArrayRef<const QWeight*> ws, float* y, int64_t ldy) {
  JET_CHECK(!ws.empty(), "quantized matmul: no weights");
  if (pick(QKernel::automatic, M) == QKernel::int8 && qweights_consecutive(ws)) {
    int64_t rows = 0;
    for (const QWeight* w : ws) rows += w->rows;
    check_args(*ws[0], ws[0]->cols);
    return int8_path(x, M, ldx, ws[0]->type, rows, ws[0]->cols, ws[0]->data.data_ptr<uint8_t>(), y, ldy);
  }
  int64_t col = 0;
  for (const QWeight* w : ws) {
    JET_CHECK(w->cols == ws[0]->cols, "quantized matmul: weights of {} and {} columns read the same x", ws[0]->cols,
              w->cols);
    qmatmul_out(x, M, ldx, *w, y + col, ldy);
    col += w->rows;
  }
}

at::Tensor qmatmul(const at::Tensor& x, const QWeight& w, const at::Tensor& bias, QKernel which) {
  JET_CHECK(x.device().is_cpu() && x.scalar_type() == at::kFloat && x.dim() >= 1,
            "quantized matmul: x must be a CPU fp32 tensor, got {} {}", c10::toString(x.scalar_type()), x.device().str());
  check_args(w, x.size(-1));
  const at::Tensor x2 = x.reshape({-1, w.cols}).contiguous();
  std::vector<int64_t> out_shape(x.sizes().begin(), x.sizes().end());
  out_shape.back() = w.rows;
  at::Tensor y = at::empty({x2.size(0), w.rows}, at::kFloat);
  qmatmul_out(x2.data_ptr<float>(), x2.size(0), w.cols, w, y.data_ptr<float>(), w.rows, which);
  if (bias.defined()) y.add_(bias.to(at::kFloat));
  return y.view(out_shape);
}

at::Tensor qmatmul_ref(const at::Tensor& x, const QWeight& w, const at::Tensor& bias) {
  check_args(w, x.size(-1));
  at::Tensor y = at::matmul(x.to(at::kDouble), dequantize(w).to(at::kDouble).t());
  if (bias.defined()) y = y + bias.to(at::kDouble);
  return y;
}

}  // namespace jet::ops
