"""The local stack's moto patch layer, fault part: AWS throttling, on demand.

AWS throttles: every API has a request-rate limit, and a client past it gets a throttling error, which
AWS's SDKs and the amazon.aws modules retry with backoff. moto never throttles, so without this a test
cannot show that a playbook survives it. The patch below is not a gap of moto but a switchable fault:

  aws_fault_injection             While switched on, a configurable share of AWS requests is answered with
                                  the throttling error AWS sends in that request's protocol, before moto
                                  sees the request (nothing is written, nothing is recorded):
                                    JSON services (X-Amz-Target: ECS, ECR, Logs, Secrets Manager,
                                      EventBridge, SQS): HTTP 400 {"__type": "ThrottlingException"}
                                    EC2 (query): HTTP 503 <Response><Errors><Error> RequestLimitExceeded
                                    other query services (IAM, ELBv2, STS, ...): HTTP 400 <ErrorResponse>
                                      <Error><Type>Sender</Type> Throttling
                                    S3 (REST-XML): HTTP 503 <Error> SlowDown
                                    other REST-JSON services: HTTP 429 ThrottlingException (x-amzn-ErrorType)
                                  Off by default.

Switch (served by the patched dispatcher, not an AWS API, never faulted or recorded):
  GET  /_local_stack/faults  -> {"rate", "seed", "services", "seen", "injected", "by_code", "by_service"}
  POST /_local_stack/faults  {"rate": 0.2, "seed": 7, "services": ["ec2", ...]}  -> the same (counters reset)
       rate 0 switches it off; services (optional) limits faults to those signing names.

Reproducible: the decision for a request is a hash of (seed, service, operation, n), n counting that
operation's requests since the switch, so the same seed faults the same calls of a run whatever other
clients do in between, and a retried call draws again.

Not faulted: moto's own /moto-api/ and the local stack's /_local_stack/ paths (the Fargate stand-in's
channel to the ECS control plane: on AWS that is Fargate's internal plumbing, which a customer's
throttling never touches), and unsigned requests (presigned or anonymous; no AWS client to retry them).
Everything signed is faulted whoever sends it, the containers the Fargate stand-in runs included: they
are AWS clients (the Prefect worker, the flow runs) as on AWS, and AWS throttles them too.

Use: scripts/moto_patches.py merges PATCHES into its own; the patch wraps moto's
DomainDispatcherApplication.__call__ (scripts/moto_server.py serves the Fargate channel in front of it).
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

Undo = Callable[[], None]

CONTROL_PATH = "/_local_stack/faults"
NEVER_FAULTED = ("/moto-api/", "/_local_stack/")
_CREDENTIAL = re.compile(r"Credential=[^/,\s]+/\d{8}/([^/,\s]+)/([^/,\s]+)/aws4_request")
_QUERY_ERROR = ("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code><Message>Rate exceeded</Message>"
                "</Error><RequestId>{rid}</RequestId></ErrorResponse>")
_EC2_ERROR = ("<Response><Errors><Error><Code>RequestLimitExceeded</Code><Message>Request limit exceeded.</Message>"
              "</Error></Errors><RequestID>{rid}</RequestID></Response>")
_S3_ERROR = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your "
             "request rate.</Message><RequestId>{rid}</RequestId></Error>")


@dataclass
class Fault:
    """An error answer: HTTP status, headers, body, and the error code botocore reads from it."""

    status: int
    code: str
    headers: list[tuple[str, str]]
    body: bytes


@dataclass
class Request:
    """What the injector needs of a request: signing service, operation, protocol."""

    service: str
    operation: str
    protocol: str  # json | ec2 | query | s3 | rest-json


def describe(environ: dict[str, Any], body: bytes) -> Request | None:
    """The signed AWS request in a WSGI environ, or None (unsigned, or one of the emulator's own paths)."""
    path = environ.get("PATH_INFO", "")
    if path.startswith(NEVER_FAULTED):
        return None
    match = _CREDENTIAL.search(environ.get("HTTP_AUTHORIZATION", ""))
    if not match:
        return None
    service = match.group(2)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    if target:
        return Request(service, target.rsplit(".", 1)[-1], "json")
    if service == "s3":
        return Request(service, f"{environ.get('REQUEST_METHOD', '')} {path.split('/')[1] if path.count('/') else ''}", "s3")
    params = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    if b"Action=" in body:
        params.update(urllib.parse.parse_qs(body.decode(errors="replace")))
    if "Action" in params:
        return Request(service, params["Action"][0], "ec2" if service == "ec2" else "query")
    return Request(service, f"{environ.get('REQUEST_METHOD', '')} {path}", "rest-json")


def fault_for(request: Request) -> Fault:
    """The throttling error AWS answers in the request's protocol."""
    rid = str(uuid.uuid4())
    if request.protocol == "json":
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return Fault(400, "ThrottlingException", [("Content-Type", "application/x-amz-json-1.1"),
                                                  ("x-amzn-RequestId", rid)], body)
    if request.protocol == "rest-json":
        body = json.dumps({"message": "Rate exceeded"}).encode()
        return Fault(429, "ThrottlingException", [("Content-Type", "application/json"), ("x-amzn-RequestId", rid),
                                                  ("x-amzn-ErrorType", "ThrottlingException")], body)
    if request.protocol == "s3":
        return Fault(503, "SlowDown", [("Content-Type", "application/xml"), ("x-amz-request-id", rid)],
                     _S3_ERROR.format(rid=rid).encode())
    if request.protocol == "ec2":
        return Fault(503, "RequestLimitExceeded", [("Content-Type", "text/xml")], _EC2_ERROR.format(rid=rid).encode())
    return Fault(400, "Throttling", [("Content-Type", "text/xml")], _QUERY_ERROR.format(rid=rid).encode())


@dataclass
class FaultInjector:
    """The switch and its counters (one per moto server process)."""

    rate: float = 0.0
    seed: int = 0
    services: list[str] = field(default_factory=list)
    seen: int = 0
    injected: int = 0
    by_code: dict[str, int] = field(default_factory=dict)
    by_service: dict[str, int] = field(default_factory=dict)
    _draws: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def configure(self, rate: float = 0.0, seed: int = 0, services: Iterable[str] | None = None) -> dict[str, Any]:
        rate = float(rate)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        with self._lock:
            self.rate, self.seed, self.services = rate, int(seed), sorted(services or [])
            self.seen = self.injected = 0
            self.by_code, self.by_service, self._draws = {}, {}, {}
        return self.state()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {"rate": self.rate, "seed": self.seed, "services": list(self.services), "seen": self.seen,
                    "injected": self.injected, "by_code": dict(self.by_code), "by_service": dict(self.by_service)}

    def draw(self, key: str) -> float:
        """The n-th draw of this key under the current seed: a number in [0, 1)."""
        n = self._draws.get(key, 0)
        self._draws[key] = n + 1
        digest = hashlib.sha256(f"{self.seed}:{key}:{n}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2 ** 64

    def decide(self, request: Request | None) -> Fault | None:
        """The fault to answer this request with, or None to let moto answer it."""
        if request is None or self.rate <= 0:
            return None
        with self._lock:
            if self.services and request.service not in self.services:
                return None
            self.seen += 1
            if self.draw(f"{request.service}:{request.operation}") >= self.rate:
                return None
            fault = fault_for(request)
            self.injected += 1
            self.by_code[fault.code] = self.by_code.get(fault.code, 0) + 1
            self.by_service[request.service] = self.by_service.get(request.service, 0) + 1
            return fault


FAULTS = FaultInjector()


def _json_answer(start_response: Callable[..., Any], status: str, answer: dict[str, Any]) -> list[bytes]:
    data = json.dumps(answer).encode()
    start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
    return [data]


def control(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """WSGI app of the switch (GET: state; POST: configure)."""
    method = environ.get("REQUEST_METHOD")
    if method == "GET":
        return _json_answer(start_response, "200 OK", FAULTS.state())
    if method != "POST":
        return _json_answer(start_response, "405 Method Not Allowed", {"message": "GET or POST"})
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = json.loads(environ["wsgi.input"].read(length) or b"{}")
        state = FAULTS.configure(body.get("rate", 0.0), body.get("seed", 0), body.get("services"))
    except (ValueError, TypeError, AttributeError) as err:
        return _json_answer(start_response, "400 Bad Request", {"message": str(err)})
    return _json_answer(start_response, "200 OK", state)


def _read_body(environ: dict[str, Any]) -> bytes:
    """Read the request body and put it back for moto (wsgi.input is read once)."""
    import io

    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length > 0 else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def aws_fault_injection() -> Undo:
    """Answer a share of AWS requests with AWS's throttling error (see the module docstring).

    AWS: throttles a client past an API's rate limit (ThrottlingException, RequestLimitExceeded, SlowDown).
    moto 5.2: never does.
    Patch: moto's dispatcher serves the switch at /_local_stack/faults and, while the rate is above 0,
    answers the drawn requests itself with the protocol's throttling error; others go to moto untouched.
    """
    import moto.server

    dispatcher = moto.server.DomainDispatcherApplication
    original = dispatcher.__dict__["__call__"]

    def __call__(self: Any, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        if environ.get("PATH_INFO", "") == CONTROL_PATH:
            return control(environ, start_response)
        if FAULTS.rate > 0:
            body = _read_body(environ) if environ.get("HTTP_AUTHORIZATION") else b""
            fault = FAULTS.decide(describe(environ, body))
            if fault is not None:
                start_response(f"{fault.status} {'Service Unavailable' if fault.status == 503 else 'Error'}",
                               [*fault.headers, ("Content-Length", str(len(fault.body)))])
                return [fault.body]
        return original(self, environ, start_response)

    dispatcher.__call__ = __call__

    def undo() -> None:
        dispatcher.__call__ = original
        FAULTS.configure(0.0)

    return undo


PATCHES: dict[str, Callable[[], Undo]] = {
    "aws_fault_injection": aws_fault_injection,
}
