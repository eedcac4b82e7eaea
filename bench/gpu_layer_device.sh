#!/bin/bash
# One device call (nvidia-h200-x2) for the GPU MoE layer and the GPU
# dispatch / combine: moep bench --device cuda (verified, per-stage times) for
# FP8 / NVFP4 / MXFP4 experts, gpu_ep_bench before / after (alternated) with
# the raw NCCL floor, the PyTorch peer, the GPU tests. Compact table on
# stdout, logs in $OUT (or out/gpu).
#   bash bench/gpu_layer_device.sh [bundle dir with moep, gpu_test,
#        gpu_ep_bench and, optionally, gpu_ep_bench_before]
set -u
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
B=${1:-bundle/ep}
O=${OUT:-out/gpu}
mkdir -p "$O"
export LD_LIBRARY_PATH=$B:${LD_LIBRARY_PATH:-}
nvidia-smi -L
row() { printf '%-46s %s\n' "$1" "$2"; }
ep_rows() { grep -E '^  (dispatch|combine|raw)' "$1" | sed 's/^  //' | awk -v p="$2" '{printf "  %-8s %s\n", p, $0}'; }

SHAPE="--experts 64 --hidden 1024 --inter 512 --shared-inter 512 --tokens 512 --iters 20 --warmup 3"
: >"$O/layer.log"
for w in fp8 nvfp4 mxfp4; do
    echo "=== --weights $w" >>"$O/layer.log"
    timeout 120 "$B/moep" bench --device cuda --transport nccl --ranks 2 --weights "$w" $SHAPE >>"$O/layer.log" 2>&1
    rc=$?
    row "moep bench --device cuda --weights $w" "rc=$rc $(sed -n "/=== --weights $w/,\$p" "$O/layer.log" | grep -E 'verified|MISMATCH|FAILED' | head -2 | tr '\n' ' ')"
    sed -n "/=== --weights $w/,\$p" "$O/layer.log" | grep -E '^  (route|dispatch|experts|shared|combine|total) ' | tr -s ' ' | tr '\n' ';'
    echo
done

: >"$O/ep.log"
for round in 1 2; do
    for bin in gpu_ep_bench_before gpu_ep_bench; do
        [ -x "$B/$bin" ] || continue
        for t in 4096 128; do
            if [ "$t" = 4096 ]; then it="--iters 20 --warmup 5"; else it="--iters 50 --warmup 10"; fi
            echo "=== $bin T=$t round $round" >>"$O/ep.log"
            timeout 60 "$B/$bin" --ranks 2 --tokens $t $it >"$O/ep_one.txt" 2>&1
            echo "rc=$?" >>"$O/ep_one.txt"
            cat "$O/ep_one.txt" >>"$O/ep.log"
            echo "$bin T=$t round $round"
            ep_rows "$O/ep_one.txt" "$round"
        done
    done
done
rm -f "$O/ep_one.txt"

timeout 150 "$B/gpu_test" >"$O/gpu_test.log" 2>&1
row "gpu_test (2 GPUs)" "rc=$? $(grep -E 'Checks' "$O/gpu_test.log" | tr '\n' ' ')"

: >"$O/torch.log"
for t in 4096 128; do
    if [ "$t" = 4096 ]; then it=""; else it="--iters 50"; fi
    echo "=== torch T=$t" >>"$O/torch.log"
    PYTHONUNBUFFERED=1 timeout 120 python3 bench/torch_ep_peer.py --tokens $t $it >>"$O/torch.log" 2>&1
    echo "torch peer T=$t rc=$?"
    sed -n "/=== torch T=$t/,\$p" "$O/torch.log" | grep -iE 'dispatch|combine' | head -4
done
echo "=== layer tables"
grep -E '^moep bench|tokens/rank|^  [a-z]+ +[0-9.]+$|verified|expert GFLOP' "$O/layer.log"
