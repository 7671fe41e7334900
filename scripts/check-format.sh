#!/usr/bin/env bash
# Fails when a C++ file of the project is not clang-format clean (generated code lives only in build trees).
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files '*.h' '*.cc')
clang-format --dry-run --Werror "${files[@]}"
echo "check-format: ${#files[@]} files clean"
