"""The one Prefect API client: auth headers, retries with backoff, HTTP errors mapped to fail_json."""

from __future__ import annotations

import base64
import io
import json
import urllib.error

import pytest

from ansible_collections.dataops.prefect_fargate.plugins.module_utils import prefect_api

from ..conftest import ModuleFail


class FakeModule:
    def __init__(self, **params):
        self.params = {"api_url": "https://prefect.test/api/", "api_key": None, "auth_string": None,
                       "validate_certs": True, "timeout": 7, "retries": 2, **params}

    def fail_json(self, msg="", **kwargs):
        raise ModuleFail({"msg": msg, **kwargs})


class Response:
    def __init__(self, status, body):
        self.status, self._body = status, body

    def read(self):
        return self._body


def answer(status, body=b"", msg="OK"):
    """What urls.Request.open does: return a response for 2xx, raise HTTPError / URLError otherwise."""
    if status == -1:
        return urllib.error.URLError(msg)
    if 200 <= status < 300:
        return Response(status, body)
    return urllib.error.HTTPError("http://x", status, msg, {}, io.BytesIO(body))


class FakeRequest:
    """Stands in for ansible.module_utils.urls.Request; records constructor and open() calls."""

    instances: list = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.opened = []
        FakeRequest.instances.append(self)

    def open(self, method, url, data=None):
        self.opened.append((method, url, data))
        outcome = FakeRequest.script.pop(0) if FakeRequest.script else FakeRequest.default
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def fetch(monkeypatch):
    """Scripted transport: set .return_value (every call) or .side_effect (in order); inspect .calls."""
    FakeRequest.instances, FakeRequest.script, FakeRequest.default = [], [], answer(200, b"null")
    monkeypatch.setattr(prefect_api, "Request", FakeRequest)

    class Control:
        @property
        def calls(self):
            return [c for r in FakeRequest.instances for c in r.opened]

        @property
        def call_count(self):
            return len(self.calls)

        @property
        def headers(self):
            return FakeRequest.instances[-1].kwargs["headers"]

        @property
        def request_kwargs(self):
            return FakeRequest.instances[-1].kwargs

        def __setattr__(self, name, value):
            if name == "return_value":
                FakeRequest.default = value
            elif name == "side_effect":
                FakeRequest.script = list(value)

    return Control()


def client(**params):
    sleeps = []
    c = prefect_api.PrefectClient(FakeModule(**params), sleep=sleeps.append)
    return c, sleeps


@pytest.mark.parametrize("params, header", [
    ({"api_key": "pnu_abc"}, "Bearer pnu_abc"),
    ({"auth_string": "admin:s3cret"}, "Basic " + base64.b64encode(b"admin:s3cret").decode()),
    ({}, None),
], ids=["cloud-api-key", "self-hosted-auth-string", "anonymous"])
def test_auth_header(fetch, params, header):
    fetch.return_value = answer(200, b'{"ok": true}')
    c, _ = client(**params)
    assert c.request("GET", "/health") == {"ok": True}
    assert fetch.headers.get("Authorization") == header
    assert fetch.calls == [("GET", "https://prefect.test/api/health", None)]
    assert fetch.request_kwargs["timeout"] == 7 and fetch.request_kwargs["validate_certs"] is True


@pytest.mark.parametrize("validate", [True, False])
def test_one_transport_and_tls_context_per_run(fetch, validate):
    """TLS verification follows validate_certs; the context is built once, not per request."""
    fetch.return_value = answer(200, b"{}")
    c, _ = client(validate_certs=validate)
    for _ in range(3):
        c.request("GET", "/health")
    assert len(FakeRequest.instances) == 1 and fetch.call_count == 3
    context = fetch.request_kwargs["context"]
    assert context.check_hostname is validate
    assert fetch.request_kwargs["validate_certs"] is validate


def test_basic_header_matches_prefects_own_client():
    """Same bytes as prefect.client.orchestration.PrefectClient builds for PREFECT_API_AUTH_STRING."""
    from prefect.client.orchestration import PrefectClient as Upstream

    upstream = Upstream("http://x/api", auth_string="admin:s3cret")
    assert upstream._client.headers["Authorization"] == prefect_api.auth_header(auth_string="admin:s3cret")
    upstream = Upstream("http://x/api", api_key="pnu_abc")
    assert upstream._client.headers["Authorization"] == prefect_api.auth_header(api_key="pnu_abc")


def test_json_body_is_sent(fetch):
    fetch.return_value = answer(201, b'{"id": "1"}')
    c, _ = client()
    c.request("POST", "/flows/", body={"name": "f"})
    assert json.loads(fetch.calls[0][2]) == {"name": "f"}
    assert c.writes == [("POST", "/flows/")]


def test_read_only_posts_are_not_writes(fetch):
    fetch.return_value = answer(200, b"[]")
    c, _ = client()
    c.request("POST", "/work_pools/p/workers/filter", body={})
    c.request("GET", "/work_pools/p")
    assert c.writes == []


def test_retries_5xx_with_backoff_then_succeeds(fetch):
    fetch.side_effect = [answer(503, b"busy"), answer(502, b"gw"), answer(204)]
    c, sleeps = client(retries=2)
    assert c.request("PATCH", "/deployments/1", body={}) is None
    assert fetch.call_count == 3
    assert sleeps == [0.5, 1.0]


def test_connection_error_exhausts_retries_and_says_so(fetch):
    fetch.return_value = answer(-1, msg="[Errno 111] Connection refused")
    c, sleeps = client(retries=2)
    with pytest.raises(ModuleFail) as info:
        c.request("GET", "/health")
    result = info.value.result
    assert fetch.call_count == 3 and len(sleeps) == 2
    assert "cannot connect" in result["msg"] and "Connection refused" in result["msg"]
    assert result["attempts"] == 3 and result["status"] == -1


@pytest.mark.parametrize("status, body, expected", [
    (409, b'{"detail": "Error creating deployment: bad job variables"}', "Error creating deployment: bad job variables"),
    (422, b'{"exception_message": "Invalid request", "exception_detail": [{"loc": ["body", "name"]}]}', '"loc"'),
    (403, b"Forbidden", "Forbidden"),
], ids=["detail", "validation", "plain-text"])
def test_http_error_is_mapped_to_fail_json(fetch, status, body, expected):
    fetch.return_value = answer(status, body)
    c, sleeps = client()
    with pytest.raises(ModuleFail) as info:
        c.request("POST", "/deployments/", body={})
    result = info.value.result
    assert result["method"] == "POST" and result["path"] == "/deployments/" and result["status"] == status
    assert expected in result["server_message"] and expected in result["msg"]
    assert result["msg"].startswith("Prefect API POST /deployments/ failed: HTTP %d" % status)
    assert sleeps == []  # 4xx is not retried


def test_404_allowed_returns_none(fetch):
    fetch.return_value = answer(404, b'{"detail": "Not found"}')
    c, _ = client()
    assert c.request("GET", "/deployments/name/a/b", allow_404=True) is None


def test_error_without_fail_raises_api_error(fetch):
    fetch.return_value = answer(404, b'{"detail": "Not found"}')
    c, _ = client()
    with pytest.raises(prefect_api.PrefectApiError) as info:
        c.request("GET", "/x", fail_on_error=False)
    assert info.value.status == 404 and info.value.message == "Not found"


def test_names_are_url_quoted(fetch):
    fetch.return_value = answer(404)
    c, _ = client()
    c.get_deployment("my flow", "a/b")
    assert fetch.calls[0][1] == "https://prefect.test/api/deployments/name/my%20flow/a%2Fb"


def test_sanitize_blanks_secret_values_but_keeps_arns():
    data = {"env": {"PREFECT_API_KEY": "pnu_x", "PREFECT_API_AUTH_STRING": "u:p", "LOG_LEVEL": "INFO"},
            "prefect_api_key_secret_arn": "arn:aws:secretsmanager:r:1:secret:k",
            "aws_credentials": {"aws_secret_access_key": "abc", "region_name": "r"},
            "list": [{"token": "t"}], "password": ""}
    out = prefect_api.sanitize(data)
    assert out["env"] == {"PREFECT_API_KEY": "********", "PREFECT_API_AUTH_STRING": "********", "LOG_LEVEL": "INFO"}
    assert out["prefect_api_key_secret_arn"].startswith("arn:")
    assert out["aws_credentials"] == {"aws_secret_access_key": "********", "region_name": "r"}
    assert out["list"] == [{"token": "********"}] and out["password"] == ""
    assert data["env"]["PREFECT_API_KEY"] == "pnu_x"  # the input is not modified


@pytest.mark.parametrize("api, ui", [
    ("http://127.0.0.1:4200/api", "http://127.0.0.1:4200"),
    ("https://prefect.example.com/api/", "https://prefect.example.com"),
    ("https://api.prefect.cloud/api/accounts/a1/workspaces/w1", "https://app.prefect.cloud/account/a1/workspace/w1"),
])
def test_ui_url(api, ui):
    assert prefect_api.ui_base_url(api) == ui


def test_server_health_gets_a_whole_url_and_names_it_without_credentials(fetch):
    fetch.side_effect = [answer(200, b"true"), answer(503, b'{"detail": "starting"}'), answer(-1, msg="refused")]
    c, _ = client(auth_string="admin:s3cret", retries=0)
    assert c.server_health("https://admin:pw@prefect.example.com/api/health") == (
        True, "GET https://********@prefect.example.com/api/health: OK")
    healthy, detail = c.server_health()
    assert not healthy and detail == "GET https://prefect.test/api/health: HTTP 503: starting"
    healthy, detail = c.server_health("http://10.0.0.9:4200/api/health")
    assert not healthy and detail.startswith("GET http://10.0.0.9:4200/api/health: no answer (URLError")
    assert [call[1] for call in fetch.calls] == ["https://admin:pw@prefect.example.com/api/health",
                                                 "https://prefect.test/api/health", "http://10.0.0.9:4200/api/health"]
    assert fetch.headers["Authorization"].startswith("Basic ") and "s3cret" not in detail
