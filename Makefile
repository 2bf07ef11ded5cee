# reconciler — `make help` lists the targets.

GO        ?= go
BIN       := build/reconciler
IMAGES    := build/images
STATE_DIR ?= /tmp/reconciler-state
VERSION   ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
E2E_TIMEOUT ?= 15m
FUZZTIME  ?= 60s

PREFIX    ?= /usr/local

.PHONY: help build image deps run test unit e2e lint clean install fuzz fuzz-short schema

help: ## list the targets
	@grep -hE '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build the binary into build/reconciler
	$(GO) build -ldflags "-X main.version=$(VERSION)" -o $(BIN) ./cmd/reconciler

image: ## build the example image archive (from e2e/testapp) into build/images
	$(GO) run ./e2e/mkimage -o $(IMAGES)/testapp.tar

deps: ## install containerd and runc when missing (as root, with apt-get)
	@if command -v containerd >/dev/null && command -v runc >/dev/null && command -v containerd-shim-runc-v2 >/dev/null; then \
		exit 0; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing containerd and runc with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq containerd runc >/dev/null; \
	else \
		echo "containerd and runc are needed: as root run 'apt-get install -y containerd runc' (Debian/Ubuntu)"; \
		[ "$$CI" != true ] || exit 1; \
	fi

run: build image deps ## run the reconciler on manifests/ (a private containerd under STATE_DIR if none is running)
	@echo "state in $(STATE_DIR); try: curl 127.0.0.1:8080  or  ctr --address $(STATE_DIR)/containerd/containerd.sock -n warren tasks ls"
	$(BIN) run --manifests manifests --images $(IMAGES) --state-dir $(STATE_DIR)

test: deps lint unit fuzz-short e2e ## lint, unit tests, a brief fuzz run, and e2e tests against a private containerd

unit: ## unit tests (with the race detector)
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: ## e2e tests: real containerd and runc, started by the tests
	$(GO) test -count=1 -v -timeout $(E2E_TIMEOUT) ./e2e/

fuzz: ## fuzz the manifest parser for FUZZTIME (default 60s)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime $(FUZZTIME) ./pkg/desired/

fuzz-short: ## fuzz the manifest parser briefly (part of make test)
	$(GO) test -run '^$$' -fuzz '^FuzzParse$$' -fuzztime 5s ./pkg/desired/

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
