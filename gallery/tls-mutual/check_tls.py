"""The lab's own TLS client. It sends fresh random lines, so a server can pass only by
echoing what it really received, never by answering with canned data.

  check_tls.py echo HOST PORT    one random line, echoed
  check_tls.py lines HOST PORT   TLS 1.3 at least, two random lines in turn on one connection
Either way it presents this host's lab certificate (/opt/labctl/pki/host.pem and host.key),
trusts only the lab's CA, and checks that the server's certificate is for HOST (its name,
and CN=HOST in its subject). Prints "<mode> ok", or exits 1 saying why on stderr.
"""
import random
import socket
import ssl
import string
import sys

PKI = "/opt/labctl/pki"
TIMEOUT = 3
MAX_LINE = 8192

chance = random.SystemRandom()


def random_line():
    return ("".join(chance.choice(string.ascii_letters + string.digits + " ") for _ in range(24)) + "\n").encode()


def common_name(cert):
    return next((value for rdn in cert.get("subject", ()) for key, value in rdn if key == "commonName"), None)


def read_line(tls, sent):
    reply = b""
    try:
        while not reply.endswith(b"\n") and len(reply) <= MAX_LINE:
            chunk = tls.recv(MAX_LINE)
            if not chunk:
                sys.exit(f"sent {sent!r}, got {reply!r}, then the server closed the connection")
            reply += chunk
    except socket.timeout:
        sys.exit(f"sent {sent!r}, got {reply!r}, then nothing for {TIMEOUT}s")
    if reply != sent:
        sys.exit(f"sent {sent!r}, got {reply!r}")


def run(mode, host, port):
    context = ssl.create_default_context(cafile=f"{PKI}/ca.pem")
    context.load_cert_chain(f"{PKI}/host.pem", f"{PKI}/host.key")
    if mode == "lines":
        context.minimum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection((host, port), timeout=TIMEOUT) as conn:
        try:
            tls = context.wrap_socket(conn, server_hostname=host)
        except ssl.SSLError as exc:
            sys.exit(f"the handshake failed: {exc.reason or exc}")
        with tls:
            name = common_name(tls.getpeercert())
            if name != host:
                sys.exit(f"the server's certificate is for CN={name}, expected CN={host}")
            for _ in range(2 if mode == "lines" else 1):
                line = random_line()
                tls.sendall(line)
                read_line(tls, line)


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in ("echo", "lines"):
        sys.exit("usage: check_tls.py echo|lines HOST PORT")
    try:
        run(sys.argv[1], sys.argv[2], int(sys.argv[3]))
    except (OSError, ssl.SSLError) as exc:
        sys.exit(f"cannot talk to the server: {exc}")
    print(f"{sys.argv[1]} ok")
