"""BROKEN on purpose. The bugs: creating an item answers 200 (send_response's habit)
instead of 201 Created, and any exception, a body that is not JSON or has no "name"
included, becomes 500 Internal Server Error instead of 400 Bad Request.
Usage: python3 -u server.py PORT
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

items = {}
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    timeout = 10

    def reply(self, status, value):
        body = json.dumps(value).encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path == "/items":
            with lock:
                listed = list(items.values())
            self.reply(200, listed)
            return
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "items" and parts[2].isdigit():
            with lock:
                item = items.get(int(parts[2]))
            if item is not None:
                self.reply(200, item)
                return
        self.reply(404, {"error": "no such item"})

    def do_POST(self):
        if self.path != "/items":
            self.reply(404, {"error": "no such resource"})
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
            data = json.loads(self.rfile.read(min(length, 65536)))
            with lock:
                item = {"id": len(items) + 1, "name": data["name"]}
                items[item["id"]] = item
            self.reply(200, item)                       # BUG: a creation is 201 Created
        except Exception as exc:                        # BUG: a bad body is the client's fault: 400
            self.reply(500, {"error": str(exc)})


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
