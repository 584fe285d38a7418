"""Renders one fleet replica's Envoy config from envoy/fleet/envoy.yaml: its listener, TLS
listener (dropped when no port is given: the tests run without certificates) and admin ports, and optionally the etcd members' client ports, the wasm path, the plugin
configuration and the etcd cluster's TLS (envoy/fleet/etcd-tls.yaml). Used by `make fleet` (envoy/fleet/run.py) and by the fleet tests."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import yaml

FLEET_YAML = Path(__file__).resolve().parent / "envoy.yaml"
ETCD_TLS_YAML = Path(__file__).resolve().parent / "etcd-tls.yaml"


def load() -> dict:
    return yaml.safe_load(FLEET_YAML.read_text())


def etcd_transport_socket(ca: Path, certificate: Path | None, key: Path | None,
                          server_name: str | None = None) -> dict:
    """envoy/fleet/etcd-tls.yaml's transport socket with these files: the CA that signed etcd's
    certificates, the client certificate and key (None: present none), and the name expected
    in the members' certificates (None: the file's)."""
    socket = yaml.safe_load(ETCD_TLS_YAML.read_text())["transport_socket"]
    context = socket["typed_config"]["common_tls_context"]
    context["validation_context"]["trusted_ca"]["filename"] = str(ca)
    if certificate is None or key is None:
        del context["tls_certificates"]
    else:
        context["tls_certificates"] = [{"certificate_chain": {"filename": str(certificate)},
                                        "private_key": {"filename": str(key)}}]
    if server_name is not None:
        (alt_name,) = context["validation_context"]["match_typed_subject_alt_names"]
        alt_name["matcher"]["exact"] = server_name
    return socket


PLAIN_LISTENER = "tokengate_listener"
TLS_LISTENER = "tokengate_tls_listener"


def _listener(cfg: dict, name: str = PLAIN_LISTENER) -> dict:
    (listener,) = [lst for lst in cfg["static_resources"]["listeners"] if lst["name"] == name]
    return listener


def _wasm_configs(cfg: dict) -> list[dict]:
    """The filter's and the watcher's plugin `config` blocks (both listeners share the filter's)."""
    listener = _listener(cfg)
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    (wasm,) = [f for f in hcm["http_filters"] if f["name"] == "envoy.filters.http.wasm"]
    (watcher,) = [e for e in cfg["bootstrap_extensions"] if e["name"] == "envoy.bootstrap.wasm"]
    return [wasm["typed_config"]["config"], watcher["typed_config"]["config"]]


def plugin_config(cfg: dict) -> dict:
    return json.loads(_wasm_configs(cfg)[0]["configuration"]["value"])


def render(
    listener_port: int,
    admin_port: int,
    etcd_ports: list[int] | None = None,
    wasm: Path | None = None,
    plugin: dict | None = None,
    upstream_port: int | None = None,
    tls_port: int | None = None,
    etcd_transport: dict | None = None,
) -> dict:
    cfg = copy.deepcopy(load())
    listener = _listener(cfg)
    listener["address"]["socket_address"]["port_value"] = listener_port
    listeners = [listener]
    if tls_port is not None:
        secure = _listener(cfg, TLS_LISTENER)
        secure["address"]["socket_address"]["port_value"] = tls_port
        listeners.append(secure)
    cfg["static_resources"]["listeners"] = listeners
    cfg["admin"]["address"]["socket_address"]["port_value"] = admin_port
    clusters = {c["name"]: c for c in cfg["static_resources"]["clusters"]}
    if etcd_ports is not None:
        endpoints = clusters["etcd"]["load_assignment"]["endpoints"][0]
        endpoints["lb_endpoints"] = [
            {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": port}}}}
            for port in etcd_ports
        ]
    if etcd_transport is not None:
        clusters["etcd"]["transport_socket"] = etcd_transport
    if upstream_port is not None:
        # The sandbox cluster too: one upstream answers both in the fleet's tests.
        for name in ("demo_upstream", "sandbox_upstream"):
            endpoint = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
            endpoint["endpoint"]["address"]["socket_address"]["port_value"] = upstream_port
    for config in _wasm_configs(cfg):
        if wasm is not None:
            config["vm_config"]["code"]["local"]["filename"] = str(wasm)
        if plugin is not None:
            # Both must say the same: one vm_id, one plugin configuration.
            config["configuration"] = {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": json.dumps(plugin),
            }
    return cfg


def write(cfg: dict, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        yaml.safe_dump(cfg, f, sort_keys=False)
    return path


def main() -> int:
    """Prints one replica's config, with a header saying how it was made: the second replica of
    envoy/fleet/docker-compose.yaml is `.venv/bin/python envoy/fleet/replicas.py 8090 9902 8253 > envoy/fleet/replica2.yaml`."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("listener_port", type=int)
    parser.add_argument("admin_port", type=int)
    parser.add_argument("tls_port", type=int)
    args = parser.parse_args()
    command = f".venv/bin/python envoy/fleet/replicas.py {args.listener_port} {args.admin_port} {args.tls_port}"
    sys.stdout.write(f"# envoy/fleet/envoy.yaml with the ports moved, written by `{command}`;\n"
                     "# tests/e2e/test_envoy_files.py checks that it still matches. Edit envoy.yaml, not this.\n")
    yaml.safe_dump(render(args.listener_port, args.admin_port, tls_port=args.tls_port), sys.stdout, sort_keys=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
