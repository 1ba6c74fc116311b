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
  libsndfile1-dev libvorbis-dev libogg-dev libsoxr-dev libfftw3-dev libkissfft-dev espeak-ng
  libtorch-dev python3-torch
  libcurl4-openssl-dev libsimdjson-dev libssl-dev openssl
  openjdk-17-jre-headless python3-venv python3-dev
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
# make_venv DIR REQUIREMENTS: creates DIR and installs REQUIREMENTS into it, again only
# when the requirements file changed (a hash stamp in DIR).
make_venv() {
  local dir="$1" req="$2" venv_flags="${3:-}" py="${4:-$PY}"
  if [ ! -x "$dir/bin/python" ]; then
    echo "setup: creating $dir"
    "$py" -m venv $venv_flags "$dir"
  fi
  local stamp="$dir/.requirements.sha256" want
  want="$(sha256sum "$req" | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "setup: installing Python packages from ${req#"$root"/} into $dir (first time takes a while)"
    "$dir/bin/python" -m pip install -q --upgrade pip
    "$dir/bin/python" -m pip install -q -r "$req"
    echo "$want" > "$stamp"
  fi
}
make_venv .venv "$PY_REQUIREMENTS"
# MLServer, the real KServe V2 server of the score-http integration test, needs
# protobuf 6 and TensorFlow needs < 6: it gets a venv of its own.
# DLPREP_SKIP_MLSERVER=1 leaves it out (its test then skips).
if [ "${DLPREP_SKIP_MLSERVER:-0}" != 1 ]; then
  make_venv .venv-mlserver "$root/scripts/requirements-mlserver.txt"
fi
# The Python package's tests run against the installed wheel in a venv of their own,
# which sees Debian's torch (python3-torch) through the system site-packages.
# It is made from Debian's Python, whose site-packages hold that torch.
PKG_PY=/usr/bin/python3
[ -x "$PKG_PY" ] || PKG_PY="$PY"
make_venv .venv-pkg "$root/scripts/requirements-pkg.txt" --system-site-packages "$PKG_PY"
echo "setup: ok"
