// Packed projection weights (see packed_rows.h).
#include "model/packed_rows.h"

#include "model/layers.h"

#include <ATen/ATen.h>
#include <ATen/core/grad_mode.h>

namespace jet::model {

bool bind_packed(const std::vector<at::Tensor*>& slots, const std::vector<at::Tensor>& sources,
                 const at::TensorOptions& opts) {
  if (slots.size() != sources.size() || sources.empty()) return false;
  const at::Tensor& a = sources[0];
  int64_t rows = 0;
  for (const at::Tensor& t : sources) {
    if (!t.defined() || t.dim() != a.dim() || t.dim() < 1 || t.sizes().slice(1) != a.sizes().slice(1)) return false;
    rows += t.size(0);
  }
  std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end());
  sizes[0] = rows;
  const at::Tensor buf = at::empty(sizes, opts);
  int64_t row = 0;
  for (size_t i = 0; i < slots.size(); ++i) {
    const int64_t n = sources[i].size(0);
    *slots[i] = buf.narrow(0, row, n);
    slots[i]->copy_(sources[i]);
    row += n;
  }
  return true;
}

at::Tensor packed_rows(const std::vector<const at::Tensor*>& parts) {
  if (parts.empty() || !parts[0]->defined()) return {};
  const at::Tensor& a = *parts[0];
  int64_t rows = 0;
  const char* next = static_cast<const char*>(a.data_ptr());
  for (const at::Tensor* t : parts) {
    if (!t->defined() || !t->is_contiguous() || t->scalar_type() != a.scalar_type() || t->dim() != a.dim() ||
        t->sizes().slice(1) != a.sizes().slice(1) || !t->storage().is_alias_of(a.storage()) ||
        static_cast<const char*>(t->data_ptr()) != next)
      return {};
    next += t->nbytes();
    rows += t->size(0);
  }
  std::vector<int64_t> sizes(a.sizes().begin(), a.sizes().end());
  sizes[0] = rows;
  return a.as_strided(sizes, a.strides());
}

ops::QWeight packed_qweight(const std::vector<const ops::QWeight*>& ws) {
  const ops::QWeight& q0 = *ws.at(0);
  std::vector<const at::Tensor*> data;
  for (const ops::QWeight* w : ws) {
    if (!w->defined() || w->type != q0.type || w->cols != q0.cols) return {};
    data.push_back(&w->data);
  }
  ops::QWeight q{q0.type, 0, q0.cols, packed_rows(data)};
  if (q.data.defined()) q.rows = q.data.size(0);
  return q;
}

ops::QWeight packed_qweight(const std::vector<const Linear*>& layers) {
  std::vector<const ops::QWeight*> ws;
  for (const Linear* l : layers) ws.push_back(&l->qweight);
  return packed_qweight(ws);
}

bool pack_qweights(const std::vector<ops::QWeight*>& ws) {
  std::vector<at::Tensor> data;
  for (const ops::QWeight* w : ws) {
    if (!w->defined() || w->type != ws[0]->type || w->cols != ws[0]->cols) return false;
    data.push_back(w->data);
  }
  if (data.empty()) return false;
  const at::Tensor buf = at::cat(data, 0);
  int64_t row = 0;
  for (ops::QWeight* w : ws) {
    w->data = buf.narrow(0, row, w->rows);
    row += w->rows;
  }
  return true;
}

std::pair<bool, at::Tensor> packed_linear(const at::Tensor& x, const std::vector<const Linear*>& layers) {
  std::vector<const at::Tensor*> weights, biases;
  for (const Linear* l : layers) {
    weights.push_back(&l->weight);
    biases.push_back(&l->bias);
  }
  // The packed view spans several parameters, which autograd cannot split back: inference only.
  if (at::GradMode::is_enabled())
    for (const auto* list : {&weights, &biases})
      for (const at::Tensor* t : *list)
        if (t->defined() && t->requires_grad()) return {false, {}};
  const ops::QWeight q = packed_qweight(layers);
  const at::Tensor w = q.data.defined() ? at::Tensor() : packed_rows(weights);
  if (!w.defined() && !q.data.defined()) return {false, {}};
  size_t with_bias = 0;
  for (const at::Tensor* b : biases) with_bias += b->defined();
  at::Tensor b;
  if (with_bias > 0) {
    b = with_bias == biases.size() ? packed_rows(biases) : at::Tensor();
    if (!b.defined()) return {false, {}};
  }
  if (q.data.defined()) return {true, ops::qmatmul(x, q, b)};
  return {true, at::linear(x, w, b)};
}

}  // namespace jet::model
