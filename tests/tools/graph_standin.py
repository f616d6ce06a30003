#!/usr/bin/env python3
"""graph_standin.py - a stand-in for Microsoft Graph mail and the Microsoft identity platform
token endpoint, for the tests of remediator/graph.c (tests only).

One loopback HTTP server (ThreadingHTTPServer) that answers the way the documented services do
(docs/../shared reference protocols.md section 2; learn.microsoft.com/graph):

  POST /{tenant}/oauth2/v2.0/token              client_credentials -> Bearer token
  GET  /v1.0/users/{upn}/messages               $filter=internetMessageId eq '...', $select,
                                                $top/$skip paging with @odata.nextLink
  GET  /v1.0/users/{upn}/messages/{id}
  PATCH /v1.0/users/{upn}/messages/{id}         {"subject": ...} (drafts)
  DELETE /v1.0/users/{upn}/messages/{id}        204, moved to recoverableitemsdeletions
  POST /v1.0/users/{upn}/messages/{id}/move     {"destinationId"} -> 201, the moved message
  POST .../permanentDelete                      204, purged
  POST .../createForward                        {"toRecipients", "comment"} -> 201, a draft
  POST .../send                                 202, the draft goes to sentitems; a recipient
                                                that is one of the stand-in's mailboxes gets it
  GET  /v1.0/users/{upn}/mailFolders            $filter=displayName eq '...'
  GET  /v1.0/users/{upn}/mailFolders/{id|well-known name}

Graph calls need "Authorization: Bearer <token>" (401 InvalidAuthenticationToken otherwise).
Message ids are opaque and carry '/', '+' and '=' (clients must percent-encode them in paths);
they change on a move unless the request says Prefer: IdType="ImmutableId".

Throttling, per mailbox (the Outlook service limits): at most --mailbox-concurrency (4)
requests at once, at most --mailbox-rate (10000) requests in any 10 minutes; beyond either,
429 {"error": {"code": "ApplicationThrottled", ...}} with Retry-After.

A test-only control API under /_control/ (no auth):

  POST /_control/mailboxes      {"mailboxes": [{"upn", "folders": [names], "rest_enabled",
                                "access": "denied", "messages": [{"folder", "internetMessageId",
                                "subject", "from", "body"}]}]} -> the ids given to the messages
  GET  /_control/mailbox/{upn}  its folders, each with its messages
  POST /_control/fail           {"path_regex", "method", "status", "count", "retry_after",
                                "code", "message"}: the next count matching Graph calls fail
  POST /_control/expire_tokens  every token issued so far is expired
  POST /_control/config         {"latency_ms", "mailbox_rate", "mailbox_concurrency",
                                "token_lifetime"}: latency_ms delays every Graph answer
  GET  /_control/stats          token requests, requests, throttled and the highest
                                concurrency seen, per mailbox (max_concurrency); the highest
                                number of requests in flight at once over all mailboxes
                                (max_concurrency_total) and of mailboxes with a request in
                                flight at once (max_busy_mailboxes). Only admitted requests
                                count: to see what a client sends beyond Graph's limit, set
                                mailbox_concurrency above it
  GET  /_control/requests       the log of Graph and token requests (method, path, query, status)
  POST /_control/reset          forget everything

The port (chosen by the OS unless --port) is printed on standard output as the first line,
and written to --port-file when given. Python 3 standard library only.
"""

import argparse
import base64
import collections
import json
import os
import re
import secrets
import signal
import socketserver
import sys
import threading
import time
import traceback
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API_PREFIX = "/v1.0"
WINDOW_S = 600.0                       # the Outlook service's per-mailbox request window
MAX_BODY = 4 * 1024 * 1024
DEFAULT_PAGE = 10                      # Graph's default page size for messages
WELL_KNOWN = ("inbox", "drafts", "sentitems", "deleteditems", "junkemail", "archive",
              "recoverableitemsdeletions")
DISPLAY_NAMES = {"inbox": "Inbox", "drafts": "Drafts", "sentitems": "Sent Items",
                 "deleteditems": "Deleted Items", "junkemail": "Junk Email", "archive": "Archive",
                 "recoverableitemsdeletions": "Deletions"}
FILTER_RE = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")

_log_lock = threading.Lock()


def log(line):
    """One line on stderr (never raises)."""
    now = time.time()
    stamp = time.strftime("%H:%M:%S", time.localtime(now)) + ".%03d" % int(now % 1 * 1000)
    try:
        with _log_lock:
            sys.stderr.write("[graph_standin %s] %s\n" % (stamp, line))
            sys.stderr.flush()
    except Exception:
        pass


def graph_error(code, message):
    """The body of a Graph error (OData error object with innerError)."""
    return {"error": {"code": code, "message": message,
                      "innerError": {"date": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                                     "request-id": secrets.token_hex(16),
                                     "client-request-id": secrets.token_hex(16)}}}


def identity_error(error, aadsts, description):
    """The body of a Microsoft identity platform token endpoint error."""
    return {"error": error, "error_description": "AADSTS%d: %s" % (aadsts, description),
            "error_codes": [aadsts], "timestamp": time.strftime("%Y-%m-%d %H:%M:%SZ", time.gmtime()),
            "trace_id": secrets.token_hex(16), "correlation_id": secrets.token_hex(16)}


def fault_headers(fault):
    """The Retry-After header of an injected failure, when it has one."""
    return (("Retry-After", str(fault["retry_after"])),) if fault["retry_after"] is not None else ()


def opaque_id(prefix, seq):
    """An opaque Graph-style id holding '/', '+' and '=' (as real ids may)."""
    raw = b"\xfb\xef" + prefix.encode() + seq.to_bytes(4, "big") + secrets.token_bytes(5)
    return "AAMkAD" + base64.b64encode(raw).decode() + "/+="


class Failure(Exception):
    """An error answer: status, body and headers."""

    def __init__(self, status, body, headers=()):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers


# ---------------------------------------------------------------------------------------------
# mailboxes


class Mailbox:
    """One user's mailbox: folders (id -> folder) and messages (id -> message)."""

    def __init__(self, upn, state):
        self.upn = upn
        self.rest_enabled = True
        self.access_denied = False
        self.folders = {}
        self.messages = {}
        for name in WELL_KNOWN:
            self.add_folder(DISPLAY_NAMES[name], name, state)

    def add_folder(self, display_name, well_known, state):
        fid = opaque_id("F", state.next_seq())
        self.folders[fid] = {"id": fid, "displayName": display_name, "wellKnownName": well_known,
                             "parentFolderId": None}
        return fid

    def folder_id(self, ref):
        """The id of a folder named by id or well-known name (case-insensitive), or None."""
        if ref in self.folders:
            return ref
        for fid, f in self.folders.items():
            if f["wellKnownName"] and f["wellKnownName"] == ref.lower():
                return fid
        return None

    def add_message(self, folder_id, fields, state):
        mid = opaque_id("M", state.next_seq())
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        m = {"id": mid, "parentFolderId": folder_id,
             "internetMessageId": fields.get("internetMessageId") or "<%s@standin.test>" % secrets.token_hex(8),
             "subject": fields.get("subject", ""),
             "from": {"emailAddress": {"address": fields.get("from", "sender@example.net")}},
             "toRecipients": fields.get("toRecipients", [{"emailAddress": {"address": self.upn}}]),
             "body": {"contentType": "text", "content": fields.get("body", "")},
             "receivedDateTime": now, "isDraft": bool(fields.get("isDraft", False)),
             "changeKey": secrets.token_hex(8)}
        self.messages[mid] = m
        return m

    def move(self, mid, folder_id, state, immutable):
        """Move a message; its (new unless immutable) id."""
        m = self.messages.pop(mid)
        new_id = mid if immutable else opaque_id("M", state.next_seq())
        m["id"], m["parentFolderId"] = new_id, folder_id
        m["changeKey"] = secrets.token_hex(8)
        self.messages[new_id] = m
        return m

    def snapshot(self):
        folders = []
        for fid, f in self.folders.items():
            msgs = [dict(m) for m in self.messages.values() if m["parentFolderId"] == fid]
            folders.append(dict(f, messages=msgs))
        return {"upn": self.upn, "rest_enabled": self.rest_enabled,
                "access": "denied" if self.access_denied else "granted", "folders": folders}


class State:
    def __init__(self, cfg):
        self.lock = threading.Lock()
        self.cfg = cfg
        self.reset()

    def reset(self):
        self.seq = 0
        self.mailboxes = {}         # lowercase upn -> Mailbox
        self.tokens = {}            # token -> expiry (time.time())
        self.faults = []
        self.requests = []
        self.token_requests = 0
        self.inflight = {}          # upn -> requests being answered
        self.max_inflight = {}
        self.inflight_total = 0     # requests being answered, all mailboxes
        self.max_inflight_total = 0
        self.max_busy_mailboxes = 0 # mailboxes with a request being answered, at once
        self.counts = {}            # upn -> requests received
        self.throttled = {}
        self.windows = {}           # upn -> times of the requests admitted within WINDOW_S

    def next_seq(self):
        self.seq += 1
        return self.seq

    def take_fault(self, method, path):
        """The first queued fault matching this call (one use of it), or None."""
        with self.lock:
            for i, f in enumerate(self.faults):
                if f["method"] and f["method"] != method:
                    continue
                if not re.search(f["path_regex"], path):
                    continue
                f["remaining"] -= 1
                if f["remaining"] <= 0:
                    del self.faults[i]
                return dict(f)
        return None


class Config:
    def __init__(self, args):
        self.tenant = args.tenant
        self.client_id = args.client_id
        self.client_secret = args.client_secret
        self.mailbox_rate = args.mailbox_rate
        self.mailbox_concurrency = args.mailbox_concurrency
        self.token_lifetime = args.token_lifetime
        self.latency_ms = 0


class BadBody(Exception):
    pass


# ---------------------------------------------------------------------------------------------
# OData helpers


def parse_filter(text, allowed):
    """`prop eq 'value'` with '' for a quote -> (prop, value); Failure when not that form."""
    m = FILTER_RE.match(text or "")
    if not m or m.group(1) not in allowed:
        raise Failure(400, graph_error("ErrorInvalidUrlQueryFilter",
                                       "The query filter contains one or more invalid nodes."))
    return m.group(1), m.group(2).replace("''", "'")


def select_fields(obj, select):
    """obj restricted to $select (plus id and @odata.etag, as Graph answers)."""
    out = {"@odata.etag": 'W/"%s"' % obj.get("changeKey", "")}
    if not select:
        out.update({k: v for k, v in obj.items() if k != "changeKey"})
        return out
    for name in select.split(","):
        name = name.strip()
        if name not in obj and name != "id":
            raise Failure(400, graph_error("RequestBroker--ParseUri",
                                           "Could not find a property named '%s' on type "
                                           "'microsoft.graph.message'." % name))
        out[name] = obj.get(name)
    out["id"] = obj["id"]
    return out


def public_message(m):
    return {k: v for k, v in m.items() if k != "changeKey"}


# ---------------------------------------------------------------------------------------------
# the request handler


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "graph-standin/1.0"
    sys_version = ""
    timeout = 60
    disable_nagle_algorithm = True

    def __getattr__(self, name):
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)

    # --- plumbing ----------------------------------------------------------------------------

    def log_request(self, code="-", size="-"):
        pass

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))

    def log_error(self, fmt, *args):
        if not fmt.startswith("code "):
            self.log_message(fmt, *args)

    @property
    def state(self):
        return self.server.state

    @property
    def cfg(self):
        return self.server.state.cfg

    def _send(self, status, obj=None, headers=()):
        body = b"" if obj is None else json.dumps(obj).encode("utf-8")
        self.send_response(status)
        if status not in (202, 204) or body:
            self.send_header("Content-Type", "application/json; odata.metadata=minimal")
            self.send_header("Content-Length", str(len(body)))
        else:
            self.send_header("Content-Length", "0")
        self.send_header("request-id", secrets.token_hex(16))
        for k, v in headers:
            self.send_header(k, v)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        entry = getattr(self, "_entry", None)
        if entry is not None:
            with self.state.lock:
                entry["status"] = status
        log("%s %s -> %d" % (self.command, self.path[:300], status))

    def _read_body(self):
        cls = self.headers.get_all("Content-Length") or []
        if not cls:
            if "chunked" in ",".join(self.headers.get_all("Transfer-Encoding") or []).lower():
                raise BadBody("chunked bodies are not supported by the stand-in")
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

    def _json_body(self, body, required=True):
        if not body:
            if required:
                raise Failure(400, graph_error("BadRequest", "Empty Payload. JSON content expected."))
            return {}
        try:
            v = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise Failure(400, graph_error("BadRequest", "Unable to read JSON request payload."))
        if not isinstance(v, dict):
            raise Failure(400, graph_error("BadRequest", "The request payload must be a JSON object."))
        return v

    def _dispatch(self):
        self._entry = None
        try:
            self._handle()
        except Failure as f:
            self._send(f.status, f.body, f.headers)
        except (OSError, ValueError) as e:
            self.close_connection = True
            log("%s connection error: %s" % (self.client_address[0], e))
        except Exception as e:
            self.close_connection = True
            log("internal error on %r: %s\n%s" % (getattr(self, "requestline", ""), e, traceback.format_exc()))
            try:
                self._send(500, graph_error("InternalServerError", "stand-in internal error: %s" % e))
            except Exception:
                pass

    def _handle(self):
        raw_path, _, query = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        try:
            body = self._read_body()
        except BadBody as e:
            self.close_connection = True
            raise Failure(400, graph_error("BadRequest", str(e)))
        if raw_path.startswith("/_control/"):
            self._control(path, body)
            return
        with self.state.lock:
            self._entry = {"method": self.command, "path": raw_path, "query": query, "status": None}
            self.state.requests.append(self._entry)
        q = urllib.parse.parse_qs(query, keep_blank_values=True)    # '+' reads as a space
        if re.fullmatch(r"/[^/]+/oauth2/v2\.0/token", raw_path):
            self._token(path.split("/")[1], body)
            return
        m = re.match(r"^%s/users/([^/]+)(/.*)?$" % re.escape(API_PREFIX), raw_path)
        if not m:
            raise Failure(400, graph_error("BadRequest", "Invalid request."))
        self._authenticate()
        upn = urllib.parse.unquote(m.group(1)).lower()
        rest = m.group(2) or ""
        segments = [urllib.parse.unquote(s) for s in rest.split("/")[1:]]
        self._throttled_call(upn, lambda: self._graph(upn, segments, q, body))

    # --- identity platform -------------------------------------------------------------------

    def _token(self, tenant, body):
        with self.state.lock:
            self.state.token_requests += 1
        fault = self.state.take_fault(self.command, self.path)
        if fault is not None:
            raise Failure(fault["status"], identity_error(fault["code"], 50000, fault["message"]), fault_headers(fault))
        if self.command != "POST":
            raise Failure(405, identity_error("invalid_request", 900561,
                                              "The endpoint only accepts POST requests."))
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != "application/x-www-form-urlencoded":
            raise Failure(400, identity_error("invalid_request", 900144,
                                              "The request body must contain the following parameter: 'grant_type'."))
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        f = {k: v[0] for k, v in form.items()}
        if tenant.lower() != self.cfg.tenant.lower():
            raise Failure(400, identity_error("invalid_request", 90002,
                                              "Tenant '%s' not found." % tenant[:100]))
        if f.get("grant_type") != "client_credentials":
            raise Failure(400, identity_error("unsupported_grant_type", 70003,
                                              "The app requested an unsupported grant type."))
        if f.get("client_id") != self.cfg.client_id:
            raise Failure(400, identity_error("unauthorized_client", 700016,
                                              "Application with identifier '%s' was not found in the "
                                              "directory." % f.get("client_id", "")[:100]))
        if f.get("client_secret") != self.cfg.client_secret:
            raise Failure(401, identity_error("invalid_client", 7000215,
                                              "Invalid client secret provided. Ensure the secret being "
                                              "sent in the request is the client secret value, not the "
                                              "client secret ID."))
        if not f.get("scope", "").endswith("/.default"):
            raise Failure(400, identity_error("invalid_scope", 1002012,
                                              "The provided value for scope %s is not valid. Client "
                                              "credential flows must have a scope value with /.default "
                                              "suffixed to the resource identifier."
                                              % f.get("scope", "")[:200]))
        token = secrets.token_urlsafe(32)
        lifetime = self.cfg.token_lifetime
        with self.state.lock:
            self.state.tokens[token] = time.time() + lifetime
        self._send(200, {"token_type": "Bearer", "expires_in": lifetime, "ext_expires_in": lifetime,
                         "access_token": token})

    def _authenticate(self):
        auth = self.headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        hdr = (("WWW-Authenticate", 'Bearer realm="", authorization_uri='
                '"https://login.microsoftonline.com/common/oauth2/authorize"'),)
        if not token:
            raise Failure(401, graph_error("InvalidAuthenticationToken", "Access token is empty."), hdr)
        with self.state.lock:
            expiry = self.state.tokens.get(token)
        if expiry is None:
            raise Failure(401, graph_error("InvalidAuthenticationToken", "Invalid JWT token."), hdr)
        if time.time() >= expiry:
            raise Failure(401, graph_error("InvalidAuthenticationToken",
                                           "Lifetime validation failed, the token is expired."), hdr)

    # --- throttling --------------------------------------------------------------------------

    def _throttled_call(self, upn, call):
        st, cfg = self.state, self.cfg
        now = time.time()
        with st.lock:
            st.counts[upn] = st.counts.get(upn, 0) + 1
            window = st.windows.setdefault(upn, collections.deque())
            while window and window[0] <= now - WINDOW_S:
                window.popleft()
            busy = st.inflight.get(upn, 0)
            if busy >= cfg.mailbox_concurrency:
                st.throttled[upn] = st.throttled.get(upn, 0) + 1
                raise Failure(429, graph_error("ApplicationThrottled",
                                               "Application is over its MailboxConcurrency limit."),
                              (("Retry-After", "1"),))
            if len(window) >= cfg.mailbox_rate:
                st.throttled[upn] = st.throttled.get(upn, 0) + 1
                wait = max(1, int(window[0] + WINDOW_S - now + 0.999))
                raise Failure(429, graph_error("ApplicationThrottled",
                                               "Application is over its MailboxRequests limit."),
                              (("Retry-After", str(wait)),))
            window.append(now)
            st.inflight[upn] = busy + 1
            st.max_inflight[upn] = max(st.max_inflight.get(upn, 0), busy + 1)
            st.inflight_total += 1
            st.max_inflight_total = max(st.max_inflight_total, st.inflight_total)
            st.max_busy_mailboxes = max(st.max_busy_mailboxes, sum(1 for n in st.inflight.values() if n > 0))
        try:
            if cfg.latency_ms:
                self.server.halt.wait(cfg.latency_ms / 1000.0)
            fault = st.take_fault(self.command, self.path)
            if fault is not None:
                raise Failure(fault["status"], graph_error(fault["code"], fault["message"]), fault_headers(fault))
            status, obj = call()
        finally:
            with st.lock:
                st.inflight[upn] -= 1
                st.inflight_total -= 1
        self._send(status, obj)

    # --- Graph mail --------------------------------------------------------------------------

    def _mailbox(self, upn):
        """The mailbox (state lock held by the caller); Failure for an unknown or unusable one."""
        mb = self.state.mailboxes.get(upn)
        if mb is None:
            raise Failure(404, graph_error("ErrorInvalidUser", "The requested user '%s' is invalid." % upn[:200]))
        if not mb.rest_enabled:
            raise Failure(404, graph_error("MailboxNotEnabledForRESTAPI",
                                           "The mailbox is either inactive, soft-deleted, or is hosted on-premise."))
        if mb.access_denied:
            raise Failure(403, graph_error("ErrorAccessDenied", "Access is denied. Check credentials and try again."))
        return mb

    def _message(self, mb, mid):
        m = mb.messages.get(mid)
        if m is None:
            raise Failure(404, graph_error("ErrorItemNotFound",
                                           "The specified object was not found in the store."))
        return m

    def _immutable(self):
        prefer = ",".join(self.headers.get_all("Prefer") or [])
        return re.search(r'IdType\s*=\s*"ImmutableId"', prefer, re.I) is not None

    def _graph(self, upn, seg, q, body):
        method, st = self.command, self.state
        with st.lock:
            mb = self._mailbox(upn)
            if seg == ["messages"] and method == "GET":
                return self._list(mb, q, "messages", ("internetMessageId", "subject"),
                                  sorted(mb.messages.values(), key=lambda m: m["receivedDateTime"]))
            if seg == ["mailFolders"] and method == "GET":
                return self._list(mb, q, "mailFolders", ("displayName",), list(mb.folders.values()))
            if len(seg) == 2 and seg[0] == "mailFolders" and method == "GET":
                fid = mb.folder_id(seg[1])
                if fid is None:
                    raise Failure(404, graph_error("ErrorItemNotFound",
                                                   "The specified object was not found in the store."))
                return 200, select_fields(mb.folders[fid], (q.get("$select") or [""])[0])
            if len(seg) == 2 and seg[0] == "messages":
                return self._one_message(mb, seg[1], q, body)
            if len(seg) == 3 and seg[0] == "messages" and method == "POST":
                return self._message_action(mb, seg[1], seg[2], body)
        raise Failure(400, graph_error("BadRequest", "Resource not found for the segment '%s'." % "/".join(seg)[:200]))

    def _list(self, mb, q, what, filterable, items):
        flt = (q.get("$filter") or [None])[0]
        if flt is not None:
            prop, value = parse_filter(flt, filterable)
            items = [x for x in items if x.get(prop) == value]
        select = (q.get("$select") or [""])[0]
        try:
            top = int((q.get("$top") or [DEFAULT_PAGE])[0])
            skip = int((q.get("$skip") or [0])[0])
        except ValueError:
            raise Failure(400, graph_error("BadRequest", "Invalid $top or $skip."))
        page = [select_fields(x, select) for x in items[skip:skip + top]]
        out = {"@odata.context": "%s%s/$metadata#users('%s')/%s" % (self.server.base_url(), API_PREFIX,
                                                                    mb.upn, what), "value": page}
        if skip + top < len(items):
            nq = {k: v[0] for k, v in q.items()}
            nq["$skip"] = str(skip + top)
            nq["$top"] = str(top)
            out["@odata.nextLink"] = "%s%s/users/%s/%s?%s" % (
                self.server.base_url(), API_PREFIX, urllib.parse.quote(mb.upn, safe="@"), what,
                urllib.parse.urlencode(nq, quote_via=urllib.parse.quote, safe="$,"))
        return 200, out

    def _one_message(self, mb, mid, q, body):
        m = self._message(mb, mid)
        if self.command == "GET":
            return 200, select_fields(m, (q.get("$select") or [""])[0])
        if self.command == "DELETE":
            mb.move(mid, mb.folder_id("recoverableitemsdeletions"), self.state, True)
            return 204, None
        if self.command == "PATCH":
            patch = self._json_body(body)
            for k, v in patch.items():
                if k == "subject" and isinstance(v, str):
                    m["subject"] = v
                elif k == "body" and isinstance(v, dict):
                    m["body"] = v
                elif k == "toRecipients" and isinstance(v, list):
                    m["toRecipients"] = v
                else:
                    raise Failure(400, graph_error("ErrorInvalidProperty",
                                                   "The property '%s' cannot be updated." % k[:100]))
            m["changeKey"] = secrets.token_hex(8)
            return 200, public_message(m)
        raise Failure(405, graph_error("Request_BadRequest", "The HTTP method is not allowed on this resource."))

    def _message_action(self, mb, mid, action, body):
        st = self.state
        m = self._message(mb, mid)
        if action == "move":
            dest = self._json_body(body).get("destinationId")
            fid = mb.folder_id(dest) if isinstance(dest, str) else None
            if fid is None:
                raise Failure(400, graph_error("ErrorInvalidIdMalformed", "Id is malformed."))
            return 201, public_message(mb.move(mid, fid, st, self._immutable()))
        if action == "permanentDelete":
            del mb.messages[mid]
            return 204, None
        if action == "createForward":
            return self._create_forward(mb, m, self._json_body(body, required=False))
        if action == "send":
            return self._send_draft(mb, m)
        raise Failure(400, graph_error("BadRequest", "Resource not found for the segment '%s'." % action[:100]))

    def _create_forward(self, mb, m, req):
        to = req.get("toRecipients", [])
        comment = req.get("comment", "")
        msg = req.get("message") or {}
        if not isinstance(to, list) or not isinstance(comment, str) or not isinstance(msg, dict):
            raise Failure(400, graph_error("ErrorInvalidRequest", "The request is invalid."))
        if comment and "body" in msg:
            raise Failure(400, graph_error("ErrorInvalidRequest",
                                           "Specify either a comment or the body property of the message parameter."))
        to = to or msg.get("toRecipients", [])
        for r in to:
            if not isinstance(r, dict) or not isinstance((r.get("emailAddress") or {}).get("address"), str):
                raise Failure(400, graph_error("ErrorInvalidRecipients", "At least one recipient is not valid."))
        original = "From: %s\nSubject: %s\n\n%s" % (m["from"]["emailAddress"]["address"], m["subject"],
                                                    m["body"]["content"])
        draft = mb.add_message(mb.folder_id("drafts"), {
            "subject": "FW: " + m["subject"], "from": mb.upn, "toRecipients": to, "isDraft": True,
            "body": comment + "\n\n" + original}, self.state)
        draft["forwardOf"] = m["internetMessageId"]
        draft["comment"] = comment
        return 201, public_message(draft)

    def _send_draft(self, mb, draft):
        if not draft["isDraft"]:
            raise Failure(400, graph_error("ErrorInvalidOperation", "Only drafts can be sent."))
        if not draft["toRecipients"]:
            raise Failure(400, graph_error("ErrorInvalidRecipients", "At least one recipient is required."))
        sent = mb.move(draft["id"], mb.folder_id("sentitems"), self.state, False)
        sent["isDraft"] = False
        for r in sent["toRecipients"]:
            target = self.state.mailboxes.get(r["emailAddress"]["address"].lower())
            if target is not None:
                copy = target.add_message(target.folder_id("inbox"), {
                    "subject": sent["subject"], "from": mb.upn, "toRecipients": sent["toRecipients"],
                    "body": sent["body"]["content"]}, self.state)
                copy["comment"] = sent.get("comment", "")
                copy["forwardOf"] = sent.get("forwardOf")
        return 202, None

    # --- control API -------------------------------------------------------------------------

    def _control(self, path, body):
        st, method = self.state, self.command
        try:
            req = json.loads(body.decode("utf-8")) if body else {}
        except (ValueError, UnicodeDecodeError):
            return self._send(400, {"ok": False, "error": "body must be JSON"})
        if path == "/_control/mailboxes" and method == "POST":
            return self._send(200, self._seed(req))
        if path.startswith("/_control/mailbox/") and method == "GET":
            with st.lock:
                mb = st.mailboxes.get(path[len("/_control/mailbox/"):].lower())
                snap = mb.snapshot() if mb else None
            return self._send(200 if snap else 404, snap or {"ok": False, "error": "no such mailbox"})
        if path == "/_control/fail" and method == "POST":
            f = {"path_regex": req.get("path_regex", "."), "method": req.get("method"),
                 "status": int(req.get("status", 503)), "remaining": int(req.get("count", 1)),
                 "retry_after": req.get("retry_after"), "code": req.get("code", "ServiceUnavailable"),
                 "message": req.get("message", "Injected failure.")}
            re.compile(f["path_regex"])
            with st.lock:
                st.faults.append(f)
            return self._send(200, {"ok": True})
        if path == "/_control/expire_tokens" and method == "POST":
            with st.lock:
                for t in st.tokens:
                    st.tokens[t] = 0
                n = len(st.tokens)
            return self._send(200, {"ok": True, "expired": n})
        if path == "/_control/config" and method == "POST":
            with st.lock:
                for k in ("latency_ms", "mailbox_rate", "mailbox_concurrency", "token_lifetime"):
                    if k in req:
                        setattr(st.cfg, k, int(req[k]))
            return self._send(200, {"ok": True})
        if path == "/_control/stats" and method == "GET":
            with st.lock:
                out = {"token_requests": st.token_requests, "requests": dict(st.counts),
                       "throttled": dict(st.throttled), "max_concurrency": dict(st.max_inflight),
                       "max_concurrency_total": st.max_inflight_total,
                       "max_busy_mailboxes": st.max_busy_mailboxes, "total": sum(st.counts.values())}
            return self._send(200, out)
        if path == "/_control/requests" and method == "GET":
            with st.lock:
                out = list(st.requests)
            return self._send(200, out)
        if path == "/_control/reset" and method == "POST":
            with st.lock:
                st.reset()
            return self._send(200, {"ok": True})
        self._send(404, {"ok": False, "error": "unknown control call %s %s" % (method, path)})

    def _seed(self, req):
        """Create (or extend) mailboxes; the ids given to the seeded messages, in order."""
        st = self.state
        ids = []
        with st.lock:
            for spec in req.get("mailboxes", []):
                upn = spec["upn"].lower()
                mb = st.mailboxes.get(upn) or Mailbox(upn, st)
                st.mailboxes[upn] = mb
                mb.rest_enabled = spec.get("rest_enabled", mb.rest_enabled)
                mb.access_denied = spec.get("access", "denied" if mb.access_denied else "granted") == "denied"
                for name in spec.get("folders", []):
                    if not any(f["displayName"] == name for f in mb.folders.values()):
                        mb.add_folder(name, None, st)
                for msg in spec.get("messages", []):
                    ref = msg.get("folder", "inbox")
                    fid = mb.folder_id(ref) or next((i for i, f in mb.folders.items() if f["displayName"] == ref), None)
                    if fid is None:
                        raise Failure(400, {"ok": False, "error": "no folder %s in %s" % (ref, upn)})
                    ids.append(mb.add_message(fid, msg, st)["id"])
        return {"ok": True, "ids": ids}


class StandinServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, cfg):
        self.state = State(cfg)
        self.halt = threading.Event()
        super().__init__(("127.0.0.1", port), Handler)

    def server_bind(self):
        socketserver.TCPServer.server_bind(self)    # no reverse DNS lookup
        self.server_name, self.server_port = self.server_address[:2]

    def base_url(self):
        return "http://127.0.0.1:%d" % self.server_port

    def handle_error(self, request, client_address):
        log("%s error: %s" % (client_address[0], sys.exc_info()[1]))

    def stop(self):
        self.halt.set()
        self.shutdown()
        self.server_close()


def main(argv=None):
    ap = argparse.ArgumentParser(description="Stand-in Microsoft Graph (mail) for clawback tests.")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: one the OS picks)")
    ap.add_argument("--port-file", help="also write the port here (atomically)")
    ap.add_argument("--tenant", default="contoso.onmicrosoft.com", help="the only tenant known")
    ap.add_argument("--client-id", default="11111111-2222-3333-4444-555555555555")
    ap.add_argument("--client-secret", default="standin-secret")
    ap.add_argument("--token-lifetime", type=int, default=3599, help="expires_in of tokens (s)")
    ap.add_argument("--mailbox-rate", type=int, default=10000, help="requests per mailbox per 10 min")
    ap.add_argument("--mailbox-concurrency", type=int, default=4, help="concurrent requests per mailbox")
    args = ap.parse_args(argv)
    server = StandinServer(args.port, Config(args))
    port = server.server_port
    stopping = []
    signal.signal(signal.SIGTERM, lambda s, f: stopping.append(s))
    signal.signal(signal.SIGINT, lambda s, f: stopping.append(s))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    thread.start()
    sys.stdout.write("%d\n" % port)
    sys.stdout.flush()
    if args.port_file:
        tmp = "%s.tmp.%d" % (args.port_file, os.getpid())
        with open(tmp, "w") as f:
            f.write("%d\n" % port)
        os.replace(tmp, args.port_file)
    log("listening on http://127.0.0.1:%d (pid %d)" % (port, os.getpid()))
    while not stopping and thread.is_alive():
        time.sleep(0.1)
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
