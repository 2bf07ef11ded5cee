# reconciler — `make help` lists the targets.

GO        ?= go
BIN       := build/reconciler
IMAGES    := build/images
STATE_DIR ?= /tmp/reconciler-state
# A static binary (no cgo), without gRPC's x/net/trace (and with it
# text/template, whose reflection keeps every method of every type in the
# binary): 25 MB instead of 31, and less of it resident. See docs/benchmarks.md.
BUILD_TAGS := grpcnotrace
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
E2E_TIMEOUT ?= 15m
FUZZTIME  ?= 300000x
BENCH_JSON  ?= build/bench.json
BENCH_FLAGS ?=
GO_BENCHES  := 'Plan10000|Pass200|Load1000|WatchEvent'
CHAOS_ITERATIONS ?= 40
CHAOS_DURATION   ?= 0s
CHAOS_SEED       ?= 0
CHAOS_TIMEOUT    ?= 4h
CHAOS_REPORT     ?= build/chaos.md

PREFIX    ?= /usr/local

.PHONY: help build image deps run test unit e2e lint clean install fuzz fuzz-short schema bench bench-smoke chaos chaos-short kubecompat

help: ## list the targets
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

# The standalone log driver (pkg/runtime/logdriver/standalone) is built
# first and embedded in the binary through -overlay, so that the source tree
# never holds a binary; a plain `go build` has the binary itself as the log
# driver instead (slower to start, larger). The tests and the benchmark build
# with `make build BIN=... DRIVER=...`.
DRIVER    := build/log-driver

build: ## build the binary into build/reconciler, the log driver embedded
	@mkdir -p $(dir $(BIN)) $(dir $(DRIVER))
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "-s -w" -o $(DRIVER) ./pkg/runtime/logdriver/standalone
	printf '{"Replace":{"%s":"%s"}}\n' '$(CURDIR)/cmd/reconciler/embedded/log-driver' '$(abspath $(DRIVER))' > $(DRIVER).overlay.json
	CGO_ENABLED=0 $(GO) build -overlay $(DRIVER).overlay.json -tags $(BUILD_TAGS),embeddriver -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/reconciler

image: ## build the example image archive (from e2e/testapp) into build/images
	$(GO) run ./e2e/mkimage -o $(IMAGES)/testapp.tar

deps: ## install containerd, runc, the CNI plugins, iptables, git, OpenSSH (the e2e git servers, SSH signing) and chromium (the web page's e2e test) when missing (as root, with apt-get)
	@if command -v containerd >/dev/null && command -v runc >/dev/null && command -v containerd-shim-runc-v2 >/dev/null \
		&& [ -x /usr/lib/cni/bridge -o -x /opt/cni/bin/bridge ] && command -v iptables >/dev/null && command -v git >/dev/null \
		&& [ -x /usr/sbin/sshd ] && command -v ssh-keygen >/dev/null && command -v chromium >/dev/null; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing containerd, runc, containernetworking-plugins, iptables, git, openssh and chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc containernetworking-plugins iptables git openssh-client openssh-server chromium >/dev/null; \
	else \
		echo "containerd, runc, the CNI plugins, iptables, git, openssh and chromium are needed: as root run 'apt-get install -y containerd runc containernetworking-plugins iptables git openssh-client openssh-server chromium' (Debian/Ubuntu)"; \
		[ "$$CI" != true ] || exit 1; \
	fi

run: build image deps ## run the reconciler on manifests/ (a private containerd under STATE_DIR if none is running)
	@echo "state in $(STATE_DIR); try: curl 127.0.0.1:8080  or  ctr --address $(STATE_DIR)/containerd/containerd.sock -n warren tasks ls"
	$(BIN) run --manifests manifests --images $(IMAGES) --state-dir $(STATE_DIR) --insecure-manifests-dir

test: deps lint unit kubecompat fuzz-short e2e bench-smoke chaos-short ## lint, unit tests, the Kubernetes compatibility oracle, a brief fuzz run, e2e tests against a private containerd, a benchmark smoke run, one fault of each chaos kind

unit: ## unit tests (with the race detector)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: ## e2e tests: real containerd and runc, started by the tests
	$(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) ./e2e/

bench: deps ## benchmarks against raw containerd, several minutes (as root): table on stdout, JSON in BENCH_JSON; see docs/benchmarks.md
	@mkdir -p $(dir $(BENCH_JSON))
	$(GO) run ./e2e/bench -json $(BENCH_JSON) $(BENCH_FLAGS)
	$(GO) test -run '^$$' -bench $(GO_BENCHES) ./pkg/reconcile/ ./pkg/desired/

bench-smoke: ## the benchmarks with tiny N, in seconds (part of make test), so that they never rot
	$(GO) test -count=1 ./e2e/bench/
	$(GO) run ./e2e/bench -n 3 -c 2 -k 3 -k-busy 2 -rounds 1 -levels 0,2 -idle-window 2s -resync 1s -grace 1s -stops 2 -pause 50ms -probe-n 2 -probe-interval 1s -exec-k 2
	$(GO) run ./e2e/bench -git-only -git-syncs 3 -k 2
	$(GO) test -run '^$$' -bench $(GO_BENCHES) -benchtime 1x ./pkg/reconcile/ ./pkg/desired/

chaos: deps ## the chaos suite, long (as root): CHAOS_ITERATIONS faults of each kind or CHAOS_DURATION, seed CHAOS_SEED; table on stderr and in CHAOS_REPORT; see docs/reliability.md
	@mkdir -p $(dir $(CHAOS_REPORT))
	$(GO) test -count=1 -v -timeout $(CHAOS_TIMEOUT) ./e2e/chaos/ -args -chaos.iterations=$(CHAOS_ITERATIONS) -chaos.duration=$(CHAOS_DURATION) -chaos.seed=$(CHAOS_SEED) -chaos.report=$(abspath $(CHAOS_REPORT))

chaos-short: ## one fault of each chaos kind and the invariant checker's own test, a few minutes (part of make test)
	$(GO) test -count=1 -timeout 10m ./e2e/chaos/ -args -chaos.iterations=1 -chaos.seed=$(CHAOS_SEED)

# kubecompat is a module of its own (e2e/kubecompat/go.mod): k8s.io/kubernetes
# never enters the product's go.mod, and go vet ./... does not descend into it.
kubecompat: ## the compatibility oracle: Kubernetes 1.37's own validation and kubelet file source over every Pod the node accepts, every convert output and a table of mistakes
	cd e2e/kubecompat && $(GO) vet ./... && $(GO) test -count=1 ./...

fuzz: ## fuzz the manifest parser for FUZZTIME (default 300000x: executions, about a minute)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/desired/

# fuzz-short bounds the run by executions, not by time: Go 1.26's fuzz
# coordinator can fail a time-bounded run at its deadline having found
# nothing ("context deadline exceeded", go.dev/issue/75804, fixed in 1.27).
fuzz-short: ## fuzz the manifest parser briefly (part of make test)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 10000x ./pkg/desired/

schema: ## regenerate manifests/task.schema.json from the Go types
	$(GO) run ./cmd/reconciler schema > manifests/task.schema.json.tmp && mv manifests/task.schema.json.tmp manifests/task.schema.json

lint: ## gofmt and go vet
	@out=$$(gofmt -l cmd pkg e2e); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

install: build ## install the binary and the systemd unit (as root)
	install -D -m 0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/reconciler
	install -D -m 0644 contrib/systemd/reconciler.service $(DESTDIR)/etc/systemd/system/reconciler.service
	install -d -m 0755 $(DESTDIR)/etc/reconciler/manifests

clean: ## remove build output
	rm -rf build
