#!/usr/bin/env python3
"""Write the built filter as an OCI image layout, without a container engine.

    python3 deploy/oci_image.py WASM OUT_DIR [--tag tokengate]

OUT_DIR becomes an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md):
`oci-layout`, `index.json` and `blobs/sha256/` holding one image manifest, its config and one
layer. The layer is a gzipped tar with a single file, `plugin.wasm`: the "compat" form that
both Istio's WasmPlugin and Envoy Gateway's EnvoyExtensionPolicy (`code.type: Image`) read.
Both fetchers (istio/istio pkg/wasm/imagefetcher.go, envoyproxy/gateway
internal/wasm/imagefetcher.go) take the image's last layer, require the media type
`application/vnd.oci.image.layer.v1.tar+gzip`, gunzip it and return the tar entry whose base
name is `plugin.wasm`. An uncompressed tar layer would be refused, hence gzip.

Reproducible: every byte is a function of the .wasm alone (fixed mtime, owner, mode and
order in the tar; gzip header with mtime 0 and no file name; JSON with sorted keys), so the
same .wasm gives the same manifest digest on every run. That digest is what Istio's
`sha256` and Envoy Gateway's `image.sha256` compare with (the manifest's, not the .wasm's).

Prints the manifest digest (`sha256:…`) on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import shutil
import sys
import tarfile
from pathlib import Path

LAYER_MEDIA_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
# The file name both fetchers look for (solo-io's wasm image "compat" specification).
PLUGIN_FILE_NAME = "plugin.wasm"
# The platform as Go spells a WASI module (GOARCH=wasm GOOS=wasip1): the image runs in no
# container runtime, so no linux/amd64 claim.
PLATFORM = {"architecture": "wasm", "os": "wasip1"}
DEFAULT_TAG = "tokengate"
# The layer, config and manifest are small; 9 costs nothing and the level is part of the bytes.
GZIP_LEVEL = 9


def canonical_json(value: dict) -> bytes:
    """One spelling per value, so the digest depends on the content only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(wasm: bytes) -> bytes:
    """A tar holding only plugin.wasm, owned by root, read-only, dated 1970-01-01."""
    entry = tarfile.TarInfo(PLUGIN_FILE_NAME)
    entry.size = len(wasm)
    entry.mode = 0o444
    entry.mtime = 0
    entry.uid = entry.gid = 0
    entry.uname = entry.gname = ""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(entry, io.BytesIO(wasm))
    return buffer.getvalue()


def gzip_reproducibly(data: bytes) -> bytes:
    """gzip whose header carries no time and no file name."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0, compresslevel=GZIP_LEVEL) as out:
        out.write(data)
    return buffer.getvalue()


def descriptor(media_type: str, blob: bytes) -> dict:
    return {"mediaType": media_type, "digest": sha256_digest(blob), "size": len(blob)}


def image_blobs(wasm: bytes) -> tuple[bytes, list[bytes]]:
    """The manifest and every blob it names (config, layer), as bytes."""
    tar = layer_tar(wasm)
    layer = gzip_reproducibly(tar)
    config = canonical_json(
        {
            **PLATFORM,
            "config": {},
            "rootfs": {"type": "layers", "diff_ids": [sha256_digest(tar)]},
        }
    )
    manifest = canonical_json(
        {
            "schemaVersion": 2,
            "mediaType": MANIFEST_MEDIA_TYPE,
            "config": descriptor(CONFIG_MEDIA_TYPE, config),
            "layers": [descriptor(LAYER_MEDIA_TYPE, layer)],
        }
    )
    return manifest, [config, layer]


def write_layout(wasm: bytes, out_dir: Path, tag: str) -> str:
    """Replace out_dir with the image layout; return the manifest digest."""
    manifest, blobs = image_blobs(wasm)
    staging = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(staging, ignore_errors=True)
    blob_dir = staging / "blobs" / "sha256"
    blob_dir.mkdir(parents=True)
    for blob in [manifest, *blobs]:
        (blob_dir / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (staging / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                **descriptor(MANIFEST_MEDIA_TYPE, manifest),
                "platform": PLATFORM,
                # What `skopeo copy oci:DIR:TAG` and `umoci --image DIR:TAG` name.
                "annotations": {"org.opencontainers.image.ref.name": tag},
            }
        ],
    }
    (staging / "index.json").write_bytes(canonical_json(index))
    shutil.rmtree(out_dir, ignore_errors=True)
    staging.rename(out_dir)
    return sha256_digest(manifest)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wasm", type=Path, help="the built filter (tokengate.wasm)")
    parser.add_argument("out_dir", type=Path, help="the OCI image layout to write (replaced)")
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"the layout's reference name (default {DEFAULT_TAG})")
    args = parser.parse_args(argv)
    try:
        wasm = args.wasm.read_bytes()
    except OSError as error:
        print(f"oci: cannot read {args.wasm}: {error.strerror}", file=sys.stderr)
        return 1
    print(write_layout(wasm, args.out_dir, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
