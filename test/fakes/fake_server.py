"""What the fakes of remote APIs (kong_fake.py, temporal_fake.py) have in common: the threaded
HTTP server on 127.0.0.1 with optional TLS (and client certificates), the fault switches and the
hostile answer bodies for reliability tests, the request-handler plumbing (one write per answer,
JSON bodies, the "down" and "cut" behaviours), the port file and the watch that ends the process
when its parent dies or its time is up.

Each fake keeps its own model, routes and error bodies; this module knows nothing about Kong or
Temporal. Standard library only.
"""
import json
import os
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Faults:
    """The fault switches every fake understands (POST /__fake/faults). A fake may subclass it to
    add its own (the Temporal fake adds list_lag_ms)."""

    def __init__(self):
        self.error_rate = 0.0
        self.error_status = 503
        self.latency_ms = 0
        self.down = False
        self.rate_limit = False
        self.close_connections = False
        self.error_body = None
        self.error_path = None

    def set(self, changes):
        """Applies {name: value}; returns the first unknown name, or None."""
        for key in changes:
            if not hasattr(self, key):
                return key
        for key, value in changes.items():
            setattr(self, key, value)
        return None


HOSTILE_KINDS = ("utf8_split", "invalid_utf8", "nul", "huge", "not_json", "cut")


def hostile_body(kind):
    """(Content-Type, bytes) of a faulty answer's body."""
    if kind == "utf8_split":
        return "application/json", json.dumps({"message": "x" + "\u00e9" * 1000}, ensure_ascii=False).encode()
    if kind == "invalid_utf8":
        return "text/plain", b"\xff\xfe broken \xc3\x28 " * 40 + b"\xe2\x82"
    if kind == "nul":
        return "application/json", json.dumps({"message": "nul \u0000 inside"}).encode()
    if kind == "huge":
        return "application/json", b'{"message": "' + b"A" * (20 << 20) + b'"}'
    if kind == "not_json":
        return "text/html", b"<html><body><h1>502 Bad Gateway</h1></body></html>"
    if kind == "cut":
        return "application/json", json.dumps({"message": "y" * 4000}).encode()
    raise ValueError(kind)


class BaseHandler(BaseHTTPRequestHandler):
    """Plumbing shared by the fakes' handlers. Subclasses set `name` (for log lines) and
    `server_version`, and implement _handle(method)."""
    name = "fake"
    protocol_version = "HTTP/1.1"
    # One segment per response, sent at once: without these, headers and body go out as two
    # writes and Nagle's algorithm meets the client's delayed ACK (40 ms per response).
    wbufsize = 1 << 16
    disable_nagle_algorithm = True

    def setup(self):
        if isinstance(self.request, ssl.SSLSocket):
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as e:
                self.server.count_tls_refused()
                if self.server.verbose:
                    sys.stderr.write("%s: TLS handshake refused: %s\n" % (self.name, e))
                raise ConnectionAbortedError("TLS handshake refused")
        super().setup()

    def log_message(self, fmt, *args):
        if self.server.verbose:
            sys.stderr.write(self.name + ": " + (fmt % args) + "\n")

    def send_json(self, status, body=None, headers=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        if self.server.faults.close_connections:
            self.send_header("Connection", "close")
            self.close_connection = True
        if body is not None:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if data:
            self.wfile.write(data)

    def send_hostile(self, status, kind):
        ctype, data = hostile_body(kind)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        if kind == "cut" or self.server.faults.close_connections:
            self.send_header("Connection", "close")
        self.close_connection = True
        self.end_headers()
        try:
            self.wfile.write(data[:len(data) // 2] if kind == "cut" else data)
            self.wfile.flush()
            if kind == "cut":
                self.connection.shutdown(2)
        except OSError:
            pass  # the client gave up first

    def hang_up(self):
        """Like a server that is not there: the connection ends without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(2)
        except OSError:
            pass

    def read_raw_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def header_matches(self, required):
        """True when the request carries the "Name: value" header (or none is required)."""
        if not required:
            return True
        name, _, value = required.partition(":")
        return self.headers.get(name.strip()) == value.strip()

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_PUT(self):
        self._handle("PUT")

    def do_PATCH(self):
        self._handle("PATCH")

    def do_DELETE(self):
        self._handle("DELETE")


class BaseServer(ThreadingHTTPServer):
    """Binds 127.0.0.1 only. With `tls` (an SSLContext) it speaks https only."""
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, port, handler, tls=None, verbose=False):
        super().__init__(("127.0.0.1", port), handler)
        self.tls = tls
        self.verbose = verbose
        self.stats_lock = threading.Lock()

    def count_tls_refused(self):
        with self.stats_lock:
            self.stats.tls_refused += 1

    def handle_error(self, request, client_address):
        if isinstance(sys.exc_info()[1], ConnectionAbortedError):
            return  # a refused handshake, already counted
        super().handle_error(request, client_address)

    def get_request(self):
        sock, address = self.socket.accept()
        if self.tls is not None:
            # The handshake runs in the request's own thread (BaseHandler.setup), not in the
            # accept loop, so one slow or refused client does not hold up the others.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address


def tls_context(cert, key, client_ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    if client_ca:
        context.load_verify_locations(client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def watch_parent(parent, deadline):
    while True:
        time.sleep(0.5)
        if (parent and not os.path.exists("/proc/%d" % parent)) or time.time() > deadline:
            os._exit(0)


def add_common_arguments(parser, what):
    """The command-line options every fake takes; `what` names the API for the help texts."""
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--port-file", help="write the port here (atomically) once listening")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--parent-pid", type=int, default=os.getppid(),
                        help="exit when this process is gone (default: the parent)")
    parser.add_argument("--max-seconds", type=float, default=3600, help="exit after this long")
    parser.add_argument("--path-prefix", default="", help="serve the %s under this path" % what)
    parser.add_argument("--require-header", default="", help='"Name: value" every request must carry')
    parser.add_argument("--tls-cert", help="serve https with this certificate (PEM)")
    parser.add_argument("--tls-key", help="the certificate's private key (PEM)")
    parser.add_argument("--tls-client-ca", help="require client certificates signed by this CA")


def tls_from_args(args):
    return tls_context(args.tls_cert, args.tls_key, args.tls_client_ca) if args.tls_cert else None


def serve(server, args, name):
    """Writes the port file, prints the listening line, starts the parent watch, serves."""
    port = server.server_address[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
    print("%s: listening on 127.0.0.1:%d" % (name, port), flush=True)
    threading.Thread(target=watch_parent, args=(args.parent_pid, time.time() + args.max_seconds),
                     daemon=True).start()
    server.serve_forever()
