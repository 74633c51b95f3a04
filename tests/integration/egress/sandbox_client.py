"""Runs inside a sandbox container (the runtime image's python3, stdlib only).

    python3 client.py '<json request>'   -> prints one JSON result line

Speaks to the egress proxy with raw sockets so every spelling of a target
reaches the proxy exactly as written (no client-side normalisation).
"""

import json
import socket
import ssl
import sys

TIMEOUT = 8


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1]) if lines and len(lines[0].split()) > 1 else None
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, rest


def read_body(sock, rest):
    body = rest
    try:
        while len(body) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            body += chunk
    except (OSError, ssl.SSLError):
        pass
    return body.decode("utf-8", "replace")


def tunnel(req):
    sock = socket.create_connection((req["proxy_host"], req["proxy_port"]), timeout=TIMEOUT)
    lines = [f"CONNECT {req['target']} HTTP/1.1", f"Host: {req['target']}"]
    if req.get("auth"):
        lines.append(f"Proxy-Authorization: {req['auth']}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status, headers, rest = read_head(sock)
    # This connection's own address as the egress sees it ("client" in its log).
    out = {"status": status, "reason": headers.get("x-egress-reason"), "local": "{}:{}".format(*sock.getsockname()[:2])}
    if status != 200:
        out["body"] = read_body(sock, rest)
        return out
    sni = req.get("sni")
    if req.get("cadata"):  # e.g. the egress's own CA in intercept mode
        ctx = ssl.create_default_context(cadata=req["cadata"])
    else:
        ctx = ssl.create_default_context(cafile=req["ca"])
    if sni is None:
        ctx.check_hostname = False  # no SNI at all
    try:
        tls = ctx.wrap_socket(sock, server_hostname=sni)
        host = req.get("host_header") or sni
        # Any method, extra headers and a body (sent as given: a Content-Length
        # header may announce more than is sent).
        method = req.get("method") or "GET"
        extra = "".join(f"{name}: {value}\r\n" for name, value in (req.get("headers") or {}).items())
        body = (req.get("body") or "").encode()
        path = req.get("path") or "/hello"
        head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Connection: close\r\n\r\n"
        tls.sendall(head.encode() + body)
        status2, headers2, rest2 = read_head(tls)
        out.update(tls="ok", inner_status=status2, inner_headers=headers2, body=read_body(tls, rest2))
    except (OSError, ssl.SSLError) as exc:
        out["tls"] = f"error: {type(exc).__name__}: {exc}"
    return out


def plain(req):
    sock = socket.create_connection((req["proxy_host"], req["proxy_port"]), timeout=TIMEOUT)
    lines = [f"GET {req['url']} HTTP/1.1", f"Host: {req['host_header']}", "Connection: close"]
    if req.get("auth"):
        lines.append(f"Proxy-Authorization: {req['auth']}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    status, headers, rest = read_head(sock)
    return {"status": status, "reason": headers.get("x-egress-reason"), "body": read_body(sock, rest)}


def direct(req):
    # What the name resolved to here, so a test can tell "no such name" from
    # "the network refused the connection".
    try:
        resolved = sorted({info[4][0] for info in socket.getaddrinfo(req["host"], req["port"], socket.AF_INET)})
    except OSError as exc:
        return {"connected": False, "resolved": [], "error": f"{type(exc).__name__}: {exc}"}
    try:
        sock = socket.create_connection((req["host"], req["port"]), timeout=req.get("timeout", 3))
        sock.close()
        return {"connected": True, "resolved": resolved}
    except OSError as exc:
        return {"connected": False, "resolved": resolved, "error": f"{type(exc).__name__}: {exc}"}


if __name__ == "__main__":
    request = json.loads(sys.argv[1])
    handler = {"tunnel": tunnel, "plain": plain, "direct": direct}[request["op"]]
    try:
        result = handler(request)
    except (OSError, ValueError) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result))
