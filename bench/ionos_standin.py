#!/usr/bin/env python3
"""For bench/ddns.sh: an IP echo service and the IONOS DynDNS update URL on one port,
counting update calls. The echo answers OLD until CHANGE_AFTER echo requests, then NEW.
Usage: ionos_standin.py PORT OLD NEW CHANGE_AFTER COUNT_FILE"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

port, old, new, change_after, count_file = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
state = {"echo": 0, "calls": 0}


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/echo"):
            state["echo"] += 1
            body = (old if state["echo"] <= change_after else new).encode()
        else:
            state["calls"] += 1
            with open(count_file, "w") as f:
                f.write(str(state["calls"]))
            body = b""
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        state["calls"] += 1
        with open(count_file, "w") as f:
            f.write(str(state["calls"]))
        body = ('{"bulkId":"b1","updateUrl":"http://127.0.0.1:%d/update?q=t"}' % port).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
