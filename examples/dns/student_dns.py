"""A student's DNS server, as a course exercise might ask for one: it answers A queries for
the names it knows, NXDOMAIN for the others, over UDP; it prints each query it answers."""

import socket
import struct
import sys

KNOWN = {"exam.test": "10.241.1.99", "www.exam.test": "10.241.1.98"}


def read_name(message: bytes, offset: int) -> tuple[str, int]:
    labels = []
    while message[offset]:
        length = message[offset]
        labels.append(message[offset + 1:offset + 1 + length].decode())
        offset += 1 + length
    return ".".join(labels).lower(), offset + 1


def answer(query: bytes) -> tuple[bytes, str]:
    ident, flags = struct.unpack(">HH", query[:4])
    name, end = read_name(query, 12)
    qtype = struct.unpack(">H", query[end:end + 2])[0]
    question = query[12:end + 4]
    address = KNOWN.get(name)
    if address is None:
        return struct.pack(">HHHHHH", ident, 0x8403, 1, 0, 0, 0) + question, name   # NXDOMAIN
    records = b""
    if qtype == 1:
        records = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 60, 4) + socket.inet_aton(address)
    return struct.pack(">HHHHHH", ident, 0x8400, 1, 1 if records else 0, 0, 0) + question + records, name


def main(port: int) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("0.0.0.0", port))
    print(f"dns on {port}", flush=True)
    while True:
        query, peer = sock.recvfrom(512)
        try:
            response, name = answer(query)
        except (IndexError, struct.error, UnicodeDecodeError):
            continue
        sock.sendto(response, peer)
        print(f"query {name} from {peer[0]}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]))
