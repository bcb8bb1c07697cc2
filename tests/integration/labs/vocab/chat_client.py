"""A student's client: says hello to the chat server and prints the answer."""
import socket
import sys

host, port, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
with socket.create_connection((host, port), timeout=5) as conn:
    conn.sendall(f"HELLO {name}\nBYE\n".encode())
    answer = conn.makefile().readline().strip()
print(answer)
sys.exit(0 if answer == f"WELCOME {name}" else 1)
