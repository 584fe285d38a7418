#!/usr/bin/env python3
"""Demo MCP server for tokengate: a Streamable HTTP server at /mcp, written with the official
Python SDK (`mcp`, PyPI), that knows nothing of OAuth.

Envoy with the tokengate filter stands in front of it (envoy/envoy.yaml routes /mcp here) and
is its OAuth authorization server and resource server: an MCP client that calls it without a
token gets the gateway's 401 with `resource_metadata`, registers itself, signs a user in and
comes back with a token bound to this server (docs/mcp.md). The server sees only requests the
gateway let through, with the x-tokengate-* identity headers.

Two tools:
  echo(text)  returns the text, so a client sees its call went through;
  time()      returns the current UTC time (ISO 8601).

Usage: mcp_server.py [PORT]   (default 8084, 0 picks a free port)
It listens on 127.0.0.1 only and prints one line, "listening on HOST:PORT", once it accepts
connections; the e2e harness reads the port from that line.
"""

from __future__ import annotations

import socket
import sys
from datetime import datetime, timezone

import uvicorn
from mcp.server.mcpserver import MCPServer

HOST = "127.0.0.1"
DEFAULT_PORT = 8084
PATH = "/mcp"

server = MCPServer("tokengate demo MCP server")


@server.tool()
def echo(text: str) -> str:
    """Returns the text it was given."""
    return text


@server.tool()
def time() -> str:
    """Returns the current UTC time in ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def main(argv: list[str]) -> None:
    port = int(argv[1]) if len(argv) > 1 else DEFAULT_PORT
    # Bound here, not by uvicorn, so that port 0 can be reported before the first request:
    # uvicorn serves on the socket it is handed.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((HOST, port))
    listener.listen(128)
    # The SDK's DNS rebinding protection (on for a 127.0.0.1 host) takes Host 127.0.0.1:<any
    # port>, which is what Envoy forwards for the demo's listeners.
    app = server.streamable_http_app(streamable_http_path=PATH, host=HOST)
    config = uvicorn.Config(app, log_level="warning", lifespan="on")
    print(f"listening on {HOST}:{listener.getsockname()[1]}", flush=True)
    try:
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(sys.argv)
