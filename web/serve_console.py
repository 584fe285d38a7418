#!/usr/bin/env python3
"""Static file server for the tokengate API console, Envoy's `tokengate_console` upstream.

Serves, read-only, GET and HEAD only:

    /console/            web/console/index.html
    /console/<file>      web/console/<file>
    /console/pkg/<file>  pkg/<file>   (the browser package `make build-web` writes)

Envoy routes /console/ here (envoy/envoy.yaml), so the page and the gateway share
an origin and the page calls /token and the APIs without CORS. Every answer
carries a Content-Security-Policy that allows only same-origin scripts and
connections (plus WebAssembly compilation): the page handles client secrets,
passwords and tokens, so nothing else may run in it.

Usage: serve_console.py [PORT] [REPO]   (default 8082 and this file's repository;
0 picks a free port). It listens on 127.0.0.1 only and prints one line,
"listening on HOST:PORT", once it accepts connections, like
envoy/demo_upstream.py. Standard library only.
"""

import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 8082
PREFIX = "/console/"

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    # instantiateStreaming needs exactly this type.
    ".wasm": "application/wasm",
    ".json": "application/json",
    ".ts": "text/plain; charset=utf-8",
    ".svg": "image/svg+xml",
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; connect-src 'self'; "
        "style-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # A rebuilt package or page shows on the next reload.
    "Cache-Control": "no-cache",
}


def make_handler(repo: Path):
    roots = {"pkg/": (repo / "pkg").resolve(), "": (repo / "web" / "console").resolve()}

    class ConsoleHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK holds every response back ~40 ms.
        disable_nagle_algorithm = True
        server_version = "tokengate-console"

        def do_GET(self):
            self._serve(send_body=True)

        def do_HEAD(self):
            self._serve(send_body=False)

        def _resolve(self) -> Path | None:
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if not path.startswith(PREFIX):
                return None
            rest = path[len(PREFIX):] or "index.html"
            for prefix, root in roots.items():
                if rest.startswith(prefix):
                    candidate = (root / rest[len(prefix):]).resolve()
                    # Nothing outside the root, whatever the path spells.
                    if candidate.is_relative_to(root) and candidate.is_file():
                        return candidate
                    return None
            return None

        def _serve(self, send_body: bool):
            file = self._resolve()
            if file is None:
                self._answer(404, b"not found\n", "text/plain; charset=utf-8", send_body)
                return
            content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
            self._answer(200, file.read_bytes(), content_type, send_body)

        def _answer(self, status: int, body: bytes, content_type: str, send_body: bool):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in SECURITY_HEADERS.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(body)

        def _refuse(self):
            self.send_response(405)
            self.send_header("Allow", "GET, HEAD")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _refuse

        def log_message(self, format, *args):
            pass

    return ConsoleHandler


def main(argv):
    port = int(argv[1]) if len(argv) > 1 else DEFAULT_PORT
    repo = Path(argv[2]) if len(argv) > 2 else Path(__file__).resolve().parents[1]
    server = ThreadingHTTPServer((HOST, port), make_handler(repo))
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
