# dtk build. `make demo` runs the example on a dev cluster; `make test` runs
# every test (unit, DSL goldens, end-to-end with real processes).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)
GO      ?= go
BIN     := bin

export CGO_ENABLED = 0

.PHONY: all build test test-short lint fmt demo bench clean cli-docs completions man

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dtk-agent ./cmd/dtk-agent
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/dtkctl ./cmd/dtkctl

# The end-to-end tests build their own binaries with the same flags. The
# packages where goroutines meet (the coordinator's HTTP handlers and FSM,
# the agent, gossip, TLS reload) run again under the race detector, which
# needs cgo.
RACE_PKGS := ./coordinator ./agent ./internal/gossip ./internal/tlsutil ./internal/api ./internal/secret
test:
	$(GO) test -count=1 -timeout 15m ./...
	CGO_ENABLED=1 $(GO) test -race -count=1 -timeout 10m $(RACE_PKGS)

test-short:
	$(GO) test -short -count=1 ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

demo: build
	./scripts/demo.sh

cli-docs: build
	./scripts/cli-docs.sh

# dtkctl's shell completions and man pages, generated from its command
# tree by the host's dtkctl (they are the same for every arch) into
# $(SHARE); the packages install them. Not checked in.
SHARE := $(BIN)/share

completions: build
	mkdir -p $(SHARE)/completions
	$(BIN)/dtkctl completion bash > $(SHARE)/completions/dtkctl.bash
	$(BIN)/dtkctl completion zsh > $(SHARE)/completions/_dtkctl
	$(BIN)/dtkctl completion fish > $(SHARE)/completions/dtkctl.fish

man: build
	rm -rf $(SHARE)/man
	SOURCE_DATE_EPOCH=$${SOURCE_DATE_EPOCH:-$$(git log -1 --format=%ct 2>/dev/null || date +%s)} $(BIN)/dtkctl __man $(SHARE)/man
	gzip -9nf $(SHARE)/man/*.1

clean:
	rm -rf $(BIN)

# Benchmarks (docs/performance.md): dtk on this machine next to puppet apply
# and ansible-playbook; writes bench/results/<date>.md and .json. `bench`
# takes about 25 minutes (a 10-minute idle period overlaps the rest),
# `bench-quick` about 5. Every cluster is secure (mutual TLS, node
# certificates, encrypted gossip) unless BENCHFLAGS=-insecure, and runs with
# ACLs on (a bootstrapped management token) unless BENCHFLAGS=-no-acl.
# BENCHFLAGS adds dtkbench flags.
.PHONY: bench-quick bench-tls-cost bench-acl-cost bench-ui bench-dryrun bench-converge
bench: build bench-ui bench-dryrun bench-converge
	$(GO) run ./bench/cmd/dtkbench -bin $(BIN) -out bench/results $(BENCHFLAGS)

# The dashboard's fleet page on 1,000 nodes and 200 services (budget: 200
# ms): render time through the handler, median and worst of 50 runs;
# writes bench/results/<date>-ui.txt (docs/dashboard.md).
bench-ui:
	$(GO) test -run '^$$' -bench 'BenchmarkUI_Overview_1000Nodes_200Services' -benchtime 50x -count 1 ./coordinator | tee bench/results/$$(date +%F)-ui.txt

# A fleet dry run end to end (budget: 2 s): three coordinator processes
# as shipped and 1,000 simulated agents of three kinds, from the dry run's
# start to the answer with its clusters; median and worst of 10 runs, the
# CPU time they took and the machine's load; writes
# bench/results/<date>-dryrun.txt (docs/dry-run.md). About 2 minutes.
bench-dryrun: build
	DTK_BENCH_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench 'BenchmarkDryRun_1000Agents_ThreeKinds' -benchtime 10x -count 1 -timeout 30m ./bench | tee bench/results/$$(date +%F)-dryrun.txt

# A first (changing) converge of 100 one-line bash steps by a real agent,
# data dir on disk (budget: 250 ms): median wall time and CPU time per pass
# over 10 passes; writes bench/results/<date>-converge.txt
# (docs/performance.md). The commit of one step alone: BenchmarkStore_WriteStep.
bench-converge:
	$(GO) test -run '^$$' -bench 'BenchmarkConverge_100BashSteps_FirstRun' -benchtime 10x -count 1 ./agent | tee bench/results/$$(date +%F)-converge.txt

bench-quick: build
	$(GO) run ./bench/cmd/dtkbench -quick -idle 1m -bin $(BIN) -out bench/results $(BENCHFLAGS)

# What TLS costs: propagation (100 and 1,000 simulated agents) and the
# write path on a secure and an insecure cluster, alternately, 4 rounds of
# each (about 4 minutes); writes bench/results/<date>-tls-cost.md and .json.
bench-tls-cost: build
	$(GO) run ./bench/cmd/dtkbench -tls-compare -rounds 4 -runs 3 -sizes 100,1000 -write-path 5s -bin $(BIN) -out bench/results $(BENCHFLAGS)

# What access control costs: propagation, the write path and 2,000 operator
# reads (GET /v1/services/NAME; no token, a management token, a policy
# token, at 2 and 10,000 tokens in the state) on a secure cluster with
# ACLs on and one with ACLs off, alternately, 4 rounds of each (about 6
# minutes); writes bench/results/<date>-acl-cost.md and .json. The lookup
# alone: go test -run '^$' -bench ACLTokenLookup ./bench/
bench-acl-cost: build
	$(GO) run ./bench/cmd/dtkbench -acl-compare -rounds 4 -runs 3 -sizes 100,1000 -write-path 5s -op-calls 2000 -acl-tokens 10000 -bin $(BIN) -out bench/results $(BENCHFLAGS)

# Release artifacts in dist/: static binaries for every ARCH, a .deb and an
# .rpm per ARCH (nfpm as a Go library, see packaging/), and for `dist` one
# self-contained bundle per ARCH plus dist/SHA256SUMS. Offline once the Go
# module cache holds nfpm.
#
# SIGN_KEY=path/to/secret-key.asc signs everything with that OpenPGP key
# (its passphrase, if any, in the environment as DTK_SIGN_PASSPHRASE): the
# .deb and .rpm inside, a detached NAME.asc for every artefact,
# SHA256SUMS.asc, and the bundles' own SHA256SUMS; the public key goes to
# dist/dtk-release-key.{asc,gpg}. Without SIGN_KEY nothing is signed, and
# the build says so loudly. `make release-key` makes a new key in
# RELEASE_KEY_DIR (packaging/README.md: keeping and rotating it).
DIST    := dist
ARCHES  := amd64 arm64
PACKAGE := $(GO) run ./packaging/cmd/dtk-package
SIGN_KEY ?=
RELEASE_KEY_DIR ?= $(HOME)/dtk-release-key
PACKAGE_FLAGS = --version '$(VERSION)' --bin-dir '$(DIST)/build/linux-{arch}' --share-dir $(SHARE) --out $(DIST) \
	$(foreach a,$(ARCHES),--arch $(a)) $(if $(SIGN_KEY),--sign-key '$(SIGN_KEY)')

.PHONY: packages dist dist-binaries release-key

packages: dist-binaries completions man
	$(PACKAGE) packages $(PACKAGE_FLAGS)

dist: dist-binaries completions man
	$(PACKAGE) dist $(PACKAGE_FLAGS)

dist-binaries:
	rm -f $(DIST)/*.deb $(DIST)/*.rpm $(DIST)/*.tar.gz $(DIST)/SHA256SUMS $(DIST)/*.asc $(DIST)/dtk-release-key.gpg
	$(foreach a,$(ARCHES),GOOS=linux GOARCH=$(a) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/build/linux-$(a)/dtk-agent ./cmd/dtk-agent && \
	  GOOS=linux GOARCH=$(a) $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(DIST)/build/linux-$(a)/dtkctl ./cmd/dtkctl && ) true

# A new release signing key (RSA 4096): the secret key, 0600 (protected by
# DTK_SIGN_PASSPHRASE when set), and the public key, armored and binary.
# Refuses to overwrite an existing key.
release-key:
	$(PACKAGE) keygen --out '$(RELEASE_KEY_DIR)'
