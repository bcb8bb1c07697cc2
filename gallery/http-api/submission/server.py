"""Reference solution: a small JSON API over HTTP, standard library only.

  GET  /items        200, a JSON list of every item
  POST /items        body {"name": "<text>"}: 201 and the new item {"id": N, "name": ...};
                     a body that is not such an object: 400
  GET  /items/<id>   200 and the item, or 404
Usage: python3 -u server.py PORT
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MAX_BODY = 64 * 1024

items = {}              # id -> item
lock = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    timeout = 10        # seconds a silent client is kept

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
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.reply(411, {"error": "a body needs a Content-Length"})
            return
        if not 0 <= length <= MAX_BODY:
            self.reply(413, {"error": f"a body is at most {MAX_BODY} bytes"})
            return
        try:
            data = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            self.reply(400, {"error": "the body is not JSON"})
            return
        if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
            self.reply(400, {"error": 'expected {"name": "..."}'})
            return
        with lock:
            item = {"id": len(items) + 1, "name": data["name"]}
            items[item["id"]] = item
        self.reply(201, item)


ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), Handler).serve_forever()
