#!/usr/bin/env python3
"""feed_standin.py - a stand-in for the threat feeds clawback-poller talks to (tests only).

One loopback HTTP(S) server that answers the way the real services do:

  A. the retrospective verdict service   POST /v1/register/device/{id}, GET /v1/retro/device/{id}
  B. a TAXII 2.1 server                   /taxii2/, /api1/, /api1/collections/{id}/objects/
  C. MISP                                 POST /attributes/restSearch
  D. static feed files                    GET /files/{name}

plus a test-only control API under /_control/ (no auth) that loads data, queues faults and
returns the log of requests received. Run `feed_standin.py --help` for the command line and
`feed_standin.py --self-test` to check the stand-in itself.

Python 3 standard library only.
"""

import argparse
import base64
import binascii
import datetime
import json
import os
import re
import secrets
import select
import signal
import socket
import socketserver
import ssl
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COLLECTION_ID = "91a7b528-80eb-42ed-a74d-c6fbd5a26116"
TAXII_MEDIA = "application/taxii+json;version=2.1"
STIX_MEDIA = "application/stix+json;version=2.1"
TAXII_MAX_LIMIT = 100
DRIP_LENGTH = 10 * 1024 * 1024
DRIP_INTERVAL_S = 0.5
HUGE_TOTAL = 200 * 1024 * 1024
MAX_BODY = 64 * 1024 * 1024
RECORD_TEXT_MAX = 4096
MISP_URL = "/attributes/restSearch"
MISP_AUTH_MSG = ("Authentication failed. Please make sure you pass the API key of an API enabled "
                 "user along in the Authorization header.")
MISP_JSON_MSG = ("Invalid JSON input. Make sure that the JSON input is a correctly formatted JSON "
                 "string. This request has been rejected.")
TOKEN_EXPIRED_BODY = b'{"message":"Token Expired"}'
FAULT_MODES = ("status", "garbage", "drip", "huge", "close", "delay")
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)

_log_lock = threading.Lock()


def log(line):
    """One line on stderr (never raises)."""
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % int(now % 1 * 1000)
    try:
        with _log_lock:
            sys.stderr.write("[feed_standin %s] %s\n" % (stamp, line))
            sys.stderr.flush()
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# time helpers


def parse_time_us(s):
    """An ISO-8601 timestamp with a zone (e.g. 2022-03-29T23:20:24Z) -> microseconds since the
    epoch, or None when it is not one."""
    if not isinstance(s, str) or not s or len(s) > 64:
        return None
    text = s
    if text[-1] in "zZ":
        text = text[:-1] + "+00:00"
    try:
        dt = datetime.datetime.fromisoformat(text)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    td = dt - EPOCH
    return (td.days * 86400 + td.seconds) * 1000000 + td.microseconds


def format_us(us):
    """Microseconds since the epoch -> 2024-01-02T03:04:05.123456Z."""
    return (EPOCH + datetime.timedelta(microseconds=us)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def now_us():
    return time.time_ns() // 1000


# ---------------------------------------------------------------------------------------------
# shared state


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.last_added_us = 0      # TAXII date_added stays strictly increasing, even over reset
        self.reset()

    def reset(self):
        self.retros = []            # (timestamp_us, seq, object)
        self.retro_seq = 0
        self.tokens = {}            # token -> {"device": id, "state": valid|expired|replaced}
        self.taxii = []             # (date_added_us, object), in date_added order
        self.next_tokens = {}       # opaque TAXII `next` -> continuation of a query
        self.misp = []
        self.files = {}             # name -> (bytes, content type)
        self.faults = []            # queued faults, each with "remaining"
        self.requests = []          # the request log
        self.request_seq = 0

    def take_fault(self, path):
        """The first queued fault whose prefix matches path (one use of it), or None."""
        with self.lock:
            for i, f in enumerate(self.faults):
                if path.startswith(f["path_prefix"]):
                    f["remaining"] -= 1
                    if f["remaining"] <= 0:
                        del self.faults[i]
                    return dict(f)
        return None


class Config:
    def __init__(self, taxii_user=None, taxii_password=None, misp_key=None, device_id=None):
        self.taxii_user = taxii_user
        self.taxii_password = taxii_password if taxii_password is not None else ""
        self.misp_key = misp_key
        self.device_id = device_id


class BadBody(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# MISP helpers


def misp_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return v != 0
    if isinstance(v, str):
        return v.strip().lower() in ("1", "true", "yes")
    return False


def misp_int(v, what):
    if isinstance(v, bool):
        raise ValueError(what)
    if isinstance(v, int):
        return v
    if isinstance(v, float) and v == int(v):
        return int(v)
    if isinstance(v, str) and re.fullmatch(r"\s*-?\d{1,18}\s*", v):
        return int(v)
    raise ValueError(what)


def misp_time(v):
    """A MISP timestamp filter value: epoch seconds (int or string) or relative (7d, 12h, ...)."""
    if isinstance(v, str):
        m = re.fullmatch(r"\s*(\d{1,12})([smhdw])\s*", v)
        if m:
            mult = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
            return int(time.time()) - int(m.group(1)) * mult
    return misp_int(v, "timestamp")


def misp_attr_ts(a):
    try:
        return misp_int(a.get("timestamp"), "timestamp")
    except ValueError:
        return 0


def misp_id_key(a):
    i = a.get("id")
    try:
        return (0, misp_int(i, "id"), "")
    except ValueError:
        return (1, 0, str(i))


def misp_search(attrs, req):
    """The attributes matching a restSearch request (a dict), sorted by id and paged."""
    t = req.get("type")
    types, not_types = None, set()
    if t is None:
        pass
    elif isinstance(t, str):
        types = {t}
    elif isinstance(t, list) and all(isinstance(x, str) for x in t):
        types = set(t)
    elif isinstance(t, dict):
        ors, nots = t.get("OR", []), t.get("NOT", [])
        ors = [ors] if isinstance(ors, str) else ors
        nots = [nots] if isinstance(nots, str) else nots
        if not isinstance(ors, list) or not isinstance(nots, list):
            raise ValueError("type")
        types = set(ors) if ors else None
        not_types = set(nots)
    else:
        raise ValueError("type")
    to_ids = req.get("to_ids")
    want_ids = None if to_ids is None or to_ids == "" else misp_bool(to_ids)
    lo = hi = None
    ts = req.get("timestamp")
    if isinstance(ts, list):
        if len(ts) != 2:
            raise ValueError("timestamp")
        lo, hi = misp_time(ts[0]), misp_time(ts[1])
    elif ts is not None and ts != "":
        lo = misp_time(ts)
    limit = req.get("limit")
    limit = None if limit is None or limit == "" else misp_int(limit, "limit")
    if limit is not None and limit < 0:
        raise ValueError("limit")
    page = req.get("page")
    page = 1 if page is None or page == "" else misp_int(page, "page")
    if page < 1:
        raise ValueError("page")
    out = []
    for a in attrs:
        if types is not None and a.get("type") not in types:
            continue
        if a.get("type") in not_types:
            continue
        if want_ids is not None and misp_bool(a.get("to_ids")) != want_ids:
            continue
        ats = misp_attr_ts(a)
        if lo is not None and ats < lo:
            continue
        if hi is not None and ats > hi:
            continue
        out.append(a)
    out.sort(key=misp_id_key)
    if limit:
        out = out[(page - 1) * limit:page * limit]
    return out


def taxii_accept_ok(value):
    """Whether an Accept header value lists application/taxii+json;version=2.1."""
    if not value:
        return False
    for item in value.split(","):
        parts = [p.strip() for p in item.split(";")]
        if parts[0].lower() != "application/taxii+json":
            continue
        params = {}
        for p in parts[1:]:
            k, _, v = p.partition("=")
            params[k.strip().lower()] = v.strip().strip('"')
        if params.get("version") == "2.1":
            return True
    return False


def content_type_for(path):
    """The content type a feed at path answers with (used by the garbage/drip/huge faults)."""
    if path.startswith("/taxii2") or path.startswith("/api1"):
        return TAXII_MEDIA
    if path.startswith("/files/"):
        return "text/csv; charset=utf-8" if path.lower().endswith(".csv") else "text/plain; charset=utf-8"
    return "application/json"


def stream_prefix_and_item(path):
    """(prefix, repeated item) for the huge/drip faults: a valid-looking start of the feed."""
    if path.startswith("/taxii2") or path.startswith("/api1"):
        return (b'{"more": true, "objects": [',
                b'{"type": "indicator", "spec_version": "2.1", "id": "indicator--'
                b'0c4c8c3e-6a1c-4b8e-9e7e-3f2d0d1c2b3a", "created": "2024-01-01T00:00:00.000Z", '
                b'"modified": "2024-01-01T00:00:00.000Z", "pattern": "[url:value = \'http://huge.'
                b'example/x\']", "pattern_type": "stix", "valid_from": "2024-01-01T00:00:00Z"}, ')
    if path.startswith("/attributes"):
        return (b'{"response": {"Attribute": [',
                b'{"id": "1", "event_id": "1", "type": "url", "category": "Network activity", '
                b'"to_ids": true, "value": "http://huge.example/x", "timestamp": "1700000000"}, ')
    if path.startswith("/files/"):
        return (b"", b"http://huge.example/some/long/path/that/repeats/over/and/over\n")
    return (b'{"retros": [',
            b'{"observable": {"observable_type": "url", "value": "http://huge.example/x"}, '
            b'"context_tags": [], "email_id": "d5feb7d4-fe00-4568-9bb7-769a5bc7886e", '
            b'"timestamp": "2022-03-30T00:17:13Z", "org_id": "cisco", "verdict": '
            b'{"taxonomy_id": 4, "taxonomy_entry_id": 3, "tag_type_id": 1}, '
            b'"taxonomy_map_version": 1}, ')


# ---------------------------------------------------------------------------------------------
# the request handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "feed-standin/1.0"
    sys_version = ""
    timeout = 60                    # an idle keep-alive connection is closed after this
    disable_nagle_algorithm = True

    # every method (even unknown ones) goes through _dispatch
    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # --- plumbing ----------------------------------------------------------------------------

    def parse_request(self):
        self._logged = False
        self._entry = None
        self._status = None
        self._fault = None
        self._proxied = False
        return super().parse_request()

    def log_request(self, code="-", size="-"):
        pass                        # logged by send_response below

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def log_error(self, fmt, *args):
        if fmt.startswith("code "):
            return                  # send_error: the answer is logged by send_response
        self.log_message(fmt, *args)

    def send_response(self, code, message=None):
        self._status = code
        entry = getattr(self, "_entry", None)
        if entry is not None:
            with self.server.state.lock:
                entry["status"] = code
        if not getattr(self, "_logged", False):
            self._log(str(code))
        super().send_response(code, message)

    def _log(self, outcome):
        self._logged = True
        rl = getattr(self, "requestline", "") or "(no request line)"
        rl = "".join(c if " " <= c < "\x7f" else "\\x%02x" % (ord(c) & 0xff) for c in rl)
        line = "%s %s -> %s" % (self.client_address[0], rl[:300], outcome)
        if getattr(self, "_proxied", False):
            line += " [proxied]"
        if getattr(self, "_fault", None):
            line += " [fault=%s]" % self._fault
        log(line)

    @property
    def state(self):
        return self.server.state

    @property
    def cfg(self):
        return self.server.cfg

    def base_url(self):
        return "%s://127.0.0.1:%d" % ("https" if self.server.ssl_ctx else "http", self.server.server_port)

    def _send(self, status, body=b"", ctype="application/json", headers=()):
        if isinstance(body, str):
            body = body.encode("utf-8")
        self.send_response(status)
        no_body = status in (204, 304) or status < 200
        if not no_body:
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and not no_body:
            self.wfile.write(body)

    def _json(self, status, obj, headers=(), ctype="application/json"):
        self._send(status, json.dumps(obj).encode("utf-8"), ctype, headers)

    def _read_body(self):
        te = ",".join(self.headers.get_all("Transfer-Encoding") or []).lower()
        if "chunked" in te:
            out = bytearray()
            while True:
                line = self.rfile.readline(1024)
                if not line:
                    raise BadBody("truncated chunked body")
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadBody("bad chunk size")
                if size < 0 or len(out) + size > MAX_BODY:
                    raise BadBody("body too large")
                if size == 0:
                    while True:     # trailers
                        t = self.rfile.readline(8192)
                        if t in (b"\r\n", b"\n", b""):
                            return bytes(out)
                data = self.rfile.read(size)
                if len(data) < size:
                    raise BadBody("truncated chunk")
                out += data
                self.rfile.readline(8)
        cls = self.headers.get_all("Content-Length") or []
        if not cls:
            return b""
        if len(set(c.strip() for c in cls)) != 1 or not re.fullmatch(r"\d{1,12}", cls[0].strip()):
            raise BadBody("bad Content-Length")
        n = int(cls[0])
        if n > MAX_BODY:
            raise BadBody("body too large")
        data = self.rfile.read(n) if n else b""
        if len(data) < n:
            raise BadBody("truncated body")
        return data

    def _record(self, path, query, body, proxy_host):
        headers = {}
        auth_user = None
        auth_scheme = None
        for k, v in self.headers.items():
            lk = k.lower()
            if lk in ("authorization", "proxy-authorization"):
                if lk == "authorization":
                    auth_scheme = v.strip().split(" ", 1)[0] if v.strip() else ""
                    auth_user = basic_user(v)
                v = "present"
            headers[lk] = v if lk not in headers else headers[lk] + ", " + v
        if auth_user is not None:
            headers["auth_user"] = auth_user
        if not body:
            rbody = None
        else:
            try:
                rbody = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                rbody = body[:RECORD_TEXT_MAX].decode("utf-8", "replace")
        with self.state.lock:
            self.state.request_seq += 1
            entry = {
                "seq": self.state.request_seq,
                "time": round(time.time(), 6),
                "method": self.command,
                "path": path,
                "query": urllib.parse.parse_qs(query, keep_blank_values=True),
                "headers": headers,
                "auth_user": auth_user,
                "auth_scheme": auth_scheme,
                "body": rbody,
                "status": None,
                "proxied": self._proxied,
                "proxy_host": proxy_host,
                "tls": self.server.ssl_ctx is not None,
                "http_version": self.request_version,
                "fault": None,
            }
            self.state.requests.append(entry)
        self._entry = entry

    # --- dispatch ----------------------------------------------------------------------------

    def _dispatch(self):
        try:
            self._handle()
        except (OSError, ValueError) as e:     # includes broken pipes, resets, timeouts, TLS
            self.close_connection = True
            if not self._logged:
                self._log("connection error: %s" % e)
        except Exception as e:
            self.close_connection = True
            log("internal error on %r: %s\n%s" % (getattr(self, "requestline", ""), e,
                                                   traceback.format_exc()))
            if self._status is None:
                try:
                    self._json(500, {"message": "stand-in internal error: %s" % e})
                except Exception:
                    pass
        if not self._logged:
            self._log("closed without answer")

    def _handle(self):
        target = self.path
        proxy_host = None
        if self.command == "CONNECT":
            self._proxied = True
            path, query, proxy_host = target, "", target
        elif re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", target):
            u = urllib.parse.urlsplit(target)
            self._proxied = True
            path, query, proxy_host = (u.path or "/"), u.query, u.netloc
        else:
            path, _, query = target.partition("?")
            path = path.split("#", 1)[0]
        control = path == "/_control" or path.startswith("/_control/")
        try:
            body = self._read_body()
        except BadBody as e:
            self.close_connection = True
            if not control:
                self._record(path, query, None, proxy_host)
            self._json(400, {"message": "Bad Request", "detail": str(e)})
            return
        if not control:
            self._record(path, query, body, proxy_host)
        if self.command == "CONNECT":
            self.close_connection = True
            self._json(405, {"message": "CONNECT is not supported by this proxy"})
            return
        q = urllib.parse.parse_qs(query, keep_blank_values=True)
        if control:
            self._control(path, q, body)
            return
        fault = self.state.take_fault(path)
        if fault is not None:
            self._fault = fault["mode"]
            if self._entry is not None:
                with self.state.lock:
                    self._entry["fault"] = fault["mode"]
            if self._apply_fault(fault, path):
                return
        self._route(path, q, body)

    def _route(self, path, q, body):
        if path.startswith("/v1/"):
            self._retro(path, q, body)
        elif path in ("/taxii2", "/api1") or path.startswith("/taxii2/") or path.startswith("/api1/"):
            self._taxii(path, q)
        elif path.rstrip("/") == MISP_URL:
            self._misp(body)
        elif path.startswith("/files/"):
            self._file(path)
        else:
            self._json(404, {"message": "Not Found"})

    # --- faults ------------------------------------------------------------------------------

    def _apply_fault(self, f, path):
        """Answer with fault f; False when the normal answer should follow (delay)."""
        mode = f["mode"]
        halt = self.server.halt
        if mode == "delay":
            halt.wait(f["delay_s"])
            return False
        if mode == "close":
            self.close_connection = True
            self._log("closed (fault)")
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return True
        if mode == "status":
            body = f.get("body")
            if body is None:
                body = json.dumps({"message": self.responses.get(f["status"], ("Error",))[0]})
            elif not isinstance(body, str):
                body = json.dumps(body)
            ctype = f.get("content_type")
            if not ctype:
                try:
                    json.loads(body)
                    ctype = "application/json"
                except ValueError:
                    ctype = "text/plain; charset=utf-8"
            headers = []
            if f.get("retry_after") is not None:
                headers.append(("Retry-After", str(f["retry_after"])))
            self._send(f["status"], body, ctype, headers)
            return True
        if mode == "garbage":
            body = f.get("body")
            if body is None:
                body = "<html><body>upstream says hi: this is {not JSON at all]</body></html>\n"
            self._send(200, body, f.get("content_type") or content_type_for(path))
            return True
        if mode == "drip":
            self.close_connection = True
            self.send_response(200)
            self.send_header("Content-Type", f.get("content_type") or content_type_for(path))
            self.send_header("Content-Length", str(DRIP_LENGTH))
            self.end_headers()
            prefix, _ = stream_prefix_and_item(path)
            sent = 0
            while sent < DRIP_LENGTH and not halt.wait(DRIP_INTERVAL_S):
                byte = prefix[sent:sent + 1] or b" "
                self.wfile.write(byte)
                sent += 1
                if self._client_gone():
                    break
            self._shutdown_quietly()
            return True
        if mode == "huge":
            self.close_connection = True
            chunked = self.request_version == "HTTP/1.1"
            self.send_response(200)
            self.send_header("Content-Type", f.get("content_type") or content_type_for(path))
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            prefix, item = stream_prefix_and_item(path)
            block = item * max(1, 65536 // len(item))
            first = prefix + block
            sent = 0
            while sent < HUGE_TOTAL and not halt.is_set():
                data = first if sent == 0 else block
                if chunked:
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                else:
                    self.wfile.write(data)
                sent += len(data)
            # no terminating chunk: the stream just stops, as when a server dies mid-answer
            self._shutdown_quietly()
            return True
        return False

    def _client_gone(self):
        """Whether the peer closed its side (plain sockets only; TLS relies on send errors)."""
        sock = self.connection
        if isinstance(sock, ssl.SSLSocket):
            return False
        try:
            r, _, _ = select.select([sock], [], [], 0)
            if r:
                return sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True
        return False

    def _shutdown_quietly(self):
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- A. retrospective verdicts -----------------------------------------------------------

    def _retro(self, path, q, body):
        m = re.fullmatch(r"/v1/register/device/([^/]+)", path)
        if m:
            if self.command != "POST":
                self._json(405, {"message": "Method Not Allowed"})
                return
            self._register(urllib.parse.unquote(m.group(1)), body)
            return
        m = re.fullmatch(r"/v1/retro/device/([^/]+)", path)
        if m:
            if self.command not in ("GET", "HEAD"):
                self._json(405, {"message": "Method Not Allowed"})
                return
            self._retros(urllib.parse.unquote(m.group(1)), q)
            return
        self._json(404, {"message": "Not Found"})

    def _register(self, device, body):
        if self.cfg.device_id is not None and device != self.cfg.device_id:
            self._json(404, {"message": "Device Not Found"})
            return
        try:
            req = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            req = None
        ok = isinstance(req, dict) and all(
            isinstance(req.get(k), str) and req.get(k) for k in ("org_id", "model", "version", "type"))
        if not ok or req["type"] != "esa-ces":
            self._json(400, {"message": "Bad Request"})
            return
        token = secrets.token_urlsafe(32)
        with self.state.lock:
            for info in self.state.tokens.values():
                if info["device"] == device and info["state"] == "valid":
                    info["state"] = "replaced"
            self.state.tokens[token] = {"device": device, "state": "valid"}
        self._json(201, {"token": token, "region_uri": self.base_url()})

    def _retros(self, device, q):
        auth = self.headers.get("Authorization") or ""
        m = re.fullmatch(r"\s*Bearer\s+(\S+)\s*", auth, re.IGNORECASE)
        with self.state.lock:
            info = dict(self.state.tokens.get(m.group(1), {})) if m else {}
        if not info or info["state"] == "replaced":
            self._json(401, {"message": "Unauthorized"})
            return
        if info["state"] == "expired":
            self._send(403, TOKEN_EXPIRED_BODY)
            return
        if self.cfg.device_id is not None and device != self.cfg.device_id:
            self._json(404, {"message": "Device Not Found"})
            return
        if info["device"] != device:
            self._json(401, {"message": "Unauthorized"})
            return
        since_v, size_v = q.get("since"), q.get("page_size")
        since = parse_time_us(since_v[0]) if since_v else None
        size = None
        if size_v and re.fullmatch(r"\d{1,7}", size_v[0]):
            size = int(size_v[0])
        if since is None or size is None or not 1 <= size <= 1000:
            self._json(400, {"message": "Bad Request"})
            return
        with self.state.lock:
            matching = sorted((r for r in self.state.retros if r[0] >= since), key=lambda r: (r[0], r[1]))
            page = [r[2] for r in matching[:size]]
            more = len(matching) > size
            data = json.dumps({"retros": page, "more": more}) if page else "{}"
        self._send(200, data)

    # --- B. TAXII 2.1 ------------------------------------------------------------------------

    def _taxii_error(self, status, title, description="", headers=()):
        self._json(status, {"title": title, "description": description, "http_status": str(status)},
                   headers, TAXII_MEDIA)

    def _taxii(self, path, q):
        if self.cfg.taxii_user is not None:
            user, password = basic_credentials(self.headers.get("Authorization") or "")
            if user != self.cfg.taxii_user or password != self.cfg.taxii_password:
                self._taxii_error(401, "Unauthorized", "The client needs to authenticate (HTTP Basic).",
                                  [("WWW-Authenticate", 'Basic realm="TAXII"')])
                return
        accept = ",".join(self.headers.get_all("Accept") or [])
        if not taxii_accept_ok(accept):
            self._taxii_error(406, "Not Acceptable",
                              "The Accept header must list %s (got %r)." % (TAXII_MEDIA, accept))
            return
        if self.command not in ("GET", "HEAD"):
            self._taxii_error(405, "Method Not Allowed", "This stand-in only serves GET.")
            return
        p = path if path.endswith("/") else path + "/"
        base = self.base_url()
        collection = {"id": COLLECTION_ID, "title": "Stand-in indicators",
                      "description": "Indicators loaded through /_control/taxii.",
                      "can_read": True, "can_write": False, "media_types": [STIX_MEDIA]}
        if p == "/taxii2/":
            self._json(200, {"title": "Clawback stand-in TAXII server",
                             "description": "A TAXII 2.1 stand-in for tests.",
                             "contact": "nobody@example.invalid",
                             "default": base + "/api1/", "api_roots": [base + "/api1/"]},
                       ctype=TAXII_MEDIA)
            return
        if p == "/api1/":
            self._json(200, {"title": "Stand-in API root", "description": "The only API root.",
                             "versions": [TAXII_MEDIA], "max_content_length": MAX_BODY},
                       ctype=TAXII_MEDIA)
            return
        if p == "/api1/collections/":
            self._json(200, {"collections": [collection]}, ctype=TAXII_MEDIA)
            return
        m = re.fullmatch(r"/api1/collections/([^/]+)/(objects/)?", p)
        if not m:
            self._taxii_error(404, "Not Found", "No such TAXII resource: %s" % path)
            return
        if urllib.parse.unquote(m.group(1)) != COLLECTION_ID:
            self._taxii_error(404, "Collection Not Found", "No collection %s." % m.group(1))
            return
        if not m.group(2):
            self._json(200, collection, ctype=TAXII_MEDIA)
            return
        self._taxii_objects(q)

    def _taxii_objects(self, q):
        limit = TAXII_MAX_LIMIT
        if q.get("limit"):
            s = q["limit"][0]
            if not re.fullmatch(r"\d{1,9}", s) or int(s) < 1:
                self._taxii_error(400, "Bad Request", "limit must be a positive integer.")
                return
            limit = min(int(s), TAXII_MAX_LIMIT)
        if q.get("next"):
            with self.state.lock:
                cont = self.state.next_tokens.get(q["next"][0])
            if cont is None:
                self._taxii_error(400, "Bad Request", "Unknown next token.")
                return
            after, types, ids = cont["after"], cont["types"], cont["ids"]
        else:
            after = None
            if q.get("added_after"):
                after = parse_time_us(q["added_after"][0])
                if after is None:
                    self._taxii_error(400, "Bad Request", "added_after is not a timestamp.")
                    return
            types = set()
            for v in q.get("match[type]", []):
                types.update(x.strip() for x in v.split(",") if x.strip())
            types = types or None
            ids = set()
            for v in q.get("match[id]", []):
                ids.update(x.strip() for x in v.split(",") if x.strip())
            ids = ids or None
        with self.state.lock:
            matching = [(da, o) for da, o in self.state.taxii
                        if (after is None or da > after)
                        and (types is None or o.get("type") in types)
                        and (ids is None or o.get("id") in ids)]
            page = matching[:limit]
            more = len(matching) > limit
            token = None
            if more:
                token = secrets.token_urlsafe(16)
                self.state.next_tokens[token] = {"after": page[-1][0], "types": types, "ids": ids}
            envelope = {"more": more}
            if token:
                envelope["next"] = token
            if page:
                envelope["objects"] = [o for _, o in page]
            data = json.dumps(envelope)
        headers = []
        if page:
            headers = [("X-TAXII-Date-Added-First", format_us(page[0][0])),
                       ("X-TAXII-Date-Added-Last", format_us(page[-1][0]))]
        self._send(200, data, TAXII_MEDIA, headers)

    # --- C. MISP -----------------------------------------------------------------------------

    def _misp_error(self, status, msg):
        self._json(status, {"name": msg, "message": msg, "url": MISP_URL})

    def _misp(self, body):
        if self.cfg.misp_key is not None and (self.headers.get("Authorization") or "").strip() != self.cfg.misp_key:
            self._misp_error(403, MISP_AUTH_MSG)
            return
        if self.command != "POST":
            self._misp_error(405, "This stand-in only answers POST on %s." % MISP_URL)
            return
        try:
            req = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            req = None
        if isinstance(req, dict) and isinstance(req.get("request"), dict):
            req = req["request"]
        if not isinstance(req, dict):
            self._misp_error(400, MISP_JSON_MSG)
            return
        with self.state.lock:
            attrs = list(self.state.misp)
        try:
            found = misp_search(attrs, req)
        except (ValueError, TypeError) as e:
            self._misp_error(400, "Invalid parameter: %s" % e)
            return
        self._json(200, {"response": {"Attribute": found}})

    # --- D. static files ---------------------------------------------------------------------

    def _file(self, path):
        name = urllib.parse.unquote(path[len("/files/"):])
        with self.state.lock:
            f = self.state.files.get(name)
        if f is None:
            self._send(404, "Not Found\n", "text/plain; charset=utf-8")
            return
        if self.command not in ("GET", "HEAD"):
            self._send(405, "Method Not Allowed\n", "text/plain; charset=utf-8")
            return
        self._send(200, f[0], f[1])

    # --- control API -------------------------------------------------------------------------

    def _control(self, path, q, body):
        st, method = self.state, self.command

        def ok(extra=None):
            d = {"ok": True}
            d.update(extra or {})
            self._json(200, d)

        def bad(msg, status=400):
            self._json(status, {"ok": False, "error": msg})

        def parse_list():
            try:
                v = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                return None
            if isinstance(v, dict):
                v = [v]
            if not isinstance(v, list) or not all(isinstance(x, dict) for x in v):
                return None
            return v

        if path == "/_control/retros" and method == "POST":
            items = parse_list()
            if items is None:
                return bad("body must be a JSON list of retro objects")
            stamps = [parse_time_us(x.get("timestamp")) for x in items]
            if any(s is None for s in stamps):
                return bad("every retro needs a timestamp like 2022-03-30T00:17:13Z")
            with st.lock:
                for s, x in zip(stamps, items):
                    st.retro_seq += 1
                    st.retros.append((s, st.retro_seq, x))
                total = len(st.retros)
            return ok({"count": len(items), "total": total})
        if path == "/_control/expire_token" and method == "POST":
            with st.lock:
                n = 0
                for info in st.tokens.values():
                    if info["state"] == "valid":
                        info["state"] = "expired"
                        n += 1
            return ok({"expired": n})
        if path == "/_control/taxii" and method == "POST":
            items = parse_list()
            if items is None:
                return bad("body must be a JSON list of STIX objects")
            added = []
            with st.lock:
                for x in items:
                    da = max(now_us(), st.last_added_us + 1)
                    st.last_added_us = da
                    st.taxii.append((da, x))
                    added.append(format_us(da))
            return ok({"count": len(items), "date_added": added})
        if path == "/_control/misp" and method == "POST":
            items = parse_list()
            if items is None:
                return bad("body must be a JSON list of MISP attributes")
            with st.lock:
                st.misp.extend(items)
            return ok({"count": len(items)})
        if path.startswith("/_control/files/"):
            name = urllib.parse.unquote(path[len("/_control/files/"):])
            if not name:
                return bad("missing file name")
            if method == "PUT":
                ctype = (q.get("content_type") or [None])[0]
                if not ctype:
                    ctype = "text/csv; charset=utf-8" if name.lower().endswith(".csv") \
                        else "text/plain; charset=utf-8"
                with st.lock:
                    st.files[name] = (body, ctype)
                return ok({"bytes": len(body), "content_type": ctype})
            if method == "DELETE":
                with st.lock:
                    existed = st.files.pop(name, None) is not None
                return ok({"existed": existed})
            return bad("use PUT or DELETE", 405)
        if path == "/_control/fault":
            if method == "GET":
                with st.lock:
                    return self._json(200, [dict(f) for f in st.faults])
            if method == "DELETE":
                with st.lock:
                    st.faults.clear()
                return ok()
            if method != "POST":
                return bad("use POST, GET or DELETE", 405)
            try:
                f = json.loads(body.decode("utf-8"))
            except (ValueError, UnicodeDecodeError):
                f = None
            if not isinstance(f, dict):
                return bad("body must be a JSON object")
            fault = {"path_prefix": f.get("path_prefix", "/"), "mode": f.get("mode"),
                     "count": f.get("count", 1), "status": f.get("status", 503),
                     "retry_after": f.get("retry_after"), "body": f.get("body"),
                     "content_type": f.get("content_type"), "delay_s": f.get("delay_s", 5)}
            if fault["mode"] not in FAULT_MODES:
                return bad("mode must be one of %s" % ", ".join(FAULT_MODES))
            if not isinstance(fault["path_prefix"], str) or not fault["path_prefix"]:
                return bad("path_prefix must be a non-empty string")
            if isinstance(fault["count"], bool) or not isinstance(fault["count"], int) or fault["count"] < 1:
                return bad("count must be a positive integer")
            if isinstance(fault["status"], bool) or not isinstance(fault["status"], int) \
                    or not 200 <= fault["status"] <= 599:
                return bad("status must be an integer 200..599")
            if isinstance(fault["delay_s"], bool) or not isinstance(fault["delay_s"], (int, float)) \
                    or fault["delay_s"] < 0:
                return bad("delay_s must be a number >= 0")
            if fault["content_type"] is not None and not isinstance(fault["content_type"], str):
                return bad("content_type must be a string")
            fault["remaining"] = fault["count"]
            with st.lock:
                st.faults.append(fault)
                queued = len(st.faults)
            return ok({"queued": queued})
        if path == "/_control/requests":
            if method == "GET":
                with st.lock:
                    data = json.dumps(st.requests)
                return self._send(200, data)
            if method == "DELETE":
                with st.lock:
                    st.requests.clear()
                return ok()
            return bad("use GET or DELETE", 405)
        if path == "/_control/reset" and method == "POST":
            with st.lock:
                st.reset()
            return ok()
        if path == "/_control/state" and method == "GET":
            with st.lock:
                data = {"retros": len(st.retros), "taxii": len(st.taxii), "misp": len(st.misp),
                        "files": sorted(st.files), "faults": len(st.faults),
                        "requests": len(st.requests),
                        "tokens": {t: dict(i) for t, i in st.tokens.items()}}
            return self._json(200, data)
        return bad("unknown control endpoint %s %s" % (method, path), 404)


def basic_credentials(header):
    """(user, password) from an HTTP Basic Authorization header, or (None, None)."""
    m = re.fullmatch(r"\s*Basic\s+(\S+)\s*", header or "", re.IGNORECASE)
    if not m:
        return None, None
    try:
        raw = base64.b64decode(m.group(1), validate=True).decode("utf-8")
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None, None
    user, sep, password = raw.partition(":")
    if not sep:
        return None, None
    return user, password


def basic_user(header):
    return basic_credentials(header)[0]


# ---------------------------------------------------------------------------------------------
# the server


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, cfg, ssl_ctx=None):
        self.cfg = cfg
        self.ssl_ctx = ssl_ctx
        self.state = State()
        self.halt = threading.Event()       # stops drips, huge streams and delays
        super().__init__(("127.0.0.1", port), Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)    # no reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        if self.ssl_ctx is None:
            super().finish_request(request, client_address)
            return
        # the TLS handshake happens here, in the connection's own thread
        try:
            request.settimeout(10)
            tls = self.ssl_ctx.wrap_socket(request, server_side=True)
        except (OSError, ValueError) as e:
            log("%s TLS handshake failed: %s" % (client_address[0], e))
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def handle_error(self, request, client_address):
        e = sys.exc_info()[1]
        if isinstance(e, OSError):
            log("%s connection error: %s" % (client_address[0], e))
        else:
            log("%s error: %s\n%s" % (client_address[0], e, traceback.format_exc()))

    def stop(self):
        self.halt.set()
        self.shutdown()
        self.server_close()


def make_ssl_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    return ctx


def write_port_file(path, port):
    tmp = "%s.tmp.%d" % (path, os.getpid())
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in threat feed server for clawback tests.")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    ap.add_argument("--port-file", help="write the port chosen here (atomically)")
    ap.add_argument("--tls-cert", help="PEM certificate (with --tls-key: serve HTTPS)")
    ap.add_argument("--tls-key", help="PEM private key")
    ap.add_argument("--taxii-user", help="require HTTP Basic auth on TAXII with this user")
    ap.add_argument("--taxii-password", help="the TAXII password (default empty)")
    ap.add_argument("--misp-key", help="require this MISP Authorization key")
    ap.add_argument("--device-id", help="the only device id the retro service knows")
    ap.add_argument("--self-test", action="store_true", help="test the stand-in itself and exit")
    args = ap.parse_args(argv)
    if args.self_test:
        return self_test()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    if args.taxii_password is not None and args.taxii_user is None:
        ap.error("--taxii-password needs --taxii-user")
    ctx = make_ssl_context(args.tls_cert, args.tls_key) if args.tls_cert else None
    cfg = Config(args.taxii_user, args.taxii_password, args.misp_key, args.device_id)
    server = StandinServer(args.port, cfg, ctx)
    port = server.server_port
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    if args.port_file:
        write_port_file(args.port_file, port)
    log("listening on %s://127.0.0.1:%d (pid %d)" % ("https" if ctx else "http", port, os.getpid()))
    while not stopping and thread.is_alive():
        time.sleep(0.1)
    log("stopping (signal %s)" % (stopping[0] if stopping else "none"))
    server.stop()
    return 0


# ---------------------------------------------------------------------------------------------
# self test


def self_test():
    import http.client
    import subprocess
    import shutil
    import tempfile

    results = {"ok": 0, "fail": 0}

    def check(cond, what):
        if cond:
            results["ok"] += 1
        else:
            results["fail"] += 1
            print("FAIL: %s" % what, flush=True)
        return cond

    cfg = Config(taxii_user="tx", taxii_password="pw", misp_key="misp-secret", device_id="dev-1")
    srv = StandinServer(0, cfg)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
    port = srv.server_port
    base = "http://127.0.0.1:%d" % port
    conn = [http.client.HTTPConnection("127.0.0.1", port, timeout=10)]

    def req(method, path, body=None, headers=None, fresh=False):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        h = dict(headers or {})
        for attempt in (0, 1):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10) if fresh else conn[0]
            try:
                c.request(method, path, body=body, headers=h)
                r = c.getresponse()
                data = r.read()
                if fresh:
                    c.close()
                return r.status, r, data
            except (http.client.HTTPException, OSError):
                conn[0].close()
                conn[0] = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                if attempt or fresh:
                    raise

    def js(data):
        try:
            return json.loads(data)
        except ValueError:
            return None

    def raw(data, read_until_close=True, timeout=5):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
                if not read_until_close and b"\r\n\r\n" in out:
                    break
        except socket.timeout:
            pass
        s.close()
        return out

    ctl = lambda method, path, body=None: req(method, "/_control/" + path, body)  # noqa: E731

    # ---- A. retro ----
    reg = {"org_id": "cisco", "model": "x", "version": "1", "type": "esa-ces"}
    s, _, d = req("POST", "/v1/register/device/other", reg)
    check(s == 404 and js(d) == {"message": "Device Not Found"}, "register unknown device -> 404")
    for bad_body in ({"org_id": "", "model": "x", "version": "1", "type": "esa-ces"},
                     {"org_id": "c", "model": "x", "version": "1", "type": "esa"},
                     {"model": "x", "version": "1", "type": "esa-ces"}, "not json"):
        s, _, d = req("POST", "/v1/register/device/dev-1", bad_body)
        check(s == 400 and js(d) == {"message": "Bad Request"}, "register bad body %r -> 400" % (bad_body,))
    s, _, d = req("POST", "/v1/register/device/dev-1", reg)
    tok1 = (js(d) or {}).get("token")
    check(s == 201 and tok1 and js(d).get("region_uri") == base, "register -> 201 token region_uri")
    url = "/v1/retro/device/dev-1?since=2022-03-29T23:20:24Z&page_size=2"
    s, _, d = req("GET", url)
    check(s == 401 and js(d) == {"message": "Unauthorized"}, "retro without token -> 401")
    s, _, d = req("GET", url, headers={"Authorization": "Bearer nope"})
    check(s == 401, "retro unknown token -> 401")
    auth1 = {"Authorization": "Bearer " + tok1}
    for q in ("since=bad&page_size=2", "page_size=2", "since=2022-03-29T23:20:24Z",
              "since=2022-03-29T23:20:24Z&page_size=0", "since=2022-03-29T23:20:24Z&page_size=1001",
              "since=2022-03-29T23:20:24&page_size=5"):
        s, _, d = req("GET", "/v1/retro/device/dev-1?" + q, headers=auth1)
        check(s == 400 and js(d) == {"message": "Bad Request"}, "retro %s -> 400" % q)
    s, _, d = req("GET", url, headers=auth1)
    check(s == 200 and d == b"{}", "retro nothing -> exactly {}")

    def retro(ts, v):
        return {"observable": {"observable_type": "url", "value": v}, "context_tags": [],
                "email_id": "e-" + v, "timestamp": ts, "org_id": "cisco",
                "verdict": {"taxonomy_id": 4, "taxonomy_entry_id": 3, "tag_type_id": 1},
                "taxonomy_map_version": 1}
    s, _, d = ctl("POST", "retros", [retro("2022-03-30T00:17:13Z", "c"), retro("2022-03-30T00:00:00Z", "a"),
                                     retro("2022-03-30T00:17:13Z", "d"), retro("2022-03-30T00:10:00Z", "b")])
    check(s == 200 and js(d)["ok"] is True, "control retros")
    s, _, d = ctl("POST", "retros", [{"no": "timestamp"}])
    check(s == 400, "control retros without timestamp -> 400")
    s, _, d = req("GET", url, headers=auth1)
    b = js(d) or {}
    check(s == 200 and [r["observable"]["value"] for r in b.get("retros", [])] == ["a", "b"]
          and b.get("more") is True, "retro page 1: a,b more")
    s, _, d = req("GET", "/v1/retro/device/dev-1?since=2022-03-30T00:10:00Z&page_size=3", headers=auth1)
    b = js(d) or {}
    check([r["observable"]["value"] for r in b.get("retros", [])] == ["b", "c", "d"] and b.get("more") is False,
          "retro since inclusive, order by (timestamp, insertion), more false")
    check(b.get("retros", [{}])[0] == retro("2022-03-30T00:10:00Z", "b"), "retro stored as given")
    s, _, d = req("GET", "/v1/retro/device/dev-1?since=2022-03-30T00:17:14Z&page_size=3", headers=auth1)
    check(s == 200 and d == b"{}", "retro after last -> {}")
    s, _, d = req("POST", "/v1/register/device/dev-1", reg)
    tok2 = js(d)["token"]
    check(tok2 != tok1, "re-register -> new token")
    s, _, d = req("GET", url, headers=auth1)
    check(s == 401, "old token after re-register -> 401")
    auth2 = {"Authorization": "Bearer " + tok2}
    s, _, d = req("GET", url, headers=auth2)
    check(s == 200, "new token works")
    s, _, d = req("GET", url.replace("dev-1", "dev-2"), headers=auth2)
    check(s == 404 and js(d) == {"message": "Device Not Found"}, "retro other device -> 404")
    s, _, d = ctl("POST", "expire_token")
    check(s == 200 and js(d)["ok"], "control expire_token")
    s, _, d = req("GET", url, headers=auth2)
    check(s == 403 and d == TOKEN_EXPIRED_BODY, "expired token -> 403 exact body")
    s, _, d = req("POST", "/v1/register/device/dev-1", reg)
    auth3 = {"Authorization": "Bearer " + js(d)["token"]}
    s, _, d = req("GET", url, headers=auth3)
    check(s == 200, "token after expiry + re-register works")
    s, _, d = req("GET", url, headers=auth2)
    check(s == 403, "expired token stays expired")

    # ---- B. TAXII ----
    acc = {"Accept": TAXII_MEDIA}
    basic = {"Authorization": "Basic " + base64.b64encode(b"tx:pw").decode(), "Accept": TAXII_MEDIA}
    wrongpw = {"Authorization": "Basic " + base64.b64encode(b"tx:no").decode(), "Accept": TAXII_MEDIA}
    s, r, d = req("GET", "/taxii2/", headers=acc)
    check(s == 401 and r.getheader("WWW-Authenticate", "").startswith("Basic")
          and (js(d) or {}).get("http_status") == "401", "taxii without auth -> 401")
    s, r, d = req("GET", "/taxii2/", headers=wrongpw)
    check(s == 401, "taxii wrong password -> 401")
    for a in ("application/json", "application/taxii+json;version=2.0", "*/*", "application/taxii+json"):
        s, r, d = req("GET", "/taxii2/", headers=dict(basic, Accept=a))
        check(s == 406 and (js(d) or {}).get("http_status") == "406" and "title" in js(d),
              "taxii Accept %s -> 406" % a)
    s, r, d = req("GET", "/taxii2/", headers=dict(basic, Accept="application/json, application/taxii+json; version=2.1"))
    check(s == 200 and js(d)["api_roots"] == [base + "/api1/"] and js(d)["default"] == base + "/api1/"
          and r.getheader("Content-Type") == TAXII_MEDIA, "taxii discovery")
    s, r, d = req("GET", "/api1/", headers=basic)
    check(s == 200 and TAXII_MEDIA in js(d)["versions"], "taxii api root")
    s, r, d = req("GET", "/api1/collections/", headers=basic)
    cs = (js(d) or {}).get("collections", [])
    check(s == 200 and len(cs) == 1 and cs[0]["id"] == COLLECTION_ID and cs[0]["can_read"] is True
          and cs[0]["can_write"] is False and cs[0]["media_types"] == [STIX_MEDIA], "taxii collections")
    obj_url = "/api1/collections/%s/objects/" % COLLECTION_ID
    s, r, d = req("GET", "/api1/collections/nope/objects/", headers=basic)
    check(s == 404 and js(d)["http_status"] == "404", "taxii unknown collection -> 404")
    s, r, d = req("GET", obj_url, headers=basic)
    check(s == 200 and js(d) == {"more": False} and r.getheader("X-TAXII-Date-Added-First") is None,
          "taxii empty -> {more:false}")

    def ind(i, t="indicator"):
        return {"type": t, "spec_version": "2.1", "id": "%s--00000000-0000-4000-8000-%012d" % (t, i),
                "pattern": "[url:value = 'http://x/%d']" % i, "pattern_type": "stix"}
    s, _, d = ctl("POST", "taxii", [ind(1), ind(2, "malware"), ind(3), ind(4), ind(5, "malware"), ind(6)])
    added = js(d)["date_added"]
    check(s == 200 and len(added) == 6 and added == sorted(added) and len(set(added)) == 6,
          "control taxii date_added increasing")
    s, r, d = req("GET", obj_url + "?limit=2&match[type]=indicator", headers=basic)
    b = js(d)
    check(s == 200 and [o["id"] for o in b["objects"]] == [ind(1)["id"], ind(3)["id"]] and b["more"] is True
          and b.get("next") and r.getheader("Content-Type") == TAXII_MEDIA, "taxii page 1")
    check(r.getheader("X-TAXII-Date-Added-First") == added[0] and r.getheader("X-TAXII-Date-Added-Last") == added[2],
          "taxii date-added headers")
    s, r, d = req("GET", obj_url + "?limit=2&next=" + urllib.parse.quote(b["next"]), headers=basic)
    b = js(d)
    check(s == 200 and [o["id"] for o in b["objects"]] == [ind(4)["id"], ind(6)["id"]] and b["more"] is False
          and "next" not in b, "taxii next continues the same query")
    s, r, d = req("GET", obj_url + "?added_after=" + urllib.parse.quote(added[2]), headers=basic)
    b = js(d)
    check([o["id"] for o in b["objects"]] == [ind(4)["id"], ind(5, "malware")["id"], ind(6)["id"]],
          "taxii added_after strictly after")
    s, r, d = req("GET", obj_url + "?added_after=" + urllib.parse.quote(added[5]), headers=basic)
    check(js(d) == {"more": False} and r.getheader("X-TAXII-Date-Added-Last") is None, "taxii after last -> empty")
    s, r, d = req("GET", obj_url + "?match%5Btype%5D=malware,tool", headers=basic)
    check([o["type"] for o in js(d)["objects"]] == ["malware", "malware"], "taxii match[type] list")
    for q in ("added_after=yesterday", "limit=0", "limit=x", "next=bogus"):
        s, r, d = req("GET", obj_url + "?" + q, headers=basic)
        check(s == 400 and js(d)["http_status"] == "400", "taxii %s -> 400" % q)
    ctl("POST", "taxii", [ind(100 + i) for i in range(120)])
    s, r, d = req("GET", obj_url + "?limit=1000", headers=basic)
    check(len(js(d)["objects"]) == 100 and js(d)["more"] is True, "taxii limit capped at 100")
    s, r, d = req("GET", obj_url + "?next=" + urllib.parse.quote(js(d)["next"]), headers=basic)
    check(len(js(d)["objects"]) == 26 and js(d)["more"] is False, "taxii default limit, last page")

    # ---- C. MISP ----
    mh = {"Authorization": "misp-secret", "Accept": "application/json", "Content-Type": "application/json"}
    q = {"returnFormat": "json", "type": ["url"], "to_ids": 1, "timestamp": 1700000000, "limit": 10, "page": 1}
    s, r, d = req("POST", MISP_URL, q)
    check(s == 403 and js(d)["name"] == MISP_AUTH_MSG and js(d)["url"] == MISP_URL, "misp no key -> 403")
    s, r, d = req("POST", MISP_URL, q, headers={"Authorization": "wrong"})
    check(s == 403, "misp wrong key -> 403")
    s, r, d = req("POST", MISP_URL, "{nope", headers=mh)
    check(s == 400 and set(js(d)) == {"name", "message", "url"}, "misp non-JSON -> 400")

    def attr(i, t="url", ids=True, ts=1700000000):
        return {"id": str(i), "event_id": "1", "uuid": "u-%d" % i, "type": t, "category": "Network activity",
                "to_ids": ids, "value": "http://x/%d" % i, "timestamp": str(ts)}
    ctl("POST", "misp", [attr(10), attr(2, ts=1600000000), attr(3, "domain"), attr(1), attr(4, ids=False),
                         attr(5, ts=1800000000)])
    s, r, d = req("POST", MISP_URL, q, headers=mh)
    check(s == 200 and [a["id"] for a in js(d)["response"]["Attribute"]] == ["1", "5", "10"], "misp search")
    s, r, d = req("POST", MISP_URL, dict(q, limit=1, page=2, type="url", timestamp="1700000000"), headers=mh)
    check([a["id"] for a in js(d)["response"]["Attribute"]] == ["5"], "misp paging, string type/timestamp")
    s, r, d = req("POST", MISP_URL, {"returnFormat": "json", "type": ["url", "domain"]}, headers=mh)
    check([a["id"] for a in js(d)["response"]["Attribute"]] == ["1", "2", "3", "4", "5", "10"], "misp no filters")
    s, r, d = req("POST", MISP_URL, dict(q, page=9), headers=mh)
    check(s == 200 and js(d) == {"response": {"Attribute": []}}, "misp past the end -> empty list")

    # ---- D. files ----
    s, r, d = req("GET", "/files/feed.csv")
    check(s == 404, "file missing -> 404")
    ctl("PUT", "files/feed.csv", "url,date\nhttp://a/,2024\n")
    ctl("PUT", "files/list.txt", "http://a/\n")
    s, r, d = req("GET", "/files/feed.csv")
    check(s == 200 and d == b"url,date\nhttp://a/,2024\n" and r.getheader("Content-Type").startswith("text/csv"),
          "file csv")
    s, r, d = req("GET", "/files/list.txt")
    check(s == 200 and r.getheader("Content-Type").startswith("text/plain"), "file text")
    ctl("PUT", "files/list.txt", "http://b/\n")
    s, r, d = req("GET", "/files/list.txt")
    check(d == b"http://b/\n", "file replaced")

    # ---- faults ----
    ctl("POST", "fault", {"path_prefix": "/v1/retro", "count": 2, "mode": "status", "status": 503,
                          "retry_after": "2", "body": "busy"})
    for i in range(2):
        s, r, d = req("GET", url, headers=auth3)
        check(s == 503 and r.getheader("Retry-After") == "2" and d == b"busy", "fault status #%d" % i)
    s, r, d = req("GET", url, headers=auth3)
    check(s == 200, "fault status used up")
    ctl("POST", "fault", {"path_prefix": "/files/", "mode": "status", "status": 500})
    ctl("POST", "fault", {"path_prefix": "/files/", "mode": "status", "status": 502})
    s1 = req("GET", "/files/list.txt")[0]
    s2 = req("GET", "/files/list.txt")[0]
    check((s1, s2) == (500, 502), "faults queue in order")
    ctl("POST", "fault", {"path_prefix": "/taxii2", "mode": "garbage"})
    s, r, d = req("GET", "/taxii2/", headers=basic)
    check(s == 200 and js(d) is None and r.getheader("Content-Type") == TAXII_MEDIA, "fault garbage")
    ctl("POST", "fault", {"path_prefix": "/files/", "mode": "close"})
    try:
        req("GET", "/files/list.txt", fresh=True)
        check(False, "fault close")
    except (http.client.HTTPException, OSError):
        check(True, "fault close")
    ctl("POST", "fault", {"path_prefix": "/files/", "mode": "delay", "delay_s": 0.4})
    t0 = time.monotonic()
    s, r, d = req("GET", "/files/list.txt")
    check(s == 200 and d == b"http://b/\n" and time.monotonic() - t0 >= 0.4, "fault delay")
    check(req("POST", "/_control/fault", {"mode": "nope"})[0] == 400, "bad fault -> 400")
    ctl("POST", "fault", {"path_prefix": "/v1/retro", "mode": "drip"})
    sk = socket.create_connection(("127.0.0.1", port), timeout=5)
    sk.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url).encode())
    got = b""
    t0 = time.monotonic()
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < 2:
        chunk = sk.recv(4096)
        if not chunk:
            break
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    check(b" 200 " in head and b"Content-Length: %d" % DRIP_LENGTH in head and rest[:2] == b'{"'
          and 0.7 < time.monotonic() - t0 < 3, "fault drip")
    sk.close()
    ctl("POST", "fault", {"path_prefix": "/v1/retro", "mode": "huge"})
    sk = socket.create_connection(("127.0.0.1", port), timeout=5)
    sk.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % url).encode())
    got = b""
    while len(got) < 5 * 1024 * 1024:
        chunk = sk.recv(1 << 20)
        if not chunk:
            break
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    check(b"Transfer-Encoding: chunked" in head and b"Content-Length" not in head
          and rest.split(b"\r\n", 1)[1].startswith(b'{"retros": [') and len(got) >= 5 * 1024 * 1024, "fault huge")
    sk.close()
    time.sleep(0.3)
    s, r, d = req("GET", url, headers=auth3, fresh=True)
    check(s == 200, "server fine after drip/huge")

    # ---- proxy, robustness ----
    out = raw(("GET http://127.0.0.1:%d/files/list.txt?a=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Connection: close\r\n\r\n" % port).encode())
    check(out.startswith(b"HTTP/1.1 200") and out.endswith(b"http://b/\n"), "absolute URI served")
    out = raw(b"CONNECT feed.example:443 HTTP/1.1\r\nHost: feed.example:443\r\n\r\n")
    check(out.startswith(b"HTTP/1.1 405"), "CONNECT -> 405")
    for junk in (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, b"NONSENSE\r\n\r\n",
                 b"GET /files/list.txt HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
                 b"POST /attributes/restSearch HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"a\"",
                 b"FOO /x HTTP/1.1\r\nHost: x\r\n\r\n", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 200 + b"\r\n",
                 b"POST /_control/taxii HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"):
        raw(junk, timeout=1)
    s, r, d = req("GET", "/files/list.txt", fresh=True)
    check(s == 200, "server fine after junk")
    s, r, d = req("PUT", "/_control/taxii", "x")
    check(s == 404, "unknown control -> 404")
    # keep-alive: two answers on one connection
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/files/list.txt")
    r = c.getresponse()
    r.read()
    sock1 = c.sock
    c.request("GET", "/files/list.txt")
    r = c.getresponse()
    r.read()
    check(c.sock is sock1 and r.status == 200 and r.getheader("Content-Length") == "10", "keep-alive")
    c.close()

    # ---- request log ----
    s, r, d = ctl("GET", "requests")
    log_ = js(d)
    check(s == 200 and isinstance(log_, list) and all(not e["path"].startswith("/_control") for e in log_),
          "requests list, no control requests")
    retro_gets = [e for e in log_ if e["path"] == "/v1/retro/device/dev-1" and e["status"] == 200]
    check(retro_gets and retro_gets[0]["headers"].get("authorization") == "present"
          and retro_gets[0]["query"]["page_size"] == ["2"] and retro_gets[0]["method"] == "GET",
          "request log: retro GET")
    tx = [e for e in log_ if e["path"] == "/taxii2/" and e["status"] == 200]
    check(tx and tx[0]["auth_user"] == "tx" and tx[0]["headers"]["auth_user"] == "tx", "request log: auth_user")
    mp = [e for e in log_ if e["path"] == MISP_URL and e["status"] == 200]
    check(mp and mp[0]["body"]["type"] == ["url"], "request log: JSON body")
    px = [e for e in log_ if e["proxied"]]
    check([(e["method"], e["status"]) for e in px] == [("GET", 200), ("CONNECT", 405)]
          and px[0]["path"] == "/files/list.txt" and px[0]["query"] == {"a": ["1"]}, "request log: proxied")
    check(any(e["fault"] == "close" and e["status"] is None for e in log_), "request log: close fault")
    check(any(e["fault"] == "status" and e["status"] == 503 for e in log_), "request log: status fault")
    s, r, d = ctl("DELETE", "requests")
    s, r, d = ctl("GET", "requests")
    check(js(d) == [], "requests cleared")
    check(ctl("POST", "reset")[0] == 200 and js(ctl("GET", "state")[2])["taxii"] == 0, "reset")
    srv.stop()

    # ---- the command line: TLS, port file, SIGTERM ----
    tmp = tempfile.mkdtemp(prefix="feed-standin-selftest.")
    try:
        tls_args = []
        if shutil.which("openssl"):
            cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
            gen = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                                  "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                                  "-addext", "subjectAltName=IP:127.0.0.1"],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if gen.returncode == 0:
                tls_args = ["--tls-cert", cert, "--tls-key", key]
        if not tls_args:
            print("note: no openssl, TLS not tested", flush=True)
        pf = os.path.join(tmp, "port")
        errf = open(os.path.join(tmp, "err"), "w+")
        p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--port", "0", "--port-file", pf,
                              "--misp-key", "k"] + tls_args, stderr=errf)
        deadline = time.monotonic() + 10
        while not os.path.exists(pf) and time.monotonic() < deadline:
            time.sleep(0.05)
        cport = int(open(pf).read()) if os.path.exists(pf) else 0
        check(cport > 0, "port file written")
        if cport and tls_args:
            sctx = ssl.create_default_context(cafile=tls_args[1])
            c = http.client.HTTPSConnection("127.0.0.1", cport, timeout=5, context=sctx)
            c.request("POST", "/v1/register/device/any", body=json.dumps(reg))
            r = c.getresponse()
            check(r.status == 201 and js(r.read())["region_uri"] == "https://127.0.0.1:%d" % cport,
                  "TLS register -> https region_uri")
            c.close()
            plain = socket.create_connection(("127.0.0.1", cport), timeout=5)
            plain.sendall(b"GET / HTTP/1.1\r\n\r\n")
            try:
                plain.recv(100)
            except OSError:
                pass
            plain.close()
            c = http.client.HTTPSConnection("127.0.0.1", cport, timeout=5, context=sctx)
            c.request("GET", "/files/x")
            check(c.getresponse().status == 404, "TLS server fine after plain HTTP")
            c.close()
        elif cport:
            c = http.client.HTTPConnection("127.0.0.1", cport, timeout=5)
            c.request("GET", "/files/x")
            check(c.getresponse().status == 404, "subprocess answers")
            c.close()
        # a drip in progress must not hold up SIGTERM
        if cport:
            hold = socket.create_connection(("127.0.0.1", cport), timeout=5)
            if tls_args:
                hold = ssl.create_default_context(cafile=tls_args[1]).wrap_socket(hold, server_hostname="127.0.0.1")
            body = json.dumps({"path_prefix": "/files/", "mode": "drip"}).encode()
            hold.sendall(b"POST /_control/fault HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s"
                         % (len(body), body))
            hold.recv(4096)
            hold.sendall(b"GET /files/x HTTP/1.1\r\nHost: x\r\n\r\n")
            hold.recv(4096)
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = None
        check(rc == 0, "SIGTERM -> clean exit 0 (got %r)" % rc)
        if cport:
            hold.close()
        errf.seek(0)
        err = errf.read()
        errf.close()
        check("listening on" in err and "GET /files/x" in err and "Traceback" not in err, "stderr log lines")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    print("self-test: %d checks passed, %d failed" % (results["ok"], results["fail"]), flush=True)
    return 0 if results["fail"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
