#!/usr/bin/env bash
# Append throughput with 1, 16 and 64 writers on SQLite and PostgreSQL:
# Herald's log and command path, the plain-INSERT limit, and cqrs-es (the
# peer, built from bench/peers) — all measured in this one run.
#   bench/append.sh [sqlite|postgres|both]
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
pg_url=${HERALD_BENCH_PG_URL:-postgres://postgres@127.0.0.1:5432/test}

cargo build --release --quiet --bin herald-bench
(cd bench/peers && cargo build --release --quiet)

backends=(sqlite postgres)
[ "$which" = both ] || backends=("$which")
for backend in "${backends[@]}"; do
  for writers in 1 16 64; do
    # Enough events for a few seconds per system on this machine.
    if [ "$backend" = sqlite ]; then events=$((writers == 1 ? 2000 : writers * 500)); else events=$((writers == 1 ? 4000 : writers * 1000)); fi
    ./target/release/herald-bench append --backend "$backend" --writers "$writers" --events "$events" --pg-url "$pg_url"
    dir=$(mktemp -d)
    ./bench/peers/target/release/peer-bench --backend "$backend" --writers "$writers" --events "$events" \
      --pg-url "$pg_url" --sqlite-dir "$dir"
    rm -rf "$dir"
  done
done
