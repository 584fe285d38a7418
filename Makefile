# tokengate: the front door. `make run` starts the demo gateway, `make test` runs every tier.
# Everything a fresh machine lacks is installed from here, into the project (.venv, .tools).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PROFILE      ?= release
VENV         ?= .venv
PYTHON       ?= python3
ENVOY        ?= $(VENV)/bin/envoy
CONCURRENCY  ?= 2
# The demo upstream's port is fixed by envoy/envoy.yaml's cluster, so it is not a knob here.
UPSTREAM_PORT := 8081
FILTER_WASM  := target/wasm32-wasip1/$(PROFILE)/tokengate.wasm
# What the linker wrote (cargo copies it to FILTER_WASM, which `make build` then rewrites).
LINKED_WASM  := target/wasm32-wasip1/$(PROFILE)/deps/tokengate.wasm
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,--profile $(PROFILE))
TOOLS_STAMP  := $(VENV)/.installed-$(shell cat tests/requirements.txt | sha256sum | cut -c1-12)

export TOKENGATE_WASM := $(abspath $(FILTER_WASM))
export ENVOY

# The variables the installers (mk/tools.mk) need before their rules are read.
E2E_NODE_STAMP       := tests/e2e/node/node_modules/.package-lock.json
BROWSER_NODE_STAMP   := tests/browser/node_modules/.package-lock.json
TOOLS_DIR            := .tools
WASM_BINDGEN_VERSION := $(shell sed -n 's/^wasm-bindgen = { version = "=\([0-9.]*\)".*/\1/p' Cargo.toml)
WASM_BINDGEN         := $(TOOLS_DIR)/bin/wasm-bindgen
CHROMIUM             ?= /usr/bin/chromium
CHROMEDRIVER         ?= /usr/bin/chromedriver

.PHONY: all build cli run test test-unit test-e2e test-fleet lint lint-make clean help
.DEFAULT_GOAL := all

all: build ## build the filter (the same as make build)

# `make help` lists every target whose rule line ends in a `## ` comment, this file's first and
# then mk/*.mk's; `make lint-make` fails when a target named in a .PHONY line has none.
HELP_FILES := $(firstword $(MAKEFILE_LIST)) $(sort $(wildcard mk/*.mk))
help: ## this list
	@grep -hE '^[a-zA-Z0-9_-]+:.*## ' $(HELP_FILES) | \
	  awk 'BEGIN { FS = ":.*## " } { printf "make %-16s %s\n", $$1, $$2 }'

include $(sort $(wildcard mk/*.mk))

## Build ---------------------------------------------------------------------------------------

# --lib: the filter only. The operator CLI (src/bin/tokengate.rs) is a native program, and
# its wasm build would also be named tokengate.wasm.
build: rust-targets wasm-tools ## build the filter: target/wasm32-wasip1/release/tokengate.wasm (PROFILE=release)
	cargo build --lib --target wasm32-wasip1 $(CARGO_PROFILE_FLAG) --features filter
	$(call keep_only_exports,$(LINKED_WASM),$(FILTER_WASM),$(FILTER_EXPORTS))

# The proxy-wasm SDK exports every callback of the ABI, and Envoy enters V8 for each one a
# module exports, on every request: proxy_on_response_headers, proxy_on_done, proxy_on_log...
# cost about 1,500-2,000 instructions each and do nothing here. A module that does not export
# a callback gets the host's default ("continue", "done"). After linking, binaryen's
# wasm-metadce keeps only these exports and removes the code only the others reached.
# proxy_on_delete must stay: the SDK frees a request's context there. proxy_on_response_headers
# stays for the rated tiers' RateLimit headers on allowed responses (it costs every request
# about 2,000 instructions). tests/e2e/test_module_exports.py checks the built module exports
# exactly this list.
FILTER_EXPORTS := memory _initialize proxy_abi_version_0_2_1 proxy_on_vm_start proxy_on_configure \
  proxy_on_context_create proxy_on_delete proxy_on_memory_allocate proxy_on_tick \
  proxy_on_request_headers proxy_on_request_body proxy_on_request_trailers proxy_on_response_headers \
  proxy_on_grpc_receive proxy_on_grpc_close proxy_on_grpc_receive_initial_metadata \
  proxy_on_grpc_receive_trailing_metadata
# What rustc's wasm32-wasip1 target emits; binaryen must accept (and keep to) the same.
WASM_FEATURES := --enable-bulk-memory --enable-sign-ext --enable-nontrapping-float-to-int \
  --enable-mutable-globals --enable-multivalue --enable-reference-types
comma := ,
empty :=
space := $(empty) $(empty)
# wasm-metadce's reachability graph: one root reaching one node per kept export.
exports_graph = [{"name":"root","root":true,"reaches":[$(subst $(space),$(comma),$(patsubst %,"%",$(1)))]}$(foreach e,$(1),$(comma){"name":"$(e)","export":"$(e)"})]
# $(call keep_only_exports,linked.wasm,module.wasm,export names): writes module.wasm from the
# linker's output with only those exports, then runs binaryen's -O3 over it: 6 % fewer bytes
# (V8 compiles every byte before the first request) and about 1,000 instructions fewer per
# Bearer check (-Oz: 8 % fewer bytes but 1,000 more instructions). It always starts from
# cargo's own file (deps/), so it runs after every cargo build, fresh or not, with one result;
# the `mv` replaces module.wasm, which cargo made a hard link to that file, without writing
# through the link.
define keep_only_exports
	printf '%s' '$(call exports_graph,$(3))' > $(2).exports.json
	wasm-metadce $(WASM_FEATURES) $(1) -f $(2).exports.json -o $(2).tmp > $(2).metadce.log
	wasm-opt $(WASM_FEATURES) -O3 $(2).tmp -o $(2).opt
	rm $(2).tmp
	mv $(2).opt $(2)
endef

# The operator CLI, natively: target/release/tokengate (hash-secret, check-config, routes).
# Or without make: cargo run --bin tokengate -- --help
cli: ## the operator CLI, target/release/tokengate: hash-secret, check-config, routes
	cargo build $(CARGO_PROFILE_FLAG) --bin tokengate
	@echo "target/$(PROFILE)/tokengate"

## Run the demo --------------------------------------------------------------------------------

# The gateway answers as soon as the filter is built: envoy/run_demo.py starts the demo
# upstream, the API console's file server (web/) and Envoy at once, and builds the console's
# browser package (`make build-web`) in the background, its log in target/console/build.log;
# /console/ says "being built" until it is there. The first build-web compiles
# wasm-bindgen-cli (about 10 minutes on 2 cores); later ones take seconds. Everything stops
# when Envoy does. web/envoy-console.yaml adds the console's cluster to envoy/envoy.yaml.
# The port check comes first, so a second `make run` says so at once.
run: ## build the filter and start Envoy with the demo config on 127.0.0.1:8080 and :8243 (CONFIG=file.json: another plugin config)
	@$(PYTHON) envoy/run_demo.py check-ports
	@echo "run: installing Envoy and the Rust targets (first run only)…"
	@$(MAKE) --no-print-directory tools
	@echo "run: building the filter ($(FILTER_WASM))…"
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory -s tls
	@$(VENV)/bin/python envoy/run_demo.py run --envoy $(ENVOY) --concurrency $(CONCURRENCY) \
	  --build-web "$(MAKE) --no-print-directory build-web" $(if $(CONFIG),--config $(CONFIG))

# The demo's TLS listener (127.0.0.1:8243, and :8253 for make fleet's second replica) uses a
# self-signed certificate for localhost and 127.0.0.1, made once with Debian's openssl. The
# key stays in target/tls/ (ignored by git), readable by you only.
TLS_DIR  := target/tls
TLS_CERT := $(TLS_DIR)/cert.pem
TLS_KEY  := $(TLS_DIR)/key.pem

.PHONY: tls
tls: $(TLS_CERT) ## the demo's self-signed certificate for localhost, in target/tls/

$(TLS_CERT): | tls-tools
	@echo "run: making a self-signed certificate for the TLS listener ($(TLS_DIR)/)…"
	@mkdir -p $(TLS_DIR)
	@umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 825 \
	  -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
	  -keyout $(TLS_KEY) -out $@.tmp 2>/dev/null
	@chmod 644 $@.tmp && mv $@.tmp $@

## Tests ---------------------------------------------------------------------------------------

test: lint test-unit test-e2e test-fleet test-web test-deploy test-compose ## every tier: lint, unit, e2e (real Envoy), fleet (real etcd, TLS etcd, the previous release beside this one), browser (Chromium), deploy (OCI image, manifests), compose (real Docker)

lint: rust-targets lint-make ## rustfmt check, clippy (native and wasm) and every public make target's help comment
	cargo fmt --check
	cargo fmt --check --manifest-path fuzz/Cargo.toml
	cargo fmt --check --manifest-path tests/e2e/rust-oauth2/Cargo.toml
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --features filter --lib -- -D warnings

# A target named in a .PHONY line is one a person may run: `make help` must list it.
# (A .PHONY line may go on over several lines ending in a backslash.)
lint-make: ## fail when a target named in a .PHONY line has no help comment (make help)
	@missing=""; \
	for target in $$(sed -e ':join' -e '/\\$$/{N;s/\\\n//;b join' -e '}' $(HELP_FILES) | sed -n 's/^\.PHONY: *//p'); do \
	  grep -qE "^$$target:.*## " $(HELP_FILES) || missing="$$missing $$target"; \
	done; \
	if [ -n "$$missing" ]; then echo "make help: no '## ' comment on the rule of:$$missing" >&2; exit 1; fi

test-unit: ## cargo test: the pure modules, the gateway on the in-memory host, the docs checks
	cargo test

test-e2e: tools build e2e-tools $(E2E_NODE_STAMP) e2e-rust-client ## tests/e2e against the real Envoy with the built filter
	$(VENV)/bin/python -m pytest tests/e2e -q

# The Rust `oauth2` crate as a client (tests/e2e/test_rust_oauth2.py): its own crate and lock
# file, built apart so the gateway's crate never depends on it.
.PHONY: e2e-rust-client
e2e-rust-client: ## the Rust oauth2 crate's client the e2e tier drives (tests/e2e/rust-oauth2)
	cargo build --release --locked --manifest-path tests/e2e/rust-oauth2/Cargo.toml --target-dir target/rust-oauth2

# Fleet mode against a real 3-member etcd cluster and two Envoys (tests/fleet); nghttp (e2e-tools)
# sends the HTTP/2 requests with trailers.
test-fleet: tools build previous-release fleet-tools e2e-tools ## tests/fleet: two Envoys in fleet mode against a real 3-member etcd cluster (plain and TLS), and the previous release's module beside this one
	$(VENV)/bin/python -m pytest tests/fleet -q

# The previous release's module, for tests/fleet/test_fleet_upgrade.py: a rolling upgrade and a
# rollback between it and this build must lose no record (docs/upgrading.md). Built from
# PREVIOUS_RELEASE's tree (git archive, so no worktree is registered) into target/previous/,
# with its own target dir; the test finds it at PREVIOUS_WASM. A shallow clone fetches its history
# first (the commit must be reachable from the clone's origin).
PREVIOUS_RELEASE := ab65911
PREVIOUS_DIR     := target/previous
export PREVIOUS_WASM := $(abspath $(PREVIOUS_DIR)/$(PREVIOUS_RELEASE).wasm)
.PHONY: previous-release
previous-release: rust-targets wasm-tools ## the previous release's module (PREVIOUS_RELEASE) in target/previous/, for the upgrade test
	@if [ ! -f $(PREVIOUS_WASM) ]; then \
	  rm -rf $(PREVIOUS_DIR)/src && mkdir -p $(PREVIOUS_DIR)/src && \
	  { git cat-file -e $(PREVIOUS_RELEASE)^{commit} 2>/dev/null || git fetch --quiet --unshallow; } && \
	  git archive $(PREVIOUS_RELEASE) | tar -x -C $(PREVIOUS_DIR)/src && \
	  $(MAKE) --no-print-directory -C $(PREVIOUS_DIR)/src build PROFILE=release && \
	  cp $(PREVIOUS_DIR)/src/target/wasm32-wasip1/release/tokengate.wasm $(PREVIOUS_WASM); \
	fi
	@echo "$(PREVIOUS_WASM)"

## Fleet mode ----------------------------------------------------------------------------------
# `make fleet`: a 3-member etcd cluster on loopback (data in target/fleet/etcd, so tokens outlive
# the replicas), the demo upstream, the API console and two replicas in fleet mode on
# 127.0.0.1:8080 (admin 9901) and 127.0.0.1:8090 (admin 9902). Ctrl-C stops everything.
# etcd comes from Debian (etcd-server and etcd-client, 3.4 or newer) when missing.

.PHONY: fleet fleet-clean
fleet: tools build build-web tls fleet-tools ## fleet mode: 3 etcd members and two replicas on 127.0.0.1:8080 and :8090
	$(VENV)/bin/python envoy/fleet/run.py

fleet-clean: ## forget make fleet's etcd data (target/fleet)
	rm -rf target/fleet

## Browser package -------------------------------------------------------------------------
# `make build-web` builds the crate with the `web` feature for wasm32-unknown-unknown and writes
# the npm package to pkg/: an ES module, the .wasm, TypeScript declarations and package.json.
# `make test-web` runs the package's tests in headless Chromium (wasm-bindgen-test) and the API
# console end to end against the real Envoy (playwright-core driving Debian's Chromium).
# Installs: wasm-bindgen-cli into .tools/ at the exact version Cargo.toml pins wasm-bindgen to;
# chromium and chromium-driver from Debian when missing; playwright-core and vite with `npm ci`
# from tests/browser/package-lock.json (playwright-core never downloads a browser).

WASM_BINDGEN_RUNNER  := $(abspath $(TOOLS_DIR)/bin/wasm-bindgen-test-runner)
CRATE_VERSION        := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
WEB_WASM             := target/wasm32-unknown-unknown/web-release/tokengate.wasm
PKG_DIR              := pkg

.PHONY: build-web test-web test-web-unit test-web-e2e lint-web

build-web: web-tools ## the browser package (pkg/): wasm-bindgen's ES module, .wasm and TypeScript types
	cargo build --lib --target wasm32-unknown-unknown --profile web-release --features web
	rm -rf $(PKG_DIR)
	$(WASM_BINDGEN) --target web --out-dir $(PKG_DIR) --out-name tokengate $(WEB_WASM)
	sed 's/@VERSION@/$(CRATE_VERSION)/' web/package/package.json > $(PKG_DIR)/package.json
	cp web/package/README.md $(PKG_DIR)/README.md
	@echo "$(PKG_DIR)/tokengate_bg.wasm: $$(stat -c %s $(PKG_DIR)/tokengate_bg.wasm) bytes," \
	  "$$(gzip -9 -c $(PKG_DIR)/tokengate_bg.wasm | wc -c) gzipped"

lint-web: web-tools ## clippy on the browser build
	cargo clippy --target wasm32-unknown-unknown --features web --lib --test browser -- -D warnings

# The shared cases and the glue, compiled to wasm, in headless Chromium via chromedriver.
test-web-unit: web-tools browser ## the browser package's tests in headless Chromium (wasm-bindgen-test)
	CHROMEDRIVER=$(CHROMEDRIVER) \
	WASM_BINDGEN_TEST_WEBDRIVER_JSON=$(abspath tests/browser/webdriver.json) \
	WASM_BINDGEN_TEST_TIMEOUT=120 \
	CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$(WASM_BINDGEN_RUNNER) \
	  cargo test --target wasm32-unknown-unknown --features web --test browser

# The console against the real Envoy with the filter, and the package in a Vite app
# (tests/browser/e2e).
test-web-e2e: tools build build-web browser $(BROWSER_NODE_STAMP) ## the API console against the real Envoy, and the package in a Vite app
	cd tests/browser && CHROMIUM=$(CHROMIUM) PYTHON=$(abspath $(VENV)/bin/python) \
	  node --test --test-concurrency=1 e2e/

test-web: lint-web test-web-unit test-web-e2e ## the browser tier: lint-web, test-web-unit, test-web-e2e

## End of Browser package ----------------------------------------------------------------------

## Soak ----------------------------------------------------------------------------------------
# Not part of `make test`: SOAK_TOKENS short-lived tokens through the real Envoy (2 workers,
# loopback), with Envoy's memory before, during and after (about 2 minutes with h2load).
# Prints a table; every sample goes to target/soak/summary.json. Options: soak/soak.py --help.

SOAK_TOKENS ?= 1000000
SOAK_ARGS   ?=

.PHONY: soak
soak: tools build soak-tools ## 1,000,000 short-lived tokens and Envoy's memory before, during, after (SOAK_TOKENS)
	$(VENV)/bin/python soak/soak.py --tokens $(SOAK_TOKENS) $(SOAK_ARGS)

# Fleet mode under faults (soak/fleet_soak.py): issue, use, refresh, revoke and register over two
# replicas and a 3-member etcd while etcd's leader is restarted and one Envoy is killed and
# restarted; then every acknowledged grant is checked on both replicas and every 5xx placed
# against the faults. Prints the counts; writes target/soak-fleet/summary.json.
SOAK_FLEET_SECONDS ?= 180

.PHONY: soak-fleet fleet-scale
soak-fleet: tools build fleet-tools ## fleet mode for SOAK_FLEET_SECONDS (180) while an etcd member and an Envoy restart; no acknowledged grant lost
	$(VENV)/bin/python soak/fleet_soak.py --seconds $(SOAK_FLEET_SECONDS) $(SOAK_ARGS)

# A replica started against a large state (bench/fleet_scale.py): etcd filled to SCALE_GRANTS
# (1,000,000) grants, etcd's bytes per grant before and after compaction, the replica's time to
# its first /token and Bearer 200, its RSS, and what it asked etcd before serving. Writes
# target/fleet-scale/summary.json.
fleet-scale: tools build bench-tools fleet-tools ## a replica against 1,000,000 grants in etcd: start-up time, RSS, etcd bytes per grant (SCALE_GRANTS)
	$(VENV)/bin/python bench/fleet_scale.py

## End of Soak ---------------------------------------------------------------------------------

## Fuzzing -------------------------------------------------------------------------------------
# Not part of `make test`: each target of fuzz/ (cargo-fuzz, libFuzzer) for FUZZ_SECONDS, from
# its seeds in fuzz/corpus/<target>/. New inputs go to fuzz/work/ (not in git); a crash stops
# with cargo-fuzz's non-zero exit and the input in fuzz/artifacts/<target>/. Installs the
# nightly toolchain (minimal profile) and cargo-fuzz when missing. The checks themselves are
# fuzz/checks.rs; `cargo test` replays every corpus file through them on stable.

FUZZ_SECONDS   ?= 60
FUZZ_TARGETS   ?= form basic token scope challenge config records gateway

.PHONY: fuzz
# libFuzzer's own output goes to fuzz/work/<target>.log; its tail is shown when a target fails.
fuzz: fuzz-tools ## every cargo-fuzz target for FUZZ_SECONDS (default 60) each; fails on a crash
	cargo +nightly fuzz build
	@summary=""; for target in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/work/$$target; \
	  echo "fuzz: $$target for $(FUZZ_SECONDS) s"; \
	  cargo +nightly fuzz run $$target fuzz/work/$$target fuzz/corpus/$$target -- \
	    -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 >fuzz/work/$$target.log 2>&1 || \
	    { tail -n 60 fuzz/work/$$target.log; \
	      echo "fuzz: $$target crashed; the input is in fuzz/artifacts/$$target/ (log: fuzz/work/$$target.log)"; \
	      exit 1; }; \
	  runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' fuzz/work/$$target.log | tail -n1); \
	  summary="$$summary$$(printf '  %-10s %12s executions' $$target $$runs)\n"; \
	done; printf "fuzz: no crash in %s s per target\n$$summary" $(FUZZ_SECONDS)

## End of Fuzzing ------------------------------------------------------------------------------

## Benchmarks ----------------------------------------------------------------------------------
# Not part of `make test` (about 20 minutes): tokengate against Envoy alone, a do-nothing wasm
# filter, native api_key_auth / jwt_authn and a Lua filter, each in the real Envoy with one
# worker and a direct_response route. Instructions per request under callgrind (the stable
# figure), rps and p50/p99 from wrk, heap per token at 1M tokens, start-up, .wasm sizes; and
# fleet mode's rows against a real 1-member etcd (bench/fleet_bench.py; etcd from fleet-tools).
# Prints a table; writes target/bench/summary.json. Knobs: see bench/bench.py's docstring.

.PHONY: bench bench-filters profile
# Two reference filters, each its own crate (own [workspace]) built like tokengate: the
# do-nothing floor every wasm filter pays, and a probe that prices single host calls.
bench-filters: rust-targets wasm-tools ## the bench's do-nothing and host-call-probe filters (bench/)
	for crate in noop-filter hostcall-probe; do \
	  cargo build --release --target wasm32-wasip1 --manifest-path bench/$$crate/Cargo.toml \
	    --target-dir target/bench/$$crate || exit 1; \
	done
	$(call keep_only_exports,$(NOOP_WASM),$(NOOP_WASM_TRIMMED),$(NOOP_EXPORTS))

# The do-nothing filter trimmed and optimised like tokengate: the floor for a filter that reads
# the request headers (bench row noop_wasm_trimmed).
NOOP_WASM := target/bench/noop-filter/wasm32-wasip1/release/noop_filter.wasm
NOOP_WASM_TRIMMED := target/bench/noop-filter/noop_filter_trimmed.wasm
NOOP_EXPORTS := memory _initialize proxy_abi_version_0_2_1 proxy_on_vm_start proxy_on_configure \
  proxy_on_context_create proxy_on_delete proxy_on_memory_allocate proxy_on_request_headers

# The browser build is only weighed: if it fails, the bench goes on without its size.
bench: tools build bench-tools bench-filters fleet-tools ## callgrind and wrk, side by side with Envoy alone and its own auth filters (about 20 min)
	-$(MAKE) --no-print-directory build-web
	$(VENV)/bin/python bench/bench.py

# Our own code's share of the two hot paths, natively and by function: examples/hot_path.rs
# under callgrind, a run of 0 requests subtracted from a run of PROFILE_REQUESTS. The
# per-function listings are in target/profile/<path>.txt.
PROFILE_REQUESTS ?= 10000
profile: bench-tools ## our code's instructions per request on the hot paths, natively, by function
	CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \
	  cargo build --release --example hot_path --target-dir target/profile
	@cd target/profile && for path in bearer token; do \
	  for count in 0 $(PROFILE_REQUESTS); do \
	    valgrind --tool=callgrind --callgrind-out-file=$$path.$$count.out \
	      release/examples/hot_path $$path $$count 2>/dev/null || exit 1; \
	  done; \
	  callgrind_annotate --inclusive=yes $$path.$(PROFILE_REQUESTS).out 2>/dev/null > $$path.txt; \
	  total() { callgrind_annotate $$1 2>/dev/null | awk '/PROGRAM TOTALS/ { gsub(",", "", $$1); print $$1 }'; }; \
	  echo "$$path: $$(( ($$(total $$path.$(PROFILE_REQUESTS).out) - $$(total $$path.0.out)) / $(PROFILE_REQUESTS) ))" \
	    "native instructions per request (target/profile/$$path.txt)"; \
	done

## End of Benchmarks ---------------------------------------------------------------------------

clean: ## cargo clean
	cargo clean
