# Shared by the HTTP benchmarks (source it): start a release `herald serve`
# on a fresh data directory (and, for PostgreSQL, a fresh schema), make an
# app, stop it again. HERALD_BIN picks another binary (default
# ./target/release/herald).
#   serve_herald sqlite|postgres PORT   -> sets herald_pid, herald_data, HERALD_BENCH_TOKEN
#   stop_herald
pg_url=${HERALD_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}

serve_herald() {
  local backend=$1 port=$2
  herald_backend=$backend
  herald_port=$port
  herald_data=$(mktemp -d)
  local db_args=()
  if [ "$backend" = postgres ]; then
    herald_schema="bench_$$_$port"
    psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA IF EXISTS $herald_schema CASCADE; CREATE SCHEMA $herald_schema"
    db_args=(--database-url "${pg_url}?options=-csearch_path%3D${herald_schema}")
  fi
  HERALD_ROOT_TOKEN=hr_bench HERALD_WEBHOOK_ALLOW_NETS=127.0.0.0/8 RUST_LOG=warn \
    "${HERALD_BIN:-./target/release/herald}" serve --listen "127.0.0.1:$port" --data-dir "$herald_data" "${db_args[@]}" &
  herald_pid=$!
  for _ in $(seq 1 100); do curl -sf "localhost:$port/readyz" >/dev/null && break; sleep 0.2; done
  HERALD_BENCH_TOKEN=$(curl -sf -X POST "localhost:$port/v1/apps" -H "Authorization: Bearer hr_bench" \
    -H 'Content-Type: application/json' -d '{"name":"bench"}' \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["api_key"]["token"])')
  export HERALD_BENCH_TOKEN
}

stop_herald() {
  kill "$herald_pid" 2>/dev/null || true
  wait "$herald_pid" 2>/dev/null || true
  rm -rf "$herald_data"
  if [ "$herald_backend" = postgres ]; then
    psql "$pg_url" -qc "SET client_min_messages = warning; DROP SCHEMA $herald_schema CASCADE"
  fi
}

# PUT /v1/devices/{id} with wrk: prints "rps p50_us p99_us non_2xx".
wrk_put() { # prefix connections seconds
  HERALD_BENCH_PREFIX="$1" wrk -t2 -c"$2" -d"$3s" -s bench/wrk/put_device.lua "http://127.0.0.1:$herald_port" \
    | awk '/Requests\/sec/ {rps=$2} /^RESULT/ {for (i=2;i<=NF;i++) {split($i,kv,"="); v[kv[1]]=kv[2]}} END {print rps, v["p50_us"], v["p99_us"], v["errors_status"]}'
}

# Subscribes one webhook endpoint (to a sink on SINK_PORT) and two change
# queues to device.*.
add_fanout() { # sink_port
  local auth=(-H "Authorization: Bearer $HERALD_BENCH_TOKEN" -H 'Content-Type: application/json')
  curl -sf -o /dev/null -X POST "localhost:$herald_port/v1/webhooks" "${auth[@]}" \
    -d "{\"url\": \"http://127.0.0.1:$1/hook\", \"event_types\": [\"device.*\"]}"
  for q in fanout-a fanout-b; do
    curl -sf -o /dev/null -X POST "localhost:$herald_port/v1/change-queues" "${auth[@]}" \
      -d "{\"name\": \"$q\", \"event_types\": [\"device.*\"]}"
  done
}
