#!/usr/bin/env python3
"""Serve the recorded CoinMarketCap page and FX answer on loopback (stdlib only).

Routes:
  GET /healthz                     200 "ok"
  GET /gainers-losers/             flow_app/tests/fixtures/coinmarketcap/gainers_losers.html
  GET /variants/<name>             flow_app/tests/fixtures/coinmarketcap/<name> (reordered columns, captcha, ...)
  GET /status/<code>               an empty response with that HTTP status (e.g. 500, 429);
                                   ?retry_after=N adds a Retry-After: N header
  GET /hits?path=<path>            {"path": ..., "hits": n}: requests served for that path so far
  GET /latest?base=USD&symbols=X   flow_app/tests/fixtures/fx/latest_usd_<x>.json (Frankfurter's format)
"""

from __future__ import annotations

import argparse
import json
import re
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).resolve().parent.parent / "flow_app" / "tests" / "fixtures"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
HITS: Counter[str] = Counter()  # requests per path, so tests can count retries
HITS_LOCK = threading.Lock()


class Handler(BaseHTTPRequestHandler):
    server_version = "fixture-server/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        query = parse_qs(url.query)
        if url.path == "/hits":
            path = query.get("path", [""])[0]
            with HITS_LOCK:
                count = HITS[path]
            return self.send(200, json.dumps({"path": path, "hits": count}).encode(), "application/json")
        with HITS_LOCK:
            HITS[url.path] += 1
        if url.path == "/healthz":
            return self.send(200, b"ok", "text/plain")
        if url.path.rstrip("/") == "/gainers-losers":
            return self.send_file(FIXTURES / "coinmarketcap" / "gainers_losers.html", "text/html; charset=utf-8")
        if url.path.startswith("/variants/"):
            name = url.path.removeprefix("/variants/")
            if SAFE_NAME.match(name):
                kind = "application/json" if name.endswith(".json") else "text/html; charset=utf-8"
                return self.send_file(FIXTURES / "coinmarketcap" / name, kind)
        if url.path.startswith("/status/") and url.path.removeprefix("/status/").isdigit():
            retry_after = query.get("retry_after", [""])[0]
            headers = {"Retry-After": retry_after} if retry_after.isdigit() else {}
            return self.send(int(url.path.removeprefix("/status/")), b"", "text/plain", headers)
        if url.path.rstrip("/") == "/latest":
            symbol = query.get("symbols", ["AUD"])[0].lower()
            if SAFE_NAME.match(symbol):
                return self.send_file(FIXTURES / "fx" / f"latest_usd_{symbol}.json", "application/json")
        return self.send(404, b"not found", "text/plain")

    def send_file(self, path: Path, content_type: str) -> None:
        if not path.is_file():
            return self.send(404, f"no fixture {path.name}".encode(), "text/plain")
        return self.send(200, path.read_bytes(), content_type)

    def send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt: str, *args: object) -> None:  # quieter log: one line per request
        print(f"{self.address_string()} {fmt % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5002)
    args = parser.parse_args()
    ThreadingHTTPServer((args.host, args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
