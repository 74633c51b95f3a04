"""A DNS server of the suite's own (runtime image's python3, stdlib only),
over UDP and TCP on port 53. It answers one made-up name with a loopback
address, everything else with NXDOMAIN, and logs one JSON line per query it
receives, so a test can prove that a query never reached it.

    python3 decoy_dns.py NAME ADDRESS
"""

import json
import socket
import socketserver
import struct
import sys
import threading

PORT = 53
HEADER = struct.Struct("!HHHHHH")
TYPE_A, CLASS_IN = 1, 1
FLAG_RESPONSE, FLAG_AUTHORITATIVE, FLAG_RECURSION_DESIRED = 0x8000, 0x0400, 0x0100
RCODE_NXDOMAIN = 3
TTL_SECONDS = 5
NAME_POINTER_TO_QUESTION = 0xC00C


def question(packet):
    """(query id, flags, name, qtype, end of the question) of a query."""
    query_id, flags, count = HEADER.unpack_from(packet)[:3]
    if count != 1:
        raise ValueError("one question expected")
    labels, offset = [], HEADER.size
    while packet[offset]:
        length = packet[offset]
        labels.append(packet[offset + 1 : offset + 1 + length].decode("ascii", "replace"))
        offset += 1 + length
    qtype, _ = struct.unpack_from("!HH", packet, offset + 1)
    return query_id, flags, ".".join(labels).lower(), qtype, offset + 5


def answer(packet, served_name, address):
    query_id, flags, name, qtype, end = question(packet)
    found = name == served_name
    reply_flags = FLAG_RESPONSE | FLAG_AUTHORITATIVE | (flags & FLAG_RECURSION_DESIRED)
    records = b""
    if found and qtype == TYPE_A:
        records = struct.pack("!HHHIH", NAME_POINTER_TO_QUESTION, TYPE_A, CLASS_IN, TTL_SECONDS, 4)
        records += socket.inet_aton(address)
    if not found:
        reply_flags |= RCODE_NXDOMAIN
    header = HEADER.pack(query_id, reply_flags, 1, 1 if records else 0, 0, 0)
    return name, header + packet[HEADER.size : end] + records


LOG_LOCK = threading.Lock()  # handlers run on threads; one whole line at a time


def log(name, transport, peer):
    line = json.dumps({"event": "query", "name": name, "transport": transport, "peer": peer})
    with LOG_LOCK:
        print(line, flush=True)


class Udp(socketserver.BaseRequestHandler):
    def handle(self):
        packet, sock = self.request
        name, reply = answer(packet, self.server.served_name, self.server.address)
        log(name, "udp", self.client_address[0])
        sock.sendto(reply, self.client_address)


class Tcp(socketserver.StreamRequestHandler):
    def handle(self):
        (length,) = struct.unpack("!H", self.rfile.read(2))
        name, reply = answer(self.rfile.read(length), self.server.served_name, self.server.address)
        log(name, "tcp", self.client_address[0])
        self.wfile.write(struct.pack("!H", len(reply)) + reply)


class UdpServer(socketserver.ThreadingMixIn, socketserver.UDPServer):
    daemon_threads = True


class TcpServer(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    served_name, address = sys.argv[1].lower().rstrip("."), sys.argv[2]
    servers = [UdpServer(("0.0.0.0", PORT), Udp), TcpServer(("0.0.0.0", PORT), Tcp)]
    for server in servers:
        server.served_name, server.address = served_name, address
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"event": "ready"}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
