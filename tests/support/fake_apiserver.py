#!/usr/bin/env python3
"""A Kubernetes API server for tests: the real protocol for Services and EndpointSlices.

HTTPS (with optional client-certificate auth), bearer tokens, LIST with limit/continue, WATCH as a
chunked stream of JSON lines from a resourceVersion with bookmarks, 410 Gone for versions that
were compacted away, 429 with Retry-After. Tests drive it through /_test/* (no auth):
  POST /_test/apply    {"resource": "services"|"endpointslices", "object": {...}} (or "objects": [...])
  POST /_test/delete   {"resource": ..., "namespace": ..., "name": ...}
  POST /_test/raw      {"resource": ..., "line": "..."}     a raw line into open watches
  POST /_test/compact  {}   versions up to now become too old (410); open watches are cut
  POST /_test/cut      {}   open watches are cut mid-stream, without a last chunk
  POST /_test/tokens   {"tokens": [...]}   the bearer tokens accepted from now on
  POST /_test/throttle {"count": N, "retry_after": S}   the next N API requests get 429
  POST /_test/silence  {"seconds": S}   watches send nothing (not even bookmarks) for S seconds
  GET  /_test/stats    counts of lists, watches, 401s, 410s, 429s
It prints one line {"port": N} on stdout when it listens on 127.0.0.1, and exits when its parent
(the test) is gone, so that a killed test leaves no server behind.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATHS = {
    "/api/v1/services": "services",
    "/apis/discovery.k8s.io/v1/endpointslices": "endpointslices",
}
KINDS = {
    "services": ("v1", "ServiceList"),
    "endpointslices": ("discovery.k8s.io/v1", "EndpointSliceList"),
}


class State:
    def __init__(self, tokens, bookmark_interval):
        self.cond = threading.Condition()
        self.rv = 1000
        self.compacted = 0
        self.objects = {"services": {}, "endpointslices": {}}
        self.events = []  # (rv, resource, line)
        self.tokens = set(tokens)
        self.throttle = 0
        self.retry_after = 1
        self.silent_until = 0.0
        self.bookmark_interval = bookmark_interval
        self.generation = 0  # bumped by cut/compact: open watches end
        self.stats = {"lists": 0, "watches": 0, "unauthorized": 0, "gone": 0, "throttled": 0, "requests": 0}

    def record(self, resource, etype, obj):
        self.rv += 1
        if obj is not None:
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.rv)
        line = json.dumps({"type": etype, "object": obj})
        self.events.append((self.rv, resource, line))
        self.cond.notify_all()

    def apply(self, resource, obj):
        key = obj["metadata"]["namespace"] + "/" + obj["metadata"]["name"]
        etype = "MODIFIED" if key in self.objects[resource] else "ADDED"
        self.record(resource, etype, obj)
        self.objects[resource][key] = obj

    def delete(self, resource, namespace, name):
        obj = self.objects[resource].pop(namespace + "/" + name, None)
        if obj is not None:
            self.record(resource, "DELETED", obj)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-apiserver"

    def log_message(self, fmt, *args):
        pass

    @property
    def state(self):
        return self.server.state

    def send_json(self, code, body, headers=None):
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def status(self, code, reason, message, headers=None):
        self.send_json(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                              "message": message, "reason": reason, "code": code}, headers)

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        path = urllib.parse.urlparse(self.path).path
        st = self.state
        with st.cond:
            if path == "/_test/apply":
                for obj in body.get("objects", [body.get("object")]):
                    st.apply(body["resource"], obj)
            elif path == "/_test/delete":
                st.delete(body["resource"], body["namespace"], body["name"])
            elif path == "/_test/raw":
                st.rv += 1
                st.events.append((st.rv, body["resource"], body["line"]))
                st.cond.notify_all()
            elif path == "/_test/compact":
                st.compacted = st.rv
                st.generation += 1
                st.cond.notify_all()
            elif path == "/_test/cut":
                st.generation += 1
                st.cond.notify_all()
            elif path == "/_test/tokens":
                st.tokens = set(body["tokens"])
            elif path == "/_test/throttle":
                st.throttle = body["count"]
                st.retry_after = body.get("retry_after", 1)
            elif path == "/_test/silence":
                st.silent_until = time.monotonic() + body["seconds"]
            else:
                return self.status(404, "NotFound", "no such test control " + path)
            rv = st.rv
        self.send_json(200, {"resourceVersion": str(rv)})

    def authorized(self):
        if self.headers.get("Authorization", "").removeprefix("Bearer ") in self.state.tokens:
            return True
        return self.connection.getpeercert() is not None  # a client certificate the CA signed

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        st = self.state
        if url.path == "/_test/stats":
            with st.cond:
                return self.send_json(200, dict(st.stats, rv=st.rv))
        resource = PATHS.get(url.path)
        if resource is None:
            return self.status(404, "NotFound", "the server could not find the requested resource")
        with st.cond:
            st.stats["requests"] += 1
            if not self.authorized():
                st.stats["unauthorized"] += 1
                return self.status(401, "Unauthorized", "Unauthorized")
            if st.throttle > 0:
                st.throttle -= 1
                st.stats["throttled"] += 1
                return self.status(429, "TooManyRequests", "too many requests, please try again later",
                                   {"Retry-After": str(st.retry_after)})
        if query.get("watch") in ("1", "true"):
            return self.watch(resource, query)
        return self.list(resource, query)

    def list(self, resource, query):
        st = self.state
        limit = int(query.get("limit", "0") or 0)
        with st.cond:
            st.stats["lists"] += 1
            if "continue" in query:
                token = json.loads(base64.b64decode(query["continue"]))
                if token["rv"] <= st.compacted:
                    st.stats["gone"] += 1
                    return self.status(410, "Expired", "The provided continue parameter is too old")
                rv, offset = token["rv"], token["offset"]
            else:
                rv, offset = st.rv, 0
            items = [st.objects[resource][k] for k in sorted(st.objects[resource])]
        page = items[offset:offset + limit] if limit else items[offset:]
        meta = {"resourceVersion": str(rv)}
        if limit and offset + limit < len(items):
            meta["continue"] = base64.b64encode(json.dumps({"rv": rv, "offset": offset + limit}).encode()).decode()
            meta["remainingItemCount"] = len(items) - offset - limit
        api_version, kind = KINDS[resource]
        self.send_json(200, {"kind": kind, "apiVersion": api_version, "metadata": meta, "items": page})

    def chunk(self, text):
        data = (text + "\n").encode()
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def watch(self, resource, query):
        st = self.state
        since = int(query.get("resourceVersion", "0") or 0)
        bookmarks = query.get("allowWatchBookmarks") in ("1", "true")
        deadline = time.monotonic() + int(query.get("timeoutSeconds", "1800"))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        with st.cond:
            st.stats["watches"] += 1
            generation = st.generation
            if since < st.compacted:
                st.stats["gone"] += 1
                gone = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": "too old resource version: %d (%d)" % (since, st.compacted),
                        "reason": "Expired", "code": 410}
                self.chunk(json.dumps({"type": "ERROR", "object": gone}))
                self.wfile.write(b"0\r\n\r\n")
                return
        sent = since
        seen = since
        last_bookmark = time.monotonic()
        try:
            while time.monotonic() < deadline:
                with st.cond:
                    st.cond.wait_for(lambda: st.generation != generation or st.rv > seen, timeout=0.2)
                    if st.generation != generation:
                        break
                    silent = time.monotonic() < st.silent_until
                if silent:
                    time.sleep(0.05)
                    continue
                with st.cond:
                    pending = [(rv, line) for rv, r, line in st.events if rv > sent and r == resource]
                    current = seen = st.rv
                for rv, line in pending:
                    self.chunk(line)
                    sent = rv
                if bookmarks and time.monotonic() - last_bookmark >= st.bookmark_interval:
                    api_version, kind = KINDS[resource]
                    self.chunk(json.dumps({"type": "BOOKMARK", "object": {
                        "kind": kind.removesuffix("List"), "apiVersion": api_version,
                        "metadata": {"resourceVersion": str(max(sent, current))}}}))
                    sent = max(sent, current)
                    last_bookmark = time.monotonic()
            else:
                self.wfile.write(b"0\r\n\r\n")  # the watch's own timeout: a clean end
                return
            # Cut: close the connection without the last chunk, as a broken link would.
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--client-ca")
    p.add_argument("--token", action="append", default=[])
    p.add_argument("--bookmark-interval", type=float, default=1.0)
    args = p.parse_args()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.state = State(args.token, args.bookmark_interval)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        ctx.load_verify_locations(args.client_ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    server.socket = ctx.wrap_socket(server.socket, server_side=True)
    parent = os.getppid()

    def exit_with_parent():
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(0)

    threading.Thread(target=exit_with_parent, daemon=True).start()
    print(json.dumps({"port": server.server_address[1]}), flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
