#!/usr/bin/env bash
# On the device machine: SASS check, GPU FFN tests, benchmark and torch peers,
# from binaries built by tools/gpu_ffn_build.sh (carried in bundle/gemm).
# Logs go to $OUT (or ./out).
set -u
B=${B:-bundle/gemm}
O=${OUT:-out}
mkdir -p "$O"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
echo "== SASS (tensor-core instructions in the benchmark binary)"
cuobjdump -sass "$B/gpu_ffn_bench" | grep -oE "\b(QGMMA|HGMMA|HMMA)[.A-Z0-9x]*" | sort | uniq -c | tee "$O/sass.txt"
echo "== tests"
CK_DEFAULT_TIMEOUT=240 timeout 280 "$B/gpu_ffn_test" 2>&1 | tee "$O/test.log"
echo "test rc=${PIPESTATUS[0]}"
echo "== bench"
timeout 150 "$B/gpu_ffn_bench" ${ITERS:-20} 2>&1 | tee "$O/bench.log"
echo "== torch peers"
PYTHONUNBUFFERED=1 timeout 150 python3 "$B/torch_ffn_peer.py" ${ITERS:-20} 2>&1 | tee "$O/peer.log"
echo "== summary"
grep -h RESULT "$O/bench.log" "$O/peer.log"
