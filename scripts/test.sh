#!/usr/bin/env bash
# The test command: installs what is missing, builds twice (release, and ASan+UBSan), and runs
# every test with CTest in both builds. Exits non-zero if anything fails.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

build() {  # build DIR CMAKE_ARGS...
  local dir=$1
  shift
  cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
  cmake --build "$dir"
}
build build/asan -DCMAKE_BUILD_TYPE=Debug -DAIRLOCK_SANITIZE=ON -DAIRLOCK_BUILD_BENCH=OFF
build build/release -DCMAKE_BUILD_TYPE=RelWithDebInfo

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== ASan+UBSan build"
ctest --test-dir build/asan --output-on-failure -j"$(nproc)"
echo "== release build"
ctest --test-dir build/release --output-on-failure -j"$(nproc)"
