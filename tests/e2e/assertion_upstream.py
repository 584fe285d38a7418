#!/usr/bin/env python3
"""An upstream that trusts nothing but a verified backend JWT, as a real one behind tokengate would.

Every request is answered 200 with JSON: "assertions", how many `X-JWT-Assertion` headers
arrived (a client's forged copy next to the gateway's would make two), and, for exactly one,
either "claims" (what PyJWT verified: signature against the gateway's JWKS, fetched from its
`jwks_uri` like any verifier would, then `iss`, `aud`, `exp`, `iat`) or "error" (why not).

Usage: assertion_upstream.py PORT JWKS_URL ISSUER AUDIENCE   (PORT 0 picks a free port)
Prints "listening on HOST:PORT" once it accepts connections, like envoy/demo_upstream.py.
"""

import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt

HOST = "127.0.0.1"
HEADER = "x-jwt-assertion"


class VerifyingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def do_GET(self):
        assertions = [value for name, value in self.headers.items() if name.lower() == HEADER]
        answer: dict = {"assertions": len(assertions)}
        if len(assertions) == 1:
            try:
                key = self.server.jwks.get_signing_key_from_jwt(assertions[0])
                answer["claims"] = jwt.decode(
                    assertions[0], key, algorithms=["EdDSA", "ES256"], audience=self.server.audience,
                    issuer=self.server.issuer, options={"require": ["iss", "aud", "exp", "iat", "sub"]},
                )
                answer["typ"] = jwt.get_unverified_header(assertions[0]).get("typ")
            except jwt.PyJWTError as error:
                answer["error"] = f"{type(error).__name__}: {error}"
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main() -> None:
    port, jwks_url, issuer, audience = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
    server = ThreadingHTTPServer((HOST, port), VerifyingHandler)
    server.jwks = jwt.PyJWKClient(jwks_url)
    server.issuer, server.audience = issuer, audience
    print(f"listening on {HOST}:{server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
