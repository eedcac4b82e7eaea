#!/bin/sh
# Build the CUDA targets (--config=cuda, plus --config=minimal: the bundle
# must not need UCX / libfabric / MPI on the GPU machine) and copy the
# binaries into bundle/ep/ (git-ignored), ready for a GPU machine without
# Bazel: it needs the NVIDIA driver, NCCL and libgomp, nothing else (CUDA
# runtime and libcheck are linked statically).
#   tools/gpu_bundle.sh [extra bazel flags]
# On the GPU machine, from the repository root:
#   NCCL_NVLS_ENABLE=0 bundle/ep/gpu_test                 # GPU tests (skip without a GPU)
#   NCCL_NVLS_ENABLE=0 bundle/ep/moep bench --device cuda --transport nccl --ranks 2
#   NCCL_NVLS_ENABLE=0 bundle/ep/gpu_ep_bench --ranks 2   # + python3 bench/torch_ep_peer.py
set -eu
cd "$(dirname "$0")/.."
OUT_BASE=${MOEP_BAZEL_OUTPUT_BASE:-}
BAZEL="bazel"
[ -n "$OUT_BASE" ] && BAZEL="bazel --output_base=$OUT_BASE"
TARGETS="//tests/gpu:gpu_test //bench:gpu_ep_bench //tools:moep"
$BAZEL build --config=cuda --config=minimal --experimental_convenience_symlinks=ignore "$@" $TARGETS
BIN=$($BAZEL info --config=cuda --config=minimal bazel-bin 2>/dev/null)
mkdir -p bundle/ep
rm -f bundle/ep/gpu_test bundle/ep/gpu_ep_bench bundle/ep/moep
cp "$BIN/tests/gpu/gpu_test" "$BIN/bench/gpu_ep_bench" "$BIN/tools/moep" bundle/ep/
# libgomp travels too, for GPU machines without it (LD_LIBRARY_PATH=bundle/ep)
GOMP=$(gcc -print-file-name=libgomp.so.1)
[ -f "$GOMP" ] && cp -L "$GOMP" bundle/ep/
chmod u+w bundle/ep/*
ls -l bundle/ep/
