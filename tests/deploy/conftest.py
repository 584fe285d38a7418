"""Shared paths for the deploy tier: what `make oci` wrote and the .wasm it was made from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "deploy"))

OCI_DIR = REPO / "target" / "oci"
OCI_TAG = "tokengate"
RENDERED_DIR = REPO / "target" / "deploy"


@pytest.fixture(scope="session")
def wasm_path() -> Path:
    path = Path(os.environ.get("TOKENGATE_WASM", REPO / "target/wasm32-wasip1/release/tokengate.wasm"))
    if not path.is_file():
        pytest.fail(f"{path} is missing: `make test-deploy` builds it (make build, make oci)")
    return path


@pytest.fixture(scope="session")
def built_image(wasm_path: Path) -> Path:
    """target/oci, as `make oci` left it; it must hold the .wasm built last."""
    if not (OCI_DIR / "index.json").is_file():
        pytest.fail(f"{OCI_DIR} is missing: run `make oci` (make test-deploy does)")
    return OCI_DIR
