"""The HTTP session: retries on connection errors, 429 and 5xx, honours Retry-After, fails clearly."""

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from gainers_elt.extract import fetch_page
from gainers_elt.http import USER_AGENT, build_session
from gainers_elt.transform import fetch_fx_rate


class Script(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the server's script."""

    def do_GET(self):  # noqa: N802
        server = self.server
        with server.lock:
            server.seen.append((time.monotonic(), self.path, dict(self.headers)))
            status, headers, body = server.script[min(len(server.seen), len(server.script)) - 1]
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Script)
    httpd.block_on_close = False  # do not wait for a deliberately slow handler
    httpd.lock, httpd.seen, httpd.script = threading.Lock(), [], [(200, {}, b"ok")]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


HTML = (200, {"Content-Type": "text/html; charset=utf-8"}, b"<html></html>")


def test_retries_5xx_then_succeeds(server):
    server.script = [(502, {}, b""), (503, {}, b""), HTML]
    page = fetch_page(build_session(retries=3, backoff_factor=0), server.url + "/p")
    assert page.content == b"<html></html>"
    assert page.encoding == "utf-8"
    assert len(server.seen) == 3


def test_gives_up_after_retries_with_the_status_in_the_error(server):
    server.script = [(500, {}, b"")]
    with pytest.raises(requests.HTTPError, match=r"500 Server Error.*for url: http://127.0.0.1:\d+/down"):
        fetch_page(build_session(retries=2, backoff_factor=0), server.url + "/down")
    assert len(server.seen) == 3  # first try + 2 retries


def test_honours_retry_after_on_429(server):
    server.script = [(429, {"Retry-After": "1"}, b""), HTML]
    fetch_page(build_session(retries=2, backoff_factor=0), server.url)
    assert len(server.seen) == 2
    assert server.seen[1][0] - server.seen[0][0] >= 0.95


def test_caps_a_huge_retry_after(server):
    server.script = [(503, {"Retry-After": "3600"}, b""), HTML]
    started = time.monotonic()
    fetch_page(build_session(retries=2, backoff_factor=0, max_retry_after=0), server.url)
    assert time.monotonic() - started < 5
    assert len(server.seen) == 2


def test_does_not_retry_a_404(server):
    server.script = [(404, {}, b"")]
    with pytest.raises(requests.HTTPError, match="404"):
        fetch_page(build_session(retries=3, backoff_factor=0), server.url)
    assert len(server.seen) == 1


def test_sends_an_honest_user_agent(server):
    server.script = [HTML]
    fetch_page(build_session(), server.url)
    agent = server.seen[0][2]["User-Agent"]
    assert agent == USER_AGENT
    assert agent.startswith("gainers-elt/") and "github.com" in agent


def test_retries_connection_errors_then_raises():
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(requests.ConnectionError):
        fetch_page(build_session(retries=1, backoff_factor=0), f"http://127.0.0.1:{port}/")


def test_read_timeout_is_enforced(server):
    class Slow(Script):
        def do_GET(self):  # noqa: N802
            time.sleep(0.8)
            super().do_GET()

    server.RequestHandlerClass = Slow
    with pytest.raises(requests.ConnectionError):  # ReadTimeout after retries surfaces as ConnectionError
        fetch_page(build_session(retries=0), server.url, timeout=(1, 0.3))


def test_fx_lookup_queries_base_and_symbol(server):
    server.script = [(200, {"Content-Type": "application/json"},
                      b'{"amount":1.0,"base":"USD","date":"2024-05-10","rates":{"AUD":1.5123}}')]
    fx = fetch_fx_rate(build_session(), server.url + "/latest", "AUD")
    assert server.seen[0][1] == "/latest?base=USD&symbols=AUD"
    assert str(fx.rate) == "1.5123"
    assert fx.source == server.url + "/latest?base=USD&symbols=AUD"
