#!/usr/bin/env bash
# The README's test command: set-up, format check, configure, build, run every test.
# Exits non-zero on any failure. Usage: tools/test.sh [preset] (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}

tools/setup.sh
tools/check_format.sh
cmake --preset "$preset"
cmake --build --preset "$preset"
ctest --preset "$preset"
