#!/usr/bin/env bash
# Installs what convkit needs and is missing; does nothing when everything is there (idempotent).
# Debian packages through apt-get, Python tooling through the first python3 on PATH (pip).
# Usage: tools/setup.sh
set -euo pipefail

# clang-14 and its runtimes build the libFuzzer target (the `fuzz` preset, tools/fuzz.sh).
debian_packages=(
  cmake g++ make pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwy-dev libdnnl-dev
  clang-format
  clang-14 libclang-rt-14-dev libomp-14-dev
)
# import name:pip name
python_packages=(
  numpy:numpy
  matplotlib:matplotlib
  pytest:pytest
  nanobind:nanobind
  scikit_build_core:scikit-build-core
)

missing=()
for package in "${debian_packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

python=${PYTHON:-python3}
missing=()
for entry in "${python_packages[@]}"; do
  if ! "$python" -c "import ${entry%%:*}" 2>/dev/null; then missing+=("${entry##*:}"); fi
done
if ((${#missing[@]})); then
  echo "setup: installing Python packages for $python: ${missing[*]}"
  "$python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
fi
echo "setup: everything convkit needs is installed"
