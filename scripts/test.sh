#!/usr/bin/env bash
# The test command: installs what is missing, builds three times (release; ASan+UBSan; the
# libFuzzer targets with clang-16), and runs every test with CTest in each: the fuzz corpora are
# replayed in the first two and every fuzz target runs briefly in the third. Exits non-zero if
# anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

build() {  # build DIR TARGET CMAKE_ARGS...
  local dir=$1 target=$2
  shift 2
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir" --target "$target"
}
build build/asan all -DCMAKE_BUILD_TYPE=Debug -DAIRLOCK_SANITIZE=ON -DAIRLOCK_BUILD_BENCH=OFF
build build/release all -DCMAKE_BUILD_TYPE=RelWithDebInfo
CC=clang-16 CXX=clang++-16 build build/fuzz fuzzers -DAIRLOCK_FUZZ=ON

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build"
ctest --test-dir build/asan --output-on-failure -j"$(nproc)"
echo "== release build"
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
echo "== fuzz targets (tests/fuzz/README.md)"
ctest --test-dir build/fuzz --output-on-failure -j"$(nproc)"
