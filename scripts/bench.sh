#!/usr/bin/env bash
# bench.sh (make bench): the Go benchmarks, then load against the dev stack:
# reads at rising rates, the pay path with concurrent payers, and whole
# lifecycles per second. Uses a running `make dev` when there is one (its
# .data/dev.json); otherwise starts a throwaway dev stack and stops it after.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOTOOLCHAIN=local

echo "== Go benchmarks"
go test -run '^$' -bench . -benchtime 40x ./pdf/

echo "== load against the dev stack"
go build -o bin/ ./cmd/...
dev=.data/dev.json
if ! { [[ -f $dev ]] && curl -sf -o /dev/null http://127.0.0.1:8080/readyz; }; then
  data=$(mktemp -d /tmp/billflow-bench.XXXXXX)
  BILLFLOW_DATA_DIR=$data ./bin/billflow-dev >"$data/stack.log" 2>&1 &
  pid=$!
  trap 'kill -INT $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$data"' EXIT
  for _ in $(seq 240); do
    if [[ -f $data/dev.json ]] && grep -q api_key "$data/dev.json" && curl -sf -o /dev/null http://127.0.0.1:8080/readyz; then break; fi
    kill -0 $pid 2>/dev/null || { cat "$data/stack.log"; exit 1; }
    sleep 0.5
  done
  dev=$data/dev.json
  echo "started a throwaway dev stack in $data"
fi
./bin/billflow-load reads -dev "$dev" -rates "${BENCH_RATES:-250,500,1000,2000}" -duration "${BENCH_DURATION:-10s}"
./bin/billflow-load pay -dev "$dev" -payers 20 -count "${BENCH_PAYMENTS:-1000}"
./bin/billflow-load pay -dev "$dev" -payers 20 -count "${BENCH_PAYMENTS:-1000}" -partial
./bin/billflow-load lifecycles -dev "$dev" -count "${BENCH_LIFECYCLES:-100}" -concurrency 8
