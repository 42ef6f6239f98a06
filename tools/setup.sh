#!/usr/bin/env bash
# Installs what convkit needs and is missing; does nothing when everything is there (idempotent).
# Debian packages through apt-get, Python tooling through the first python3 on PATH (pip).
# Usage: tools/setup.sh          install what is missing
#        tools/setup.sh --check  list every requirement as ok/missing, install nothing; exit 1 if
#                                anything is missing
#        tools/setup.sh --peers  also install the comparison's optional peers (XNNPACK, ONNX
#                                Runtime, OpenVINO; never needed by the tests); --check --peers
#                                checks them too
#        tools/setup.sh --fuzz   also install clang-14 and its runtimes for the libFuzzer build
#                                (tools/fuzz.sh; the tests run the fuzz target without it)
#
# Fresh-machine rehearsal (what a new user or a new CI machine sees; run as root):
#   apt-get purge -y libhwy-dev libdnnl-dev ocl-icd-opencl-dev libgtest-dev libgmock-dev \
#     libbenchmark-dev && apt-get autoremove -y
#   python3 -m pip uninstall -y nanobind scikit-build-core pytest matplotlib onnx
#   git clone <this repository> /tmp/fresh && cd /tmp/fresh && tools/test.sh && tools/compare.sh ...
set -euo pipefail

# - libdnnl-dev: Debian's oneDNN is built with its OpenCL GPU runtime, so its CMake package
#   (dnnl-config.cmake) calls find_package(OpenCL); libdnnl-dev only *recommends*
#   ocl-icd-opencl-dev and we install without recommends, so it is named here explicitly.
debian_packages=(
  cmake g++ make pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libhwy-dev libdnnl-dev ocl-icd-opencl-dev
  clang-format
)
# import name:pip name
python_packages=(
  numpy:numpy
  matplotlib:matplotlib
  pytest:pytest
  nanobind:nanobind
  scikit_build_core:scikit-build-core
  onnx:onnx
)

# The comparison's peers (tools/compare.sh, DESIGN §9), with --peers only. libpthreadpool-dev:
# xnnpack.h includes pthreadpool.h, which libxnnpack-dev does not pull in.
peer_debian_packages=(libxnnpack-dev libpthreadpool-dev)
peer_python_packages=(onnxruntime:onnxruntime openvino:openvino)
# clang (the unversioned clang and clang++ the `fuzz` preset names), clang-14 and its runtimes
# build the libFuzzer target, with --fuzz only.
fuzz_debian_packages=(clang clang-14 libclang-rt-14-dev libomp-14-dev)

check_only=0
for arg in "$@"; do
  case $arg in
    --check) check_only=1 ;;
    --peers)
      debian_packages+=("${peer_debian_packages[@]}")
      python_packages+=("${peer_python_packages[@]}")
      ;;
    --fuzz) debian_packages+=("${fuzz_debian_packages[@]}") ;;
    *)
      echo "setup: unknown argument '$arg' (expected --check, --peers, --fuzz)" >&2
      exit 2
      ;;
  esac
done

python=${PYTHON:-python3}

missing_debian=()
for package in "${debian_packages[@]}"; do
  if dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    ((check_only)) && echo "ok       debian  $package"
  else
    ((check_only)) && echo "missing  debian  $package"
    missing_debian+=("$package")
  fi
done
missing_python=()
for entry in "${python_packages[@]}"; do
  if "$python" -c "import ${entry%%:*}" 2>/dev/null; then
    ((check_only)) && echo "ok       pip     ${entry##*:} ($python)"
  else
    ((check_only)) && echo "missing  pip     ${entry##*:} ($python)"
    missing_python+=("${entry##*:}")
  fi
done

if ((check_only)); then
  count=$((${#missing_debian[@]} + ${#missing_python[@]}))
  if ((count)); then
    echo "setup: $count missing; tools/setup.sh installs them"
    exit 1
  fi
  echo "setup: everything convkit needs is installed"
  exit 0
fi

if ((${#missing_debian[@]})); then
  echo "setup: installing Debian packages: ${missing_debian[*]}"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    "${missing_debian[@]}"
fi
if ((${#missing_python[@]})); then
  echo "setup: installing Python packages for $python: ${missing_python[*]}"
  "$python" -m pip install --quiet --disable-pip-version-check "${missing_python[@]}"
fi
echo "setup: everything convkit needs is installed"
