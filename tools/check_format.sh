#!/usr/bin/env bash
# Fails when a C++ file of the tree is not clang-format clean (Google style, .clang-format).
# Usage: tools/check_format.sh [--fix]
set -euo pipefail
cd "$(dirname "$0")/.."
mapfile -t files < <(git ls-files --cached --others --exclude-standard \
  '*.cpp' '*.hpp' '*.h' '*.c' '*.cc' 2>/dev/null || find api backends tests bench tools python \
  -name '*.cpp' -o -name '*.hpp' -o -name '*.h' -o -name '*.c' -o -name '*.cc' 2>/dev/null)
if [[ ${1:-} == --fix ]]; then
  clang-format -i "${files[@]}"
  exit 0
fi
bad=0
for f in "${files[@]}"; do
  [[ -f $f ]] || continue
  if ! clang-format --dry-run -Werror "$f" >/dev/null 2>&1; then
    echo "not clang-format clean: $f (run tools/check_format.sh --fix)"
    bad=1
  fi
done
if ((bad)); then exit 1; fi
echo "format: ${#files[@]} C++ files clang-format clean"
