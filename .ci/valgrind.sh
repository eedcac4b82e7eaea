#!/usr/bin/env bash
# Run the single-process test binaries under valgrind memcheck (CK_FORK=no so
# that valgrind sees the tests themselves). Multi-process suites are covered
# by ASan instead: UCX and libfabric need suppressions under valgrind.
set -euo pipefail
cd "$(dirname "$0")/.."
bazel build //tests/api:core_test //tests/routing:routing_test //tests/compute:compute_test //tests/quant:quant_test
bin=$(bazel info bazel-bin)
for t in api/core_test routing/routing_test compute/compute_test quant/quant_test; do
  echo "--- valgrind $t"
  CK_FORK=no valgrind --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite --show-possibly-lost=no \
    -q "$bin/tests/$t"
done
