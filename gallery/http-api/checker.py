"""The lab's own client for what one request cannot prove: created items are kept.

  checker.py roundtrip HOST PORT   POSTs two items, reads each back by its id, and finds
                                   both in GET /items. Prints "round trip ok" or exits 1
                                   saying what went wrong (on stderr).
The POST's status is judged by its own check, so here any 2xx will do.
"""
import http.client
import json
import sys

TIMEOUT = 3
MAX_BODY = 1 << 20


def request(host, port, method, path, value=None):
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        body = json.dumps(value).encode() if value is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read(MAX_BODY)
    finally:
        conn.close()
    try:
        return response.status, json.loads(raw)
    except ValueError:
        sys.exit(f"{method} {path} answered {response.status} with a body that is not JSON: {raw[:60]!r}")


def roundtrip(host, port):
    created = []
    for name in ("pear", "plum"):
        status, item = request(host, port, "POST", "/items", {"name": name})
        if not 200 <= status < 300:
            sys.exit(f'POST /items {{"name": "{name}"}} answered {status}, expected 201')
        if not isinstance(item, dict) or "id" not in item or item.get("name") != name:
            sys.exit(f'POST /items {{"name": "{name}"}} answered {item!r}, expected the item with an id')
        created.append(item)
    if created[0]["id"] == created[1]["id"]:
        sys.exit(f"two new items got the same id {created[0]['id']!r}")
    for item in created:
        status, got = request(host, port, "GET", f"/items/{item['id']}")
        if status != 200 or got != item:
            sys.exit(f"GET /items/{item['id']} answered {status} {got!r}, expected 200 {item!r}")
    status, listed = request(host, port, "GET", "/items")
    if status != 200 or not isinstance(listed, list):
        sys.exit(f"GET /items answered {status} {str(listed)[:60]}, expected 200 and a list")
    for item in created:
        if item not in listed:
            sys.exit(f"GET /items does not list the new item {item!r}")
    print("round trip ok")


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "roundtrip":
        sys.exit("usage: checker.py roundtrip HOST PORT")
    try:
        roundtrip(sys.argv[2], int(sys.argv[3]))
    except (OSError, http.client.HTTPException) as exc:
        sys.exit(f"the request failed: {exc.__class__.__name__}: {exc}")
