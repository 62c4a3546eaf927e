"""A pass-through proxy in front of `cargo lambda watch`'s Lambda Runtime API that gives each
invocation a real deadline, for tests/tools.sh grd_lambda_e2e.

    runtime_proxy.py LISTEN_PORT UPSTREAM_PORT TIMEOUT_MS

Why: cargo-lambda 1.9.2's emulator answers GET .../runtime/invocation/next with the constant
header `lambda-runtime-deadline-ms: 600000`, i.e. 1970-01-01T00:10:00Z, a deadline long past.
lambda_runtime turns it into Context::deadline, so a handler that budgets its remaining time
(grd's cutoff(): stop taking new work 5 s before the deadline) sees none left on every
invocation. Lambda itself sends invocation start + the function's Timeout. This proxy rewrites
that one header to now + TIMEOUT_MS (the template's Timeout, 60 s); with TIMEOUT_MS 0 it
rewrites nothing (the emulator's own behaviour, to reproduce it). Everything else passes
through unchanged. Every request gets its own upstream connection (the /next call long-polls).
"""

import http.client
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LISTEN, UPSTREAM, TIMEOUT_MS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host",
       "proxy-connection", "te", "trailer", "upgrade"}


class Proxy(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet: the functions' own logs say what happened
        pass

    def _body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _forward(self):
        body = self._body()
        conn = http.client.HTTPConnection("127.0.0.1", UPSTREAM, timeout=None)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
            conn.request(self.command, self.path, body=body if body else None, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
        except OSError as e:
            self.send_error(502, f"upstream: {e}")
            return
        finally:
            conn.close()
        self.send_response_only(resp.status, resp.reason)
        for k, v in resp.getheaders():
            if k.lower() in HOP:
                continue
            if k.lower() == "lambda-runtime-deadline-ms" and TIMEOUT_MS > 0:
                v = str(int(time.time() * 1000) + TIMEOUT_MS)
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward


if __name__ == "__main__":
    ThreadingHTTPServer.daemon_threads = True
    ThreadingHTTPServer(("127.0.0.1", LISTEN), Proxy).serve_forever()
