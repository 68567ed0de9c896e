// LinearMixer's rows of an engine state: the block runs on views of the shared state's rows; the
// chunked forward returns new state tensors, which are copied back into those rows. RetNet rotates q/k
// by the state's offset, one number for all rows: its decode runs rows at different positions one by
// one, from the host's positions (so it is never captured in a CUDA graph).
#include <ATen/ATen.h>

#include <algorithm>

#include "core/check.h"
#include "core/shape.h"
#include "model/linear_mixer.h"

namespace jet::model {
namespace {

// Rows [row, row + n) of s as views (S [n, H, K, V], conv tails [n, C, W-1]).
BlockState rows_of(const BlockState& s, int64_t row, int64_t n) {
  JET_CHECK(row >= 0 && row + n <= s.S.size(0), "linear state rows [{}, {}) outside its {} rows", row, row + n,
            s.S.size(0));
  BlockState r;
  r.S = s.S.narrow(0, row, n);
  for (const auto& t : s.conv) r.conv.push_back(t.narrow(0, row, n));
  return r;
}

// After the block ran on `work` (started as a copy of `rows`): tensors it replaced go back into the rows.
void write_back(const BlockState& work, BlockState& rows) {
  if (!work.S.is_same(rows.S)) rows.S.copy_(work.S);
  for (size_t i = 0; i < rows.conv.size(); ++i)
    if (!work.conv[i].is_same(rows.conv[i])) rows.conv[i].copy_(work.conv[i]);
}

}  // namespace

at::Tensor LinearMixer::forward_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state,
                                     int64_t row) {
  BlockState rows = rows_of(static_cast<LinearState&>(state).block, row, x.size(0));
  if (ctx.start_pos == 0) {  // a fresh sequence in a reused slot
    rows.S.zero_();
    for (auto& t : rows.conv) t.zero_();
  }
  rows.offset = ctx.start_pos;
  BlockState work = rows;
  at::Tensor y = x.size(1) == 1 ? block_->step(x.select(1, 0), work).unsqueeze(1) : block_->forward(x, &work);
  write_back(work, rows);
  return y;
}

bool LinearMixer::decode_rows_cpu(const float* x, const CpuStep& step, MixerState& state, float* out) {
  BlockState& all = static_cast<LinearState&>(state).block;
  JET_CHECK(step.batch <= all.S.size(0), "linear decode: {} rows for a state of {}", step.batch, all.S.size(0));
  return !decode_needs_host() && block_->step_cpu(x, step.batch, all, out);
}

bool LinearMixer::decode_needs_host() const { return block_->type() == "retnet"; }

at::Tensor LinearMixer::decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) {
  JET_CHECK(x.dim() == 3 && x.size(1) == 1, "linear decode_rows: x {} must be [B, 1, D]", shape_str(x.sizes()));
  BlockState& all = static_cast<LinearState&>(state).block;
  const int64_t B = x.size(0);
  // Rows [row, row + n) at position pos (the offset only RetNet reads).
  auto run = [&](int64_t row, int64_t n, int64_t pos) {
    BlockState rows = rows_of(all, row, n);
    rows.offset = pos;
    BlockState work = rows;
    at::Tensor y = block_->step(x.narrow(0, row, n).select(1, 0), work).unsqueeze(1);
    write_back(work, rows);
    return y;
  };
  if (!decode_needs_host()) return run(0, B, 0);
  const auto& pos = ctx.host_positions;
  JET_CHECK(static_cast<int64_t>(pos.size()) == B, "{} decode_rows needs the {} positions on the host",
            block_->type(), B);
  if (std::all_of(pos.begin(), pos.end(), [&](int64_t p) { return p == pos[0]; })) return run(0, B, pos[0]);
  std::vector<at::Tensor> ys;
  for (int64_t b = 0; b < B; ++b) ys.push_back(run(b, 1, pos[b]));
  return at::cat(ys, 0);
}

}  // namespace jet::model
