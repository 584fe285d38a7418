"""The Kubernetes examples `make oci` renders into target/deploy/, checked offline.

Each document is validated against its CRD's OpenAPI schema (deploy/schemas/, copied from
Istio's and Envoy Gateway's published CRDs) with unknown fields refused, as
`kubectl apply --validate=strict` does; the CEL rules (`x-kubernetes-validations`) are left to
a real API server (docs/deploying.md). The digest every manifest carries must be the one of
the image in target/oci, and the plugin configuration the demo's (envoy/envoy.yaml).
"""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

import render_manifests
from conftest import OCI_TAG, RENDERED_DIR, REPO

SCHEMA_DIR = REPO / "deploy" / "schemas"
TEMPLATE_DIRS = [REPO / "deploy" / platform for platform in render_manifests.PLATFORMS]
# What each example sets on top of the demo configuration, and why: an issuer is the https
# URL clients reach (RFC 8414 §2), the fleet section names the etcd cluster each builds.
EXPECTED_OVERRIDES = {
    "istio/wasmplugin.yaml": {"issuer"},
    "istio/envoyfilter.yaml": {"issuer"},
    "istio/fleet.yaml": {"issuer", "fleet"},
    "envoy-gateway/extension-policy.yaml": {"issuer"},
    "envoy-gateway/fleet.yaml": {"issuer", "fleet"},
}


def strict(schema: Any) -> Any:
    """Refuse fields a schema does not declare, where the API server would drop them."""
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


def validator_for(document: dict) -> jsonschema.Draft7Validator:
    group, version = document["apiVersion"].split("/")
    path = SCHEMA_DIR / f"{group}_{document['kind'].lower()}_{version}.json"
    assert path.is_file(), f"no schema for {document['apiVersion']} {document['kind']} in {SCHEMA_DIR}"
    schema = json.loads(path.read_text())
    # Every object has these, whether its CRD lists them or not (Istio's do not); the API
    # server checks metadata itself.
    schema["properties"].setdefault("apiVersion", {"type": "string"})
    schema["properties"].setdefault("kind", {"type": "string"})
    schema["properties"].setdefault("metadata", {"type": "object"})
    return jsonschema.Draft7Validator(strict(schema))


@dataclass
class Rendered:
    name: str  # e.g. "istio/fleet.yaml"
    documents: list[dict]


def rendered_examples() -> list[Rendered]:
    examples = []
    for directory in TEMPLATE_DIRS:
        for template in sorted(directory.glob("*.yaml")):
            name = f"{directory.name}/{template.name}"
            path = RENDERED_DIR / name
            assert path.is_file(), f"{path} is missing: run `make oci`"
            examples.append(Rendered(name, list(yaml.safe_load_all(path.read_text()))))
    return examples


def find_key(value: Any, key: str) -> Iterator[Any]:
    if isinstance(value, dict):
        for name, item in value.items():
            if name == key:
                yield item
            yield from find_key(item, key)
    elif isinstance(value, list):
        for item in value:
            yield from find_key(item, key)


@pytest.fixture(scope="module")
def examples() -> list[Rendered]:
    return rendered_examples()


@pytest.fixture(scope="module")
def image_digest_hex(built_image: Path) -> str:
    inspected = subprocess.run(
        ["skopeo", "inspect", f"oci:{built_image}:{OCI_TAG}"], check=True, capture_output=True, text=True
    )
    return json.loads(inspected.stdout)["Digest"].removeprefix("sha256:")


def test_every_template_is_rendered(examples: list[Rendered]):
    assert sorted(example.name for example in examples) == sorted(EXPECTED_OVERRIDES)


def test_every_manifest_matches_its_crd_schema(examples: list[Rendered]):
    for example in examples:
        for document in example.documents:
            errors = [error.message for error in validator_for(document).iter_errors(document)]
            assert errors == [], f"{example.name} {document['kind']}: {errors}"


def test_schema_check_refuses_a_misspelled_field_and_a_bad_digest(examples: list[Rendered]):
    """The validation can fail: an unknown field (the server would silently drop it) and a
    sha256 that is not 64 hex digits are refused."""
    (wasm_plugin,) = [d for e in examples for d in e.documents if d["kind"] == "WasmPlugin"]
    misspelled = copy.deepcopy(wasm_plugin)
    misspelled["spec"]["pluginConfiguration"] = misspelled["spec"].pop("pluginConfig")
    assert not validator_for(misspelled).is_valid(misspelled)
    bad_digest = copy.deepcopy(wasm_plugin)
    bad_digest["spec"]["sha256"] = "sha256:" + wasm_plugin["spec"]["sha256"]
    assert not validator_for(bad_digest).is_valid(bad_digest)


def test_every_image_reference_carries_the_built_manifest_digest(examples: list[Rendered], image_digest_hex: str):
    for example in examples:
        text = (RENDERED_DIR / example.name).read_text()
        assert "@OCI_" not in text and render_manifests.CONFIG_MARKER not in text, example.name
        digests = list(find_key(example.documents, "sha256"))
        assert digests, f"{example.name} names no image digest"
        assert set(digests) == {image_digest_hex}, example.name


def plugin_configs(document: dict) -> Iterator[dict]:
    """The tokengate JSON configuration(s) a manifest passes to the filter."""
    if document["kind"] == "WasmPlugin":
        yield document["spec"]["pluginConfig"]
    elif document["kind"] == "EnvoyExtensionPolicy":
        for wasm in document["spec"]["wasm"]:
            yield wasm["config"]
    elif document["kind"] == "EnvoyFilter":
        for value in find_key(document, "configuration"):
            yield json.loads(value["value"])


def test_plugin_configuration_is_the_demo_one(examples: list[Rendered]):
    demo = render_manifests.demo_plugin_config()
    for example in examples:
        configs = [config for document in example.documents for config in plugin_configs(document)]
        assert len(configs) == 1, example.name
        (config,) = configs
        changed = {key for key in config.keys() | demo.keys() if config.get(key) != demo.get(key)}
        assert changed == EXPECTED_OVERRIDES[example.name], example.name
        assert config["issuer"].startswith("https://")


def documents_of(examples: list[Rendered], name: str) -> dict[str, dict]:
    (example,) = [e for e in examples if e.name == name]
    return {document["kind"]: document for document in example.documents}


def test_istio_fleet_config_names_the_cluster_istio_builds_for_etcd(examples: list[Rendered]):
    """Istio names a ServiceEntry's cluster outbound|<port>||<host> (pilot's
    model.BuildSubsetKey); the filter's gRPC calls to etcd go to that cluster."""
    fleet = documents_of(examples, "istio/fleet.yaml")
    service_entry = fleet["ServiceEntry"]["spec"]
    (host,) = service_entry["hosts"]
    (port,) = service_entry["ports"]
    assert port["protocol"] in ("GRPC", "HTTP2")
    assert fleet["DestinationRule"]["spec"]["host"] == host
    (config,) = plugin_configs(fleet["EnvoyFilter"])
    assert config["fleet"]["cluster"] == f"outbound|{port['number']}||{host}"


def test_istio_http_filter_asks_for_the_extension_config_it_adds(examples: list[Rendered]):
    """The inserted filter finds its configuration by name over ECDS: a mismatch leaves the
    listener waiting for a config that never comes (initial_fetch_timeout 0s)."""
    for name in ("istio/envoyfilter.yaml", "istio/fleet.yaml"):
        patches = documents_of(examples, name)["EnvoyFilter"]["spec"]["configPatches"]
        (added,) = [p["patch"]["value"]["name"] for p in patches if p["applyTo"] == "EXTENSION_CONFIG"]
        (inserted,) = [p["patch"]["value"] for p in patches if p["applyTo"] == "HTTP_FILTER"]
        assert inserted["name"] == added, name
        assert inserted["config_discovery"]["type_urls"] == [
            "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm"
        ], name


def test_envoy_gateway_patches_name_the_filter_and_cluster_it_makes(examples: list[Rendered]):
    """Envoy Gateway names the policy's filter envoy.filters.http.wasm/envoyextensionpolicy/
    <namespace>/<name>/wasm/<index> (internal/gatewayapi/envoyextensionpolicy.go); the
    patch must select it, or allow_on_headers_stop_iteration is never set."""
    for name in ("envoy-gateway/extension-policy.yaml", "envoy-gateway/fleet.yaml"):
        documents = documents_of(examples, name)
        policy = documents["EnvoyExtensionPolicy"]
        patches = documents["EnvoyPatchPolicy"]["spec"]["jsonPatches"]
        filter_name = (
            f"envoy.filters.http.wasm/envoyextensionpolicy/{policy['metadata']['namespace']}/"
            f"{policy['metadata']['name']}/wasm/0"
        )
        (knob,) = [p for p in patches if p["operation"].get("path") == "/allow_on_headers_stop_iteration"]
        assert f"'{filter_name}'" in knob["operation"]["jsonPath"], name
        assert knob["operation"]["value"] is True
        (config,) = plugin_configs(policy)
        if "fleet" in config:
            (cluster,) = [p for p in patches if p["type"].endswith("envoy.config.cluster.v3.Cluster")]
            assert cluster["operation"]["value"]["name"] == config["fleet"]["cluster"]
