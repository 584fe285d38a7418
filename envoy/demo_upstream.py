#!/usr/bin/env python3
"""Demo upstream for tokengate: shows what the gateway forwarded.

Answers every request, whatever its method or path, with 200 and a JSON echo:

    {"method": "GET", "path": "/api/orders?x=1",
     "headers": {"x-tokengate-client-id": "demo-app", ...},
     "authorization_forwarded": false}

Only the x-tokengate-* identity headers are echoed with their values: they are
what the gateway promises to set (and to strip when a client sends them), and
echoing no other value keeps tokens and cookies out of the demo output. A
header that arrives more than once is echoed with its values joined by ", ",
so a spoofed copy that survived next to the real one is visible.
"header_names" lists the name (never the value) of every header that arrived,
so a test sees what the gateway stripped (method overrides, say), and
"trailers" and "trailer_names" do the same for the trailers of a chunked body
(present only when some arrived).

Usage: demo_upstream.py [PORT] [NAME]   (default 8081, 0 picks a free port)
With a NAME (the demo's sandbox upstream is started as "sandbox"), every echo
also has "upstream": NAME, so a caller sees which upstream answered.
It listens on 127.0.0.1 only and prints one line, "listening on HOST:PORT",
once it accepts connections; the e2e harness reads the port from that line.
Standard library only, so it runs wherever Envoy's Python runs.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOST = "127.0.0.1"
DEFAULT_PORT = 8081
IDENTITY_HEADER_PREFIX = "x-tokengate-"
# Set from the command line: the name this upstream answers as ("" for none).
UPSTREAM_NAME = ""


def identity_of(pairs) -> dict:
    """The x-tokengate-* fields among (name, value) pairs, repeated ones joined by ", "."""
    identity = {}
    for name, value in pairs:
        key = name.lower()
        if key.startswith(IDENTITY_HEADER_PREFIX):
            identity[key] = f"{identity[key]}, {value}" if key in identity else value
    return identity


class EchoHandler(BaseHTTPRequestHandler):
    # HTTP/1.1 keeps Envoy's upstream connections alive between requests.
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
    # client's delayed ACK holds every response back ~40 ms.
    disable_nagle_algorithm = True
    server_version = "tokengate-demo-upstream"

    def __getattr__(self, name):
        # BaseHTTPRequestHandler dispatches METHOD to do_METHOD; answering any
        # name that starts with do_ makes every method, even an unusual one,
        # reach the echo instead of a 501.
        if name.startswith("do_"):
            return self._echo
        raise AttributeError(name)

    def _echo(self):
        trailers = self._discard_body()
        echo = {
            "method": self.command,
            "path": self.path,
            "headers": identity_of(self.headers.items()),
            "header_names": sorted({k.lower() for k in self.headers.keys()}),
            "authorization_forwarded": "authorization" in (k.lower() for k in self.headers.keys()),
        }
        if UPSTREAM_NAME:
            echo["upstream"] = UPSTREAM_NAME
        if trailers:
            echo["trailers"] = identity_of(trailers)
            echo["trailer_names"] = sorted({name.lower() for name, _ in trailers})
        body = json.dumps(echo).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _discard_body(self):
        # Read the request body so the next request on a kept-alive connection
        # starts at a message boundary. Envoy sends Content-Length, or chunked
        # encoding for a body of unknown length.
        length = self.headers.get("Content-Length")
        # Returns the trailers of a chunked body as (name, value) pairs.
        trailers = []
        if length is not None:
            self.rfile.read(int(length))
        elif "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    break
                self.rfile.read(size + 2)  # chunk data and its CRLF
            # The last chunk is followed by trailer fields, then an empty line.
            while (line := self.rfile.readline().strip()):
                name, _, value = line.decode("latin-1").partition(":")
                trailers.append((name.strip(), value.strip()))
        return trailers

    def log_message(self, format, *args):
        # Quiet: the e2e tests read Envoy's log, not one line per request here.
        pass


def main(argv):
    global UPSTREAM_NAME
    port = int(argv[1]) if len(argv) > 1 else DEFAULT_PORT
    UPSTREAM_NAME = argv[2] if len(argv) > 2 else ""
    server = ThreadingHTTPServer((HOST, port), EchoHandler)
    server.daemon_threads = True
    print(f"listening on {HOST}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main(sys.argv)
