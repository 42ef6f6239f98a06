#!/usr/bin/env bash
# The README's comparison command: set-up, build the benchmarks, run every built backend on the
# default shape sets (2 threads), print the Markdown table, write out/ (raw JSON, PNG charts).
# Arguments go to tools/convkit_compare.py (e.g. --sets resnet50 --ops conv2d_fwd --update-readme).
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

tools/setup.sh
cmake --preset release
cmake --build --preset release --target convkit_bench convkit_peak convkit_run
"$python" tools/convkit_compare.py --bench build/release/bench/convkit_bench "$@"
