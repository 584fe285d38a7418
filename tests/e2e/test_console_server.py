"""web/serve_console.py before the browser package exists: `make run` starts the gateway
at once and builds the console in the background, so /console/ must say what is going on
(and reload itself) rather than fail, and say so when the build failed."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import requests

import harness

CONSOLE_SERVER = harness.REPO / "web" / "serve_console.py"


@dataclass
class Case:
    name: str
    exit_code: str | None  # what BUILD_LOG.exit holds; None: no such file (still building)
    built: bool
    expect_text: str


CASES = [
    Case("building", None, False, "is being built"),
    Case("build succeeded but nothing written yet", "0", False, "is being built"),
    Case("build failed", "2", False, "could not be built"),
    Case("built", "0", True, "tokengate"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_console_page_follows_the_build(case, tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    log = tmp_path / "console-build.log"
    log.write_text("compiling …\n")
    if case.exit_code is not None:
        (tmp_path / "console-build.log.exit").write_text(case.exit_code + "\n")
    if case.built:
        (pkg / "tokengate.js").write_text("export default function init() {}\n")
    server = harness.LoopbackServer(CONSOLE_SERVER, str(harness.REPO), "--pkg", str(pkg), "--build-log", str(log))
    try:
        response = requests.get(f"http://127.0.0.1:{server.port}/console/", timeout=5)
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/html")
        assert case.expect_text in response.text
        if case.built:
            assert "Refresh" not in response.headers
            assert requests.get(f"http://127.0.0.1:{server.port}/console/pkg/tokengate.js", timeout=5).ok
        else:
            assert response.headers["Refresh"] == "5"
            assert 'http-equiv="refresh"' in response.text
            assert str(log) in response.text
            # The page's own assets are there; the package is not.
            assert requests.get(f"http://127.0.0.1:{server.port}/console/pkg/tokengate.js", timeout=5).status_code == 404
            assert requests.get(f"http://127.0.0.1:{server.port}/console/console.css", timeout=5).ok
    finally:
        server.stop()
