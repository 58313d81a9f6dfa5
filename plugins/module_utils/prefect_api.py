# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""One small client for the Prefect 3 REST API, shared by every module of this collection.

Built on Ansible's own HTTP stack (``ansible.module_utils.urls``, the engine under ``fetch_url``), so
proxies and TLS verification (``validate_certs``) behave like every other Ansible HTTP module and no
extra Python package is needed. It holds one ``urls.Request`` with one SSL context per module run:
``fetch_url`` builds a fresh context and reloads the system CA store on every call (40-90 ms each
on the test machine), which alone made 100 registrations take 3x longer than the server work.
Errors are turned into ``fail_json`` with the method, path, HTTP status and the server's message.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time

import socket
import urllib.error

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import Request, make_context

USER_AGENT = "ansible-dataops.prefect_fargate"

# Connection options shared by every Prefect module (documented in doc_fragments/prefect.py).
PREFECT_ARGUMENT_SPEC = dict(
    api_url=dict(type="str", required=True, fallback=(env_fallback, ["PREFECT_API_URL"])),
    api_key=dict(type="str", no_log=True),
    auth_string=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", default=True),
    timeout=dict(type="int", default=30),
    retries=dict(type="int", default=3),
)
PREFECT_MUTUALLY_EXCLUSIVE = [("api_key", "auth_string")]

# Methods that only read, even when they are POSTs to a ``/filter`` or ``/count`` endpoint.
_READ_ONLY_POST = re.compile(r"/(filter|count|paginate)/?$")
_SENSITIVE_KEY = re.compile(r"(pass(word)?|secret|token|api_?key|auth_?string|credential|private)", re.I)
_BACKOFF_BASE = 0.5
_BACKOFF_MAX = 8.0
# Answers worth another try: rate limited (Prefect Cloud answers 429 with Retry-After), and the server side.
_RETRY_STATUS = (429,)
_ABSOLUTE_URL = re.compile(r"^https?://", re.I)


def prefect_argument_spec(**extra):
    """Return a fresh copy of the shared argument spec merged with a module's own options."""
    spec = copy.deepcopy(PREFECT_ARGUMENT_SPEC)
    spec.update(extra)
    return spec


def auth_header(api_key=None, auth_string=None):
    """The Authorization header value exactly as prefect.client.orchestration builds it."""
    if auth_string:
        token = base64.b64encode(auth_string.encode("utf-8")).decode("utf-8")
        return "Basic " + token
    if api_key:
        return "Bearer " + api_key
    return None


def sanitize(value):
    """Copy of ``value`` with the string values of secret-looking keys blanked (``*_arn`` kept)."""
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            text = str(key)
            secret = _SENSITIVE_KEY.search(text) and not text.lower().endswith("arn")
            if secret and isinstance(item, (str, bytes)) and item:
                out[key] = "********"
            else:
                out[key] = sanitize(item)
        return out
    if isinstance(value, list):
        return [sanitize(item) for item in value]
    return value


def ui_base_url(api_url):
    """The Prefect UI URL that belongs to an API URL (Cloud and self-hosted)."""
    url = api_url.rstrip("/")
    cloud = re.match(r"^https://api\.prefect\.(cloud|dev)/api/accounts/([^/]+)/workspaces/([^/]+)$", url)
    if cloud:
        return "https://app.prefect.%s/account/%s/workspace/%s" % cloud.groups()
    if url.endswith("/api"):
        url = url[: -len("/api")]
    return url


class PrefectApiError(Exception):
    """Raised by PrefectClient.request when fail_on_error=False and the server says no."""

    def __init__(self, method, path, status, message):
        super().__init__("%s %s -> HTTP %s: %s" % (method, path, status, message))
        self.method = method
        self.path = path
        self.status = status
        self.message = message


class PrefectClient:
    """Thin JSON client; ``request`` is the single place HTTP happens."""

    def __init__(self, module, sleep=None):
        self.module = module
        params = module.params
        self.api_url = (params.get("api_url") or "").rstrip("/")
        self.timeout = params.get("timeout") or 30
        self.retries = max(0, params.get("retries") if params.get("retries") is not None else 3)
        self.headers = {
            "Accept": "application/json",
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
        }
        header = auth_header(params.get("api_key"), params.get("auth_string"))
        if header:
            self.headers["Authorization"] = header
        self.writes = []  # (method, path) of every mutating call, for honest reporting and tests
        self._sleep = sleep or time.sleep
        self._http = None  # built on first use: one Request + one SSL context for the whole run
        self._retry_after = None  # Retry-After of the last 429 answer

    def _transport(self):
        if self._http is None:
            validate = self.module.params.get("validate_certs", True) is not False
            # always pass a context: without one, Request.open builds (and loads CAs into) a new one per call
            context = make_context(validate_certs=validate)
            self._http = Request(headers=self.headers, timeout=self.timeout, validate_certs=validate,
                                 http_agent=USER_AGENT, follow_redirects="safe", context=context)
        return self._http

    def _send(self, method, url, data):
        """One HTTP exchange -> (status, body bytes, message); status -1 when no HTTP answer came
        (the message then says whether the server timed out or could not be reached)."""
        self._retry_after = None
        try:
            resp = self._transport().open(method, url, data=data)
            return resp.status, resp.read(), "OK"
        except urllib.error.HTTPError as exc:
            try:
                body = exc.read()
            except Exception:  # a broken error body must not hide the status
                body = b""
            self._retry_after = (exc.headers or {}).get("Retry-After") if exc.code in _RETRY_STATUS else None
            return exc.code, body, str(exc.reason)
        except (urllib.error.URLError, socket.timeout, ConnectionError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, (socket.timeout, TimeoutError)) or isinstance(reason, (socket.timeout, TimeoutError)):
                return -1, b"", "timeout: no answer within %s s" % self.timeout
            return -1, b"", "%s: %s" % (type(exc).__name__, reason)

    def _backoff(self, attempt):
        """Seconds to wait before retry ``attempt`` (0-based): exponential, capped; a server's Retry-After wins."""
        delay = min(_BACKOFF_BASE * (2 ** attempt), _BACKOFF_MAX)
        try:
            if self._retry_after is not None:
                delay = min(max(float(self._retry_after), 0.0), _BACKOFF_MAX)
        except ValueError:  # an HTTP date: keep the exponential delay
            pass
        return delay

    @property
    def ui_url(self):
        return ui_base_url(self.api_url)

    def request(self, method, path, body=None, allow_404=False, fail_on_error=True):
        """Send one request; return the decoded JSON body (None for 204 / allowed 404).

        ``path`` is relative to the API URL, or a whole ``http(s)://`` URL (a server's health endpoint).

        Retries timeouts, connection errors, 429 and 5xx with capped exponential backoff (a 429's
        Retry-After is honoured up to the cap); past ``retries`` it fails naming the URL, the attempts
        and the time spent. Any other non-2xx answer
        becomes ``fail_json`` naming method, path, status and the server's message (or a
        PrefectApiError when ``fail_on_error`` is false).
        """
        method = method.upper()
        url = path if _ABSOLUTE_URL.match(path) else self.api_url + path
        data = json.dumps(body).encode("utf-8") if body is not None else None
        if method != "GET" and not (method == "POST" and _READ_ONLY_POST.search(path)):
            self.writes.append((method, path))
        attempt = 0
        started = time.monotonic()
        while True:
            status, raw, reason = self._send(method, url, data)
            retryable = status == -1 or 500 <= status < 600 or status in _RETRY_STATUS
            if retryable and attempt < self.retries:
                self._sleep(self._backoff(attempt))
                attempt += 1
                continue
            break

        if 200 <= status < 300:
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", errors="replace")
        if status == 404 and allow_404:
            return None

        message = self._server_message(raw, reason)
        if not fail_on_error:
            raise PrefectApiError(method, path, status, message)
        elapsed = time.monotonic() - started
        if status == -1 and message.startswith("timeout"):
            msg = "Prefect API %s %s failed: %s from %s, %d attempt(s) in %.0f s" % (
                method, path, message, url, attempt + 1, elapsed)
        elif status == -1:
            msg = "Prefect API %s %s failed: cannot connect to %s after %d attempt(s) in %.0f s: %s" % (
                method, path, url, attempt + 1, elapsed, message)
        elif retryable:
            msg = "Prefect API %s %s failed: HTTP %s from %s after %d attempt(s) in %.0f s: %s" % (
                method, path, status, url, attempt + 1, elapsed, message)
        else:
            msg = "Prefect API %s %s failed: HTTP %s: %s" % (method, path, status, message)
        self.module.fail_json(msg=msg, method=method, path=path, status=status, server_message=message,
                              attempts=attempt + 1)

    @staticmethod
    def _server_message(body, reason):
        if isinstance(body, bytes):
            body = body.decode("utf-8", errors="replace")
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                return body[:2000]
            if isinstance(parsed, dict):
                detail = parsed.get("detail", parsed.get("exception_detail", parsed))
                return detail if isinstance(detail, str) else json.dumps(detail)[:2000]
            return json.dumps(parsed)[:2000]
        return reason or "no response body"

    # ------------------------------------------------------------------ resources
    def server_health(self, url=None):
        """GET a Prefect server's health endpoint (``<api_url>/health`` unless ``url``): one request, with the
        client's retries on timeouts, connection errors, 429 and 5xx.

        Returns (healthy, detail); the detail names the URL (credentials in it blanked), never the
        Authorization header.
        """
        target = url or "/health"
        shown = redact_url(url or (self.api_url + "/health"))
        try:
            self.request("GET", target, fail_on_error=False)
        except PrefectApiError as exc:
            if exc.status == -1:
                return False, "GET %s: no answer (%s)" % (shown, exc.message)
            return False, "GET %s: HTTP %s: %s" % (shown, exc.status, str(exc.message)[:300])
        return True, "GET %s: OK" % shown

    def get_work_pool(self, name):
        return self.request("GET", "/work_pools/%s" % quote(name), allow_404=True)

    def online_workers(self, pool):
        workers = self.request("POST", "/work_pools/%s/workers/filter" % quote(pool), body={}) or []
        return [w for w in workers if w.get("status") == "ONLINE"], workers

    def get_flow(self, name):
        return self.request("GET", "/flows/name/%s" % quote(name), allow_404=True)

    def get_deployment(self, flow_name, deployment_name):
        return self.request(
            "GET", "/deployments/name/%s/%s" % (quote(flow_name), quote(deployment_name)), allow_404=True
        )


def redact_url(url):
    """``url`` with any ``user:password@`` blanked, for messages."""
    return re.sub(r"^(https?://)[^/@]*@", r"\1********@", str(url), flags=re.I)


def quote(segment):
    """URL-quote one path segment (names may contain spaces)."""
    from urllib.parse import quote as _quote

    return _quote(str(segment), safe="")


def wait_for_workers(client, pool, count, timeout, interval=2.0):
    """Poll until ``count`` workers of ``pool`` are ONLINE or ``timeout`` seconds pass.

    Returns (online_names, all_workers, waited_seconds, satisfied).
    """
    clock, sleep = time.monotonic, time.sleep
    start = clock()
    while True:
        online, workers = client.online_workers(pool)
        waited = clock() - start
        if len(online) >= count or waited >= timeout:
            return [w.get("name") for w in online], workers, round(waited, 1), len(online) >= count
        sleep(min(interval, max(0.0, timeout - waited)))
