#!/usr/bin/env bash
# Fuzzes a real `herald serve` from its own /openapi.json with schemathesis,
# on SQLite and then on PostgreSQL: no 5xx, and every answer (status code,
# content type, headers, body) as the document describes it.
#
#   tests/schemathesis/run.sh                       # both backends
#   HERALD_ST_BACKENDS=sqlite tests/schemathesis/run.sh
#   tests/schemathesis/run.sh --include-path-regex '^/v1/devices'   # more options for schemathesis run
#
# HERALD_ST_MAX_EXAMPLES (default 10) bounds the cases per operation and
# phase, HERALD_ST_SEED fixes the seed, HERALD_TEST_PG_URL names the
# PostgreSQL server (a fresh schema is made there and dropped after).
set -euo pipefail
cd "$(dirname "$0")/../.."

HERE=tests/schemathesis
BACKENDS=${HERALD_ST_BACKENDS:-sqlite postgres}
MAX_EXAMPLES=${HERALD_ST_MAX_EXAMPLES:-10}
PG_URL=${HERALD_TEST_PG_URL:-postgres://postgres@127.0.0.1:5432/test}
CHECKS=not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance

log() { printf '==> %s\n' "$*"; }

TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
VENV=${HERALD_ST_VENV:-$TARGET_DIR/schemathesis-venv}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/herald-schemathesis.XXXXXX")
# The last run's HAR files (every request and answer) and server logs.
REPORTS=$TARGET_DIR/schemathesis
mkdir -p "$REPORTS"
SERVER_PID=""
PG_SCHEMA=""

cleanup() {
  if [ -n "$SERVER_PID" ]; then
    kill "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  if [ -n "$PG_SCHEMA" ]; then
    psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1 || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# --- schemathesis, pinned, in its own venv (rebuilt when the pins change)
stamp=$(sha256sum "$HERE/requirements.txt" | cut -d' ' -f1)
if [ "$(cat "$VENV/.requirements" 2>/dev/null || true)" != "$stamp" ]; then
  log "installing schemathesis into $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r "$HERE/requirements.txt"
  echo "$stamp" >"$VENV/.requirements"
fi

# --- the server
log "building herald"
cargo build --quiet --bin herald
BIN=${HERALD_BIN:-$TARGET_DIR/debug/herald}

export HERALD_ST_ROOT_TOKEN="hr_schemathesis-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

# Starts herald on a free port ($1: database URL, empty for SQLite) and sets
# BASE_URL once it is listening and ready.
start_server() {
  local data_dir="$WORK/data-$2" server_log="$REPORTS/server-$2.log" deadline address=""
  mkdir -p "$data_dir"
  HERALD_ROOT_TOKEN=$HERALD_ST_ROOT_TOKEN HERALD_LOG_JSON=true HERALD_DATABASE_URL=$1 \
    HERALD_WEBHOOK_ALLOW_NETS=127.0.0.0/8 \
    RUST_LOG=${RUST_LOG:-warn,herald=info} \
    "$BIN" serve --listen 127.0.0.1:0 --data-dir "$data_dir" >"$server_log" 2>&1 &
  SERVER_PID=$!
  deadline=$((SECONDS + 120))
  while [ -z "$address" ]; do
    if ! kill -0 "$SERVER_PID" 2>/dev/null || [ "$SECONDS" -ge "$deadline" ]; then
      echo "herald did not start:" >&2
      cat "$server_log" >&2
      exit 1
    fi
    address=$(grep -o '"message":"herald is listening","address":"[^"]*"' "$server_log" |
      sed 's/.*"address":"\([^"]*\)"/\1/' | head -n 1 || true)
    [ -n "$address" ] || sleep 0.2
  done
  BASE_URL="http://$address"
  until curl -fsS -o /dev/null "$BASE_URL/readyz"; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "herald is not ready at $BASE_URL" >&2
      exit 1
    fi
    sleep 0.2
  done
}

stop_server() {
  kill "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  SERVER_PID=""
}

# An app and its first key (all four roles).
create_app() {
  curl -fsS -X POST "$BASE_URL/v1/apps" \
    -H "Authorization: Bearer $HERALD_ST_ROOT_TOKEN" \
    -H 'Content-Type: application/json' -d '{"name": "schemathesis"}' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["api_key"]["token"])'
}

TOTAL_REQUESTS=0
FAILED=""

# Runs schemathesis against the server at BASE_URL ($1: the backend's name).
fuzz() {
  local backend=$1 har="$REPORTS/$1.har" started=$SECONDS status=0 requests
  shift
  HERALD_ST_APP_KEY=$(create_app)
  export HERALD_ST_APP_KEY
  cp "$HERE/schemathesis.toml" "$WORK/schemathesis.toml"
  python3 "$HERE/seed.py" "$BASE_URL" "$HERALD_ST_APP_KEY" >>"$WORK/schemathesis.toml"
  log "schemathesis on $backend: $BASE_URL/openapi.json"
  # From the run's own directory: schemathesis keeps a cache of past
  # failures where it runs, and each run starts without one.
  (cd "$WORK" && "$VENV/bin/schemathesis" --config-file "$WORK/schemathesis.toml" --no-color run \
    "$BASE_URL/openapi.json" \
    --checks "$CHECKS" \
    --max-examples "$MAX_EXAMPLES" \
    --workers 1 \
    --generation-database none \
    ${HERALD_ST_SEED:+--seed "$HERALD_ST_SEED"} \
    --report har --report-har-path "$har" \
    "$@") || status=$?
  requests=$(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["log"]["entries"]))' "$har" 2>/dev/null || echo 0)
  TOTAL_REQUESTS=$((TOTAL_REQUESTS + requests))
  log "schemathesis on $backend: $requests requests in $((SECONDS - started)) s, exit $status"
  if [ "$status" != 0 ]; then
    FAILED="$FAILED $backend"
  fi
}

for backend in $BACKENDS; do
  case $backend in
    sqlite)
      start_server "" sqlite
      ;;
    postgres)
      PG_SCHEMA="st_$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')"
      psql "$PG_URL" -qc "CREATE SCHEMA $PG_SCHEMA" >/dev/null
      sep='?'
      case $PG_URL in *\?*) sep='&' ;; esac
      start_server "${PG_URL}${sep}options=-csearch_path%3D${PG_SCHEMA}" postgres
      ;;
    *)
      echo "unknown backend '$backend' (sqlite, postgres)" >&2
      exit 2
      ;;
  esac
  fuzz "$backend" "$@"
  stop_server
  if [ -n "$PG_SCHEMA" ]; then
    psql "$PG_URL" -qc "DROP SCHEMA IF EXISTS $PG_SCHEMA CASCADE" >/dev/null 2>&1
    PG_SCHEMA=""
  fi
done

log "schemathesis: $TOTAL_REQUESTS requests in all"
if [ -n "$FAILED" ]; then
  echo "schemathesis found failures on:$FAILED" >&2
  exit 1
fi
