"""etcd's JSON gateway driven by Python's `requests`, as a Python service would: unary calls,
a watch read as a stream of lines, auth with a token. Prints one JSON line per step, with
what differs between two servers replaced (header member fields, drawn IDs), so that the
output against etcd and against Cairn can be compared (tests/tests/gateway.rs).

Usage: python3 requests_client.py http://127.0.0.1:2379
"""
import base64
import json
import sys
import threading

import requests

BASE = sys.argv[1]
S = requests.Session()
IDS = {"ID", "token"}


def b(s):
    return base64.b64encode(s.encode()).decode()


def norm(v, ids=IDS):
    if isinstance(v, dict):
        out = {}
        for k, x in v.items():
            if k == "header":
                x = {hk: hv for hk, hv in x.items() if hk not in ("cluster_id", "member_id", "raft_term")}
            elif k in ids:
                x = "<id>"
            else:
                x = norm(x, ids)
            out[k] = x
        return out
    if isinstance(v, list):
        return [norm(x, ids) for x in v]
    return v


def call(step, path, body, headers=None, ids=IDS):
    r = S.post(BASE + path, json=body, headers=headers or {}, timeout=10)
    v = r.json()
    print(json.dumps({"step": step, "status": r.status_code, "body": norm(v, ids)}, sort_keys=True))
    return v


call("put", "/v3/kv/put", {"key": b("py/a"), "value": b("1")})
call("range", "/v3/kv/range", {"key": b("py/"), "range_end": b("py0")})
call("txn", "/v3/kv/txn", {
    "compare": [{"key": b("py/a"), "target": "VERSION", "result": "EQUAL", "version": 1}],
    "success": [{"requestPut": {"key": b("py/b"), "value": b("2")}}],
})
lease = call("grant", "/v3/lease/grant", {"TTL": 60})["ID"]
call("put on lease", "/v3/kv/put", {"key": b("py/l"), "value": b("3"), "lease": lease})
# the TTL left may have ticked down by a second on either server
call("timetolive", "/v3/lease/timetolive", {"ID": lease, "keys": True}, ids=IDS | {"TTL"})

# a watch read line by line while another session writes
lines = []
ready = threading.Event()


def watch():
    with requests.post(BASE + "/v3/watch", json={"create_request": {"key": b("py/w")}},
                       stream=True, timeout=10) as r:
        for line in r.iter_lines():
            if not line:
                continue
            lines.append(json.loads(line))
            ready.set()
            if len(lines) == 3:
                return


t = threading.Thread(target=watch)
t.start()
if not ready.wait(10):
    sys.exit("the watch was not created")
requests.post(BASE + "/v3/kv/put", json={"key": b("py/w"), "value": b("x")}, timeout=10)
requests.post(BASE + "/v3/kv/deleterange", json={"key": b("py/w")}, timeout=10)
t.join(10)
for i, chunk in enumerate(lines):
    print(json.dumps({"step": f"watch chunk {i}", "body": norm(chunk)}, sort_keys=True))

call("user add", "/v3/auth/user/add", {"name": "root", "password": "pw"})
call("role add", "/v3/auth/role/add", {"name": "root"})
call("user grant", "/v3/auth/user/grant", {"user": "root", "role": "root"})
call("enable", "/v3/auth/enable", {})
call("no token", "/v3/kv/range", {"key": b("py/a")})
token = call("authenticate", "/v3/auth/authenticate", {"name": "root", "password": "pw"})["token"]
call("with token", "/v3/kv/range", {"key": b("py/a")}, {"Authorization": token})
call("disable", "/v3/auth/disable", {}, {"Authorization": token})
