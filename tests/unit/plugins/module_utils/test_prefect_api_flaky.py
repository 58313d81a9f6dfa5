"""The Prefect API client against a flaky server (issue #15, part 4): a real HTTP server on loopback that
answers 503 for a while, always, 429 with Retry-After, or never. The client's backoff sleeps are recorded
(not slept) except where the test measures the bound in wall time."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.module_utils import prefect_api

from ..conftest import ModuleFail


class FakeModule:
    def __init__(self, api_url, **params):
        self.params = {"api_url": api_url, "api_key": None, "auth_string": None, "validate_certs": True,
                       "timeout": 5, "retries": 3, **params}

    def fail_json(self, msg="", **kwargs):
        raise ModuleFail({"msg": msg, **kwargs})


class FlakyServer:
    """Answers the first `failures` requests with `status` (forever when None), then 200 {"ok": true};
    `hang` seconds of silence before each failing answer (a hanging server when longer than the timeout)."""

    def __init__(self, failures: int | None, status: int = 503, hang: float = 0.0, headers: dict | None = None):
        self.failures, self.status, self.hang, self.headers = failures, status, hang, headers or {}
        self.requests = 0
        self.release = threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                server.requests += 1
                failing = server.failures is None or server.requests <= server.failures
                if failing and server.hang:
                    server.release.wait(server.hang)
                status, body = (server.status, b'{"detail": "Service Unavailable"}') if failing else (200, b'{"ok": true}')
                try:
                    self.send_response(status)
                    for key, value in (server.headers.items() if failing else ()):
                        self.send_header(key, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = "http://127.0.0.1:%d/api" % self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def client(url, **params):
    sleeps = []
    return prefect_api.PrefectClient(FakeModule(url, **params), sleep=sleeps.append), sleeps


def test_503_for_a_while_then_ok_succeeds_after_backing_off():
    with FlakyServer(failures=2) as server:
        c, sleeps = client(server.url)
        assert c.request("GET", "/health") == {"ok": True}
    assert server.requests == 3
    assert sleeps == [0.5, 1.0]


def test_always_503_fails_within_the_bound_naming_the_url_and_the_attempts():
    with FlakyServer(failures=None) as server:
        start = time.monotonic()
        c = prefect_api.PrefectClient(FakeModule(server.url, retries=3))  # real sleeps: 0.5 + 1 + 2 s
        with pytest.raises(ModuleFail) as info:
            c.request("GET", "/work_pools/elt-ecs")
        elapsed = time.monotonic() - start
    result = info.value.result
    assert server.requests == 4 and result["attempts"] == 4 and result["status"] == 503
    assert 3.5 <= elapsed < 6, elapsed  # the sum of the backoffs, not an unbounded wait
    assert server.url + "/work_pools/elt-ecs" in result["msg"]
    assert "HTTP 503" in result["msg"] and "after 4 attempt(s)" in result["msg"] and "Service Unavailable" in result["msg"]


def test_backoff_is_capped():
    with FlakyServer(failures=None) as server:
        c, sleeps = client(server.url, retries=6)
        with pytest.raises(ModuleFail):
            c.request("GET", "/health")
    assert sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]


def test_429_is_retried_after_the_servers_retry_after():
    with FlakyServer(failures=1, status=429, headers={"Retry-After": "3"}) as server:
        c, sleeps = client(server.url)
        assert c.request("GET", "/health") == {"ok": True}
    assert sleeps == [3.0]


def test_a_hanging_server_fails_with_a_timeout_message():
    with FlakyServer(failures=None, hang=30) as server:
        start = time.monotonic()
        c, sleeps = client(server.url, timeout=1, retries=1)
        with pytest.raises(ModuleFail) as info:
            c.request("GET", "/health")
        elapsed = time.monotonic() - start
    result = info.value.result
    assert result["status"] == -1 and result["attempts"] == 2 and len(sleeps) == 1
    assert elapsed < 5, elapsed  # two 1 s timeouts, not the server's 30 s
    assert "timeout: no answer within 1 s" in result["msg"] and server.url + "/health" in result["msg"]
    assert "2 attempt(s)" in result["msg"]


def test_a_server_that_is_slow_once_then_answers_succeeds():
    with FlakyServer(failures=1, hang=3) as server:
        c, sleeps = client(server.url, timeout=1, retries=2)
        assert c.request("GET", "/health") == {"ok": True}
    assert server.requests == 2 and sleeps == [0.5]


def test_nothing_listening_says_cannot_connect_with_the_url():
    with FlakyServer(failures=0) as server:
        url = server.url
    c, _ = client(url, retries=1)
    with pytest.raises(ModuleFail) as info:
        c.request("GET", "/health")
    assert "cannot connect to %s/health after 2 attempt(s)" % url in info.value.result["msg"]
    assert json.dumps(info.value.result)  # serialisable, as fail_json needs
