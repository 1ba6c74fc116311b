#!/usr/bin/env bash
# Installs everything dlprep needs to build and test on Debian 12, idempotently.
# Fast path: when every package and the .venv are already present, it does nothing
# but check (a few seconds).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

APT_PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config git
  libgtest-dev libgmock-dev libbenchmark-dev
  libcli11-dev libyaml-cpp-dev nlohmann-json3-dev zlib1g-dev
  libsndfile1-dev libsoxr-dev libfftw3-dev libkissfft-dev espeak-ng
  libtorch-dev python3-torch
  libcurl4-openssl-dev libsimdjson-dev libssl-dev
)
PY_REQUIREMENTS="$root/scripts/requirements.txt"

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

PY="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=".venv/.requirements.sha256"
want="$(sha256sum "$PY_REQUIREMENTS" | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python packages into .venv (first time takes a few minutes)"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -r "$PY_REQUIREMENTS"
  echo "$want" > "$stamp"
fi
echo "setup: ok"
