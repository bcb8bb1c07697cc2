"""The lab's own client. Every item it creates has a fresh random name, so a server can
pass only by keeping and serving what it was sent, never by answering with canned data.

  checker.py list HOST PORT       creates an item; GET /items is 200, JSON, a list holding it
  checker.py create HOST PORT     POST /items answers 201, JSON, the new item with an id
  checker.py roundtrip HOST PORT  creates two items, reads each back by its id, finds both
                                  in GET /items
  checker.py unknown HOST PORT    an item it created is found by id; an id never given is 404
  checker.py badjson HOST PORT    a body cut short is 400 and creates nothing; a good one is
                                  still accepted
  checker.py noname HOST PORT     a body without "name" is 400 and creates nothing; a good one
                                  is still accepted
Prints "<mode> ok", or exits 1 saying what went wrong (on stderr). Where a check is not
about creation, any 2xx answer to a good POST will do: its status is judged by `create`.
"""
import http.client
import json
import random
import string
import sys

TIMEOUT = 3
MAX_BODY = 1 << 20

chance = random.SystemRandom()


def fresh(word):
    return f"{word}-" + "".join(chance.choice(string.ascii_lowercase + string.digits) for _ in range(10))


def fail(why):
    sys.exit(why)


def request(host, port, method, path, body=None, need_json=True):
    """(status, content type, parsed JSON body) of one request; the body is None where it
    is not JSON and `need_json` is false."""
    conn = http.client.HTTPConnection(host, port, timeout=TIMEOUT)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read(MAX_BODY)
        kind = response.getheader("Content-Type", "")
    finally:
        conn.close()
    try:
        return response.status, kind, json.loads(raw)
    except ValueError:
        if not need_json:
            return response.status, kind, None
        fail(f"{method} {path} answered {response.status} with a body that is not JSON: {raw[:40]!r}")


def create(host, port, name, exact=False):
    """POST a new item; the item the server answered."""
    status, kind, item = request(host, port, "POST", "/items", json.dumps({"name": name}))
    if exact and status != 201:
        fail(f'POST /items {{"name": "{name}"}} answered {status}, expected 201 Created')
    if not 200 <= status < 300:
        fail(f'POST /items {{"name": "{name}"}} answered {status}, expected 201')
    if exact and "application/json" not in kind:
        fail(f"POST /items answered Content-Type {kind!r}, expected application/json")
    if not isinstance(item, dict) or item.get("name") != name or not isinstance(item.get("id"), int):
        fail(f'POST /items {{"name": "{name}"}} answered {str(item)[:60]}, expected the item with an id')
    return item


def listing(host, port):
    status, kind, items = request(host, port, "GET", "/items")
    if status != 200 or not isinstance(items, list):
        fail(f"GET /items answered {status} {str(items)[:60]}, expected 200 and a JSON list")
    if "application/json" not in kind:
        fail(f"GET /items answered Content-Type {kind!r}, expected application/json")
    return items


def list_mode(host, port):
    item = create(host, port, fresh("fig"))
    if item not in listing(host, port):
        fail(f"GET /items does not list the new item {item!r}")


def create_mode(host, port):
    create(host, port, fresh("apple"), exact=True)


def roundtrip(host, port):
    created = [create(host, port, fresh(word)) for word in ("pear", "plum")]
    if created[0]["id"] == created[1]["id"]:
        fail(f"two new items got the same id {created[0]['id']!r}")
    for item in created:
        status, _kind, got = request(host, port, "GET", f"/items/{item['id']}")
        if status != 200 or got != item:
            fail(f"GET /items/{item['id']} answered {status} {str(got)[:40]}, expected 200 {item!r}")
    items = listing(host, port)
    for item in created:
        if item not in items:
            fail(f"GET /items does not list the new item {item!r}")


def unknown(host, port):
    item = create(host, port, fresh("kiwi"))
    status, _kind, got = request(host, port, "GET", f"/items/{item['id']}")
    if status != 200 or got != item:
        fail(f"GET /items/{item['id']} of a new item answered {status} {str(got)[:40]}, expected 200")
    never = item["id"] + chance.randint(100_000, 900_000)
    status, _kind, _got = request(host, port, "GET", f"/items/{never}", need_json=False)
    if status != 404:
        fail(f"GET /items/{never}, an id never given out, answered {status}, expected 404")


def refused(host, port, body, name):
    """`body` is refused with 400 and creates nothing, while a good body is still accepted."""
    status, _kind, _got = request(host, port, "POST", "/items", body, need_json=False)
    if status != 400:
        fail(f"POST /items {body} answered {status}, expected 400 Bad Request")
    if any(isinstance(item, dict) and name in item.values() for item in listing(host, port)):
        fail(f"POST /items {body} was refused, but GET /items lists it")
    create(host, port, fresh("good"))


def badjson(host, port):
    name = fresh("apple")
    refused(host, port, f'{{"name": "{name}"', name)


def noname(host, port):
    name = fresh("apple")
    refused(host, port, json.dumps({"title": name}), name)


MODES = {"list": list_mode, "create": create_mode, "roundtrip": roundtrip, "unknown": unknown,
         "badjson": badjson, "noname": noname}

if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] not in MODES:
        sys.exit("usage: checker.py " + "|".join(MODES) + " HOST PORT")
    try:
        MODES[sys.argv[1]](sys.argv[2], int(sys.argv[3]))
    except (OSError, http.client.HTTPException) as exc:
        sys.exit(f"the request failed: {exc.__class__.__name__}: {exc}")
    print("round trip ok" if sys.argv[1] == "roundtrip" else f"{sys.argv[1]} ok")
