#!/usr/bin/env bash
# Many nodes on one PostgreSQL, on this machine (JSON lines):
#   1. PUT /v1/devices/{id} over HTTP with 1, 2 and 3 `herald serve` nodes
#      on one database, 64 connections in all (one wrk per node, 64/N
#      connections each): total rps and the worst p99;
#   2. read-your-writes across nodes: a PUT on node A (Prefer:
#      return=minimal), then a GET of it on node B with its Herald-Position
#      as Herald-Min-Position, 300 times: append on A to readable on B;
#   3. webhook deliveries per second with 1 and 3 delivering nodes
#      (herald-bench webhooks --nodes);
#   4. the single primary's ceiling: herald-bench append --systems log
#      (appends under the ordering lock, 64 writers).
# Every node shares the machine's two cores with the others and with wrk and
# PostgreSQL: the figures show what more nodes cost or buy here, not on
# separate hosts.
#   bench/nodes.sh [seconds]
# Needs wrk and psql.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
connections=64
source bench/lib/serve.sh

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald --bin herald-bench

extra_pids=()
# Another node on the schema serve_herald made: serve_more PORT.
serve_more() {
  HERALD_ROOT_TOKEN=hr_bench HERALD_WEBHOOK_ALLOW_NETS=127.0.0.0/8 RUST_LOG=warn \
    ./target/release/herald serve --listen "127.0.0.1:$1" --data-dir "$(mktemp -d)" \
    --database-url "${pg_url}?options=-csearch_path%3D${herald_schema}" &
  extra_pids+=($!)
  for _ in $(seq 1 100); do curl -sf "localhost:$1/readyz" >/dev/null && break; sleep 0.2; done
}
stop_all() {
  for pid in "${extra_pids[@]}"; do kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  extra_pids=()
  stop_herald
}
trap 'for pid in "${extra_pids[@]}"; do kill "$pid" 2>/dev/null || true; done; kill $herald_pid 2>/dev/null || true' EXIT

# 1. Throughput by node count.
for nodes in 1 2 3; do
  serve_herald postgres 18100
  for i in $(seq 2 "$nodes"); do serve_more $((18100 + i - 1)); done
  per_node=$((connections / nodes))
  HERALD_BENCH_PREFIX=warm wrk -t1 -c8 -d2s -s bench/wrk/put_device.lua "http://127.0.0.1:18100" >/dev/null
  outs=()
  wrk_pids=()
  for i in $(seq 1 "$nodes"); do
    out=$(mktemp)
    outs+=("$out")
    HERALD_BENCH_PREFIX="n$nodes-$i" wrk -t1 -c"$per_node" -d"${seconds}s" -s bench/wrk/put_device.lua \
      "http://127.0.0.1:$((18100 + i - 1))" >"$out" &
    wrk_pids+=($!)
  done
  wait "${wrk_pids[@]}"
  python3 - "$nodes" "${outs[@]}" <<'PY'
import json, re, sys
nodes, *files = sys.argv[1:]
rps, p99, errors = 0.0, 0, 0
for f in files:
    text = open(f).read()
    rps += float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    result = dict(kv.split("=") for kv in re.search(r"^RESULT (.*)$", text, re.M).group(1).split())
    p99 = max(p99, int(result["p99_us"]))
    errors += int(result["errors_status"])
print(json.dumps({"bench": "nodes_put", "nodes": int(nodes), "connections": 64,
                  "put_rps": round(rps), "worst_p99_ms": p99 / 1000, "non_2xx": errors}))
PY
  rm -f "${outs[@]}"
  stop_all
done

# 2. Read-your-writes across nodes.
serve_herald postgres 18100
serve_more 18101
python3 - <<'PY'
import http.client, json, os, statistics, time
token = os.environ["HERALD_BENCH_TOKEN"]
a = http.client.HTTPConnection("127.0.0.1", 18100)
b = http.client.HTTPConnection("127.0.0.1", 18101)
body = json.dumps({"push_token": "tok-0123456789abcdef", "send_platform": "fcm", "device_platform": "android"})
auth = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
waits, stale = [], 0
for i in range(300):
    a.request("PUT", f"/v1/devices/ryw-{i}", body, {**auth, "Prefer": "return=minimal"})
    r = a.getresponse(); r.read()
    position = r.getheader("herald-position")
    started = time.perf_counter()
    b.request("GET", f"/v1/devices/ryw-{i}", headers={**auth, "Herald-Min-Position": position})
    g = b.getresponse(); g.read()
    waits.append((time.perf_counter() - started) * 1000)
    stale += g.status != 200
waits.sort()
print(json.dumps({"bench": "nodes_read_your_writes", "writes": 300,
                  "append_on_a_to_read_on_b_ms_p50": round(statistics.median(waits), 2),
                  "p99_ms": round(waits[int(len(waits) * 0.99) - 1], 2), "not_found": stale}))
PY
stop_all
trap - EXIT

# 3. Webhook deliveries by delivering nodes.
for nodes in 1 3; do
  ./target/release/herald-bench webhooks --backend postgres --nodes "$nodes" --events 4000 \
    --latency-events 100 --pg-url "$pg_url"
done

# 4. The ordering lock's ceiling.
./target/release/herald-bench append --backend postgres --writers 64 --events 64000 --systems log --pg-url "$pg_url"
