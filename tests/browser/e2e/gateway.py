"""Starts what the console's browser test needs, as `make run` does, on free ports.

The real Envoy with the built tokengate filter and envoy/envoy.yaml's demo
configuration (through the e2e tier's harness, so the browser test runs the
same config the e2e tables do), the demo upstream, and the console's static
file server (web/serve_console.py) as the `tokengate_console` cluster of
web/envoy-console.yaml.

Prints one JSON line once everything answers:
    {"url": "http://127.0.0.1:PORT", "log": "/path/to/envoy.log"}
then waits until its standard input closes (the test ends) and stops it all.
Run with the project's .venv Python: `make test-web` does.
"""

from __future__ import annotations

import base64
import json
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

import harness  # noqa: E402  (the e2e tier's Envoy rig, reused as is)
import yaml  # noqa: E402

CONSOLE_SERVER = REPO / "web" / "serve_console.py"
CONSOLE_CLUSTER = REPO / "web" / "envoy-console.yaml"


class ConsoleServer(harness.LoopbackServer):
    """web/serve_console.py serving this checkout, on a free loopback port."""

    def __init__(self) -> None:
        super().__init__(CONSOLE_SERVER, str(REPO))


def console_clusters(port: int) -> list[dict]:
    """web/envoy-console.yaml's clusters, pointed at `port`."""
    clusters = yaml.safe_load(CONSOLE_CLUSTER.read_text())["static_resources"]["clusters"]
    for cluster in clusters:
        for endpoints in cluster["load_assignment"]["endpoints"]:
            for lb in endpoints["lb_endpoints"]:
                lb["endpoint"]["address"]["socket_address"]["port_value"] = port
    return clusters


# The login page's look (login_page.test.mjs checks that Chromium applied it): an accent other
# than the default, so the page's style hash is the one computed for this config; a logo as a
# data URI, which the page's CSP allows as `img-src data:`; a footer line.
LOGO_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40" viewBox="0 0 40 40">'
            '<rect width="40" height="40" rx="8" fill="#0a7f3c"/>'
            '<path d="M11 21l6 6 12-14" stroke="#fff" stroke-width="4" fill="none"/></svg>')
LOGIN_PAGE = {
    "accent_color": "#0a7f3c",
    "logo": "data:image/svg+xml;base64," + base64.b64encode(LOGO_SVG.encode()).decode(),
    "footer": "tokengate demo \u00b7 no real accounts",
}


def plugin_config(listener_port: int, spa_port: int) -> dict:
    """The demo configuration with LOGIN_PAGE's look, and an Orders API that demo-app is
    subscribed to with a tier of 2 requests an hour: the console's subscription table and its
    429 in plain words.

    demo-spa is a web client, whose loopback redirect URIs keep their port (RFC 9700 §4.1.3):
    it lists the console's callback on this gateway's port and the callback of the test's
    single-page app on its own origin (sign_in.test.mjs), as `make run` lists port 8080."""
    config = harness.with_changes(
        harness.demo_plugin_config(),
        tiers=[{"name": "Tiny", "requests": 2, "per": "hour"}],
        apis=[{"name": "Orders", "version": "1.0.0", "context": "/orders/1.0.0",
               "resources": [{"methods": ["GET"], "path": "/items", "scopes": ["orders:read"]}]}],
        login_page=LOGIN_PAGE,
    )
    demo_app = next(app for app in config["applications"] if app["consumer_key"] == "demo-app")
    demo_app["subscriptions"] = [{"api": "Orders", "tier": "Tiny"}]
    demo_spa = next(app for app in config["applications"] if app["consumer_key"] == "demo-spa")
    demo_spa["redirect_uris"] = [f"http://127.0.0.1:{port}/console/callback" for port in (listener_port, spa_port)]
    return config


def main() -> None:
    harness.require_artifacts()
    for built in (REPO / "pkg" / "tokengate.js", REPO / "pkg" / "tokengate_bg.wasm"):
        if not built.is_file():
            raise FileNotFoundError(f"{built} not found: run `make build-web`")
    upstream = harness.Upstream()
    console = ConsoleServer()
    try:
        listener_port, spa_port = harness.free_port(), harness.free_port()
        config = harness.render_envoy_config(plugin_config(listener_port, spa_port), upstream.port, listener_port)
        config["static_resources"]["clusters"].extend(console_clusters(console.port))
        workdir = Path(tempfile.mkdtemp(prefix="tokengate-console-"))
        with harness.Gateway("console", workdir, config) as gateway:
            print(json.dumps({"url": gateway.url(""), "log": str(gateway.log_path), "spaPort": spa_port}), flush=True)
            sys.stdin.read()  # until the test closes our stdin
    finally:
        console.stop()
        upstream.stop()


if __name__ == "__main__":
    main()
