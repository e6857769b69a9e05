"""A tiny DNS server for deploy/image-check.sh: answers A queries for the names given (and their
subdomains) with one loopback address, NXDOMAIN for anything else, over UDP and TCP. It stands in for
the cluster's DNS so that the image's resolver (glibc's getaddrinfo through /etc/resolv.conf and
/etc/nsswitch.conf) is exercised without any network beyond loopback.

Usage: python3 dns.py --listen 127.0.0.1 --port 53 --answer 127.0.0.1 NAME...   (stops on SIGTERM)
Each query is written to standard output as "query NAME TYPE -> answer", so the check can see that
the container asked.
"""

from __future__ import annotations

import argparse
import signal
import socket
import socketserver
import struct
import sys
import threading

A, AAAA = 1, 28


def parse_query(data: bytes) -> tuple[int, int, str, int, bytes]:
    """(id, flags, name, qtype, question bytes) of a one-question query."""
    ident, flags, qdcount = struct.unpack("!HHH", data[:6])
    if qdcount != 1:
        raise ValueError("one question expected")
    labels, i = [], 12
    while data[i]:
        length = data[i]
        labels.append(data[i + 1:i + 1 + length].decode("ascii", "replace"))
        i += 1 + length
    i += 1
    qtype, _qclass = struct.unpack("!HH", data[i:i + 4])
    return ident, flags, ".".join(labels).lower(), qtype, data[12:i + 4]


def answer(data: bytes, names: list[str], address: str) -> tuple[bytes, str, str]:
    ident, flags, name, qtype, question = parse_query(data)
    known = any(name == n or name.endswith("." + n) for n in names)
    rd = flags & 0x0100
    if not known:
        # NXDOMAIN, authoritative.
        return struct.pack("!HHHHHH", ident, 0x8403 | rd, 1, 0, 0, 0) + question, name, "NXDOMAIN"
    if qtype != A:
        # The name exists, with no record of this type (NODATA): AAAA lookups end here.
        return struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 0, 0, 0) + question, name, "NODATA"
    record = b"\xc0\x0c" + struct.pack("!HHIH", A, 1, 5, 4) + socket.inet_aton(address)
    return struct.pack("!HHHHHH", ident, 0x8400 | rd, 1, 1, 0, 0) + question + record, name, address


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=53)
    parser.add_argument("--answer", default="127.0.0.1")
    parser.add_argument("names", nargs="+")
    args = parser.parse_args()
    names = [n.lower().rstrip(".") for n in args.names]
    lock = threading.Lock()

    def log(name: str, qtype: int, result: str) -> None:
        with lock:
            print(f"query {name} {'A' if qtype == A else 'AAAA' if qtype == AAAA else qtype} -> {result}",
                  flush=True)

    class Udp(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            data, sock = self.request
            try:
                reply, name, result = answer(data, names, args.answer)
                log(name, parse_query(data)[3], result)
            except (ValueError, IndexError, struct.error):
                return
            sock.sendto(reply, self.client_address)

    class Tcp(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            while True:
                head = self.rfile.read(2)
                if len(head) < 2:
                    return
                data = self.rfile.read(struct.unpack("!H", head)[0])
                try:
                    reply, name, result = answer(data, names, args.answer)
                    log(name, parse_query(data)[3], result)
                except (ValueError, IndexError, struct.error):
                    return
                self.wfile.write(struct.pack("!H", len(reply)) + reply)

    socketserver.ThreadingUDPServer.allow_reuse_address = True
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    udp = socketserver.ThreadingUDPServer((args.listen, args.port), Udp)
    tcp = socketserver.ThreadingTCPServer((args.listen, args.port), Tcp)
    for server in (udp, tcp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(f"dns: serving {', '.join(names)} -> {args.answer} on {args.listen}:{args.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    udp.shutdown()
    tcp.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
