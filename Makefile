# tokengate: the front door. `make run` starts the demo gateway, `make test` runs every tier.
# Everything a fresh machine lacks is installed from here, into the project (.venv, .tools).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c

PROFILE      ?= release
VENV         ?= .venv
PYTHON       ?= python3
ENVOY        ?= $(VENV)/bin/envoy
CONCURRENCY  ?= 2
UPSTREAM_PORT ?= 8081
FILTER_WASM  := target/wasm32-wasip1/$(PROFILE)/tokengate.wasm
CARGO_PROFILE_FLAG := $(if $(filter release,$(PROFILE)),--release,--profile $(PROFILE))
TOOLS_STAMP  := $(VENV)/.installed-$(shell cat tests/requirements.txt | sha256sum | cut -c1-12)

export TOKENGATE_WASM := $(abspath $(FILTER_WASM))
export ENVOY

.PHONY: all build tools rust-targets run test test-unit test-e2e lint clean help

all: build

help:
	@echo "make run    - build and start Envoy with the demo config on 127.0.0.1:8080 (admin :9901)"
	@echo "make test   - every test tier: lint, native unit tests, e2e against the real Envoy"
	@echo "make build  - build the filter ($(FILTER_WASM))"
	@echo "make lint   - rustfmt check and clippy on both native and wasm builds"

## Installs ------------------------------------------------------------------------------------

rust-targets:
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

$(TOOLS_STAMP): tests/requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

tools: rust-targets $(TOOLS_STAMP)

## Build ---------------------------------------------------------------------------------------

build: rust-targets
	cargo build --target wasm32-wasip1 $(CARGO_PROFILE_FLAG) --features filter

## Run the demo --------------------------------------------------------------------------------

# The demo upstream echoes what reached it; it stops when Envoy does.
run: tools build
	@$(VENV)/bin/python envoy/demo_upstream.py $(UPSTREAM_PORT) & upstream=$$!; \
	trap 'kill $$upstream 2>/dev/null' EXIT; \
	echo "tokengate demo: http://127.0.0.1:8080 (admin http://127.0.0.1:9901)"; \
	$(ENVOY) -c envoy/envoy.yaml --concurrency $(CONCURRENCY) --log-level warn --component-log-level wasm:info

## Tests ---------------------------------------------------------------------------------------

test: lint test-unit test-e2e

lint: rust-targets
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy --target wasm32-wasip1 --features filter --lib -- -D warnings

test-unit:
	cargo test

test-e2e: tools build
	$(VENV)/bin/python -m pytest tests/e2e -q

clean:
	cargo clean
