#!/usr/bin/env bash
# Where the time of PUT /v1/devices/{id} goes: `perf record` of the whole
# machine while wrk drives 64 connections, then the CPU share of each
# process (herald, the database, wrk) and herald's hottest symbols.
#   bench/profile_put.sh [sqlite|postgres] [seconds] [plain|fanout]
# Needs wrk and perf (Debian packages `wrk`, `linux-perf`).
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-10}
mode=${3:-plain}
source bench/lib/serve.sh

command -v perf >/dev/null || { echo "install perf (apt-get install linux-perf)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

out=${HERALD_PROFILE_OUT:-$(mktemp -d)}
mkdir -p "$out"
./target/release/herald-bench echo --listen 127.0.0.1:18091 &
sink_pid=$!
serve_herald "$backend" 18090
trap 'kill $herald_pid $sink_pid 2>/dev/null || true' EXIT
[ "$mode" = fanout ] && add_fanout 18091
wrk_put warm 8 2 >/dev/null
perf record -q -a -g -F 499 -o "$out/perf.data" -- sleep "$seconds" 2>/dev/null &
perf_pid=$!
read -r rps p50 p99 errors <<<"$(wrk_put profiled 64 "$seconds")"
wait $perf_pid || true
echo "== $backend $mode: $rps rps, p50 ${p50} us, p99 ${p99} us, non-2xx $errors"
echo "== CPU by thread name (all samples; swapper = idle)"
perf report -i "$out/perf.data" --no-children -g none --sort comm --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -12
echo "== herald: hottest symbols (self time, share of all samples)"
perf report -i "$out/perf.data" --no-children -g none --pid "$herald_pid" --sort dso,sym --stdio 2>/dev/null \
  | grep -E '^ +[0-9]' | head -40
stop_herald
kill $sink_pid 2>/dev/null || true
trap - EXIT
echo "(perf data: $out/perf.data)"
