#!/usr/bin/env bash
# Installs a dlprep build to a temporary prefix, then configures, builds and runs
# examples/custom_operator against it with find_package(dlprep). Run by ctest.
# Usage: install_example.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
build="$(cd "$1" && pwd)"
src="$(cd "$2" && pwd)"
work="$build/install-example"
mkdir -p "$work"
rm -rf "$work/prefix"
cmake --install "$build" --prefix "$work/prefix" > "$work/install.log" 2>&1 ||
  { cat "$work/install.log"; exit 1; }
launcher=()
if command -v ccache > /dev/null; then launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache); fi
generator=()
if command -v ninja > /dev/null; then generator=(-G Ninja); fi
# A fresh configure every time, so the test sees the package as a user would.
rm -rf "$work/build"
cmake -S "$src/examples/custom_operator" -B "$work/build" "${generator[@]}" \
  "${launcher[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$work/prefix"
cmake --build "$work/build"
"$work/build/custom_operator"
