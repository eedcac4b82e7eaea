"""Peers for bench/gpu_ffn_bench.cu on the same GPU, same run (issue 6).

d2d copy bandwidth, one 8192^3 FP8 torch._scaled_mm, the prefill FFN as
torch._scaled_mm per expert (rowwise scales, and 1x128 / 128x128 block
scales as moep's FP8 path uses; bf16 out), and the decode FFN with
bf16 weights as torch.matmul per expert, timed per call (host launches
included, median_ms) and as a CUDA-graph replay with L2 flushed (GPU time,
median_gpu_ms). Prints "RESULT name value unit". MOEP_PEER_FP8=bench: the
FP8 operands are gpu_ffn_bench's kind of bytes instead of N(0, 0.25).
"""
import os
import sys

import torch
import torch.nn.functional as F

dev = "cuda"
ITERS = int(sys.argv[1]) if len(sys.argv) > 1 else 20
# FP8 operands: "randn" (N(0, 0.25) rounded to E4M3) or "bench" (gpu_ffn_bench's bytes)
FP8_DATA = os.environ.get("MOEP_PEER_FP8", "randn")


def median_ms(fn, iters=ITERS):
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
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


def fp8(shape):
    if FP8_DATA == "bench":
        # gpu_ffn_bench's FP8 bytes (fill_u8 kind 1): random sign, exponent field 1..8,
        # random mantissa. Under the 700 W cap the tensor cores' rate depends on how
        # many bits toggle, so peers and moep must multiply the same kind of data.
        r = torch.randint(0, 1 << 16, shape, device=dev, dtype=torch.int32)
        b = (r & 0x80) | ((1 + (r >> 8) % 8) << 3) | ((r >> 4) & 7)
        return b.to(torch.uint8).view(torch.float8_e4m3fn)
    return (torch.randn(shape, device=dev) * 0.5).to(torch.float8_e4m3fn)


def res(name, v, unit):
    print(f"RESULT {name} {v:.4g} {unit}", flush=True)


FLUSH = torch.ones(64 << 20, dtype=torch.int32, device=dev)  # 256 MB
FLUSH_MEMSET = len(sys.argv) > 2 and sys.argv[2] == "memset"


def median_gpu_ms(fn, iters=ITERS):
    """GPU time per call as gpu_ffn_bench's median_gpu_ms takes it: fn is
    captured in a CUDA graph (no host latency between its kernels), L2 is
    flushed before each replay by reading 256 MB (clean lines; argv[2] ==
    "memset": by a memset, dirty lines), the host never waits inside the
    loop."""
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(s)
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        fn()
    for _ in range(3):
        g.replay()
    ev = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
    for i, (a, b) in enumerate(ev):
        if FLUSH_MEMSET:
            FLUSH.fill_(i & 0xFF)
        else:
            FLUSH.max()
        a.record()
        g.replay()
        b.record()
    torch.cuda.synchronize()
    ts = sorted(a.elapsed_time(b) for a, b in ev)
    return ts[len(ts) // 2]


# device-to-device copy, bytes read + written
src = torch.randn(512 * 1024 * 1024, device=dev)  # 2 GiB
dst = torch.empty_like(src)
ms = median_ms(lambda: dst.copy_(src))
res("copy_rw_TBps", 2 * src.numel() * 4 / ms / 1e9, "TB/s")
del src, dst

one = torch.ones((), device=dev)
M = 8192
a, bt = fp8((M, M)), fp8((M, M))
ms = median_ms(lambda: torch._scaled_mm(a, bt.t(), scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
res("scaled_mm_8192_tflops", 2 * M**3 / ms / 1e9, "TFLOP/s")
del a, bt

E, T, H, I = 8, 4096, 7168, 2048
xq = [fp8((T, H)) for _ in range(E)]
w13 = [fp8((2 * I, H)) for _ in range(E)]
w2 = [fp8((H, I)) for _ in range(E)]
hq = [fp8((T, I)) for _ in range(E)]


# Rowwise scales (cuBLAS's fastest FP8 path), and the same scaling as moep's FP8
# path: activations 1x128 (outer-dim-major, as cuBLAS wants them), weights
# 128x128 (scale_b.t() is the [N/128, K/128] grid). h_block: h's quantization block.
def outer_major(rows, cols):
    return (torch.rand(cols, rows, device=dev) + 0.5).t()


ROWWISE = dict(x=torch.rand(T, 1, device=dev) + 0.5, w13=torch.rand(1, 2 * I, device=dev) + 0.5,
               h=torch.rand(T, 1, device=dev) + 0.5, w2=torch.rand(1, H, device=dev) + 0.5, h_block=I)
BLOCK = dict(x=outer_major(T, H // 128), w13=(torch.rand(2 * I // 128, H // 128, device=dev) + 0.5).t(),
             h=outer_major(T, I // 128), w2=(torch.rand(H // 128, I // 128, device=dev) + 0.5).t(), h_block=128)


def gemms(sc):
    for e in range(E):
        torch._scaled_mm(xq[e], w13[e].t(), scale_a=sc["x"], scale_b=sc["w13"], out_dtype=torch.bfloat16)
        torch._scaled_mm(hq[e], w2[e].t(), scale_a=sc["h"], scale_b=sc["w2"], out_dtype=torch.bfloat16)


def quant_h(h, block):
    """h [T, I] -> FP8 and f32 scales (amax / 448) per row per block channels,
    the scales in the layout _scaled_mm wants for that scaling."""
    hb = h.view(T, I // block, block)
    s = hb.abs().amax(dim=2, keepdim=True).float().clamp(min=1e-12) / 448.0
    q = (hb / s).to(torch.float8_e4m3fn).view(T, I)
    s = s.view(T, I // block)
    return q, (s if block == I else s.t().contiguous().t())


def ffn(sc):
    for e in range(E):
        gu = torch._scaled_mm(xq[e], w13[e].t(), scale_a=sc["x"], scale_b=sc["w13"], out_dtype=torch.bfloat16)
        q, s = quant_h(F.silu(gu[:, :I]) * gu[:, I:], sc["h_block"])
        torch._scaled_mm(q, w2[e].t(), scale_a=s, scale_b=sc["w2"], out_dtype=torch.bfloat16)


flop = 6.0 * E * T * H * I
try:
    res("torch_prefill_gemms_tflops", flop / median_ms(lambda: gemms(ROWWISE)) / 1e9, "TFLOP/s")
    res("torch_prefill_ffn_tflops", flop / median_ms(lambda: ffn(ROWWISE)) / 1e9, "TFLOP/s")
except Exception as ex:  # rowwise scaling not available
    print("torch prefill peer failed:", ex)
try:
    res("torch_prefill_block_gemms_tflops", flop / median_ms(lambda: gemms(BLOCK)) / 1e9, "TFLOP/s")
    res("torch_prefill_block_ffn_tflops", flop / median_ms(lambda: ffn(BLOCK)) / 1e9, "TFLOP/s")
except Exception as ex:  # blockwise scaling not available (needs cuBLAS 12.9+)
    print("torch blockwise prefill peer failed:", ex)
del xq, w13, w2, hq

W13 = [torch.randn(2 * I, H, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(E)]
W2 = [torch.randn(H, I, device=dev, dtype=torch.bfloat16) * 0.02 for _ in range(E)]
wbytes = E * 3 * I * H * 2
for t in (1, 16, 64):
    xs = [torch.randn(t, H, device=dev, dtype=torch.bfloat16) for _ in range(E)]

    def dec():
        for e in range(E):
            gu = torch.matmul(xs[e], W13[e].t())
            torch.matmul(F.silu(gu[:, :I]) * gu[:, I:], W2[e].t())

    ms = median_ms(dec)
    res(f"torch_decode_bf16_T{t}_us", ms * 1e3, "us")
    res(f"torch_decode_bf16_T{t}_weight_TBps", wbytes / ms / 1e9, "TB/s")
    ms = median_gpu_ms(dec)
    res(f"torch_decode_bf16_T{t}_graph_gpu_us", ms * 1e3, "us")
