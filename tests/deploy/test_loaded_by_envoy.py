"""The filter blocks the Kubernetes examples produce, run in the real Envoy.

No cluster runs here, so each platform's last step is done by hand, as its source does it:
- Istio: istio-agent replaces the remote `oci://` code of the EnvoyFilter's extension
  configuration by the file it unpacked from the image (istio/istio pkg/wasm/convert.go) and
  Envoy gets the rest verbatim. The test does the same with the module umoci unpacks from
  target/oci, so every field the manifest sets is parsed by Envoy 1.40.
- Envoy Gateway: the Wasm config it builds from the EnvoyExtensionPolicy (name, root_id, vm_id,
  configuration as a JSON string, fail_open: envoyproxy/gateway internal/xds/translator/wasm.go),
  with the EnvoyPatchPolicy's `add` applied at its path.
Then a client_credentials token is issued at /token (which hangs without
allow_on_headers_stop_iteration) and accepted on a Bearer route.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml

from conftest import OCI_TAG, RENDERED_DIR, REPO

sys.path.insert(0, str(REPO / "tests" / "e2e"))
import harness  # noqa: E402

TIMEOUT_S = 10


@pytest.fixture(scope="module")
def upstream():
    server = harness.Upstream()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_from_image(built_image: Path, tmp_path_factory) -> Path:
    """plugin.wasm as a registry client unpacks it from target/oci."""
    rootfs = tmp_path_factory.mktemp("image") / "rootfs"
    subprocess.run(
        ["umoci", "raw", "unpack", "--rootless", "--image", f"{built_image}:{OCI_TAG}", str(rootfs)],
        check=True,
        capture_output=True,
    )
    return rootfs / "plugin.wasm"


def rendered(name: str) -> dict[str, dict]:
    documents = yaml.safe_load_all((RENDERED_DIR / name).read_text())
    return {document["kind"]: document for document in documents}


def istio_filter_config(module: Path) -> dict:
    envoy_filter = rendered("istio/envoyfilter.yaml")["EnvoyFilter"]
    (extension,) = [p for p in envoy_filter["spec"]["configPatches"] if p["applyTo"] == "EXTENSION_CONFIG"]
    config = extension["patch"]["value"]["typed_config"]["config"]
    remote = config["vm_config"]["code"].pop("remote")
    assert remote["http_uri"]["uri"].startswith("oci://")
    config["vm_config"]["code"]["local"] = {"filename": str(module)}
    return config


def set_at_pointer(document: dict, pointer: str, value: object) -> None:
    """A JSON Pointer `add` (RFC 6901, RFC 6902 §4.1) into nested mappings."""
    *parents, last = pointer.strip("/").split("/")
    for name in parents:
        document = document[name]
    document[last] = value


def envoy_gateway_filter_config(module: Path) -> dict:
    documents = rendered("envoy-gateway/extension-policy.yaml")
    policy = documents["EnvoyExtensionPolicy"]
    (wasm,) = policy["spec"]["wasm"]
    vm_id = f"envoyextensionpolicy/{policy['metadata']['namespace']}/{policy['metadata']['name']}/wasm/0"
    config = {
        "name": wasm["name"],
        "root_id": wasm["rootID"],
        "fail_open": wasm["failOpen"],
        "vm_config": {"vm_id": vm_id, "runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": str(module)}}},
        "configuration": {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": json.dumps(wasm["config"]),
        },
    }
    # The patch's JSONPath selects this config block (test_manifests.py checks the filter name).
    for patch in documents["EnvoyPatchPolicy"]["spec"]["jsonPatches"]:
        assert patch["operation"]["op"] == "add"
        set_at_pointer(config, patch["operation"]["path"], patch["operation"]["value"])
    return config


@pytest.mark.parametrize(
    "platform, filter_config",
    [("istio", istio_filter_config), ("envoy-gateway", envoy_gateway_filter_config)],
)
def test_filter_block_issues_and_checks_a_token(platform, filter_config, upstream, module_from_image, tmp_path):
    envoy_config = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port)
    wasm = harness.wasm_filter(envoy_config)
    wasm.clear()
    wasm.update(filter_config(module_from_image))
    with harness.Gateway(platform, tmp_path / "envoy", envoy_config) as gateway:
        issued = requests.post(
            gateway.url("/token"),
            auth=("demo-app", "demo-secret"),
            data={"grant_type": "client_credentials", "scope": "orders:read"},
            timeout=TIMEOUT_S,
        )
        assert issued.status_code == 200, issued.text
        token = issued.json()["access_token"]
        bearer = {"Authorization": f"Bearer {token}"}
        assert requests.get(gateway.url("/api/orders"), headers=bearer, timeout=TIMEOUT_S).status_code == 200
        assert requests.get(gateway.url("/api/orders"), timeout=TIMEOUT_S).status_code == 401


def test_envoy_gateway_fleet_variant_runs_in_fleet_mode(upstream, module_from_image, tmp_path):
    """The fleet variant's added cluster and its policy's filter block, in Envoy: the cluster is
    accepted, the filter configures in fleet mode, and /token writes the grant through the
    plugin configuration's cluster, the patch's one (no etcd runs here: the write fails and
    /token answers 503, where local mode would issue a token)."""
    documents = rendered("envoy-gateway/fleet.yaml")
    (cluster_patch,) = [
        p for p in documents["EnvoyPatchPolicy"]["spec"]["jsonPatches"] if p["type"].endswith("Cluster")
    ]
    (policy_wasm,) = documents["EnvoyExtensionPolicy"]["spec"]["wasm"]
    envoy_config = harness.render_envoy_config(harness.demo_plugin_config(), upstream.port)
    envoy_config["static_resources"]["clusters"].append(cluster_patch["operation"]["value"])
    wasm = harness.wasm_filter(envoy_config)
    wasm.clear()
    wasm.update(
        {
            "name": policy_wasm["name"],
            "root_id": policy_wasm["rootID"],
            "allow_on_headers_stop_iteration": True,
            "vm_config": {
                "vm_id": "envoyextensionpolicy/default/tokengate/wasm/0",
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": str(module_from_image)}},
            },
            "configuration": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": json.dumps(policy_wasm["config"]),
            },
        }
    )
    with harness.Gateway("envoy-gateway-fleet", tmp_path / "envoy", envoy_config) as gateway:
        clusters = requests.get(f"{gateway.admin}/clusters?format=json", timeout=TIMEOUT_S).json()
        assert policy_wasm["config"]["fleet"]["cluster"] in [c["name"] for c in clusters["cluster_statuses"]]
        assert requests.get(gateway.url("/api/orders"), timeout=TIMEOUT_S).status_code == 401
        issued = requests.post(
            gateway.url("/token"),
            auth=("demo-app", "demo-secret"),
            data={"grant_type": "client_credentials"},
            timeout=TIMEOUT_S,
        )
        assert issued.status_code == 503, issued.text
        failures = gateway.stats(r"^wasmcustom\.tokengate\.fleet\.etcd_failures$")
        assert failures.get("wasmcustom.tokengate.fleet.etcd_failures", 0) >= 1
