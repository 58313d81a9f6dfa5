#!/usr/bin/env python3
"""Serve the recorded CoinMarketCap page and FX answer on loopback (stdlib only).

Routes:
  GET /healthz                     200 "ok"
  GET /gainers-losers/             flow_app/tests/fixtures/coinmarketcap/gainers_losers.html
  GET /variants/<name>             flow_app/tests/fixtures/coinmarketcap/<name> (reordered columns, captcha, ...)
  GET /status/<code>               an empty response with that HTTP status (e.g. 500, 429)
  GET /latest?base=USD&symbols=X   flow_app/tests/fixtures/fx/latest_usd_<x>.json (Frankfurter's format)
"""

from __future__ import annotations

import argparse
import re
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

FIXTURES = Path(__file__).resolve().parent.parent / "flow_app" / "tests" / "fixtures"
SAFE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


class Handler(BaseHTTPRequestHandler):
    server_version = "fixture-server/1"

    def do_GET(self) -> None:  # noqa: N802 (http.server API)
        url = urlparse(self.path)
        query = parse_qs(url.query)
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
            return self.send(int(url.path.removeprefix("/status/")), b"", "text/plain")
        if url.path.rstrip("/") == "/latest":
            symbol = query.get("symbols", ["AUD"])[0].lower()
            if SAFE_NAME.match(symbol):
                return self.send_file(FIXTURES / "fx" / f"latest_usd_{symbol}.json", "application/json")
        return self.send(404, b"not found", "text/plain")

    def send_file(self, path: Path, content_type: str) -> None:
        if not path.is_file():
            return self.send(404, f"no fixture {path.name}".encode(), "text/plain")
        return self.send(200, path.read_bytes(), content_type)

    def send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
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
