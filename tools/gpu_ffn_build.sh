#!/usr/bin/env bash
# Build the GPU expert FFN (issue 6) test and benchmark with nvcc directly, for
# the device machine (sm_90a), into bundle/gemm/ (git-ignored). Used until the
# Bazel CUDA macro (compute/cuda/cuda.bzl, --config=cuda) builds these targets.
#   tools/gpu_ffn_build.sh [out_dir]
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
       compute/cuda/ffn/ffn_cuda_api.c compute/cuda/ffn/ffn_cuda_check.c"
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
    "$NVCC" $ARCH -O3 -std=c++17 $INC -Xptxas -v -c "$f" -o "$o" 2>"$o.log" &
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
echo "built into $OUT"
