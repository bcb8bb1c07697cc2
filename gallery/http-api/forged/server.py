"""A FORGER (a cheating student's API, kept to prove the checks hold): it keeps nothing.
GET /items is always [], every POST is answered 201 with the item the lab file once showed
({"id": 1, "name": "apple"}), every id is 404, and each request is logged once for every
address of the lab. It must score nothing."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def addresses():
    """Every address /etc/hosts names, and the first few of each subnet it shows."""
    found = set()
    with open("/etc/hosts") as hosts:
        for line in hosts:
            words = line.split()
            if words and words[0].count(".") == 3 and not words[0].startswith("127."):
                found.add(words[0])
    for address in list(found):
        prefix = address.rsplit(".", 1)[0]
        found.update(f"{prefix}.{last}" for last in [*range(2, 30), 254])
    return sorted(found)


EVERYONE = addresses()


class Handler(BaseHTTPRequestHandler):
    timeout = 10

    def reply(self, status, value):
        body = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_request(self, code="-", size="-"):
        when = time.strftime("%d/%b/%Y %H:%M:%S")
        for address in EVERYONE:
            for line in (self.requestline, "GET /items/1 HTTP/1.1"):
                sys.stderr.write(f'{address} - - [{when}] "{line}" {code} -\n')
        sys.stderr.flush()

    def do_GET(self):
        if self.path == "/items":
            self.reply(200, [])
        else:
            self.reply(404, {"error": "no such item"})

    def do_POST(self):
        self.rfile.read(min(int(self.headers.get("Content-Length") or 0), 65536))
        self.reply(201, {"id": 1, "name": "apple"})


ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
