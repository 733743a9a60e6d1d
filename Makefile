# swarmvault: `make demo` shows a secret delivered from Vault to a swarm
# service; `make test` runs unit, integration and end-to-end tests. Both set up
# what they need (Docker engine in swarm mode, a real Vault dev server).

GO      ?= go
PLUGIN  ?= swarmvault:latest
VERSION ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
# The architecture to build for: make plugin GOARCH=arm64 (built here, it
# cannot run here). Its binary is bin/swarmvault-<arch>, its plugin dir
# bin/plugin-<arch>.
HOSTARCH := $(shell $(GO) env GOARCH)
GOARCH  ?= $(HOSTARCH)
BIN     := bin/swarmvault$(if $(filter $(HOSTARCH),$(GOARCH)),,-$(GOARCH))
PLUGIN_DIR := bin/plugin-$(GOARCH)
# make push: REGISTRY=host:port, TAG (default: the commit); an arm64 push is
# tagged TAG-arm64.
REGISTRY ?=
TAG     ?= $(VERSION)
PUSH_TAG  = $(TAG)$(if $(filter amd64,$(GOARCH)),,-$(GOARCH))
PUSH_NAME = $(REGISTRY)/swarmvault:$(PUSH_TAG)
# The legacy builder: BuildKit needs the buildx CLI plugin, which a machine
# with only Debian's docker.io does not have.
DOCKER_BUILD := DOCKER_BUILDKIT=0 docker build -q

export GOTOOLCHAIN ?= local

# Targets named after folders (plugin/, e2e/) would otherwise be "up to date".
.PHONY: all build test lint rules fuzz test-unit test-arm64 test-integration e2e e2e-cluster chaos plugin rootfs push docker docker-engine \
	vault-dev vault-stop postgres prometheus demo demo-clean clean bench bench-lifecycle bench-failover bench-scale settings

all: build

# -trimpath and a fixed version make the binary the same from the same
# commit and toolchain, wherever it is built.
build:
	CGO_ENABLED=0 GOOS=linux GOARCH=$(GOARCH) $(GO) build -trimpath -ldflags "-s -w -X main.version=$(VERSION)" -o $(BIN) .

test: lint rules test-unit test-arm64 test-integration e2e e2e-cluster

# Pinned, and fetched through the module proxy by `go run`.
STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2

lint:
	@test -z "$$(gofmt -l .)" || { echo "gofmt needed:"; gofmt -l .; exit 1; }
	$(GO) mod tidy -diff
	$(GO) vet -tags 'integration e2e' ./...
	$(GO) run $(STATICCHECK) -tags 'integration e2e' ./...
	@# make push runs on an operator's build machine: never the test bed.
	@if $(MAKE) -s -n push REGISTRY=127.0.0.1:1 | grep -E 'e2e/|swarm init|apt-get'; then \
		echo "make push would run the test bed's scripts (above)"; exit 1; fi

# The alert rules shipped in ops/prometheus: promtool check rules and their
# unit tests (promtool test rules); Debian's prometheus package has promtool.
rules:
	ops/check-rules.sh

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

# The arm64 build under qemu-aarch64-static (installed when missing, as
# root): its unit tests (no -race: it needs cgo), then bin/swarmvault-arm64
# serving one secret from the dev Vault over its socket.
test-arm64: vault-dev
	e2e/arm64.sh unit
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token e2e/arm64.sh smoke

# plugin/config.json's env list and the README's settings table, written
# from internal/settings/table.go (test-unit fails while they differ).
settings:
	$(GO) test ./internal/settings/ -run TestGeneratedFilesMatchTheTable -update

# Includes a 3-minute run through token renewals and re-logins (SWARMVAULT_SOAK).
test-integration: vault-dev build
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token \
	VAULT_SERVER_BIN=$$(e2e/vault.sh build) \
		$(GO) test -race -count=1 -timeout 20m -tags integration ./provider/ ./vaultauth/ ./lifecycle/ ./check/
	@echo "bench harness smoke run (asserts only that it runs):"
	$(GO) run ./bench -plugin bin/swarmvault -duration 200ms -rounds 1 -concurrency 1,4 >/dev/null
	$(GO) run ./bench/swarmscale -plugin bin/swarmvault -n 30 -interval 1s -quiet-rounds 2 -churn 3s >/dev/null

e2e: plugin vault-dev postgres prometheus
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token PLUGIN=$(PLUGIN) \
		$(GO) test -count=1 -tags e2e -timeout 30m -v ./e2e/

# The 3-manager bed (e2e/cluster.sh), the plugin pushed to the bed's
# registry and installed on every manager; the bed is removed afterwards,
# whatever the result (CLUSTER_KEEP=1 keeps it, to look at a failure).
# Node 3 runs a current engine (e2e/engine.sh, built once per machine), the
# others Debian's 20.10: one mixed-version swarm tests both engines.
CURRENT_ENGINE_NODES ?= 3
# Then a 3-minute fault campaign on the same bed (make chaos is the long
# one), its seed drawn and printed: a failing seed reproduces its schedule.
e2e-cluster: vault-dev docker postgres
	e2e/registry.sh start >/dev/null
	CURRENT_ENGINE_NODES="$(CURRENT_ENGINE_NODES)" e2e/cluster.sh up
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token \
		$(GO) test -count=1 -tags 'e2e cluster' -run TestCluster -timeout 30m -v ./e2e/ && \
		SEED="$(SEED)" DURATION=3m $(GO) test -count=1 -tags 'e2e cluster' -run TestChaos -timeout 20m -v ./e2e/; \
		rc=$$?; [ -n "$(CLUSTER_KEEP)" ] || e2e/cluster.sh down; exit $$rc

# The fault campaign on the 3-manager bed (TestChaos, e2e/chaos_test.go):
# a workload under faults drawn from SEED (default: drawn, and printed; one
# seed draws one schedule), for DURATION (2m to 60m), checked by a checker
# of its own. Results: bench/RESULTS.md, "Fault campaign".
DURATION ?= 20m
SEED ?=
CHAOS_FAULTS ?=
chaos: docker postgres
	e2e/registry.sh start >/dev/null
	CURRENT_ENGINE_NODES="$(CURRENT_ENGINE_NODES)" e2e/cluster.sh up
	SEED="$(SEED)" DURATION="$(DURATION)" CHAOS_FAULTS="$(CHAOS_FAULTS)" $(GO) test -count=1 -tags 'e2e cluster' -run TestChaos -timeout 90m -v ./e2e/; \
		rc=$$?; [ -n "$(CLUSTER_KEEP)" ] || e2e/cluster.sh down; exit $$rc

# The test bed's engine: installed and started when missing (as root), in
# swarm mode, with the test images. For the test targets only.
docker:
	e2e/docker.sh images >/dev/null

# An engine that answers, nothing more: what make rootfs and make push need.
docker-engine:
	@scripts/require-docker.sh "make rootfs"

vault-dev:
	e2e/vault.sh start

# The database the dynamic-secret tests get credentials for (loopback only).
postgres:
	e2e/postgres.sh start >/dev/null

# The Prometheus that scrapes the plugin's METRICS_ADDR in the e2e (loopback only).
prometheus:
	e2e/prometheus.sh start >/dev/null

vault-stop:
	e2e/vault.sh stop

# The plugin dir docker plugin create takes: config.json and rootfs/, every
# file's time set to the epoch (docker export stamps what it creates), so
# that the same binary gives the same plugin digest.
rootfs: docker-engine build
	$(DOCKER_BUILD) --build-arg BIN=$(BIN) -t swarmvault-rootfs:$(GOARCH) .
	rm -rf $(PLUGIN_DIR) && mkdir -p $(PLUGIN_DIR)/rootfs
	cp plugin/config.json $(PLUGIN_DIR)/config.json
	id=$$(docker create swarmvault-rootfs:$(GOARCH)) && \
		docker export $$id | tar -x -C $(PLUGIN_DIR)/rootfs && docker rm -v $$id >/dev/null
	chmod -R go-w $(PLUGIN_DIR)
	find $(PLUGIN_DIR) -exec touch -h -d @0 {} +

# A local build, for this engine only; leaves the plugin disabled: it needs
# VAULT_ADDR and a token (docker plugin set) before docker plugin enable.
# Its version says -local: an engine refuses to create a plugin whose
# content it already holds, and a push (make push) of the same commit must
# not collide with it.
# (A make of its own: a build made earlier in the same run, e.g. by
# test-integration, would otherwise be taken as it is.)
plugin: docker
	$(MAKE) rootfs VERSION=$(VERSION)-local
	docker plugin rm -f $(PLUGIN) >/dev/null 2>&1 || true
	docker plugin create $(PLUGIN) $(PLUGIN_DIR)
	@echo "created $(PLUGIN) (disabled): docker plugin set $(PLUGIN) VAULT_ADDR=… then docker plugin enable $(PLUGIN)"

# Publishes the plugin as users install it: REGISTRY/swarmvault:TAG. The
# plugin is created on this engine only to be pushed, then removed. The
# digest printed is what users pin (REGISTRY/swarmvault@sha256:…), the
# rootfs what docker plugin inspect shows on a manager that runs it. It needs
# only an engine that answers: no swarm, no packages, no test images.
push:
	@test -n "$(REGISTRY)" || { echo "make push needs REGISTRY=host:port (e.g. 127.0.0.1:5000)"; exit 1; }
	@scripts/require-docker.sh "make push"
	$(MAKE) rootfs VERSION=$(VERSION)
	docker plugin rm -f $(PUSH_NAME) >/dev/null 2>&1 || true
	docker plugin create $(PUSH_NAME) $(PLUGIN_DIR)
	docker plugin push $(PUSH_NAME)
	docker plugin inspect -f '{{index .Config.rootfs.diff_ids 0}}' $(PUSH_NAME) >bin/push-$(GOARCH).rootfs
	docker plugin rm -f $(PUSH_NAME) >/dev/null
	@# The CLI does not print the manifest digest for a plugin: ask the
	@# registry (one without auth, as the test bed's; else see its UI).
	@d=$$(for scheme in https http; do curl --noproxy '*' -sfI -H 'Accept: application/vnd.docker.distribution.manifest.v2+json' \
		$$scheme://$(REGISTRY)/v2/swarmvault/manifests/$(PUSH_TAG) && break; done | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p'); \
	if [ -n "$$d" ]; then echo "$$d" >bin/push-$(GOARCH).digest; echo "pushed $(REGISTRY)/swarmvault@$$d ($(PUSH_TAG))"; ref=$(REGISTRY)/swarmvault@$$d; \
	else rm -f bin/push-$(GOARCH).digest; echo "pushed $(PUSH_NAME): pin it by the Docker-Content-Digest your registry gives for that tag"; ref=$(PUSH_NAME); fi; \
	pushed=$$(cat bin/push-$(GOARCH).rootfs); \
	if r=$$(scripts/plugin-rootfs.sh $$ref); then \
		[ "$$r" = "$$pushed" ] || { echo "make push: the registry's $$ref has rootfs $$r, not the $$pushed pushed"; exit 1; }; \
		echo "rootfs $$r   (docker plugin inspect -f '{{index .Config.rootfs.diff_ids 0}}' shows it on a manager)"; \
	else echo "rootfs $$pushed   (of the plugin pushed; the registry could not be asked, see above)"; fi

demo: plugin vault-dev
	PLUGIN=$(PLUGIN) e2e/demo.sh

demo-clean:
	PLUGIN=$(PLUGIN) e2e/demo.sh clean

# Not part of make test: benchmarks are noisy by nature. Results and how to
# read them: bench/RESULTS.md.
bench: plugin vault-dev
	$(GO) run ./bench -plugin bin/swarmvault -vault-addr http://127.0.0.1:8200 -root-token-file .e2e/vault-token
	PLUGIN=$(PLUGIN) bench/scale.sh 50 3
	PLUGIN=$(PLUGIN) SECRETS=5 bench/scale.sh 50 3
	PLUGIN=$(PLUGIN) REUSE=true bench/scale.sh 100 3
	bench/cluster-scale.sh 150 3
	$(MAKE) bench-failover
	$(MAKE) bench-lifecycle
	$(MAKE) bench-scale

# The leader of a simulated swarm (bench/swarmscale: a fake Docker API, the
# records in the dev Vault) for SCALE_N credentials: its takeover, steady
# rounds, GetSecret during a takeover and RSS. Results: bench/RESULTS.md,
# "Scale".
SCALE_N ?= 1000,10000,30000
bench-scale: build vault-dev
	$(GO) run ./bench/swarmscale -plugin bin/swarmvault -vault-addr http://127.0.0.1:8200 -root-token-file .e2e/vault-token -n $(SCALE_N)

# The cost of a failover with FAILOVER_TASKS running tasks on the 3-manager
# bed: TestCluster's failover subtest alone (with its set-up), whose log
# gives Vault's audit counts and the times.
FAILOVER_TASKS ?= 90
bench-failover: vault-dev docker postgres
	e2e/registry.sh start >/dev/null
	CURRENT_ENGINE_NODES= e2e/cluster.sh up
	FAILOVER_TASKS=$(FAILOVER_TASKS) VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token \
		$(GO) test -count=1 -tags 'e2e cluster' -run 'TestCluster/a_failover_issues_nothing' -timeout 30m -v ./e2e/; \
		rc=$$?; [ -n "$(CLUSTER_KEEP)" ] || e2e/cluster.sh down; exit $$rc

# The task lifecycle's costs (per task start, per round) against the dev
# Vault, a churn of CHURN_LIFETIMES task lifetimes with a token secret on
# the one-node swarm (none of their tokens may be left in Vault), and a
# crash loop.
CHURN_LIFETIMES ?= 1000
CHURN_REPLICAS  ?= 10
# A crash-looping service with a token and a database secret, measured for
# CRASHLOOP_SECONDS (make test runs 40).
CRASHLOOP_SECONDS ?= 600
bench-lifecycle: plugin vault-dev
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token \
		$(GO) test -count=1 -tags integration -run '^$$' -bench . -benchtime 3s ./lifecycle/
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token PLUGIN=$(PLUGIN) \
		CHURN_LIFETIMES=$(CHURN_LIFETIMES) CHURN_REPLICAS=$(CHURN_REPLICAS) \
		$(GO) test -count=1 -tags e2e -timeout 90m -v -run 'TestSwarm/task_lifecycle/token_churn' ./e2e/
	VAULT_ADDR=http://127.0.0.1:8200 VAULT_TOKEN_FILE=$(CURDIR)/.e2e/vault-token PLUGIN=$(PLUGIN) \
		CRASHLOOP_SECONDS=$(CRASHLOOP_SECONDS) \
		$(GO) test -count=1 -tags e2e -timeout 60m -v -run 'TestSwarm/task_lifecycle/a_crash_loop' ./e2e/

clean:
	rm -rf bin
