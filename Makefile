# billflow: `make dev` brings up the whole dev stack; `make test` runs every test.
SHELL := /bin/bash
GO ?= go
export GOTOOLCHAIN := local

.PHONY: dev test setup build vet fmt bench load faultrun cluster clean

setup:
	@./scripts/setup.sh

build:
	$(GO) build -o bin/ ./cmd/...

dev: setup
	$(GO) build -o bin/billflow-dev ./cmd/billflow-dev
	./bin/billflow-dev

# Every test against real parts: Postgres, an in-process Temporal server,
# Chromium, an SMTP server, stripe-mock and the Stripe sandbox.
test: setup
	@./scripts/check-tracked-size.sh
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 12m ./...

# Go benchmarks, then load against the dev stack (a running `make dev`, or a
# throwaway one): reads at rising rates, 20 concurrent payers, lifecycles/s.
bench: setup
	@./scripts/bench.sh

# The production topology on this machine: Temporal's own server binary
# (go.temporal.io/server, as pinned) with Postgres persistence and
# visibility, two workers and two API replicas, all behind one Postgres.
cluster: setup
	$(GO) build -o bin/ ./cmd/billflow ./cmd/billflow-cluster ./cmd/billflow-load
	$(GO) build -o bin/temporal-server go.temporal.io/server/cmd/server
	$(GO) build -o bin/temporal-sql-tool go.temporal.io/server/cmd/tools/sql
	./bin/billflow-cluster

# The fault run at full size: the production binary (2 API replicas, 2
# workers) paying invoices while workers are SIGKILLed mid-charge, Postgres
# restarts and Stripe times out after committing; then every charge at the
# Stripe sandbox is counted against the ledger. `make test` runs a small one.
faultrun: setup
	$(GO) build -o bin/ ./cmd/billflow ./cmd/billflow-faultrun
	$(GO) build -o bin/temporal-server go.temporal.io/server/cmd/server
	$(GO) build -o bin/temporal-sql-tool go.temporal.io/server/cmd/tools/sql
	./bin/billflow-faultrun -billflow bin/billflow -temporal-server bin/temporal-server -temporal-sql-tool bin/temporal-sql-tool $(FAULTRUN_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin
