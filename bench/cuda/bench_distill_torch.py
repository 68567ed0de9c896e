"""PyTorch baselines of the PostNAS distillation step (issue 12), timed as a user would write them, for the
same teacher, batch and sequence length as `bench_postnas_step` / `jet postnas supernet`:

  copy      HF transformers: the student is a full-attention copy of the teacher (fp32 weights, bf16 autocast),
            only its attention projections train (MLPs, norms, embeddings frozen, as in PostNAS); loss
            KL(teacher ‖ student) over full fp32 logits; fused AdamW (torch.optim.AdamW(fused=True)).
  official  the same, with every layer's attention replaced by the official JetBlock (NVlabs/Jet-Nemotron,
            fla 0.6.0 Triton kernels; tests/py/official_jetblock.py), sized as jet's supernet blocks
            (num_heads = teacher heads, head_dim = teacher head_dim, expand_v 1, conv 4, reduction 8).
            fla 0.6.0 refuses its gated backward on Hopper with this Triton ("incorrect results for gated
            chunk_bwd_dqkwg"); for TIMING ONLY the guard's Hopper flag is switched off (results unused).

Usage: python3 bench_distill_torch.py HF_TEACHER_DIR [--batch 16] [--seq-len 512] [--steps 20] [--students copy,official]
Prints one row per student: ms/step, tok/s (CUDA events over `steps` steps after 3 warm-up steps)."""
import argparse
import copy
import sys
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM


def kl_loss(student_logits, teacher_logits):
    ls = F.log_softmax(student_logits.float(), -1)
    lt = F.log_softmax(teacher_logits.float(), -1)
    return F.kl_div(ls.flatten(0, 1), lt.flatten(0, 1), log_target=True, reduction="batchmean")


class OfficialMixer(torch.nn.Module):
    """An HF decoder layer's self_attn slot holding the official JetBlock (returns (output, None))."""

    def __init__(self, block):
        super().__init__()
        self.block = block

    def forward(self, hidden_states, **_):
        return self.block(hidden_states)[0], None


def official_student(teacher_dir, cfg):
    sys.path.insert(0, "tests/py")
    import official_jetblock
    JetBlock, JetBlockConfig = official_jetblock.load()
    import fla.ops.common.chunk_o as chunk_o
    chunk_o.IS_NVIDIA_HOPPER = False  # timing only: see the module docstring
    student = AutoModelForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32)
    jcfg = JetBlockConfig(mode="chunk", expand_v=1.0, num_heads=cfg.num_attention_heads,
                          head_dim=cfg.hidden_size // cfg.num_attention_heads, norm_eps=1e-5, conv_size=4,
                          dconv_generator_reduction=8, dconv_implementation="triton")
    for i, layer in enumerate(student.model.layers):
        layer.self_attn = OfficialMixer(JetBlock(hidden_size=cfg.hidden_size, initializer_range=0.02, layer_idx=i,
                                                 jet_block_config=jcfg))
    return student


def time_student(name, student, teacher, batch, seq_len, steps, vocab):
    for n, p in student.named_parameters():
        p.requires_grad_(".self_attn." in n)
    params = [p for p in student.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4, fused=True)
    student.train()
    gen = torch.Generator().manual_seed(0)

    def step():
        ids = torch.randint(0, vocab, (batch, seq_len), generator=gen).pin_memory().cuda(non_blocking=True)
        with torch.no_grad():
            t_logits = teacher(input_ids=ids).logits
        with torch.autocast("cuda", dtype=torch.bfloat16):
            s_logits = student(input_ids=ids).logits
        loss = kl_loss(s_logits, t_logits)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    for _ in range(3):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    losses = [step() for _ in range(steps)]
    torch.cuda.synchronize()
    ms = (time.perf_counter() - t0) * 1e3 / steps
    n_train = sum(p.numel() for p in params)
    print(f"{name:34s} {batch:4d} x {seq_len:5d} {ms:10.1f} ms/step {batch * seq_len / (ms * 1e-3):10.0f} tok/s"
          f"   ({n_train / 1e6:.1f} M trainable, last loss {torch.stack(losses)[-1].item():.4f})", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("teacher")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--students", default="copy,official")
    a = ap.parse_args()
    torch.manual_seed(0)
    teacher = AutoModelForCausalLM.from_pretrained(a.teacher, dtype=torch.bfloat16).cuda().eval()
    cfg = teacher.config
    print(f"device: {torch.cuda.get_device_name()} | torch {torch.__version__} | teacher {a.teacher}: "
          f"{cfg.num_hidden_layers} layers, d {cfg.hidden_size}")
    for name in a.students.split(","):
        try:
            if name == "copy":
                student = copy.deepcopy(teacher).float()
                label = "HF student = teacher copy"
            elif name == "official":
                student = official_student(a.teacher, cfg)
                label = "HF + official JetBlock (fla)"
            else:
                raise ValueError(f"unknown student '{name}' (copy, official)")
            time_student(label, student.cuda(), teacher, a.batch, a.seq_len, a.steps, cfg.vocab_size)
            del student
            torch.cuda.empty_cache()
        except Exception as e:  # one line per refusal, the other rows still run
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            print(f"{name}: failed: {type(e).__name__}: {msg[:200]}", flush=True)


if __name__ == "__main__":
    main()
