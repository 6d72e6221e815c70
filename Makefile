# SpiceRoute. The two commands: `make dev` and `make test`.
SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
SPICE := $(BIN)/spice
# Fuzz budgets are execution counts, not durations: with a duration, Go 1.26's fuzz
# coordinator can fail a target with a spurious "context deadline exceeded" when
# the time runs out under CPU load (go.dev/issue/75804, fixed in Go 1.27).
FUZZTIME ?= 5000x

include mk/nomad.mk

.PHONY: dev test bench tools deps build vet fuzz unit clean

## dev: start a local hub with PostgreSQL, a Nomad dev agent (the demo contributor's machine) and demo accounts; Ctrl-C stops everything.
dev: deps build tools
	$(SPICE) dev

## test: everything CI runs: vet, unit and integration tests (real PostgreSQL, a real Nomad agent), fuzzing, the bank test.
test: deps tools vet unit fuzz

## bench: ledger throughput vs pgbench, HTTP latency, jobs through the hub vs Nomad directly, the contributor agent's RSS and CPU, and `spice agent join` to node ready vs a bare Nomad client.
bench: deps build tools
	$(SPICE) bench ledger
	SPICE_NOMAD_BIN=$(BIN)/nomad $(SPICE) bench jobs
	SPICE_NOMAD_BIN=$(BIN)/nomad $(SPICE) bench jobs -pin
	$(SPICE) bench agent
	SPICE_NOMAD_BIN=$(BIN)/nomad $(SPICE) bench join

## tools: the binaries the tests need: bin/spice and bin/nomad (Nomad v1.11.3 built from the module proxy, mk/nomad.mk).
tools: build

deps:
	@bash deploy/scripts/ensure-deps.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(SPICE) .

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...

unit:
	SPICE_BIN=$(SPICE) SPICE_NOMAD_BIN=$(BIN)/nomad $(GO) test -count=1 -timeout 40m ./...

# Each fuzz target runs briefly; the seed corpora live in testdata/fuzz.
fuzz:
	$(GO) test -run='^$$' -fuzz='^FuzzVerifyCheckpoint$$' -fuzztime=$(FUZZTIME) ./hub/translog/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeTransfers$$' -fuzztime=$(FUZZTIME) ./hub/api/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeEntry$$' -fuzztime=$(FUZZTIME) ./hub/ledger/
	$(GO) test -run='^$$' -fuzz='^FuzzParseIBAN$$' -fuzztime=$(FUZZTIME) ./hub/payout/
	$(GO) test -run='^$$' -fuzz='^FuzzParsePeriod$$' -fuzztime=$(FUZZTIME) ./hub/payout/
	$(GO) test -run='^$$' -fuzz='^FuzzParsePolicy$$' -fuzztime=$(FUZZTIME) ./hub/admission/
	$(GO) test -run='^$$' -fuzz='^FuzzDecodeNomadJob$$' -fuzztime=$(FUZZTIME) ./hub/api/
	$(GO) test -run='^$$' -fuzz='^FuzzMatch$$' -fuzztime=$(FUZZTIME) ./hub/gateway/
	$(GO) test -run='^$$' -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./agent/windows/

clean:
	rm -rf $(BIN)
