"""Plumbing of the tests that run moto in-process or as a throw-away server on loopback (the moto patch
layer's unit tests, local_iam's, the local stack's): test credentials, a free port, a threaded moto server."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import pytest

REGION = "us-east-1"


def fake_aws_env(monkeypatch: pytest.MonkeyPatch, region: str = REGION) -> None:
    """Test credentials and region in the environment and no endpoint override, so boto3 clients reach moto."""
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": region}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def threaded_moto_server() -> Iterator[str]:
    """moto's ThreadedMotoServer on a free loopback port, stopped on exit; yields its URL."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{server.get_host_and_port()[1]}"
    finally:
        server.stop()
