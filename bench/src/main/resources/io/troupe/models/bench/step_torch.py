"""PyTorch reference for `scripts/bench step`: the same GPT and training recipe as Troupe's Trainer.

Pre-LN GPT: h = tok_emb[x] + pos_emb[t]; per block h += attn(ln1(h)); h += mlp(ln2(h));
logits = ln_f(h) @ lm_head^T (untied, no bias); LayerNorm eps from the config; causal multi-head
attention with a fused qkv Linear (q|k|v blocks), scale 1/sqrt(head_dim); MLP 4x with GELU (tanh
approximation); no dropout; loss = mean cross-entropy. One step: zero grads, forward, backward,
global-norm clipping, AdamW (weight decay on 2-D weights only) at a warm-up + cosine learning rate.

Usage: python3 step_torch.py VOCAB D_MODEL N_LAYER N_HEAD SEQ_LEN LN_EPS BATCH THREADS STEPS WARMUP
Prints one line: torch=<version> threads=<n> blas=<library> ms_per_step=<median> min=<min> max=<max>
cpu_ms_per_step=<mean process CPU time> loss=<last loss>
"""
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, d, heads, eps):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d, eps=eps)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=eps)
        self.fc = nn.Linear(d, 4 * d)
        self.mlp_proj = nn.Linear(4 * d, d)

    def forward(self, h, mask):
        b, t, d = h.shape
        hd = d // self.heads
        q, k, v = self.qkv(self.ln1(h)).split(d, dim=2)
        q = q.view(b, t, self.heads, hd).transpose(1, 2)
        k = k.view(b, t, self.heads, hd).transpose(1, 2)
        v = v.view(b, t, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))
        att = att.masked_fill(mask[:t, :t], float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(b, t, d)
        h = h + self.proj(y)
        return h + self.mlp_proj(F.gelu(self.fc(self.ln2(h)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self, vocab, d, layers, heads, seq, eps):
        super().__init__()
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Embedding(seq, d)
        self.blocks = nn.ModuleList([Block(d, heads, eps) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d, eps=eps)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.register_buffer("mask", torch.ones(seq, seq, dtype=torch.bool).triu(1))
        for name, p in self.named_parameters():
            if p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)

    def embed(self, x):
        return self.tok(x) + self.pos(torch.arange(x.shape[1]))

    def loss(self, h, y):
        logits = self.lm_head(self.ln_f(h))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), y.view(-1))

    def forward(self, x, y):
        h = self.embed(x)
        for blk in self.blocks:
            h = blk(h, self.mask)
        return self.loss(h, y)


def adamw(params):
    """AdamW with weight decay on the 2-D weights only."""
    params = list(params)
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    return torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                             lr=1e-3, betas=(0.9, 0.95), eps=1e-8)


def lr_at(step, total=1_000_000):
    """Linear warm-up over a tenth of total steps, then cosine from 1e-3 down to 1e-4."""
    warm = total // 10
    if step < warm:
        return 1e-3 * (step + 1) / warm
    return 1e-4 + 0.5 * (1e-3 - 1e-4) * (1 + math.cos(math.pi * (step - warm) / (total - warm)))


def blas_library():
    """The BLAS library this process loaded (an OpenBLAS one when present), from /proc/self/maps."""
    try:
        with open("/proc/self/maps") as f:
            paths = {os.path.realpath(line.split()[-1]) for line in f if "blas" in line.lower() and "/" in line}
    except OSError:
        return "unknown"
    names = sorted({os.path.basename(p) for p in paths if "lapack" not in os.path.basename(p)})
    preferred = [n for n in names if "openblas" in n]
    return ",".join(preferred or names) or "none"


def main(argv):
    vocab, d, layers, heads, seq = (int(a) for a in argv[:5])
    eps = float(argv[5])
    batch, threads, steps, warmup = (int(a) for a in argv[6:10])
    torch.set_num_threads(threads)
    torch.manual_seed(1337)
    model = Gpt(vocab, d, layers, heads, seq, eps)
    opt = adamw(model.parameters())
    gen = torch.Generator().manual_seed(1337)
    times = []
    cpu0 = 0.0
    for step in range(warmup + steps):
        if step == warmup:
            cpu0 = time.process_time()
        x = torch.randint(0, vocab, (batch, seq), generator=gen)
        y = torch.randint(0, vocab, (batch, seq), generator=gen)
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss = model(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    cpu_ms = (time.process_time() - cpu0) * 1e3 / steps
    times.sort()
    print("torch=%s threads=%d blas=%s ms_per_step=%.3f min=%.3f max=%.3f cpu_ms_per_step=%.3f loss=%.4f"
          % (torch.__version__, torch.get_num_threads(), blas_library(), median(times), times[0], times[-1], cpu_ms,
             loss.item()))


def median(values):
    v = sorted(values)
    n = len(v)
    return v[n // 2] if n % 2 else (v[n // 2 - 1] + v[n // 2]) / 2


if __name__ == "__main__":
    main(sys.argv[1:])
