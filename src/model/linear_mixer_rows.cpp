// LinearMixer's rows of an engine state: the block runs on views of the shared state's rows; the
// chunked forward returns new state tensors, which are copied back into those rows.
#include <ATen/ATen.h>

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

at::Tensor LinearMixer::decode_rows(const at::Tensor& x, const ForwardContext& ctx, MixerState& state) {
  // RetNet rotates q/k by the state's offset, one number for all rows: rows at different positions
  // would share it.
  JET_CHECK(block_->type() != "retnet", "retnet layers cannot decode through the engine yet (their rotary "
            "position is one number per state, not per sequence)");
  JET_CHECK(x.dim() == 3 && x.size(1) == 1, "linear decode_rows: x {} must be [B, 1, D]", shape_str(x.sizes()));
  BlockState rows = rows_of(static_cast<LinearState&>(state).block, 0, x.size(0));
  BlockState work = rows;
  at::Tensor y = block_->step(x.select(1, 0), work).unsqueeze(1);
  write_back(work, rows);
  return y;
}

}  // namespace jet::model
