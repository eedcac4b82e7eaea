#!/usr/bin/env bash
# Build the GPU expert FFN (issue 6) test and benchmark with nvcc directly, for
# the device machine (sm_90a), into bundle/gemm/ (git-ignored). Used until the
# Bazel CUDA macro (compute/cuda/cuda.bzl, --config=cuda) builds these targets.
#   [NVFLAGS=-D...] tools/gpu_ffn_build.sh [out_dir]   (NVFLAGS: kernel tuning macros)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bundle/gemm}
CUDA=${CUDA_HOME:-/usr/local/cuda}
NVCC="$CUDA/bin/nvcc"
ARCH="-gencode=arch=compute_90a,code=sm_90a"
OBJ="$OUT/obj"
GOMP=$(gcc -print-file-name=libgomp.a)
mkdir -p "$OBJ"
INC="-I. -Iapi -Icompute/cuda/ffn -Icompute/quant -Itests/common -Itests/gpu_ffn -I$CUDA/include"
CFLAGS="-O2 -fopenmp -std=gnu11 -fno-trapping-math -Wall -Wno-unused-function"

lib_c="api/log.c api/status.c api/tensor.c compute/weight_format.c compute/quant/*.c
       compute/cuda/ffn/ffn_cuda_api.c compute/cuda/ffn/ffn_cuda_check.c compute/cuda/ffn/ffn_pack_api.c"
[ -f api/row_ops.c ] && lib_c="$lib_c api/row_ops.c"
objs=()
for f in $lib_c; do
    o="$OBJ/$(echo "$f" | tr / _).o"
    gcc $CFLAGS $INC -c "$f" -o "$o"
    objs+=("$o")
done
pids=()
for f in compute/cuda/ffn/*.cu; do
    [ -n "${SKIP_CU:-}" ] && [ -f "$OBJ/$(echo "$f" | tr / _).o" ] && { objs+=("$OBJ/$(echo "$f" | tr / _).o"); continue; }
    o="$OBJ/$(echo "$f" | tr / _).o"
    "$NVCC" $ARCH -O3 -std=c++17 ${NVFLAGS:-} $INC -Xptxas -v -c "$f" -o "$o" 2>"$o.log" &
    pids+=($!)
    objs+=("$o")
done
for p in "${pids[@]}"; do wait "$p"; done
grep -h -E "spill|registers" "$OBJ"/*.cu.o.log | sort | uniq -c | sort -rn | head -8 || true

tobjs=()
for f in tests/common/test_util.c tests/gpu_ffn/*.c; do
    o="$OBJ/$(echo "$f" | tr / _).o"
    gcc $CFLAGS $INC -c "$f" -o "$o"
    tobjs+=("$o")
done
"$NVCC" $ARCH -o "$OUT/gpu_ffn_test" "${objs[@]}" "${tobjs[@]}" \
    /usr/lib/x86_64-linux-gnu/libcheck.a /usr/lib/x86_64-linux-gnu/libsubunit.a $GOMP -lm -lpthread -lrt
if [ -f bench/gpu_ffn_bench.cu ]; then
    "$NVCC" $ARCH -O3 -std=c++17 $INC -o "$OUT/gpu_ffn_bench" bench/gpu_ffn_bench.cu "${objs[@]}" $GOMP -lm -lpthread
    cp bench/torch_ffn_peer.py "$OUT/"
fi
# The device script (bundle/gemm/gpu_ffn_device.sh): SASS check, tests, benchmark,
# torch peers, and a before/after table against the first H200 run (2026-11-23).
cat > "$OUT/gpu_ffn_device.sh" <<'DEV'
#!/usr/bin/env bash
set -u
B=${B:-bundle/gemm}
O=${OUT:-out}
mkdir -p "$O"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
echo "== SASS (tensor-core / async-copy instructions in the benchmark binary)"
cuobjdump -sass "$B/gpu_ffn_bench" | grep -oE "\b(QGMMA|HGMMA|HMMA|LDGSTS|UBLKCP|LDL|STL)[.A-Z0-9x]*" | sort | uniq -c | tee "$O/sass.txt"
echo "== tests"
CK_DEFAULT_TIMEOUT=240 timeout 200 "$B/gpu_ffn_test" 2>&1 | tail -25 | tee "$O/test.log"
echo "test rc=${PIPESTATUS[0]}"
echo "== bench"
timeout 120 "$B/gpu_ffn_bench" ${ITERS:-20} > "$O/bench.log" 2>&1; echo "bench rc=$?"
echo "== torch peers"
PYTHONUNBUFFERED=1 timeout 120 python3 "$B/torch_ffn_peer.py" ${ITERS:-20} > "$O/peer.log" 2>&1; echo "peer rc=$?"
echo "== before / after"
python3 - "$O/bench.log" "$O/peer.log" <<'PY' | tee "$O/table.txt"
import sys
before = {"prefill_fp8in_tflops": 733, "prefill_bf16in_tflops": 623, "prefill_masked_fp8in_tflops": 703,
          "decode_mxfp4_T1_us": 217, "decode_mxfp4_T16_us": 253, "decode_mxfp4_T64_us": 382,
          "decode_nvfp4_T1_us": 210, "decode_nvfp4_T16_us": 247, "decode_nvfp4_T64_us": 378,
          "decode_fp8_e4m3_T1_us": 166, "decode_fp8_e4m3_T16_us": 169, "decode_fp8_e4m3_T64_us": 173}
vals = {}
for f in sys.argv[1:]:
    for line in open(f, errors="replace"):
        p = line.split()
        if len(p) >= 3 and p[0] == "RESULT":
            vals[p[1]] = p[2]
for k, v in vals.items():
    b = before.get(k)
    print(f"{k:40s} {v:>10s}" + (f"   before {b}" if b is not None else ""))
PY
DEV
chmod +x "$OUT/gpu_ffn_device.sh"
echo "built into $OUT"
