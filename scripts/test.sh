#!/usr/bin/env bash
# Builds the project and runs every test (unit, end to end, the independently generated Python client).
#   scripts/test.sh                                  release build in build/
#   scripts/test.sh --sanitize address,undefined     AddressSanitizer + UBSan build in build-asan/
#   scripts/test.sh --sanitize thread                ThreadSanitizer build in build-tsan/
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=""
if [[ "${1:-}" == "--sanitize" ]]; then sanitize="${2:?--sanitize needs a value}"; shift 2; fi

compiler=()
case "$sanitize" in
  "") dir=build; type=RelWithDebInfo ;;
  address,undefined) dir=build-asan; type=Debug ;;
  # Clang: GCC 12's TSan crashes inside Debian's prebuilt libprotobuf (any protobuf map access).
  thread) dir=build-tsan; type=Debug; compiler=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  *) echo "test.sh: unknown sanitizer set '$sanitize'" >&2; exit 2 ;;
esac

cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE="$type" -DFNA_SANITIZE="$sanitize" -DFNA_WERROR=ON "${compiler[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
export TSAN_OPTIONS="${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/tests/tsan.supp}"
ctest --test-dir "$dir" --output-on-failure -j"$(nproc)" "$@"
