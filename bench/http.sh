#!/usr/bin/env bash
# HTTP rate of PUT /v1/devices/{id} under load, beside a bare axum JSON echo
# measured in the same run. Needs wrk (Debian package `wrk`).
#   bench/http.sh [sqlite|postgres] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-15}
connections=${3:-64}
source bench/lib/serve.sh

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

./target/release/herald-bench echo --listen 127.0.0.1:18091 &
echo_pid=$!
serve_herald "$backend" 18090
trap 'kill $herald_pid $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null localhost:18091 && break; sleep 0.2; done

# Warm up, then measure Herald and the echo one after the other.
wrk_put warm 8 2 >/dev/null
read -r rps p50 p99 errors <<<"$(wrk_put herald "$connections" "$seconds")"
echo "herald rps=$rps p50_us=$p50 p99_us=$p99 non_2xx=$errors"
herald_port=18091
read -r rps p50 p99 errors <<<"$(wrk_put echo "$connections" "$seconds")"
echo "echo rps=$rps p50_us=$p50 p99_us=$p99 non_2xx=$errors"
herald_port=18090
stop_herald
kill $echo_pid 2>/dev/null || true
trap - EXIT
