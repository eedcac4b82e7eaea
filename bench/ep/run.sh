#!/usr/bin/env bash
# Dispatch/combine over each CPU transport on this machine, 4 ranks, DeepSeek
# -like shape (hidden 2048, top-8 of 64 experts, 4096 tokens per rank), with
# in the same run: MPI_Alltoallv moving the same bytes (inside ep_bench) and
# the raw transport bandwidth as ceiling (ucx_perftest, fi_pingpong).
#   bash bench/ep/run.sh [ep_bench options, e.g. --tokens 1024]
set -euo pipefail
extra=("$@")
cd "$(dirname "$0")/../.."
bazel build -c opt //bench/ep:ep_bench >/dev/null 2>&1 || bazel build -c opt //bench/ep:ep_bench
bin="$(bazel info -c opt bazel-bin 2>/dev/null)/bench/ep/ep_bench"
mpirun_="mpirun --allow-run-as-root --oversubscribe -np 4 -x OMP_NUM_THREADS=1"
msg=$((4096 * 2048 * 2 / 4))   # bytes one rank sends one peer per dispatch, roughly

echo "== ceilings: one pair of processes, ${msg}-byte messages =="
for tls in "sm,self" "tcp"; do
  UCX_TLS=$tls ucx_perftest -t tag_bw -s $msg -n 200 >/dev/null 2>&1 &
  sleep 1
  bw=$(UCX_TLS=$tls ucx_perftest localhost -t tag_bw -s $msg -n 200 2>/dev/null | awk '/Final:/{print "MB/s " $6 " (" $0 ")"}' || true)
  wait || true
  echo "ucx_perftest tag_bw UCX_TLS=$tls: ${bw:-n/a}"
done
for prov in shm tcp; do
  fi_pingpong -p $prov -e rdm -S $msg -I 50 >/dev/null 2>&1 &
  sleep 1
  out=$(fi_pingpong -p $prov -e rdm -S $msg -I 50 127.0.0.1 2>/dev/null | tail -1 || true)
  wait || true
  echo "fi_pingpong -e rdm -p $prov (bytes sent ack total time MB/sec usec/xfer Mxfers/sec): ${out:-n/a}"
done

echo
for cfg in "ucx UCX_TLS=sm,self" "ucx UCX_TLS=tcp" "libfabric FI_PROVIDER=shm" "libfabric FI_PROVIDER=tcp"; do
  set -- $cfg
  echo "== moep over $1 ($2) vs MPI_Alltoallv =="
  env "$2" $mpirun_ -x "${2%%=*}" "$bin" --transport "$1" "${extra[@]}" || echo "(failed)"
  echo
done
