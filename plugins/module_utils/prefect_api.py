# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""One small client for the Prefect 3 REST API, shared by every module of this collection.

Built on Ansible's ``fetch_url`` so proxies, TLS verification and the module's own
``validate_certs`` behave like every other Ansible HTTP module. Errors are turned into
``fail_json`` with the method, path, HTTP status and the server's message.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import time

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.urls import fetch_url

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
        self.api_url = params["api_url"].rstrip("/")
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

    @property
    def ui_url(self):
        return ui_base_url(self.api_url)

    def request(self, method, path, body=None, allow_404=False, fail_on_error=True):
        """Send one request; return the decoded JSON body (None for 204 / allowed 404).

        Retries connection errors and 5xx with exponential backoff. Any other non-2xx answer
        becomes ``fail_json`` naming method, path, status and the server's message (or a
        PrefectApiError when ``fail_on_error`` is false).
        """
        method = method.upper()
        url = self.api_url + path
        data = json.dumps(body) if body is not None else None
        if method != "GET" and not (method == "POST" and _READ_ONLY_POST.search(path)):
            self.writes.append((method, path))
        attempt = 0
        while True:
            resp, info = fetch_url(
                self.module, url, data=data, headers=self.headers, method=method, timeout=self.timeout
            )
            status = info.get("status", -1)
            if (status == -1 or 500 <= status < 600) and attempt < self.retries:
                self._sleep(_BACKOFF_BASE * (2 ** attempt))
                attempt += 1
                continue
            break

        if 200 <= status < 300:
            raw = resp.read() if resp is not None else b""
            if not raw:
                return None
            try:
                return json.loads(raw)
            except ValueError:
                return raw.decode("utf-8", errors="replace")
        if status == 404 and allow_404:
            return None

        message = self._server_message(info)
        if not fail_on_error:
            raise PrefectApiError(method, path, status, message)
        if status == -1:
            msg = "Prefect API %s %s failed: cannot connect to %s after %d attempt(s): %s" % (
                method, path, self.api_url, attempt + 1, message)
        else:
            msg = "Prefect API %s %s failed: HTTP %s: %s" % (method, path, status, message)
        self.module.fail_json(msg=msg, method=method, path=path, status=status, server_message=message,
                              attempts=attempt + 1)

    @staticmethod
    def _server_message(info):
        body = info.get("body")
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
        return info.get("msg", "no response body")

    # ------------------------------------------------------------------ resources
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
