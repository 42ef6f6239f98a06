#!/usr/bin/env bash
# The README's comparison command: set-up, build the benchmarks, run every built backend on the
# default shape sets (2 threads), print the Markdown table, write out/ (raw JSON, PNG charts).
# Arguments go to tools/convkit_compare.py (e.g. --sets resnet50 --ops conv2d_fwd --update-readme).
# The peers (XNNPACK, ONNX Runtime, OpenVINO) are installed too (tools/setup.sh --peers); with
# CONVKIT_PEERS=0 they are not, and the tables note the absent ones.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

# A peer that cannot be installed here is left out of the tables, never a failure.
if [[ ${CONVKIT_PEERS:-1} == 0 ]] || ! tools/setup.sh --peers; then tools/setup.sh; fi
cmake --preset release
cmake --build --preset release --target convkit_bench convkit_peak convkit_run
"$python" tools/convkit_compare.py --bench build/release/bench/convkit_bench "$@"
