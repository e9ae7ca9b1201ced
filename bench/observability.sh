#!/usr/bin/env bash
# What metrics and API rate limiting cost the write path: PUT
# /v1/devices/{id} over HTTP (wrk, 64 connections) against
#   off: a build without /metrics (BASELINE, default 62f177d, the commit
#        before metrics landed) with HERALD_API_RATE_LIMIT=0;
#   on:  this build, rate limiting at its default (20,000/s per key: every
#        request goes through the key's bucket) and /metrics scraped every
#        SCRAPE_EVERY seconds during the run (default 1; Prometheus scrapes
#        every 15 s by default).
# Alternated off/on ROUNDS times per backend in one run; the median of each
# and on/off are printed as JSON lines.
#   bench/observability.sh [sqlite|postgres|both] [seconds] [rounds]
# Needs wrk and, for PostgreSQL, psql.
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
seconds=${2:-10}
rounds=${3:-3}
baseline=${BASELINE:-62f177d}
scrape_every=${SCRAPE_EVERY:-1}
connections=64
source bench/lib/serve.sh

command -v wrk >/dev/null || { echo "install wrk (apt-get install wrk)" >&2; exit 1; }
cargo build --release --quiet --bin herald
# The baseline builds in its own worktree and target directory, seeded
# with this one's compiled dependencies.
base_dir=target/observability-baseline
if [ ! -x "$base_dir/target/release/herald" ] || [ "$(git -C "$base_dir" rev-parse HEAD 2>/dev/null)" != "$(git rev-parse "$baseline")" ]; then
  git worktree remove --force "$base_dir" 2>/dev/null || rm -rf "$base_dir"
  git worktree add --detach "$base_dir" "$baseline" >/dev/null
  mkdir -p "$base_dir/target"
  cp -r target/release "$base_dir/target/release"
  (cd "$base_dir" && cargo build --release --quiet --bin herald)
fi
off_bin=$base_dir/target/release/herald
on_bin=./target/release/herald

backends=(sqlite postgres)
[ "$which" = both ] || backends=("$which")

scrape_metrics() { # port
  while true; do
    curl -sf -o /dev/null "localhost:$1/metrics" -H "Authorization: Bearer hr_bench" || true
    sleep "$scrape_every"
  done
}

for backend in "${backends[@]}"; do
  results=()
  for round in $(seq 1 "$rounds"); do
    for variant in off on; do
      if [ "$variant" = off ]; then
        HERALD_BIN=$off_bin HERALD_API_RATE_LIMIT=0 serve_herald "$backend" 18090
      else
        HERALD_BIN=$on_bin serve_herald "$backend" 18090
      fi
      scraper=""
      trap 'kill $herald_pid $scraper 2>/dev/null || true' EXIT
      wrk_put warm 8 2 >/dev/null
      if [ "$variant" = on ]; then
        scrape_metrics 18090 &
        scraper=$!
      fi
      read -r rps _ p99 errors <<<"$(wrk_put "$variant$round" "$connections" "$seconds")"
      [ -n "$scraper" ] && { kill "$scraper" 2>/dev/null || true; wait "$scraper" 2>/dev/null || true; }
      stop_herald
      trap - EXIT
      results+=("$variant $rps $p99 $errors")
    done
  done
  python3 - "$backend" "$baseline" "$scrape_every" "${results[@]}" <<'PY'
import json, statistics, sys
backend, baseline, scrape, *rows = sys.argv[1:]
runs = {"off": [], "on": []}
for row in rows:
    variant, rps, p99, errors = row.split()
    runs[variant].append((float(rps), int(p99) / 1000, int(errors)))
med = lambda xs: statistics.median(xs)
off_rps, on_rps = med([r[0] for r in runs["off"]]), med([r[0] for r in runs["on"]])
print(json.dumps({
    "backend": backend, "connections": 64, "baseline": baseline, "scrape_every_s": float(scrape),
    "off_rps": [round(r[0]) for r in runs["off"]], "on_rps": [round(r[0]) for r in runs["on"]],
    "off_median_rps": round(off_rps), "on_median_rps": round(on_rps),
    "on_over_off": round(on_rps / off_rps, 3),
    "off_p99_ms": med([r[1] for r in runs["off"]]), "on_p99_ms": med([r[1] for r in runs["on"]]),
    "non_2xx": sum(r[2] for r in runs["off"] + runs["on"]),
}))
PY
done
