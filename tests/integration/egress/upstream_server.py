"""A tiny upstream of the suite's own (runtime image's python3, stdlib only):
HTTPS on 443 with the suite's CA-signed certificate, plain HTTP on 80. Logs
one JSON line per accepted connection so tests can prove that refused
attempts never reached it, and one per request it answered.

Besides the echo at any path, a tiny package index for the package cache's
tests: /simple/demo/ (PEP 503 HTML) publishes the sha256 of each file under
/files/; demo-0.9's published hash is not that of the bytes served. /npm/demo
is an npm package document with its tarball's integrity."""

import base64
import hashlib
import http.server
import json
import socketserver
import ssl
import sys
import threading

FILES = {
    "/files/demo-1.0.tar.gz": b"demo 1.0 sdist\n" * 64,
    "/files/demo-0.9.tar.gz": b"demo 0.9 sdist, not what the index published\n" * 16,
}
PUBLISHED = {
    "/files/demo-1.0.tar.gz": hashlib.sha256(FILES["/files/demo-1.0.tar.gz"]).hexdigest(),
    "/files/demo-0.9.tar.gz": hashlib.sha256(b"what the index published").hexdigest(),
}
INDEX = "".join(f'<a href="{path}#sha256={digest}">{path}</a>\n' for path, digest in PUBLISHED.items())
TARBALL = "/npm/demo/-/demo-1.0.0.tgz"
FILES[TARBALL] = b"demo 1.0.0 npm tarball\n" * 64
NPM_DOCUMENT = {
    "name": "demo",
    "versions": {
        "1.0.0": {
            "dist": {
                "tarball": f"https://pkgs.test.internal{TARBALL}",
                "integrity": "sha512-" + base64.b64encode(hashlib.sha512(FILES[TARBALL]).digest()).decode(),
            }
        }
    },
}


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        print(json.dumps({"event": "request", "path": self.path}), flush=True)
        if self.path == "/simple/demo/":
            self.send_body(INDEX.encode(), "text/html")
            return
        if self.path == "/npm/demo":
            self.send_body(json.dumps(NPM_DOCUMENT).encode(), "application/json")
            return
        if self.path in FILES:
            self.send_body(FILES[self.path], "application/octet-stream")
            return
        sni = getattr(self.request, "egress_test_sni", None) if hasattr(self.request, "egress_test_sni") else None
        body = json.dumps({"upstream": "ok", "host": self.headers.get("Host"), "sni": sni, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_body(self, body, content_type):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_HEAD(self):
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    tls_context = None

    def get_request(self):
        sock, addr = self.socket.accept()
        print(json.dumps({"event": "accept", "port": self.server_address[1], "peer": addr[0]}), flush=True)
        if self.tls_context is not None:
            sock.settimeout(10)
            seen = {}

            def on_sni(_sock, name, _ctx):
                seen["sni"] = name

            self.tls_context.sni_callback = on_sni
            sock = self.tls_context.wrap_socket(sock, server_side=True)
            sock.egress_test_sni = seen.get("sni")
        return sock, addr

    def handle_error(self, request, client_address):
        print(json.dumps({"event": "error", "peer": client_address[0]}), flush=True)


def main():
    certs = sys.argv[1]
    tls = Server(("0.0.0.0", 443), Handler)
    tls.tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.tls_context.load_cert_chain(f"{certs}/server.pem", f"{certs}/server.key")
    plain = Server(("0.0.0.0", 80), Handler)
    threading.Thread(target=plain.serve_forever, daemon=True).start()
    print(json.dumps({"event": "ready"}), flush=True)
    tls.serve_forever()


if __name__ == "__main__":
    main()
