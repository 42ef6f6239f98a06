#!/usr/bin/env bash
# Builds the libFuzzer target (clang, the `fuzz` preset) and runs it for N seconds (default 60):
# valid parameters must match the reference backend, invalid ones raise a clean convkit::Error.
# A crash or timeout leaves its input in build/fuzz/artifacts/ and fails this script.
# Usage: tools/fuzz.sh [seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}

tools/setup.sh
cmake --preset fuzz
cmake --build --preset fuzz
mkdir -p build/fuzz/corpus build/fuzz/artifacts
build/fuzz/tests/fuzz/convkit_fuzz -max_total_time="$seconds" -timeout=10 \
  -artifact_prefix=build/fuzz/artifacts/ build/fuzz/corpus
