#!/usr/bin/env bash
# The README's test command: set-up, format check, configure, build, run every test.
# Exits non-zero on any failure. Usage: tools/test.sh [preset] (default: release).
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-release}

python=${PYTHON:-python3}

tools/setup.sh
tools/check_format.sh

# The Python extension is built inside the main build (the library compiles once) and ctest runs
# pytest against the build tree. An ASan-built extension cannot load into a normal Python: off there.
python_on=ON
if [[ $preset == asan ]]; then python_on=OFF; fi
cmake --preset "$preset" -DCONVKIT_BUILD_PYTHON=$python_on \
  -DPython_EXECUTABLE="$("$python" -c 'import sys; print(sys.executable)')"
cmake --build --preset "$preset"
ctest --preset "$preset"

# `pip install .` works: build the package as pip does (reference backend only, to stay quick) and
# run the seed's golden values through the installed copy.
if [[ $preset != asan ]]; then
  wheel_dir=$(mktemp -d)
  trap 'rm -rf "$wheel_dir"' EXIT
  "$python" -m pip install --quiet --disable-pip-version-check --no-build-isolation --no-deps \
    --target "$wheel_dir" -C cmake.define.CONVKIT_WITH_HIGHWAY=OFF \
    -C cmake.define.CONVKIT_WITH_ONEDNN=OFF .
  (cd "$wheel_dir" && PYTHONPATH="$wheel_dir" "$python" -m pytest -q -p no:cacheprovider \
    "$OLDPWD/tests/python/test_seed_golden.py" &&
    PYTHONPATH="$wheel_dir" "$python" -c "import convkit.onnx.models")
fi
