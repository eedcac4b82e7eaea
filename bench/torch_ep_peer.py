"""PyTorch peer of bench/gpu_ep_bench.c: the EP dispatcher users write.

dispatch: argsort the (token, expert) pairs by expert, gather the rows,
all_to_all_single of the split sizes (then .tolist(): a host sync) and of
the rows; combine: all_to_all_single back, weight, index_add_ into the
output. One row per (token, expert) pair, no deduplication. Random top-k of
E experts as in DeepEP's test. Two (or --ranks) processes, env init, no
torchrun. Prints median ms of the slowest rank and GB/s (received bytes per
rank / time, as DeepEP reports).

    NCCL_NVLS_ENABLE=0 python3 bench/torch_ep_peer.py --tokens 4096
"""
import argparse
import os
import statistics

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def timed(fn, iters, warmup):
    times = []
    for i in range(warmup + iters):
        torch.cuda.synchronize()
        dist.barrier()
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        out = fn()
        b.record()
        b.synchronize()
        if i >= warmup:
            times.append(a.elapsed_time(b))
    return statistics.median(times), out


def worker(rank, args):
    os.environ.setdefault("NCCL_NVLS_ENABLE", "0")
    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", rank=rank, world_size=args.ranks,
                            init_method=f"tcp://127.0.0.1:{args.port}")
    T, H, E, k, R = args.tokens, args.hidden, args.experts, args.topk, args.ranks
    dev = torch.device("cuda", rank)
    g = torch.Generator(device=dev).manual_seed(1234 + rank)
    x = torch.randn(T, H, device=dev, dtype=torch.bfloat16, generator=g)
    scores = torch.rand(T, E, device=dev, generator=g)
    w, idx = torch.topk(scores, k, dim=1)
    per_rank = E // R
    state = {}

    def dispatch():
        flat = idx.flatten()
        order = torch.argsort(flat, stable=True)
        token_of = order // k
        dest = flat[order] // per_rank
        send_counts = torch.bincount(dest, minlength=R)
        recv_counts = torch.empty_like(send_counts)
        dist.all_to_all_single(recv_counts, send_counts)
        sc, rc = send_counts.tolist(), recv_counts.tolist()
        send_x = x[token_of]
        recv_x = x.new_empty(sum(rc), H)
        dist.all_to_all_single(recv_x, send_x, rc, sc)
        state.update(order=order, token_of=token_of, sc=sc, rc=rc)
        return recv_x

    ms_d, recv_x = timed(dispatch, args.iters, args.warmup)
    y = recv_x.clone()  # expert outputs: any values

    def combine():
        back = y.new_empty(sum(state["sc"]), H)
        dist.all_to_all_single(back, y, state["sc"], state["rc"])
        wt = w.flatten()[state["order"]].to(back.dtype)
        out = torch.zeros(T, H, device=dev, dtype=torch.float32)
        out.index_add_(0, state["token_of"], (back * wt[:, None]).float())
        return out.to(torch.bfloat16)

    ms_c, _ = timed(combine, args.iters, args.warmup)
    recv_bytes = recv_x.numel() * 2
    res = torch.tensor([ms_d, ms_c, recv_bytes], dtype=torch.float64, device=dev)
    allres = [torch.empty_like(res) for _ in range(R)]
    dist.all_gather(allres, res)
    if rank == 0:
        d = max(r[0].item() for r in allres)
        c = max(r[1].item() for r in allres)
        rb = max(r[2].item() for r in allres)
        print(f"torch_ep_peer: {R} ranks, {T} tokens/rank, hidden {H}, top-{k} of {E}, bf16")
        print(f"  bytes received per rank (max, one row per pair): {rb * 1e-6:.1f} MB")
        print(f"  {'torch dispatch (argsort + all_to_all_single)':<46} {d:10.4f} ms {rb / d * 1e-6:8.1f} GB/s")
        print(f"  {'torch combine (all_to_all_single + index_add_)':<46} {c:10.4f} ms {rb / c * 1e-6:8.1f} GB/s")
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--tokens", type=int, default=4096)
    p.add_argument("--hidden", type=int, default=7168)
    p.add_argument("--experts", type=int, default=256)
    p.add_argument("--topk", type=int, default=8)
    p.add_argument("--iters", type=int, default=20)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--port", type=int, default=29533)
    args = p.parse_args()
    mp.spawn(worker, args=(args,), nprocs=args.ranks, join=True)


if __name__ == "__main__":
    main()
