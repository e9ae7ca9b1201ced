#!/usr/bin/env bash
# Feature-flag evaluation over HTTP: GET /v1/feature-flags/evaluate for one
# registered device with 50 flags (conditions on properties, versions and
# random_bucket), beside a bare axum answer (herald-bench echo) measured in
# the same run. Prints one JSON line. Needs wrk (Debian package `wrk`).
#   bench/flags.sh [sqlite|postgres] [seconds] [connections]
set -euo pipefail
cd "$(dirname "$0")/.."
backend=${1:-sqlite}
seconds=${2:-10}
connections=${3:-64}
source bench/lib/serve.sh

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

./target/release/herald-bench echo --listen 127.0.0.1:18093 &
echo_pid=$!
serve_herald "$backend" 18092
trap 'kill $herald_pid $echo_pid 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -s -o /dev/null localhost:18093 && break; sleep 0.2; done

auth=(-H "Authorization: Bearer $HERALD_BENCH_TOKEN" -H 'Content-Type: application/json')
base="localhost:18092"
curl -sf -o /dev/null -X PUT "$base/v1/devices/bench-device" "${auth[@]}" \
  -d '{"push_token": "tok-bench", "send_platform": "fcm", "device_platform": "android"}'
curl -sf -o /dev/null -X PATCH "$base/v1/devices/bench-device/properties" "${auth[@]}" \
  -d '{"properties": {"plan": "pro", "app_version": "2.4.1", "age": 31, "tags": ["beta"]}}'
for i in $(seq 1 50); do
  case $((i % 5)) in
    0) cond='{"key": "plan", "operator": "str_eq", "value": "pro"}' ;;
    1) cond='{"key": "app_version", "operator": "version_gte", "value": "2.'$((i % 7))'"}' ;;
    2) cond='{"key": "random_bucket", "operator": "int_lte", "value": '$((i * 200))'}' ;;
    3) cond='{"join_type": "AND", "conditions": [{"key": "age", "operator": "int_gte", "value": 18}, {"key": "tags", "operator": "str_exists", "value": "beta"}]}' ;;
    4) cond='null' ;;
  esac
  curl -sf -o /dev/null -X POST "$base/v1/feature-flags" "${auth[@]}" \
    -d "{\"name\": \"flag-$i\", \"enabled\": true, \"conditions\": $cond, \"metadata\": {\"i\": $i}}"
done
flags=$(curl -sf "$base/v1/feature-flags/evaluate?external_id=bench-device" "${auth[@]}" \
  | python3 -c 'import json,sys; f=json.load(sys.stdin)["flags"]; print(len(f), sum(x["is_active"] for x in f))')

run_wrk() { # port path
  HERALD_BENCH_PATH="$2" wrk -t2 -c"$connections" -d"${seconds}s" -s bench/wrk/get.lua "http://127.0.0.1:$1" \
    | awk '/Requests\/sec/ {rps=$2} /^RESULT/ {for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}} END {print rps, v["p50_us"], v["p99_us"], v["errors_status"]}'
}
run_wrk 18092 "/v1/feature-flags/evaluate?external_id=bench-device" >/dev/null # warm-up
read -r rps p50 p99 errors <<<"$(run_wrk 18092 "/v1/feature-flags/evaluate?external_id=bench-device")"
read -r erps ep50 ep99 eerrors <<<"$(run_wrk 18093 "/")"
read -r count on <<<"$flags"
python3 - "$backend" "$connections" "$count" "$on" "$rps" "$p50" "$p99" "$errors" "$erps" "$ep50" "$ep99" <<'PY'
import json, sys
b, c, n, on, rps, p50, p99, err, erps, ep50, ep99 = sys.argv[1:]
print(json.dumps({
    "bench": "flags", "backend": b, "connections": int(c), "flags": int(n), "active": int(on),
    "evaluations_per_sec": float(rps), "p50_ms": int(p50) / 1000, "p99_ms": int(p99) / 1000,
    "non_2xx": int(err), "echo_rps": float(erps), "echo_p99_ms": int(ep99) / 1000,
    "evaluate_over_echo": round(float(rps) / float(erps), 3),
}))
PY
stop_herald
kill $echo_pid 2>/dev/null || true
trap - EXIT
