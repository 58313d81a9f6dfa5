# -*- coding: utf-8 -*-
# Apache-2.0
"""The one place where this collection talks to a container registry (Docker Registry HTTP API v2, which
Amazon ECR's registry endpoint speaks, and so does a registry standing in for it).

The registry login is fetched here with ecr:GetAuthorizationToken and kept inside the module process: it is
sent as HTTP basic auth (what ECR accepts, and what the role's former `uri` tasks sent), never returned, never
put in an error message. Used by the ecr reader of stack_state_info (stack_state_ecr.py) and by the
ecr_image_tag module.
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from urllib.error import HTTPError
from urllib.error import URLError

from ansible.module_utils.urls import open_url

# Manifest media types a registry may serve for one tag (Docker v2 / OCI, single image or index).
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.index.v1+json",
])
TIMEOUT = 30
MAX_TAG_PAGES = 100
DIGEST = re.compile(r"^sha256:[a-f0-9]{64}$")


class RegistryError(Exception):
    """A registry answer the caller did not expect: the message names the request and the status, never the login."""


def decode_token(token):
    """Split a base64 'user:password' ECR token. Raises ValueError on anything else (without echoing it)."""
    try:
        decoded = base64.b64decode(token, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError("authorization token is not base64 'user:password'") from exc
    username, sep, password = decoded.partition(":")
    if not sep or not username or not password:
        raise ValueError("authorization token is not base64 'user:password'")
    return username, password


def registry_host(proxy_endpoint):
    """'https://123.dkr.ecr.us-east-1.amazonaws.com' -> '123.dkr.ecr.us-east-1.amazonaws.com'."""
    return proxy_endpoint.split("://", 1)[-1].rstrip("/")


def ecr_login(ecr, registry_id=None):
    """(registry host, user name, password) from ecr:GetAuthorizationToken; ecr is an AnsibleAWSModule client."""
    kwargs = {"registryIds": [registry_id]} if registry_id else {}
    data = ecr.get_authorization_token(aws_retry=True, **kwargs).get("authorizationData") or []
    if not data:
        raise RegistryError("ECR returned no authorization data")
    username, password = decode_token(data[0]["authorizationToken"])
    return registry_host(data[0]["proxyEndpoint"]), username, password


class Registry:
    """Registry HTTP API v2 client for one registry host, with the login kept private."""

    def __init__(self, host, username, password, insecure=False):
        self.host = host
        self.base_url = "%s://%s" % ("http" if insecure else "https", host)
        self._auth = {"url_username": username, "url_password": password, "force_basic_auth": True}
        self._validate_certs = not insecure

    def _request(self, method, path, expect, headers=None, data=None):
        """(status, headers, body) of one request; RegistryError for a status not in expect."""
        url = path if path.startswith("http") else self.base_url + path
        try:
            resp = open_url(url, method=method, headers=headers or {}, data=data, timeout=TIMEOUT, validate_certs=self._validate_certs,
                            follow_redirects="safe", use_netrc=False, **self._auth)
            status, answer, body = resp.getcode(), resp.headers, (resp.read() if method != "HEAD" else b"")
        except HTTPError as exc:
            status, answer = exc.code, exc.headers
            try:
                body = exc.read() if method != "HEAD" else b""
            except Exception:  # pylint: disable=broad-except
                body = b""
        except (URLError, OSError) as exc:
            raise RegistryError("%s %s failed: %s" % (method, url, getattr(exc, "reason", exc)))
        if status not in expect:
            raise RegistryError("%s %s answered %s %s" % (method, url, status, body[:500].decode("utf-8", "replace")))
        return status, answer, body

    def digest(self, repository, reference):
        """Digest of a tag or digest reference (HEAD manifests), '' when the registry does not have it (404)."""
        status, headers, _ = self._request("HEAD", "/v2/%s/manifests/%s" % (repository, reference), (200, 404), {"Accept": MANIFEST_TYPES})
        return (headers.get("Docker-Content-Digest") or "") if status == 200 else ""

    def manifest(self, repository, reference):
        """(body, content type, digest) of a manifest; RegistryError when it is missing."""
        _, headers, body = self._request("GET", "/v2/%s/manifests/%s" % (repository, reference), (200,), {"Accept": MANIFEST_TYPES})
        return body, headers.get("Content-Type") or "", headers.get("Docker-Content-Digest") or ""

    def put_manifest(self, repository, tag, body, content_type):
        """Put a manifest under a tag (what `aws ecr put-image` does); the digest the registry gives it."""
        _, headers, _ = self._request("PUT", "/v2/%s/manifests/%s" % (repository, tag), (201,), {"Content-Type": content_type}, body)
        return headers.get("Docker-Content-Digest") or ""

    def tags(self, repository):
        """Every tag of the repository (following the Link pagination), [] when the repository is unknown (404)."""
        found, path = [], "/v2/%s/tags/list" % repository
        for dummy in range(MAX_TAG_PAGES):
            status, headers, body = self._request("GET", path, (200, 404), {"Accept": "application/json"})
            if status == 404:
                return found
            found.extend((json.loads(body or b"{}") or {}).get("tags") or [])
            link = re.match(r"\s*<([^>]+)>\s*;\s*rel=\"?next\"?", headers.get("Link") or "")
            if not link:
                return found
            path = link.group(1)
        raise RegistryError("GET /v2/%s/tags/list: more than %d pages" % (repository, MAX_TAG_PAGES))


def open_registry(ecr, override="", insecure=False, registry_id=None):
    """A Registry for the ECR registry of the credentials (or the override host), logged in with the ECR token."""
    host, username, password = ecr_login(ecr, registry_id)
    return Registry(override or host, username, password, insecure=insecure)
