#!/usr/bin/env bash
# `make fuzz`: builds the fuzz targets of tests/fuzz with clang's libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer in $FUZZ_BUILD (default build-fuzz/), then runs each
# target for FUZZ_SECONDS (default 60) on its own copy of tests/fuzz/corpus/<target>/
# ($FUZZ_BUILD/corpus/<target>/, which keeps what the fuzzer learns between runs).
# Inputs that crash, leak, hang or break an invariant land in
# $FUZZ_BUILD/crashes/<target>/ and make the run fail.
#   FUZZ_TARGETS="filter_expr manifest"   only these targets
#   FUZZ_ARGS="-jobs=2 -workers=2"        more libFuzzer flags
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
build="${FUZZ_BUILD:-build-fuzz}"
seconds="${FUZZ_SECONDS:-60}"

# Debian's clang and its libFuzzer / sanitizer runtimes.
missing=()
for p in clang libclang-rt-14-dev; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "fuzz: installing Debian packages: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if [ ! -f "$build/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DDLPREP_FUZZ=ON \
    -DDLPREP_BUILD_TESTS=OFF -DDLPREP_BUILD_BENCH=OFF -DDLPREP_WITH_TORCH=OFF
fi
ninja -C "$build" fuzz_targets

targets="${FUZZ_TARGETS:-$(cd tests/fuzz/corpus && ls -d */ | tr -d /)}"
# Arrow allocates through malloc, so that ASan sees its buffers too.
export ARROW_DEFAULT_MEMORY_POOL=system
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
summary=""
for t in $targets; do
  bin="$build/fuzz_$t"
  [ -x "$bin" ] || { echo "fuzz: no target $t (tests/fuzz/corpus/$t has no fuzz_$t)"; exit 2; }
  corpus="$build/corpus/$t"
  crashes="$build/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  cp -n "tests/fuzz/corpus/$t"/* "$corpus"/ 2>/dev/null || true
  log="$build/fuzz-$t.log"
  echo "fuzz: $t for ${seconds}s (log: $log)"
  set +e
  "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$crashes/" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
  found="$(find "$crashes" -type f | wc -l)"
  summary+="$(printf '%-26s executions %-10s corpus %-6s findings %s' "$t" "${execs:-?}" \
    "$(ls "$corpus" | wc -l)" "$found")"$'\n'
  if [ "$rc" -ne 0 ] || [ "$found" -ne 0 ]; then
    failed+=("$t")
    grep -m3 -E 'ERROR: |runtime error|fuzz target' "$log" || tail -5 "$log"
  fi
done
printf '%s' "$summary"
if ((${#failed[@]})); then
  echo "fuzz: findings in: ${failed[*]}; the inputs are in $build/crashes/<target>/."
  echo "fuzz: replay one with $build/fuzz_<target> FILE; fix it, then add the input to"
  echo "fuzz: tests/fuzz/corpus/<target>/ (and a unit test) so that CI replays it."
  exit 1
fi
echo "fuzz: no findings"
