"""The OCI image `make oci` writes, read back by independent tools.

skopeo (containers/image) and umoci (opencontainers/umoci) parse the layout as a registry
client would; the layer must give back the built .wasm byte for byte. The Istio and Envoy
Gateway fetchers (istio/istio pkg/wasm/imagefetcher.go, envoyproxy/gateway
internal/wasm/imagefetcher.go) take the manifest's last layer, require the media type
application/vnd.oci.image.layer.v1.tar+gzip and read the tar entry named plugin.wasm:
test_layer_is_what_istio_and_envoy_gateway_extract does the same steps.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import oci_image
from conftest import OCI_TAG


def run(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def skopeo_manifest(layout: Path) -> tuple[str, dict]:
    """The manifest's digest (as skopeo computes it) and its parsed body."""
    inspected = json.loads(run("skopeo", "inspect", f"oci:{layout}:{OCI_TAG}"))
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", f"oci:{layout}:{OCI_TAG}"], check=True, capture_output=True
    ).stdout
    assert inspected["Digest"] == "sha256:" + hashlib.sha256(raw).hexdigest()
    return inspected["Digest"], json.loads(raw)


def test_skopeo_reads_one_layer_holding_plugin_wasm(built_image: Path, wasm_path: Path):
    digest, manifest = skopeo_manifest(built_image)
    assert digest == oci_image.sha256_digest(oci_image.image_blobs(wasm_path.read_bytes())[0]), (
        "target/oci was not made from the .wasm just built: run `make oci`"
    )
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == ["application/vnd.oci.image.layer.v1.tar+gzip"]


def test_umoci_unpacks_the_built_wasm_byte_for_byte(built_image: Path, wasm_path: Path, tmp_path: Path):
    # `raw unpack`: the root filesystem only; umoci's runtime bundle refuses os "wasip1",
    # which is what the module is (no container runtime ever runs this image).
    rootfs = tmp_path / "rootfs"
    run("umoci", "raw", "unpack", "--rootless", "--image", f"{built_image}:{OCI_TAG}", str(rootfs))
    assert sorted(path.name for path in rootfs.iterdir()) == ["plugin.wasm"]
    assert (rootfs / "plugin.wasm").read_bytes() == wasm_path.read_bytes()


def test_layer_is_what_istio_and_envoy_gateway_extract(built_image: Path, wasm_path: Path):
    _, manifest = skopeo_manifest(built_image)
    last_layer = manifest["layers"][-1]
    assert last_layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    blob = (built_image / "blobs" / "sha256" / last_layer["digest"].removeprefix("sha256:")).read_bytes()
    assert "sha256:" + hashlib.sha256(blob).hexdigest() == last_layer["digest"]
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tar:
        (member,) = [m for m in tar.getmembers() if Path(m.name).name == "plugin.wasm"]
        extracted = tar.extractfile(member)
        assert extracted is not None
        assert extracted.read() == wasm_path.read_bytes()


def test_same_wasm_gives_the_same_manifest_digest(wasm_path: Path, tmp_path: Path):
    """Two builds a second apart, in different directories, are the same image."""
    first = oci_image.write_layout(wasm_path.read_bytes(), tmp_path / "first", OCI_TAG)
    second = oci_image.write_layout(wasm_path.read_bytes(), tmp_path / "second", OCI_TAG)
    assert first == second
    for name in ("index.json", "oci-layout"):
        assert (tmp_path / "first" / name).read_bytes() == (tmp_path / "second" / name).read_bytes()
    assert skopeo_manifest(tmp_path / "first")[0] == first


def test_another_wasm_gives_another_digest(wasm_path: Path, tmp_path: Path):
    """The digest pins the module: one byte changed is another image."""
    wasm = bytearray(wasm_path.read_bytes())
    wasm[-1] ^= 0xFF
    assert oci_image.write_layout(bytes(wasm), tmp_path / "changed", OCI_TAG) != oci_image.write_layout(
        wasm_path.read_bytes(), tmp_path / "built", OCI_TAG
    )


def test_skopeo_copy_keeps_the_digest_the_manifests_carry(built_image: Path, tmp_path: Path):
    """Pushing is a `skopeo copy` (docs/deploying.md): it must not rewrite the manifest,
    or the sha256 in the Kubernetes manifests would no longer match the registry's."""
    copy = tmp_path / "copy"
    run("skopeo", "copy", "--quiet", f"oci:{built_image}:{OCI_TAG}", f"oci:{copy}:{OCI_TAG}")
    assert skopeo_manifest(copy)[0] == skopeo_manifest(built_image)[0]
