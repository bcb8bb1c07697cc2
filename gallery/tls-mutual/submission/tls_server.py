"""A TLS echo server with mutual TLS (reference solution).

Speaks TLS 1.2 or 1.3 with the lab host's certificate, requires a client certificate signed
by the lab's CA, echoes each line back, and prints `client <address> <client CN>` for every
client whose handshake succeeded.
"""
import socket
import ssl
import sys
import threading

PKI = "/opt/labctl/pki"
HANDSHAKE_TIMEOUT = 10   # seconds a client may take to finish the handshake
IDLE = 60                # seconds a connection may stay silent
MAX_LINE = 8192          # bytes in one line; a longer one closes the connection

output = threading.Lock()


def say(line):
    """Print one whole line: threads printing at once must not interleave."""
    with output:
        print(line, flush=True)


def make_context():
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(f"{PKI}/host.pem", f"{PKI}/host.key")
    context.load_verify_locations(f"{PKI}/ca.pem")   # trust the lab's CA for clients...
    context.verify_mode = ssl.CERT_REQUIRED           # ...and insist on a certificate
    return context


def common_name(cert):
    for rdn in cert.get("subject", ()):
        for key, value in rdn:
            if key == "commonName":
                return value
    return "-"


def refuse(tls):
    """The alert saying why has gone out; end TCP gently so that it is read, not reset."""
    try:
        tls.shutdown(socket.SHUT_WR)      # drops the TLS layer, sends our FIN
        tls.settimeout(1)
        while tls.recv(4096):             # unread input would turn close() into a reset
            pass
    except OSError:
        pass


def serve(context, conn, peer):
    conn.settimeout(HANDSHAKE_TIMEOUT)
    tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    try:
        try:
            tls.do_handshake()
        except (ssl.SSLError, OSError) as exc:
            say(f"rejected {peer[0]}: {getattr(exc, 'reason', None) or exc}")
            refuse(tls)
            return
        say(f"client {peer[0]} {common_name(tls.getpeercert())}")
        tls.settimeout(IDLE)
        reader = tls.makefile("rb")
        while True:
            line = reader.readline(MAX_LINE + 1)
            if not line or len(line) > MAX_LINE:
                break
            tls.sendall(line)
    except OSError:
        pass
    finally:
        tls.close()


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8443
    context = make_context()
    server = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        conn, peer = server.accept()
        threading.Thread(target=serve, args=(context, conn, peer), daemon=True).start()


if __name__ == "__main__":
    main()
