#!/usr/bin/env bash
# The write path, end to end, in one run per backend (JSON lines):
#   1. herald-bench append, 64 writers: herald-log and herald-command (events/s);
#   2. PUT /v1/devices/{id} over HTTP, 64 connections (wrk): rps, p50, p99;
#   3. the same with one webhook endpoint (to a local sink) and two more
#      change queues subscribed to device.* (fan-out that must not sit in
#      the write's wait);
#   and the ratios the write path is judged by: HTTP / herald-command,
#   fan-out HTTP / herald-command, herald-command / herald-log.
#   bench/write_path.sh [sqlite|postgres|both] [seconds]
# Needs wrk (Debian package `wrk`) and, for PostgreSQL, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
seconds=${2:-10}
connections=64
pg_url=${HERALD_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

backends=(sqlite postgres)
[ "$which" = both ] || backends=("$which")

json_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

for backend in "${backends[@]}"; do
  events=$([ "$backend" = sqlite ] && echo 64000 || echo 64000)
  log=$(./target/release/herald-bench append --backend "$backend" --writers 64 --events "$events" --systems log --pg-url "$pg_url")
  cmd=$(./target/release/herald-bench append --backend "$backend" --writers 64 --events "$events" --systems command --pg-url "$pg_url")
  log_eps=$(json_field "$log" events_per_sec)
  cmd_eps=$(json_field "$cmd" events_per_sec)

  data=$(mktemp -d)
  db_args=()
  if [ "$backend" = postgres ]; then
    schema="bench_wp_$$"
    psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $schema CASCADE; CREATE SCHEMA $schema"
    db_args=(--database-url "${pg_url}?options=-csearch_path%3D${schema}")
  fi
  HERALD_ROOT_TOKEN=hr_bench HERALD_WEBHOOK_ALLOW_NETS=127.0.0.0/8 RUST_LOG=warn \
    ./target/release/herald serve --listen 127.0.0.1:18090 --data-dir "$data" "${db_args[@]}" &
  herald_pid=$!
  ./target/release/herald-bench echo --listen 127.0.0.1:18091 &
  sink_pid=$!
  trap 'kill $herald_pid $sink_pid 2>/dev/null || true' EXIT
  for _ in $(seq 1 100); do curl -sf localhost:18090/readyz >/dev/null && break; sleep 0.2; done
  token=$(curl -sf -X POST localhost:18090/v1/apps -H "Authorization: Bearer hr_bench" \
    -H 'Content-Type: application/json' -d '{"name":"bench"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])')
  export HERALD_BENCH_TOKEN=$token

  put() { # prefix -> "rps p50_us p99_us errors"
    HERALD_BENCH_PREFIX="$1" wrk -t2 -c"$connections" -d"${seconds}s" -s bench/wrk/put_device.lua http://127.0.0.1:18090 \
      | awk '/Requests\/sec/ {rps=$2} /^RESULT/ {for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}} END {print rps, v["p50_us"], v["p99_us"], v["errors_status"]}'
  }
  HERALD_BENCH_PREFIX=warm wrk -t1 -c8 -d2s -s bench/wrk/put_device.lua http://127.0.0.1:18090 >/dev/null
  read -r rps p50 p99 errors <<<"$(put plain)"

  auth=(-H "Authorization: Bearer $token" -H 'Content-Type: application/json')
  curl -sf -o /dev/null -X POST localhost:18090/v1/webhooks "${auth[@]}" \
    -d '{"url": "http://127.0.0.1:18091/hook", "event_types": ["device.*"]}'
  for q in fanout-a fanout-b; do
    curl -sf -o /dev/null -X POST localhost:18090/v1/change-queues "${auth[@]}" -d "{\"name\": \"$q\", \"event_types\": [\"device.*\"]}"
  done
  read -r f_rps f_p50 f_p99 f_errors <<<"$(put fanout)"
  kill $herald_pid $sink_pid 2>/dev/null || true
  wait $herald_pid $sink_pid 2>/dev/null || true
  trap - EXIT
  rm -rf "$data"
  if [ "$backend" = postgres ]; then psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA $schema CASCADE"; fi

  python3 - "$backend" "$log_eps" "$cmd_eps" "$rps" "$p50" "$p99" "$errors" "$f_rps" "$f_p50" "$f_p99" "$f_errors" <<'PY'
import json, sys
b, log, cmd, rps, p50, p99, err, frps, fp50, fp99, ferr = sys.argv[1:]
log, cmd, rps, frps = float(log), float(cmd), float(rps), float(frps)
print(json.dumps({
    "backend": b, "connections": 64,
    "herald_log_events_per_sec": round(log), "herald_command_events_per_sec": round(cmd),
    "put_rps": round(rps), "put_p50_ms": int(p50) / 1000, "put_p99_ms": int(p99) / 1000, "put_non_2xx": int(err),
    "fanout_put_rps": round(frps), "fanout_p50_ms": int(fp50) / 1000, "fanout_p99_ms": int(fp99) / 1000, "fanout_non_2xx": int(ferr),
    "put_over_command": round(rps / cmd, 3), "fanout_over_command": round(frps / cmd, 3),
    "command_over_log": round(cmd / log, 3),
}))
PY
done
