#!/usr/bin/env python3
"""The seeds' usual design, for comparison: a small HTTP service that nginx proxies
nginx-rtmp's on_publish callback to. It does the same check as the module: read the keys
file (re-read when it changes), parse the form, hash the key, compare in constant time."""
import hashlib
import hmac
import os
import sys
import tomllib
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

KEYS = sys.argv[2]
_cache = {"stamp": None, "keys": {}}


def keys():
    st = os.stat(KEYS)
    stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
    if stamp != _cache["stamp"]:
        with open(KEYS, "rb") as f:
            data = tomllib.load(f)
        _cache["keys"] = {k["name"]: k for k in data.get("key", [])}
        _cache["stamp"] = stamp
    return _cache["keys"]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        name = form.get("name", [""])[0]
        key = form.get("key", [""])[0]
        entry = keys().get(name)
        ok = False
        if entry and entry.get("state", "active") == "active":
            digest = "sha256:" + hashlib.sha256(key.encode()).hexdigest()
            ok = hmac.compare_digest(digest, entry["hash"])
        status = 200 if ok else 403
        self.send_response(status)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n" if ok else b"no\n")

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
