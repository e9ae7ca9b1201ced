#!/usr/bin/env bash
# HTTP rate of PUT /v1/devices/{id} under load, beside a bare axum JSON echo
# measured in the same run. Needs wrk (Debian package `wrk`).
#   bench/http.sh [sqlite|postgres] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-15}
connections=${3:-64}
pg_url=${HERALD_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

data=$(mktemp -d)
cleanup() { kill "${herald_pid:-}" "${echo_pid:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$data"; }
trap cleanup EXIT

export HERALD_ROOT_TOKEN=hr_bench
db_args=()
if [ "$backend" = postgres ]; then
  schema="bench_http_$$"
  psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
  db_args=(--database-url "${pg_url}?options=-csearch_path%3D${schema}")
fi
RUST_LOG=warn ./target/release/herald serve --listen 127.0.0.1:18090 --data-dir "$data" "${db_args[@]}" &
herald_pid=$!
./target/release/herald-bench echo --listen 127.0.0.1:18091 &
echo_pid=$!
for _ in $(seq 1 100); do curl -sf localhost:18090/readyz >/dev/null && curl -s -o /dev/null localhost:18091 && break; sleep 0.2; done

HERALD_BENCH_TOKEN=$(curl -sf -X POST localhost:18090/v1/apps -H "Authorization: Bearer hr_bench" \
  -H 'Content-Type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])')
export HERALD_BENCH_TOKEN

run() { # name url
  HERALD_BENCH_PREFIX="$1" wrk -t2 -c"$connections" -d"${seconds}s" -s bench/wrk/put_device.lua "$2" \
    | awk -v name="$1" '/Requests\/sec/ {rps=$2} /^RESULT/ {res=$0} END {print name, "rps=" rps, res}'
}
# Warm both up, then measure.
HERALD_BENCH_PREFIX=warm wrk -t1 -c8 -d2s -s bench/wrk/put_device.lua http://127.0.0.1:18090 >/dev/null
run herald http://127.0.0.1:18090
run echo http://127.0.0.1:18091
if [ "$backend" = postgres ]; then psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"; fi
