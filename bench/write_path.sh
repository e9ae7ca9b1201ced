#!/usr/bin/env bash
# The write path, end to end, in one run per backend (JSON lines):
#   1. herald-bench append, 64 writers: herald-log and herald-command (events/s);
#   2. PUT /v1/devices/{id} over HTTP, 64 connections (wrk): rps, p50, p99;
#   3. the same with one webhook endpoint (to a local sink) and two more
#      change queues subscribed to device.* (fan-out that must not sit in
#      the write's wait);
#   4. the plain PUT with `Prefer: return=minimal` (no read-model wait);
#   5. updates: the plain PUT cycling over 500 devices per wrk thread, a
#      new push token each time (every request changes a device);
#   and the ratios the write path is judged by: HTTP / herald-command,
#   fan-out HTTP / herald-command, herald-command / herald-log.
#   bench/write_path.sh [sqlite|postgres|both] [seconds]
# Needs wrk (Debian package `wrk`) and, for PostgreSQL, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
seconds=${2:-10}
connections=64
source bench/lib/serve.sh

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

backends=(sqlite postgres)
[ "$which" = both ] || backends=("$which")

json_field() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }

for backend in "${backends[@]}"; do
  events=64000
  log=$(./target/release/herald-bench append --backend "$backend" --writers 64 --events "$events" --systems log --pg-url "$pg_url")
  cmd=$(./target/release/herald-bench append --backend "$backend" --writers 64 --events "$events" --systems command --pg-url "$pg_url")
  log_eps=$(json_field "$log" events_per_sec)
  cmd_eps=$(json_field "$cmd" events_per_sec)

  ./target/release/herald-bench echo --listen 127.0.0.1:18091 &
  sink_pid=$!
  serve_herald "$backend" 18090
  trap 'kill $herald_pid $sink_pid 2>/dev/null || true' EXIT
  wrk_put warm 8 2 >/dev/null
  read -r rps p50 p99 errors <<<"$(wrk_put plain "$connections" "$seconds")"
  # The same without the read-your-writes wait (Prefer: return=minimal):
  # what the HTTP path and the command cost without the read model.
  read -r m_rps _ m_p99 _ <<<"$(HERALD_BENCH_PREFER=return=minimal wrk_put minimal "$connections" "$seconds")"
  read -r u_rps _ u_p99 u_errors <<<"$(HERALD_BENCH_DEVICES=500 wrk_put update "$connections" "$seconds")"
  add_fanout 18091
  read -r f_rps f_p50 f_p99 f_errors <<<"$(wrk_put fanout "$connections" "$seconds")"
  stop_herald
  kill $sink_pid 2>/dev/null || true
  wait $sink_pid 2>/dev/null || true
  trap - EXIT

  python3 - "$backend" "$log_eps" "$cmd_eps" "$rps" "$p50" "$p99" "$errors" "$f_rps" "$f_p50" "$f_p99" "$f_errors" "$m_rps" "$m_p99" "$u_rps" "$u_p99" "$u_errors" <<'PY'
import json, sys
b, log, cmd, rps, p50, p99, err, frps, fp50, fp99, ferr, mrps, mp99, urps, up99, uerr = sys.argv[1:]
log, cmd, rps, frps, mrps, urps = float(log), float(cmd), float(rps), float(frps), float(mrps), float(urps)
print(json.dumps({
    "backend": b, "connections": 64,
    "herald_log_events_per_sec": round(log), "herald_command_events_per_sec": round(cmd),
    "put_rps": round(rps), "put_p50_ms": int(p50) / 1000, "put_p99_ms": int(p99) / 1000, "put_non_2xx": int(err),
    "fanout_put_rps": round(frps), "fanout_p50_ms": int(fp50) / 1000, "fanout_p99_ms": int(fp99) / 1000, "fanout_non_2xx": int(ferr),
    "minimal_put_rps": round(mrps), "minimal_p99_ms": int(mp99) / 1000,
    "update_put_rps": round(urps), "update_p99_ms": int(up99) / 1000, "update_non_2xx": int(uerr),
    "put_over_command": round(rps / cmd, 3), "minimal_over_command": round(mrps / cmd, 3),
    "update_over_command": round(urps / cmd, 3), "fanout_over_command": round(frps / cmd, 3),
    "command_over_log": round(cmd / log, 3),
}))
PY
done
