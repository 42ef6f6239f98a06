#!/usr/bin/env bash
# The README's comparison command: set-up, build the benchmarks, run every built backend on the
# default shape sets (2 threads), print the Markdown table, write out/ (raw JSON, PNG charts).
# Arguments go to tools/convkit_compare.py (e.g. --sets resnet50 --ops conv2d_fwd --update-readme).
# The peers (XNNPACK, ONNX Runtime, OpenVINO) are installed too (tools/setup.sh --peers); with
# CONVKIT_PEERS=0 they are not, and the tables note the absent ones.
# --models adds the end-to-end model set (tools/model_compare.py: convkit.onnx against ONNX Runtime
# and OpenVINO, when installed); --models-only runs that alone. --update-readme goes to both tools:
# the README's summary and docs/PERFORMANCE.md's tables are rewritten from this run.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}

layers=1
models=0
args=()
model_args=()
for arg in "$@"; do
  case $arg in
    --models) models=1 ;;
    --models-only) models=1 layers=0 ;;
    --update-readme) args+=("$arg") model_args+=("$arg") ;;
    *) args+=("$arg") ;;
  esac
done

# A peer that cannot be installed here is left out of the tables, never a failure.
if [[ ${CONVKIT_PEERS:-1} == 0 ]] || ! tools/setup.sh --peers; then tools/setup.sh; fi
if ((models)); then
  cmake --preset release -DCONVKIT_BUILD_PYTHON=ON \
    -DPython_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')"
  cmake --build --preset release --target _convkit
else
  cmake --preset release
fi
if ((layers)); then
  cmake --build --preset release --target convkit_bench convkit_peak convkit_run
  "$python" tools/convkit_compare.py --bench build/release/bench/convkit_bench "${args[@]}"
fi
if ((models)); then
  "$python" tools/model_compare.py --build build/release "${model_args[@]}"
fi
