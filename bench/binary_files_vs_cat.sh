#!/usr/bin/env bash
# Reads the same files with `cat FILES > /dev/null` and with dlprep's binary_files
# source (bench/binary_files_benchmark.cc), side by side, and prints the throughput
# ratio dlprep/cat. Page cache warm: both are run once before timing.
#
#   bench/binary_files_vs_cat.sh [BUILD_DIR]        (REPS=5 by default)
#
# Data: $DLPREP_BENCH_DIR (default <tmp>/dlprep-binary-files-bench), created by the
# benchmark on first use: 20,000 files of 4 KiB and 4 files of 256 MiB. Both timings
# include listing the files (find for cat, the source's own listing for dlprep).
set -euo pipefail

BUILD=${1:-build}
BENCH="$BUILD/binary_files_benchmark"
REPS=${REPS:-5}
export DLPREP_BENCH_DIR=${DLPREP_BENCH_DIR:-${TMPDIR:-/tmp}/dlprep-binary-files-bench}

if [[ ! -x "$BENCH" ]]; then
  echo "no $BENCH; build it with: ninja -C $BUILD binary_files_benchmark" >&2
  exit 1
fi
mapfile -t DIRS < <("$BENCH" --generate_only)

median() {
  sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

now() { date +%s.%N; }

# Median seconds of `find DIR -name '*.bin' | xargs cat > /dev/null`.
time_cat() {
  local dir=$1 start end
  find "$dir" -name '*.bin' -print0 | xargs -0 cat > /dev/null  # warm the cache
  for _ in $(seq "$REPS"); do
    start=$(now)
    find "$dir" -name '*.bin' -print0 | xargs -0 cat > /dev/null
    end=$(now)
    awk -v s="$start" -v e="$end" 'BEGIN {printf "%.6f\n", e - s}'
  done | median
}

# Median seconds of one benchmark (it warms the cache itself).
time_dlprep() {
  "$BENCH" --benchmark_filter="^$1/" --benchmark_repetitions="$REPS" \
    --benchmark_report_aggregates_only=true --benchmark_format=csv 2>/dev/null |
    awk -F, '/_median"?,/ {
      unit = $5; gsub(/"/, "", unit); t = $3
      if (unit == "ms") t /= 1e3; else if (unit == "us") t /= 1e6; else if (unit == "ns") t /= 1e9
      printf "%.6f\n", t }'
}

printf '%-22s %12s %12s %14s %14s %8s\n' data "cat s" "dlprep s" "cat MB/s" "dlprep MB/s" ratio
run() {
  local label=$1 dir=$2 bench=$3 files=$4 bytes=$5 c d
  c=$(time_cat "$dir")
  d=$(time_dlprep "$bench")
  awk -v l="$label" -v c="$c" -v d="$d" -v b="$bytes" -v f="$files" 'BEGIN {
    printf "%-22s %12.4f %12.4f %14.1f %14.1f %7.2fx\n", l, c, d, b / c / 1e6, b / d / 1e6, c / d
    printf "%-22s %12s %12s %14.0f %14.0f   (files/s)\n", "", "", "", f / c, f / d }'
}
run "20000 x 4 KiB" "${DIRS[0]}" BM_SmallFilesRead 20000 $((20000 * 4096))
run "4 x 256 MiB" "${DIRS[1]}" BM_LargeFilesRead 4 $((4 * 256 * 1024 * 1024))
