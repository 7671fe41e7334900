#!/usr/bin/env bash
# Builds the benchmarks (Release, in build-bench/) and runs them. Machine-dependent: read the ratios.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DFNA_BUILD_BENCHMARKS=ON -DFNA_BUILD_TESTS=ON >/dev/null
cmake --build build-bench -j"$(nproc)" --target fna_gettask_bench
build-bench/bin/fna_gettask_bench
