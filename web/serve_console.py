#!/usr/bin/env python3
"""Static file server for the tokengate API console, Envoy's `tokengate_console` upstream.

Serves, read-only, GET and HEAD only:

    /console/            web/console/index.html
    /console/callback    web/console/index.html too: the console's sign-in redirect URI,
                         where the page itself reads the code (no server-side state)
    /console/<file>      web/console/<file>
    /console/pkg/<file>  pkg/<file>   (the browser package `make build-web` writes)

Envoy routes /console/ here (envoy/envoy.yaml), so the page and the gateway share
an origin and the page calls /token and the APIs without CORS. Every answer
carries a Content-Security-Policy that allows only same-origin scripts and
connections (plus WebAssembly compilation): the page handles client secrets,
passwords and tokens, so nothing else may run in it.

While the package is not there (pkg/tokengate.js missing: `make run` builds it in
the background on first use, which takes minutes), /console/ and /console/index.html
answer 200 with a page that says so and reloads itself every few seconds; when the
build has failed (BUILD_LOG.exit holds a non-zero exit code), the page says that and
names the log.

Usage: serve_console.py [PORT] [REPO] [--pkg DIR] [--build-log FILE]   (default 8082,
this file's repository, REPO/pkg and no log; 0 picks a free port). It listens on
127.0.0.1 only and prints one line, "listening on HOST:PORT", once it accepts
connections, like envoy/demo_upstream.py. Standard library only.
"""

import argparse
import html
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HOST = "127.0.0.1"
DEFAULT_PORT = 8082
PREFIX = "/console/"
# The sign-in's redirect URI (envoy/envoy.yaml's demo-spa): the console page itself.
CALLBACK = PREFIX + "callback"

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


# What a first build costs on a fresh machine: compiling wasm-bindgen-cli is most of it.
FIRST_BUILD_MINUTES = 10
RELOAD_SECONDS = 5


def build_state(pkg: Path, build_log: Path | None) -> str:
    """"ready" once the package is there, else "failed" or "building"."""
    if (pkg / "tokengate.js").is_file():
        return "ready"
    if build_log is not None:
        exit_file = build_log.with_name(build_log.name + ".exit")
        try:
            code = exit_file.read_text().strip()
        except OSError:
            code = ""
        if code and code != "0":
            return "failed"
    return "building"


def waiting_page(state: str, build_log: Path | None) -> bytes:
    log = html.escape(str(build_log)) if build_log is not None else "the output of `make build-web`"
    if state == "failed":
        title = "The API console could not be built"
        text = (f"<p>Building the browser package (<code>make build-web</code>) failed; its log is "
                f"<code>{log}</code>. The gateway itself is running: <code>/token</code> and the APIs "
                f"answer. Fix the cause and run <code>make build-web</code>; this page reloads itself "
                f"and shows the console once <code>pkg/</code> is there.</p>")
    else:
        title = "The API console is being built"
        text = (f"<p>The API console is being built (first run: about {FIRST_BUILD_MINUTES} minutes, "
                f"most of it compiling wasm-bindgen-cli once into <code>.tools/</code>; later runs take "
                f"seconds); this page reloads itself. Progress: <code>{log}</code>.</p>"
                f"<p>The gateway is already running: <code>/token</code> and the APIs answer now.</p>")
    return (f"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"refresh\" content=\"{RELOAD_SECONDS}\"><title>{title}</title></head>"
            f"<body><h1>{title}</h1>{text}</body></html>\n").encode()


def make_handler(repo: Path, pkg: Path | None = None, build_log: Path | None = None):
    pkg = (pkg if pkg is not None else repo / "pkg").resolve()
    roots = {"pkg/": pkg, "": (repo / "web" / "console").resolve()}

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
            if path == CALLBACK:
                rest = "index.html"
            for prefix, root in roots.items():
                if rest.startswith(prefix):
                    candidate = (root / rest[len(prefix):]).resolve()
                    # Nothing outside the root, whatever the path spells.
                    if candidate.is_relative_to(root) and candidate.is_file():
                        return candidate
                    return None
            return None

        def _serve(self, send_body: bool):
            path = self.path.split("?", 1)[0].split("#", 1)[0]
            if path in (PREFIX, PREFIX + "index.html", CALLBACK):
                state = build_state(pkg, build_log)
                if state != "ready":
                    body = waiting_page(state, build_log)
                    extra = {"Refresh": str(RELOAD_SECONDS)}
                    self._answer(200, body, CONTENT_TYPES[".html"], send_body, extra)
                    return
            file = self._resolve()
            if file is None:
                self._answer(404, b"not found\n", "text/plain; charset=utf-8", send_body)
                return
            content_type = CONTENT_TYPES.get(file.suffix, "application/octet-stream")
            self._answer(200, file.read_bytes(), content_type, send_body)

        def _answer(self, status: int, body: bytes, content_type: str, send_body: bool,
                    extra: dict[str, str] | None = None):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in {**SECURITY_HEADERS, **(extra or {})}.items():
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
    parser = argparse.ArgumentParser(prog="serve_console.py", description="The API console's file server.")
    parser.add_argument("port", nargs="?", type=int, default=DEFAULT_PORT)
    parser.add_argument("repo", nargs="?", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--pkg", type=Path, help="the browser package's directory (default REPO/pkg)")
    parser.add_argument("--build-log", type=Path, help="the log of the package's build, if one runs")
    args = parser.parse_args(argv[1:])
    server = ThreadingHTTPServer((HOST, args.port), make_handler(args.repo, args.pkg, args.build_log))
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
