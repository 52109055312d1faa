#!/usr/bin/env python3
# gst-uel: the fault server of test-remote (Python standard library only).
# SPDX-License-Identifier: MIT
#
# Serves the files of ROOT on 127.0.0.1 with range requests, an ETag, a
# Last-Modified and If-Match / If-Unmodified-Since, and misbehaves as the
# first part of the path says (the second part is a name of the test's
# choosing, so that each test has its own request count; the rest is the
# file under ROOT):
#
#   /plain/ID/FILE       a well-behaved server
#   /drop/ID/FILE        every other response after the first sends half of
#                        its body and closes the connection
#   /503/ID/FILE         requests 2 and 3 answer 503 with Retry-After: 1
#   /429/ID/FILE         requests 2 and 3 answer 429 with Retry-After: 1
#   /always503/ID/FILE   every request after the first answers 503
#   /stall/ID/FILE       request 2 sends its headers and 100 bytes, then
#                        nothing for 10 minutes
#   /change/ID/FILE      from request 2 on the object is another one (its
#                        bytes from offset 8 + header flipped, a new ETag);
#                        If-Match is honoured (412)
#   /change-etag/ID/FILE the same, If-Match ignored
#   /change-date/ID/FILE the same without an ETag: only Last-Modified says it
#   /badrange/ID/FILE    from request 2 on, the Content-Range starts a byte
#                        after the one asked for
#   /overlong/ID/FILE    from request 2 on, a body longer than the range
#   /403/ID/FILE         403
#   /auth/ID/FILE        401 unless "Authorization: Bearer $UEL_TEST_TOKEN"
#   /noauth/ID/FILE      400 if any Authorization header came
#   /resolve/ID/FILE     302 to /auth/ID/FILE (the Hub's resolve → CDN)
#   /resolve-other/ID/FILE  302 to http://localhost:PORT/noauth/ID/FILE:
#                        another host name, which must not get the token
#
# Each request is logged as one JSON line to LOG: {"path", "n" (the
# path's request count), "range", "time", "auth"}.  The port is printed on
# stdout once the server listens.
import email.utils
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = sys.argv[1]
LOG = sys.argv[2]
TOKEN = os.environ.get("UEL_TEST_TOKEN", "")
MTIME = 1700000000
lock = threading.Lock()
counts = {}
log = open(LOG, "a", buffering=1)


FLIP = bytes(255 - i for i in range(256))
cache = {}


def flipped(data):
    """The same object after an in-place rewrite of its data section."""
    n = int.from_bytes(data[:8], "little")
    return data[:8 + n] + data[8 + n:].translate(FLIP)


def contents(path, version):
    """The file's bytes (version 2: flipped), read and made once."""
    with lock:
        if (path, version) not in cache:
            with open(path, "rb") as f:
                data = f.read()
            cache[(path, version)] = data if version == 1 else flipped(data)
        return cache[(path, version)]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):
        pass

    def send_response(self, code, message=None):
        log.write(json.dumps({"path": self.path, "status": code}) + "\n")
        super().send_response(code, message)

    def send_error_page(self, code, extra=()):
        self.send_response(code)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        parts = self.path.split("?")[0].split("/", 3)
        if len(parts) != 4:
            return self.send_error_page(404)
        _, mode, case, name = parts
        key = self.path
        with lock:
            counts[key] = counts.get(key, 0) + 1
            n = counts[key]
        auth = self.headers.get("Authorization")
        log.write(json.dumps({"path": self.path, "n": n,
                              "range": self.headers.get("Range"),
                              "time": time.monotonic(),
                              "auth": auth}) + "\n")

        if mode == "403":
            return self.send_error_page(403)
        if mode == "auth" and auth != "Bearer " + TOKEN:
            return self.send_error_page(401)
        if mode == "noauth" and auth is not None:
            return self.send_error_page(400)
        if mode == "resolve":
            return self.send_error_page(
                302, [("Location", "/auth/%s/%s" % (case, name))])
        if mode == "resolve-other":
            port = self.server.server_address[1]
            return self.send_error_page(
                302, [("Location", "http://localhost:%d/noauth/%s/%s"
                       % (port, case, name))])
        if mode in ("503", "429") and n in (2, 3):
            return self.send_error_page(int(mode), [("Retry-After", "1")])
        if mode == "always503" and n >= 2:
            return self.send_error_page(503)

        path = os.path.join(ROOT, name)
        version = 2 if mode.startswith("change") and n >= 2 else 1
        try:
            data = contents(path, version)
        except OSError:
            return self.send_error_page(404)
        etag = '"%d-%d"' % (len(data), version)
        date = email.utils.formatdate(MTIME + version, usegmt=True)
        headers = [("Last-Modified", date), ("Accept-Ranges", "bytes")]
        if mode != "change-date":
            headers.append(("ETag", etag))
        if mode == "change":
            im = self.headers.get("If-Match")
            if im is not None and im != etag:
                return self.send_error_page(412)

        size = len(data)
        rng = self.headers.get("Range")
        if not rng:
            start, end, code = 0, size - 1, 200
        else:
            a, b = rng[len("bytes="):].split("-")
            start, end = int(a), min(int(b), size - 1)
            if start >= size:
                return self.send_error_page(
                    416, [("Content-Range", "bytes */%d" % size)])
            code = 206
        body = data[start:end + 1]
        shown = start
        if mode == "badrange" and n >= 2:
            shown = start + 1
        if mode == "overlong" and n >= 2:
            body = body + b"\xee" * 4096

        self.send_response(code)
        for k, v in headers:
            self.send_header(k, v)
        if code == 206:
            self.send_header("Content-Range", "bytes %d-%d/%d"
                             % (shown, shown + (end - start), size))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if mode == "drop" and n >= 2 and n % 2 == 0 and len(body) > 1:
            self.wfile.write(body[:len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        if mode == "stall" and n == 2:
            self.wfile.write(body[:100])
            self.wfile.flush()
            time.sleep(600)
            return
        self.wfile.write(body)


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request, client_address):
        # a client that went away mid-response (the tests make them) is
        # not news
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


srv = Server(("127.0.0.1", 0), Handler)
print(srv.server_address[1], flush=True)
srv.serve_forever()
