"""A FORGER (a cheating student's TLS server, kept to prove the checks hold). Its TLS is
right (the lab host's certificate, a client certificate required), but it echoes nothing:
each read is answered with the canned line the lab file once showed for it, and after each
handshake it prints "client <address> <name>" for every address and name of the lab. The
TLS checks it really does pass; the echo and log checks it tries to forge give it nothing."""
import socket
import ssl
import threading

PKI = "/opt/labctl/pki"
CANNED = {b"hello over tls\n": b"hello over tls\n", b"one\n": b"one\n", b"two words\n": b"two words\n",
          b"it is carol\n": b"it is carol\n"}
lock = threading.Lock()


def everyone():
    """'client <address> <name>' for every address and name /etc/hosts shows."""
    addresses, names = set(), {"alice", "bob", "carol", "dave", "vault", "gw"}
    with open("/etc/hosts") as hosts:
        for line in hosts:
            words = line.split()
            if words and words[0].count(".") == 3 and not words[0].startswith("127."):
                addresses.add(words[0])
                names.update(word.split(".")[0] for word in words[1:])
    return "".join(f"client {address} {name}\n" for address in sorted(addresses) for name in sorted(names))


EVERYONE = everyone()


def serve(context, conn):
    conn.settimeout(10)
    try:
        with context.wrap_socket(conn, server_side=True) as tls:
            with lock:
                print(EVERYONE, end="", flush=True)
            while data := tls.recv(8192):
                tls.sendall(CANNED.get(data, b"hello over tls\n"))
    except (OSError, ssl.SSLError):
        pass


context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(f"{PKI}/host.pem", f"{PKI}/host.key")
context.load_verify_locations(f"{PKI}/ca.pem")
context.verify_mode = ssl.CERT_REQUIRED
server = socket.create_server(("0.0.0.0", 8443), backlog=64)
while True:
    conn, _peer = server.accept()
    threading.Thread(target=serve, args=(context, conn), daemon=True).start()
