"""The official JetBlock (NVlabs/Jet-Nemotron on flash-linear-attention 0.6.0) timed on the shapes of
bench_jet_layer.cpp, for the side-by-side table in bench/RESULTS.md: JetBlock-2B layer (hidden 1536, 12
heads, d_k 96, d_v 256, conv 4), bf16 weights, fp32 state; median of the timed runs after warm-up, CUDA
events. Decode: one token for B=256 through the layer's cache (fused_recurrent_gated_delta_rule + the
Triton conv step), GB/s counted as in bench_jet_layer.cpp. Prefill: chunk mode (eval, use_cache). Forward +
backward: train mode (chunk_gated_delta_rule's backward; reported as refused if fla refuses it).
Needs the official code folder and fla on PYTHONPATH (tests/py/official_jetblock.py says how)."""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "py"))
import official_jetblock  # noqa: E402
from official_jetblock import StateCache  # noqa: E402

D, H, K, V, W = 1536, 12, 96, 256, 4


def median_ms(fn, iters, warmup):
    for _ in range(warmup):
        fn()
    ts = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        ts.append(a.elapsed_time(b))
    ts.sort()
    return ts[len(ts) // 2]


def main():
    # OFFICIAL_PARTS (comma list, default all): decode, prefill, train, op — to fit a short device call.
    parts = set(os.environ.get("OFFICIAL_PARTS", "decode,prefill,train,op").split(","))
    JetBlock, JetBlockConfig = official_jetblock.load()
    if os.environ.get("OFFICIAL_TIME_HOPPER_BWD") == "1":
        # fla 0.6.0 refuses its gated backward on Hopper with this Triton ("incorrect results for gated
        # chunk_bwd_dqkwg"); with this knob its Hopper flag is switched off so the backward can be TIMED (its
        # results are not used anywhere).
        import fla.ops.common.chunk_o as chunk_o
        chunk_o.IS_NVIDIA_HOPPER = False
        print("fla's Hopper backward guard switched off for timing (OFFICIAL_TIME_HOPPER_BWD=1)")
    torch.manual_seed(0)
    src = torch.empty(256 << 20, device="cuda")
    dst = torch.empty_like(src)
    copy_gbs = 2 * src.numel() * 4 / (median_ms(lambda: dst.copy_(src), 20, 3) * 1e6)
    del src, dst
    print(f"device: {torch.cuda.get_device_name()} | copy bandwidth {copy_gbs:.0f} GB/s (1 GiB, read + write)")
    cfg = JetBlockConfig(mode="chunk", expand_v=2.6666666667, num_heads=H, head_dim=K, norm_eps=1e-5, conv_size=W,
                         dconv_generator_reduction=8, dconv_implementation="triton")
    blk = JetBlock(hidden_size=D, initializer_range=0.02, layer_idx=0, jet_block_config=cfg)
    with torch.no_grad():
        for n in ("w1", "w2"):
            getattr(blk.dynamic_conv1d.kernel_generator, n).weight.normal_(0, 0.02)
    blk = blk.to("cuda", torch.bfloat16)
    weight_bytes = sum(p.numel() * p.element_size() for p in blk.parameters())
    print(f"layer weights: {weight_bytes / 1e6:.1f} MB")
    print(f"{'official layer (fla 0.6.0)':34s} {'B':>6s} {'T':>6s} {'ms':>10s} {'tok/s':>12s} {'GB/s':>9s} {'of copy':>8s}")

    def row(what, B, T, ms, nbytes=0):
        line = f"{what:34s} {B:6d} {T:6d} {ms:10.4f} {B * T / (ms * 1e-3):12.0f}"
        if nbytes:
            line += f" {nbytes / (ms * 1e6):9.0f} {100 * nbytes / (ms * 1e6) / copy_gbs:7.0f}%"
        print(line, flush=True)

    blk.eval()
    with torch.no_grad():
        B = 256
        cache = StateCache()
        cache.states = [{"recurrent_state": torch.zeros(B, H, K, V, device="cuda"),
                         "conv_state": torch.zeros(B, H * V, W, device="cuda", dtype=torch.bfloat16)}]
        x = torch.randn(B, 1, D, device="cuda", dtype=torch.bfloat16)
        nbytes = 2 * B * H * K * V * 4 + weight_bytes + 2 * B * H * V * (W - 1) * 2
        if "decode" in parts:
            step = lambda: blk(x, past_key_value=cache, use_cache=True)  # noqa: E731
            row("decode step, eager", B, 1, median_ms(step, 50, 5), nbytes)

            def back_to_back():  # as a model decodes: no host sync between the steps
                for _ in range(16):
                    step()
            row("decode step, eager, 16 back to back", B, 1, median_ms(back_to_back, 20, 2) / 16, nbytes)
            try:  # the same step captured in a CUDA graph (the official code does not do this itself)
                s = torch.cuda.Stream()
                s.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(s):
                    for _ in range(3):
                        step()
                torch.cuda.current_stream().wait_stream(s)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    step()
                row("decode step, CUDA graph", B, 1, median_ms(graph.replay, 50, 5), nbytes)
            except Exception as e:  # noqa: BLE001 — report and go on
                print(f"{'decode step, CUDA graph':34s} {B:6d} {1:6d}   capture failed: {type(e).__name__}: {str(e)[:120]}")
        for B, T in ((8, 4096), (1, 65536)) if "prefill" in parts else ():
            x = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)
            row("prefill (chunk mode)", B, T,
                median_ms(lambda: blk(x, past_key_value=StateCache(), use_cache=True), 20, 3))
            del x
    blk.train()
    B, T = 8, 4096
    x = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn(B, T, D, device="cuda", dtype=torch.bfloat16)

    def fwd_bwd():
        y = blk(x)[0]
        y.backward(dy)

    try:
        if "train" in parts:
            row("forward + backward", B, T, median_ms(fwd_bwd, 20, 3))
    except Exception as e:  # fla may refuse its GDN backward on Hopper with this Triton
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        print(f"{'forward + backward':34s} {B:6d} {T:6d}   refused: {type(e).__name__}: {msg[:160]}")
    del x, dy
    with torch.no_grad():
        # The gated delta rule op alone (2B head shapes, initial state in, final state out, q/k L2 norm
        # inside), as bench_jet_layer.cpp times jet's kernel.
        try:
            from fla.ops.gated_delta_rule import chunk_gated_delta_rule
            for B, T in ((8, 4096), (1, 65536)) if "op" in parts else ():
                bf = dict(device="cuda", dtype=torch.bfloat16)
                q, k = torch.randn(B, T, H, K, **bf), torch.randn(B, T, H, K, **bf)
                v = torch.randn(B, T, H, V, **bf)
                g = -torch.nn.functional.softplus(torch.randn(B, T, H, device="cuda") - 2.5)
                beta = torch.sigmoid(torch.randn(B, T, H, **bf))
                h0 = torch.randn(B, H, K, V, device="cuda")
                row("  GDN op alone (fla chunk)", B, T, median_ms(
                    lambda: chunk_gated_delta_rule(q, k, v, g, beta, scale=K ** -0.5, initial_state=h0,
                                                   output_final_state=True, use_qk_l2norm_in_kernel=True), 20, 3))
                del q, k, v, g, beta, h0
        except Exception as e:
            print(f"  GDN op alone (fla chunk): failed: {type(e).__name__}: {str(e)[:160]}")


if __name__ == "__main__":
    main()
