#!/usr/bin/env bash
# Build the TypeScript client and run its tests against a live ragcast server:
# a fresh data dir, a fresh key, a free port; the server is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
client=clients/typescript

command -v npm >/dev/null || { echo "npm is missing: run scripts/services.sh" >&2; exit 1; }
cd "$client"
# npm ci wipes node_modules: only when the lock file changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
fi
npm run --silent build
cd "$root"

data=$(mktemp -d)
log="$data/server.log"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid"
    wait "$pid" 2>/dev/null || true
  fi
  rm -rf "$data"
}
trap cleanup EXIT

export RAGCAST_DATA_DIR="$data" RAGCAST_PRELOAD_MODELS=false HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
key=$(.venv/bin/ragcast keys create --user typescript 2>/dev/null)
.venv/bin/ragcast serve --host 127.0.0.1 --port "$port" >"$log" 2>&1 &
pid=$!
url="http://127.0.0.1:$port"
healthy() { .venv/bin/python -c 'import sys, urllib.request; urllib.request.urlopen(sys.argv[1], timeout=2)' "$url/healthz" 2>/dev/null; }
for _ in $(seq 1 120); do
  healthy && break
  kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "the server did not start" >&2; exit 1; }
  sleep 0.5
done
healthy || { cat "$log" >&2; echo "the server did not answer" >&2; exit 1; }

status=0
(cd "$client" && RAGCAST_URL="$url" RAGCAST_API_KEY="$key" npm test) || status=$?
[ "$status" -eq 0 ] || { echo "--- server log ---" >&2; tail -n 50 "$log" >&2; }
exit "$status"
