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
