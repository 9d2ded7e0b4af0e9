#!/usr/bin/env python3
"""Bytes of zone memory per tracked key, for streamedge_limit_zone and limit_req_zone.

Both zones are 1m, keyed by $arg_k, one request a minute, so every key stays remembered
until the zone runs out of room. N distinct keys are sent to each zone, then the same keys
are asked again from the newest back: a remembered key is refused (429), a forgotten one
passes. The refusals count the keys the zone held; zone size / keys = bytes per key. A
forgotten key that passes is stored again and may push out a key not yet asked, so the
count errs low, for both zones alike.
Usage: limit_memory.py PORT"""
import http.client
import sys

port = int(sys.argv[1])
N = 40000
ZONE = 1024 * 1024


def held(path):
    c = http.client.HTTPConnection("127.0.0.1", port)

    def get(k):
        c.request("GET", f"{path}?k={k}")
        r = c.getresponse()
        r.read()
        return r.status

    for k in range(N):
        if get(f"{path}-{k}") != 200:
            sys.exit(f"{path}: new key {k} refused")
    return sum(get(f"{path}-{k}") == 429 for k in reversed(range(N)))


for path in ("/limit_req", "/streamedge"):
    keys = held(path)
    print(f"  {path:<12} holds {keys:>6} keys in 1m: {ZONE / keys:6.1f} bytes per key")
