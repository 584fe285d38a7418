#!/usr/bin/env python3
"""Render the Kubernetes examples under deploy/ with the image `make oci` wrote.

    python deploy/render_manifests.py --image REPOSITORY --sha256 HEX OUT_DIR

Reads every deploy/<platform>/*.yaml template and writes OUT_DIR/<platform>/<name>.yaml with:
- `@OCI_IMAGE@` replaced by REPOSITORY (where the image is pushed, without `oci://`);
- `@OCI_SHA256@` replaced by HEX, the image's manifest digest (Istio's `sha256` and Envoy
  Gateway's `image.sha256` compare the manifest's digest, not the .wasm's);
- every mapping whose key `"@tokengate"` is `object` or `json` replaced by the demo plugin
  configuration of envoy/envoy.yaml, with the mapping's other keys set on top of it (the
  issuer, the fleet section), as a mapping or as one JSON string (an Envoy StringValue).

So the plugin configuration is declared once (envoy/envoy.yaml, which the e2e tier runs)
and the digest in the manifests is always the one of the .wasm just built. Needs PyYAML.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY_DIR = Path(__file__).resolve().parent
REPO = DEPLOY_DIR.parent
DEMO_ENVOY_YAML = REPO / "envoy" / "envoy.yaml"
PLATFORMS = ("istio", "envoy-gateway")
CONFIG_MARKER = "@tokengate"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


def demo_plugin_config() -> dict:
    """The tokengate filter's JSON configuration in envoy/envoy.yaml's plain listener."""
    envoy = yaml.safe_load(DEMO_ENVOY_YAML.read_text())
    for listener in envoy["static_resources"]["listeners"]:
        for chain in listener["filter_chains"]:
            for network_filter in chain["filters"]:
                for http_filter in network_filter["typed_config"].get("http_filters", []):
                    if http_filter["name"] == "envoy.filters.http.wasm":
                        return json.loads(http_filter["typed_config"]["config"]["configuration"]["value"])
    raise SystemExit(f"render: no wasm filter in {DEMO_ENVOY_YAML}")


def render_value(value: Any, plugin_config: dict, image: str, sha256: str) -> Any:
    if isinstance(value, str):
        return value.replace("@OCI_IMAGE@", image).replace("@OCI_SHA256@", sha256)
    if isinstance(value, list):
        return [render_value(item, plugin_config, image, sha256) for item in value]
    if not isinstance(value, dict):
        return value
    if CONFIG_MARKER in value:
        form = value[CONFIG_MARKER]
        overrides = {key: item for key, item in value.items() if key != CONFIG_MARKER}
        config = {**plugin_config, **render_value(overrides, plugin_config, image, sha256)}
        if form == "json":
            return json.dumps(config, separators=(",", ":"))
        if form == "object":
            return config
        raise SystemExit(f'render: "{CONFIG_MARKER}" is "object" or "json", not {form!r}')
    return {key: render_value(item, plugin_config, image, sha256) for key, item in value.items()}


def render_all(out_dir: Path, image: str, sha256: str) -> list[Path]:
    plugin_config = demo_plugin_config()
    written = []
    for platform in PLATFORMS:
        for template in sorted((DEPLOY_DIR / platform).glob("*.yaml")):
            documents = [
                render_value(document, plugin_config, image, sha256)
                for document in yaml.safe_load_all(template.read_text())
                if document is not None
            ]
            target = out_dir / platform / template.name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(yaml.safe_dump_all(documents, sort_keys=False, width=100))
            written.append(target)
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--image", required=True, help="the image repository, e.g. ghcr.io/you/tokengate")
    parser.add_argument("--sha256", required=True, help="the manifest digest, 64 hex digits (sha256: allowed)")
    parser.add_argument("out_dir", type=Path)
    args = parser.parse_args(argv)
    sha256 = args.sha256.removeprefix("sha256:")
    if not SHA256_HEX.match(sha256):
        print(f"render: --sha256 is 64 lowercase hex digits, not {args.sha256!r}", file=sys.stderr)
        return 1
    for path in render_all(args.out_dir, args.image, sha256):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
