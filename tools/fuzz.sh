#!/usr/bin/env bash
# Builds the libFuzzer target (clang, the `fuzz` preset) and runs it for N seconds (default 60):
# valid parameters must match the reference backend, invalid ones raise a clean convkit::Error.
# It first replays tests/fuzz/regressions/ (inputs that once crashed or hung). A crash or timeout
# leaves its input in build/fuzz/artifacts/ and fails this script.
# Usage: tools/fuzz.sh [seconds]        fuzz for that long (default 60)
#        tools/fuzz.sh --runs N [seed]    replay the regressions, then N inputs (bounded work)
set -euo pipefail
cd "$(dirname "$0")/.."
limit=(-max_total_time="${1:-60}")
if [[ ${1:-} == --runs ]]; then limit=(-runs="$2" -seed="${3:-1}"); fi

tools/setup.sh --fuzz
cmake --preset fuzz
cmake --build --preset fuzz
rm -rf build/fuzz/corpus
mkdir -p build/fuzz/corpus build/fuzz/artifacts
build/fuzz/tests/fuzz/convkit_fuzz "${limit[@]}" -timeout=10 \
  -artifact_prefix=build/fuzz/artifacts/ build/fuzz/corpus tests/fuzz/regressions
