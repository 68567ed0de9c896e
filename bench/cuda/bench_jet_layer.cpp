// Whole-layer JetBlock benchmark at JetBlock-2B shapes (hidden 1536, 12 heads, d_k 96, d_v 256, conv 4),
// bf16 weights and activations, fp32 state; bench/cuda/bench_jetblock_official.py times the official layer
// (fla 0.6.0) on the same shapes. Median of the timed runs after warm-up, CUDA events.
//   decode step, B=256: eager, CUDA-graph replay, and the fused core kernel alone; GB/s counts the state
//     read + write, every weight of the layer once, and the conv tail read + write, against a
//     device-to-device copy measured in the same run
//   prefill B=8×T=4096 and B=1×T=65536 (forward with a state: the CUDA chunked kernels), and the gated
//     delta rule op alone at those shapes (CUDA kernels), and its forward + backward (chunked backward vs
//     autograd through the ATen chunked form)
//   the dynamic conv alone at B=8×T=4096 (CUDA kernel vs ATen path), forward and forward + backward
//   forward + backward B=8×T=4096 (no state, gradients of x and every parameter), the GDN op through the
//     chunked backward and through autograd (JET_LA_BWD=aten)
// JET_BENCH_PARTS (comma list, default all): decode, prefill, op, conv, train — to fit a short device call.
#include <ATen/ATen.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench_util.h"
#include "model/blocks/blocks.h"
#include "ops/dynamic_conv/dynamic_conv.h"
#include "ops/linear_attention/linear_attention.h"
#include "ops/linear_attention/linear_attention_chunk_bwd.h"
#include "ops/linear_attention/linear_attention_step_cuda.h"

using jet::bench::median_ms;

namespace {

std::unique_ptr<jet::model::LinearBlock> make_layer() {
  jet::model::JetBlockConfig c;  // defaults are the 2B layer: 1536, 12 heads, head_dim 96
  c.expand_v = 2.6666666667;     // d_v 256, as jetlm_2B.json
  auto blk = jet::model::make_jet_block(c, 1);
  // The layer's own init leaves the kernel generator at zero; draw it so the conv is input-dependent.
  for (const char* n : {"dynamic_conv1d.kernel_generator.w1.weight", "dynamic_conv1d.kernel_generator.w2.weight"})
    blk->set(n, 0.02 * at::randn(blk->p(n).sizes()));
  blk->to(at::kCUDA, at::kBFloat16);
  return blk;
}

}  // namespace

int main() {
  setvbuf(stdout, nullptr, _IOLBF, 0);  // rows survive a later abort when stdout is a file
  const int64_t D = 1536, H = 12, K = 96, V = 256, W = 4, C = H * V;
  at::manual_seed(0);
  auto bf = at::TensorOptions().device(at::kCUDA).dtype(at::kBFloat16);
  auto f32 = at::TensorOptions().device(at::kCUDA).dtype(at::kFloat);
  auto src = at::empty({256 << 20}, f32), dst = at::empty_like(src);
  const double copy_gbs = 2.0 * src.numel() * 4 / (median_ms([&] { dst.copy_(src); }, 20, 3) * 1e6);
  src = dst = at::Tensor();
  printf("device: %s | copy bandwidth %.0f GB/s (1 GiB, read + write)\n",
         at::cuda::getCurrentDeviceProperties()->name, copy_gbs);

  auto blk = make_layer();
  double weight_bytes = 0;
  for (auto& [name, t] : blk->parameters()) weight_bytes += t.numel() * t.element_size();
  printf("layer weights: %.1f MB\n", weight_bytes / 1e6);
  printf("%-34s %6s %6s %10s %12s %9s %8s\n", "jet layer", "B", "T", "ms", "tok/s", "GB/s", "of copy");
  auto row = [&](const char* what, int64_t B, int64_t T, double ms, double bytes) {
    printf("%-34s %6ld %6ld %10.4f %12.0f", what, B, T, ms, B * T / (ms * 1e-3));
    if (bytes > 0) printf(" %9.0f %7.0f%%", bytes / (ms * 1e6), 100 * bytes / (ms * 1e6) / copy_gbs);
    printf("\n");
  };

  const std::string parts = std::getenv("JET_BENCH_PARTS") ? std::getenv("JET_BENCH_PARTS") : "decode,prefill,op,conv,train";
  auto want = [&](const char* part) { return ("," + parts + ",").find("," + std::string(part) + ",") != std::string::npos; };
  if (want("decode")) {  // decode step
    at::InferenceMode guard;
    const int64_t B = 256;
    const double bytes = 2.0 * B * H * K * V * 4 + weight_bytes + 2.0 * B * C * (W - 1) * 2;
    auto st = blk->init_state(B);
    auto x = at::randn({B, D}, bf);
    row("decode step, eager", B, 1, median_ms([&] { blk->step(x, st); }, 50, 5), bytes);
    // As a model decodes: steps issued back to back (no host sync in between), per step.
    row("decode step, eager, 16 back to back", B, 1,
        median_ms([&] { for (int i = 0; i < 16; ++i) blk->step(x, st); }, 20, 2) / 16, bytes);
    auto stream = c10::cuda::getStreamFromPool();
    {
      c10::cuda::CUDAStreamGuard sg(stream);
      for (int i = 0; i < 3; ++i) blk->step(x, st);
      at::cuda::CUDAGraph graph;
      graph.capture_begin();
      at::Tensor y = blk->step(x, st);
      graph.capture_end();
      row("decode step, CUDA graph", B, 1, median_ms([&] { graph.replay(); }, 50, 5), bytes);
    }
    // The fused core alone (conv + gates + gated delta rule), inputs precomputed.
    auto q = at::randn({B, H, K}, bf), k = at::randn({B, H, K}, bf), v = at::randn({B, C}, bf);
    auto kern = at::randn({B, C, W}, bf), tail = at::zeros({B, C, W - 1}, bf);
    auto a = at::randn({B, H}, bf), b = at::randn({B, H}, bf);
    auto A_log = at::zeros({H}, f32), dt_bias = at::zeros({H}, f32);
    const double core_bytes = 2.0 * B * H * K * V * 4;
    row("  core kernel only (state r+w)", B, 1,
        median_ms([&] { jet::ops::jet_block_step_cuda(q, k, v, kern, tail, a, b, A_log, dt_bias, st.S, 0.1); }, 50, 5),
        core_bytes);
    // The other pieces of the step, each alone on inputs of its shape (GB/s: its weights + inputs + outputs),
    // in step order: what the graph's time beyond the core goes to.
    auto P = [&](const char* n) { return blk->p(n); };
    const at::Tensor w_in = at::cat({P("q_proj.weight"), P("k_proj.weight"), P("v_proj.weight"), P("g_proj.weight"),
                                     P("a_proj.weight"), P("b_proj.weight"),
                                     P("dynamic_conv1d.kernel_generator.w1.weight")}, 0);
    const at::Tensor w2 = P("dynamic_conv1d.kernel_generator.w2.weight"), b2 = P("dynamic_conv1d.kernel_generator.w2.bias");
    const at::Tensor wo = P("o_proj.weight"), norm_w = P("o_norm.weight");
    auto nbytes = [](std::initializer_list<at::Tensor> ts) {
      double n = 0;
      for (const auto& t : ts) n += t.numel() * t.element_size();
      return n;
    };
    const at::Tensor proj = at::linear(x, w_in), hid = at::randn({B, w2.size(1)}, bf), kern_out = at::linear(hid, w2, b2);
    const at::Tensor o = at::randn({B, H, V}, bf), gate = at::randn({B, C}, bf), n = at::randn({B, C}, bf);
    row("  piece: projections GEMM", B, 1, median_ms([&] { at::linear(x, w_in); }, 50, 5), nbytes({x, w_in, proj}));
    row("  piece: SiLU(generator hidden)", B, 1, median_ms([&] { at::silu(hid); }, 50, 5), 2 * nbytes({hid}));
    row("  piece: generator w2 GEMM + bias", B, 1, median_ms([&] { at::linear(hid, w2, b2); }, 50, 5),
        nbytes({hid, w2, b2, kern_out}));
    row("  piece: output gate (RMSNorm·SiLU)", B, 1,
        median_ms([&] { jet::ops::gated_rms_norm_step_cuda(o, gate, norm_w, 1e-5); }, 50, 5), nbytes({o, gate, n}));
    row("  piece: o_proj GEMM", B, 1, median_ms([&] { at::linear(n, wo); }, 50, 5), nbytes({n, wo, x}));
  }
  for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{8, 4096}, {1, 65536}}) {  // prefill
    if (!want("prefill")) break;
    at::InferenceMode guard;
    auto x = at::randn({B, T, D}, bf);
    double ms = median_ms([&] {
      auto st = blk->init_state(B);
      blk->forward(x, &st);
    }, 20, 3);
    row("prefill (CUDA chunked kernels)", B, T, ms, 0);
  }
  // The gated delta rule op alone at the layer's head shapes (initial state in, final state out, q/k L2
  // norm inside): the CUDA chunked kernels (forward only), and forward + backward (gradients of q, k, v,
  // g, β and the initial state) through the chunked backward (linear_attention_chunk_bwd.h) and through
  // autograd on the ATen chunked form (JET_LA_BWD=aten, the path before it).
  for (auto [B, T] : std::vector<std::pair<int64_t, int64_t>>{{8, 4096}, {1, 65536}}) {
    if (!want("op")) break;
    jet::ops::LinearAttentionInput in;
    in.q = at::randn({B, T, H, K}, bf);
    in.k = at::randn({B, T, H, K}, bf);
    in.v = at::randn({B, T, H, V}, bf);
    in.g = -at::softplus(at::randn({B, T, H}, f32) - 2.5);
    in.beta = at::sigmoid(at::randn({B, T, H}, f32));
    in.initial_state = at::randn({B, H, K, V}, f32);
    jet::ops::LinearAttentionOptions opt;
    opt.decay = jet::ops::Decay::scalar;
    opt.delta = true;
    opt.qk_l2norm = true;
    {
      at::InferenceMode guard;
      row("  GDN op alone (CUDA chunked)", B, T, median_ms([&] { jet::ops::linear_attention_chunked(in, opt); }, 20, 3), 0);
    }
    {  // the CUDA chunk scan alone, as the backward's reverse pass runs it (every term)
      const int64_t NC = T / jet::ops::kLinearAttentionChunk;
      auto chunk = [&](int64_t X) { return 0.05 * at::randn({B, H, NC, jet::ops::kLinearAttentionChunk, X}, f32); };
      const at::Tensor a = chunk(K), b = chunk(V), w = chunk(K), a2 = chunk(K), b2 = chunk(V);
      const at::Tensor e = at::rand({B, H, NC, 1, 1}, f32), z0 = at::randn({B, H, K, V}, f32);
      row("  chunk scan kernel (reverse pass)", B, T,
          median_ms([&] { jet::ops::detail::chunk_scan(a, b, w, a2, b2, e, z0, true); }, 20, 3), 0);
    }
    for (at::Tensor* t : {&in.q, &in.k, &in.v, &in.g, &in.beta, &in.initial_state}) t->requires_grad_(true);
    const at::Tensor dO = at::randn({B, T, H, V}, bf), dS = at::randn({B, H, K, V}, f32);
    auto fwd_bwd = [&] {
      jet::ops::LinearAttentionOutput out = jet::ops::linear_attention_chunked(in, opt);
      at::Tensor loss = (out.o.to(at::kFloat) * dO).sum() + (out.final_state * dS).sum();
      loss.backward();
      for (at::Tensor* t : {&in.q, &in.k, &in.v, &in.g, &in.beta, &in.initial_state}) t->mutable_grad().reset();
    };
    row("  GDN op fwd+bwd (chunked bwd)", B, T, median_ms(fwd_bwd, 20, 3), 0);
    setenv("JET_LA_BWD_TF32", "1", 1);
    row("  GDN op fwd+bwd (chunked bwd, TF32)", B, T, median_ms(fwd_bwd, 20, 3), 0);
    unsetenv("JET_LA_BWD_TF32");
    setenv("JET_LA_BWD", "aten", 1);
    row("  GDN op fwd+bwd (ATen autograd)", B, T, median_ms(fwd_bwd, B * T > 32768 ? 3 : 10, 1), 0);
    unsetenv("JET_LA_BWD");
  }
  if (want("conv")) {  // the dynamic conv alone at B=8×T=4096 (C = H·V = 3072, W = 4): the CUDA kernel and the ATen path
    const int64_t B = 8, T = 4096;
    auto x = at::randn({B, T, C}, bf), kern = at::randn({B, T, C, W}, bf);
    {
      at::InferenceMode guard;
      row("  dynamic conv alone (CUDA)", B, T, median_ms([&] { jet::ops::dynamic_conv(x, kern, at::Tensor(), true); }, 20, 3), 0);
    }
    x.requires_grad_(true);
    row("  dynamic conv alone (ATen)", B, T, median_ms([&] { jet::ops::dynamic_conv_aten(x, kern, at::Tensor(), true); }, 20, 3), 0);
    // Forward + backward (gradients of x and the kernels): the CUDA forward + backward (custom autograd
    // function) and the ATen path with ATen autograd (the layer's forward + backward below takes the former).
    kern.requires_grad_(true);
    auto dy = at::randn({B, T, C}, bf);
    // GB/s counts the least traffic: forward κ + x read, y written; backward κ, x, dy read, dκ, dx written.
    const double conv_bytes = 2.0 * (2 * B * T * C * W + 5 * B * T * C);
    for (bool cuda : {true, false}) {
      auto conv = [cuda](const at::Tensor& x, const at::Tensor& k, const at::Tensor& tail, bool silu) {
        return cuda ? jet::ops::dynamic_conv(x, k, tail, silu) : jet::ops::dynamic_conv_aten(x, k, tail, silu);
      };
      row(cuda ? "  dynamic conv fwd+bwd (CUDA)" : "  dynamic conv fwd+bwd (ATen)", B, T,
          median_ms([&] {
            x.mutable_grad() = kern.mutable_grad() = at::Tensor();  // fresh gradients, no accumulation
            conv(x, kern, at::Tensor(), true).backward(dy);
          }, 20, 3), conv_bytes);
    }
  }
  if (want("train")) {  // forward + backward of the layer: the GDN op through the chunked backward, then through autograd
    const int64_t B = 8, T = 4096;
    for (auto& [name, t] : blk->parameters()) t.requires_grad_(true);
    auto x = at::randn({B, T, D}, bf).requires_grad_(true);
    auto dy = at::randn({B, T, D}, bf);
    auto fwd_bwd = [&] {
      at::Tensor y = blk->forward(x, nullptr);
      y.backward(dy);
    };
    row("forward + backward (chunked bwd)", B, T, median_ms(fwd_bwd, 20, 3), 0);
    setenv("JET_LA_BWD", "aten", 1);
    row("forward + backward (ATen, autograd)", B, T, median_ms(fwd_bwd, 20, 3), 0);
    unsetenv("JET_LA_BWD");
  }
  return 0;
}
