// Decode attention's float64 reference: plain loops on the CPU, one (row, head) at a time.
#include <ATen/ATen.h>

#include <cmath>
#include <vector>

#include "ops/attention/decode_attention.h"

namespace jet::ops {

at::Tensor decode_attention_ref(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                                const at::Tensor& positions) {
  check_decode_attention_shapes(q, k, v, positions);
  const int64_t B = q.size(0), H = q.size(1), D = q.size(2), Hkv = k.size(1), S = k.size(2), rep = H / Hkv;
  auto to64 = [](const at::Tensor& t) { return t.to(at::kCPU, at::kDouble).contiguous(); };
  const at::Tensor qd = to64(q), kd = to64(k), vd = to64(v);
  const at::Tensor pd = positions.defined() ? positions.to(at::kCPU, at::kLong).contiguous() : positions;
  at::Tensor out = at::zeros({B, H, D}, at::kDouble);
  const double *qp = qd.data_ptr<double>(), *kp = kd.data_ptr<double>(), *vp = vd.data_ptr<double>();
  double* op = out.data_ptr<double>();
  std::vector<double> s(S);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t n = pd.defined() ? std::min(S, pd.data_ptr<int64_t>()[b] + 1) : S;
    for (int64_t h = 0; h < H; ++h) {
      const double* qv = qp + (b * H + h) * D;
      const int64_t hk = h / rep;
      double mx = -INFINITY;
      for (int64_t j = 0; j < n; ++j) {
        const double* kv = kp + ((b * Hkv + hk) * S + j) * D;
        double d = 0;
        for (int64_t e = 0; e < D; ++e) d += qv[e] * kv[e];
        s[j] = d / std::sqrt(static_cast<double>(D));
        mx = std::max(mx, s[j]);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += (s[j] = std::exp(s[j] - mx));
      double* o = op + (b * H + h) * D;
      for (int64_t j = 0; j < n; ++j) {
        const double* vv = vp + ((b * Hkv + hk) * S + j) * D;
        for (int64_t e = 0; e < D; ++e) o[e] += s[j] / sum * vv[e];
      }
    }
  }
  return out;
}

}  // namespace jet::ops
