"""The student's client: sends one line and prints the answer."""
import socket
import sys

host, port, word = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with socket.create_connection((host, port), timeout=5) as conn:
    conn.sendall(word.encode() + b"\n")
    print(conn.makefile().readline(), end="")
