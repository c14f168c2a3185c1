"""PyTorch references for `scripts/bench pipeline`, measured in the same run: the GPT and recipe of step_torch.py
(imported from beside this file) trained by two processes of one thread each over Gloo on 127.0.0.1.

pp2: a hand-written two-stage pipeline (stage 0: the embeddings and the first half of the blocks; stage 1: the
rest, the final norm, the head and the loss), M micro-batches in the 1F1B order, activations and their gradients
sent with isend/recv; global-norm clipping over both stages' gradients (one all_reduce of the squared norms), then
AdamW on each stage's own parameters.
dp2: DistributedDataParallel, each process half the batch; clipping and AdamW on the averaged gradients.

Usage: python3 pipeline_torch.py pp2|dp2 VOCAB D_MODEL N_LAYER N_HEAD SEQ_LEN LN_EPS BATCH MICROBATCHES STEPS WARMUP
Prints one line: torch=<version> mode=<mode> ms_per_step=<median of rank 0's timed steps> min=<min> max=<max>
"""
import math
import os
import socket
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from step_torch import Gpt, adamw, lr_at, median  # noqa: E402  (the step bench reference's model and recipe)


def stage0_forward(model, split, x):
    h = model.embed(x)
    for blk in model.blocks[:split]:
        h = blk(h, model.mask)
    return h


def stage1_loss(model, split, h, y):
    for blk in model.blocks[split:]:
        h = blk(h, model.mask)
    return model.loss(h, y)


def pipeline_step(rank, model, split, params, xs, ys, m, d):
    """One 1F1B step of two stages over m micro-batches: forward sends, backward receives (stage 0), and back."""
    warm = min(1 - rank, m)  # stage 0 runs one forward ahead; stage 1 none
    order = ["F"] * warm
    for _ in range(m - warm):
        order += ["F", "B"]
    order += ["B"] * warm
    outs, sends = [], []
    f = b = 0
    for op in order:
        if op == "F":
            if rank == 0:
                h = stage0_forward(model, split, xs[f])
                sends.append(dist.isend(h.detach(), 1))
                outs.append(h)
            else:
                h = torch.empty(xs[f].shape[0], xs[f].shape[1], d)
                dist.recv(h, 0)
                h.requires_grad_()
                outs.append((h, stage1_loss(model, split, h, ys[f]) / m))
            f += 1
        else:
            if rank == 0:
                g = torch.empty_like(outs[b])
                dist.recv(g, 1)
                outs[b].backward(g)
            else:
                h, loss = outs[b]
                loss.backward()
                sends.append(dist.isend(h.grad, 0))
            outs[b] = None
            b += 1
    for s in sends:
        s.wait()
    sq = torch.zeros(1)
    for p in params:
        if p.grad is not None:
            sq += p.grad.pow(2).sum()
    dist.all_reduce(sq)
    scale = min(1.0, 1.0 / (math.sqrt(sq.item()) + 1e-6))
    for p in params:
        if p.grad is not None:
            p.grad.mul_(scale)


def worker(rank, mode, cfg, batch, m, steps, warmup, port, out):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:%d" % port, rank=rank, world_size=2)
    vocab, d, layers, heads, seq, eps = cfg
    torch.manual_seed(1337)
    model = Gpt(vocab, d, layers, heads, seq, eps)
    split = layers // 2
    if mode == "pp2":
        if rank == 0:
            params = list(model.tok.parameters()) + list(model.pos.parameters()) + [
                p for blk in model.blocks[:split] for p in blk.parameters()]
        else:
            params = [p for blk in model.blocks[split:] for p in blk.parameters()] + list(
                model.ln_f.parameters()) + list(model.lm_head.parameters())
        net = model
    else:
        params = list(model.parameters())
        # the causal mask is a constant bool buffer, which Gloo cannot broadcast
        torch.nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(model, ["mask"])
        net = torch.nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    opt = adamw(params)
    gen = torch.Generator().manual_seed(1337 + rank)
    times = []
    for step in range(warmup + steps):
        rows = batch if mode == "pp2" else batch // 2
        x = torch.randint(0, vocab, (rows, seq), generator=gen)
        y = torch.randint(0, vocab, (rows, seq), generator=gen)
        dist.barrier()
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        opt.zero_grad(set_to_none=True)
        if mode == "pp2":
            pipeline_step(rank, model, split, params, x.chunk(m), y.chunk(m), m, d)
        else:
            net(x, y).backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step >= warmup:
            times.append((time.perf_counter() - t0) * 1e3)
    dist.barrier()
    if rank == 0:
        times.sort()
        out.put("torch=%s mode=%s ms_per_step=%.3f min=%.3f max=%.3f" % (torch.__version__, mode, median(times),
                                                                         times[0], times[-1]))
    dist.destroy_process_group()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv):
    mode = argv[0]
    if mode not in ("pp2", "dp2"):
        raise SystemExit("mode must be pp2 or dp2, not %r" % mode)
    vocab, d, layers, heads, seq = (int(a) for a in argv[1:6])
    eps = float(argv[6])
    batch, m, steps, warmup = (int(a) for a in argv[7:11])
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    port = free_port()
    procs = [ctx.Process(target=worker, args=(r, mode, (vocab, d, layers, heads, seq, eps), batch, m, steps, warmup,
                                              port, out)) for r in range(2)]
    for p in procs:
        p.start()
    deadline = time.monotonic() + 600
    line = None
    while line is None:
        try:
            line = out.get(timeout=1)
        except Exception:  # queue.Empty: the workers still run, or one failed
            failed = [p.exitcode for p in procs if p.exitcode not in (None, 0)]
            if failed or time.monotonic() > deadline:
                for p in procs:
                    p.kill()
                raise SystemExit("pipeline reference failed: exit codes %s" % [p.exitcode for p in procs])
    for p in procs:
        p.join(60)
    print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
