# swarmvault: `make demo` shows a secret delivered from Vault to a swarm
# service; `make test` runs unit, integration and end-to-end tests. Both set up
# what they need (Docker engine in swarm mode, a real Vault dev server).

GO      ?= go
PLUGIN  ?= swarmvault:latest
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
CA_BUNDLE ?= /etc/ssl/certs/ca-certificates.crt
# The legacy builder: BuildKit needs the buildx CLI plugin, which a machine
# with only Debian's docker.io does not have.
DOCKER_BUILD := DOCKER_BUILDKIT=0 docker build -q

export GOTOOLCHAIN ?= local

# Targets named after folders (plugin/, e2e/) would otherwise be "up to date".
.PHONY: all build test lint fuzz test-unit test-integration e2e plugin rootfs docker \
	vault-dev vault-stop demo demo-clean clean bench

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o bin/swarmvault .

test: lint test-unit test-integration e2e

# Pinned, and fetched through the module proxy by `go run`.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet -tags 'integration e2e' ./...
	$(GO) run $(STATICCHECK) -tags 'integration e2e' ./...

# `go test` runs each fuzz target's seed corpus; this runs each target for
# FUZZTIME (a duration, or a count such as 1000000x).
FUZZTIME ?= 1m
FUZZ_TARGETS := FuzzParsePlan FuzzPolicies FuzzRender
fuzz:
	for f in $(FUZZ_TARGETS); do \
		$(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) ./provider/ || exit 1; \
	done

test-unit:
	$(GO) test -race -count=1 ./...

# Includes a 3-minute run through token renewals and re-logins (SWARMVAULT_SOAK).
test-integration: vault-dev build
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token \
	VAULT_SERVER_BIN=$$(e2e/vault.sh build) \
		$(GO) test -race -count=1 -timeout 20m -tags integration ./provider/ ./vaultauth/
	@echo "bench harness smoke run (asserts only that it runs):"
	$(GO) run ./bench -plugin bin/swarmvault -duration 200ms -rounds 1 -concurrency 1,4 >/dev/null

e2e: plugin vault-dev
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token PLUGIN=$(PLUGIN) \
		$(GO) test -count=1 -tags e2e -timeout 30m -v ./e2e/

docker:
	e2e/docker.sh images >/dev/null

vault-dev:
	e2e/vault.sh start

vault-stop:
	e2e/vault.sh stop

rootfs: build docker
	cp $(CA_BUNDLE) bin/ca-certificates.crt
	$(DOCKER_BUILD) -t swarmvault-rootfs:build .
	rm -rf plugin/rootfs && mkdir -p plugin/rootfs
	id=$$(docker create swarmvault-rootfs:build) && \
		docker export $$id | tar -x -C plugin/rootfs && docker rm -v $$id >/dev/null

# Leaves the plugin disabled: it needs VAULT_ADDR and a token (docker plugin
# set) before `docker plugin enable`.
plugin: rootfs
	docker plugin rm -f $(PLUGIN) >/dev/null 2>&1 || true
	docker plugin create $(PLUGIN) plugin
	@echo "created $(PLUGIN) (disabled): docker plugin set $(PLUGIN) VAULT_ADDR=… then docker plugin enable $(PLUGIN)"

demo: plugin vault-dev
	PLUGIN=$(PLUGIN) e2e/demo.sh

demo-clean:
	PLUGIN=$(PLUGIN) e2e/demo.sh clean

# Not part of make test: benchmarks are noisy by nature. Results and how to
# read them: bench/RESULTS.md.
bench: plugin vault-dev
	$(GO) run ./bench -plugin bin/swarmvault -vault-addr http://127.0.0.1:8200 -root-token-file .e2e/vault-token
	PLUGIN=$(PLUGIN) bench/scale.sh 50 3

clean:
	rm -rf bin plugin/rootfs
