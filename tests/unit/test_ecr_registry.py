"""The ecr reader of stack_state_info and the ecr_image_tag module, against moto in-process (the ECR API) and a
small in-process registry speaking the Registry HTTP API v2 (HEAD/GET/PUT manifests, paginated tags/list, basic
auth checked against the ECR token). No servers, no containers.

The role skips community.aws.ecs_ecr, ecr_repository_tags and ecr_image_tag when the reader says in_sync, so
every drift below must come out of sync, and only on its resource; and the registry login must never leave the
module.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from unittest import mock
from urllib.parse import parse_qs
from urllib.parse import urlparse

import boto3
import pytest
from moto import mock_aws

from ansible_collections.dataops.prefect_fargate.plugins.module_utils import ecr_registry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_ecr import read_ecr
from ansible_collections.dataops.prefect_fargate.plugins.modules import ecr_image_tag
from ansible_collections.dataops.prefect_fargate.plugins.modules import stack_state_info

from tests.helpers.module_runner import Client, run_module

REPO = "stack/flow"
TAGS = {"Project": "p", "Environment": "t"}
# What the role passes (roles/ecr_image/vars/main.yml, to_json): countNumber an int.
LIFECYCLE = {"rules": [{"rulePriority": 1, "description": "Keep the newest 10 images",
                        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10},
                        "action": {"type": "expire"}}]}
MANIFEST_TYPE = "application/vnd.docker.distribution.manifest.v2+json"
# moto's GetAuthorizationToken: base64 "AWS:<account>-auth-token".
PASSWORD = "123456789012-auth-token"


def manifest(n: int) -> bytes:
    return json.dumps({"schemaVersion": 2, "mediaType": MANIFEST_TYPE, "config": {"digest": f"sha256:{n:064x}"}},
                      separators=(",", ":")).encode()


def digest_of(body: bytes) -> str:
    return "sha256:" + hashlib.sha256(body).hexdigest()


class Stub:
    """In-process registry: manifests by repository and reference, every request recorded."""

    def __init__(self, page_size: int = 0):
        self.blobs: dict[str, dict[str, tuple[bytes, str]]] = {}
        self.tags: dict[str, dict[str, str]] = {}
        self.requests: list[tuple[str, str, str]] = []
        self.page_size = page_size
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _auth_ok(self):
                expected = "Basic " + base64.b64encode(f"AWS:{PASSWORD}".encode()).decode()
                stub.requests.append((self.command, self.path, self.headers.get("Authorization", "")))
                if self.headers.get("Authorization") != expected:
                    self._send(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                    return False
                return True

            def _send(self, status, body=b"", headers=None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def _manifest(self):
                parts = urlparse(self.path).path.split("/manifests/")
                return parts[0][len("/v2/"):], parts[1]

            def do_HEAD(self):
                self.do_GET()

            def do_GET(self):
                if not self._auth_ok():
                    return
                url = urlparse(self.path)
                if url.path.endswith("/tags/list"):
                    repo = url.path[len("/v2/"):-len("/tags/list")]
                    if repo not in stub.tags:
                        return self._send(404, b'{"errors":[{"code":"NAME_UNKNOWN"}]}')
                    tags = sorted(stub.tags[repo])
                    query = parse_qs(url.query)
                    last = query.get("last", [""])[0]
                    tags = [t for t in tags if t > last]
                    headers = {"Content-Type": "application/json"}
                    if stub.page_size and len(tags) > stub.page_size:
                        tags = tags[:stub.page_size]
                        headers["Link"] = f'</v2/{repo}/tags/list?last={tags[-1]}&n={stub.page_size}>; rel="next"'
                    return self._send(200, json.dumps({"name": repo, "tags": tags}).encode(), headers)
                repo, ref = self._manifest()
                digest = ref if ref.startswith("sha256:") else stub.tags.get(repo, {}).get(ref)
                if not digest or digest not in stub.blobs.get(repo, {}):
                    return self._send(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}')
                body, ctype = stub.blobs[repo][digest]
                self._send(200, body, {"Content-Type": ctype, "Docker-Content-Digest": digest})

            def do_PUT(self):
                if not self._auth_ok():
                    return
                repo, ref = self._manifest()
                body = self.rfile.read(int(self.headers["Content-Length"]))
                digest = stub.put(repo, ref, body, self.headers["Content-Type"])
                self._send(201, b"", {"Docker-Content-Digest": digest})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()

    def put(self, repo: str, tag: str, body: bytes, ctype: str = MANIFEST_TYPE) -> str:
        digest = digest_of(body)
        self.blobs.setdefault(repo, {})[digest] = (body, ctype)
        self.tags.setdefault(repo, {})[tag] = digest
        return digest

    def writes(self):
        return [r for r in self.requests if r[0] not in ("GET", "HEAD")]


@pytest.fixture
def aws(monkeypatch):
    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        yield boto3.client("ecr")


@pytest.fixture
def registry():
    stub = Stub()
    yield stub
    stub.server.shutdown()


def converge(ecr, scan_on_push=True, mutability="IMMUTABLE", lifecycle=LIFECYCLE, tags=TAGS):
    """What the role's write tasks make of the repository."""
    arn = ecr.create_repository(repositoryName=REPO, imageTagMutability=mutability,
                                imageScanningConfiguration={"scanOnPush": scan_on_push})["repository"]["repositoryArn"]
    ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=json.dumps(lifecycle))
    ecr.tag_resource(resourceArn=arn, tags=[{"Key": k, "Value": v} for k, v in tags.items()])
    return arn


def spec(registry, **registry_spec):
    return {"repository_name": REPO, "scan_on_push": True, "tag_mutability": "IMMUTABLE", "lifecycle_policy": json.dumps(LIFECYCLE),
            "tags": TAGS, "registry": {"override": registry.address, "insecure": True, "tag": "abc", **registry_spec}}


def read(ecr, the_spec):
    return read_ecr(lambda name: Client(ecr), the_spec)


# ---------------------------------------------------------------------------------------------- reader
def test_reader_on_an_empty_account_finds_nothing(aws, registry):
    state = read(aws, spec(registry, moving_tag="latest"))
    assert state["repository"] == {"exists": False, "arn": "", "uri": "", "current": {}, "in_sync": False, "why": "not found"}
    assert state["tags"]["in_sync"] is False
    assert state["registry"]["tag_digest"] == "" and state["registry"]["moving_tag_digest"] == ""
    assert state["registry"]["moving_tag_in_sync"] is False
    assert state["registry"]["repository_uri"] == f"{registry.address}/{REPO}"
    assert state["in_sync"] is False


def test_reader_finds_the_converged_repository_and_image_in_sync(aws, registry):
    arn = converge(aws, mutability="MUTABLE")
    digest = registry.put(REPO, "abc", manifest(1))
    registry.put(REPO, "latest", manifest(1))
    the_spec = spec(registry, moving_tag="latest")
    the_spec["tag_mutability"] = "mutable"  # the role passes it upper case, ecs_ecr compares it upper-cased
    state = read(aws, the_spec)
    assert state["repository"]["in_sync"] and state["repository"]["arn"] == arn, state["repository"]
    assert state["tags"] == {"in_sync": True, "why": "", "current": TAGS}
    assert state["registry"]["tag_digest"] == digest == state["registry"]["moving_tag_digest"]
    assert state["registry"]["moving_tag_in_sync"] is True
    assert state["in_sync"] is True
    # Every registry request carried the ECR login as basic auth; nothing was written.
    assert registry.requests and all(r[2].startswith("Basic ") for r in registry.requests)
    assert registry.writes() == []
    assert PASSWORD not in json.dumps(state)


@pytest.mark.parametrize("drift, out_of_sync", [
    (lambda ecr, arn: ecr.put_image_scanning_configuration(repositoryName=REPO, imageScanningConfiguration={"scanOnPush": False}), "repository"),
    (lambda ecr, arn: ecr.put_image_tag_mutability(repositoryName=REPO, imageTagMutability="MUTABLE"), "repository"),
    (lambda ecr, arn: ecr.put_lifecycle_policy(repositoryName=REPO, lifecyclePolicyText=json.dumps(
        {"rules": [dict(LIFECYCLE["rules"][0], selection=dict(LIFECYCLE["rules"][0]["selection"], countNumber=5))]})), "repository"),
    (lambda ecr, arn: ecr.delete_lifecycle_policy(repositoryName=REPO), "repository"),
    (lambda ecr, arn: ecr.tag_resource(resourceArn=arn, tags=[{"Key": "Project", "Value": "other"}]), "tags"),
    (lambda ecr, arn: ecr.tag_resource(resourceArn=arn, tags=[{"Key": "Extra", "Value": "x"}]), "tags"),
    (lambda ecr, arn: ecr.untag_resource(resourceArn=arn, tagKeys=["Environment"]), "tags"),
])
def test_reader_reports_each_drift_on_its_resource_only(aws, registry, drift, out_of_sync):
    arn = converge(aws)
    registry.put(REPO, "abc", manifest(1))
    drift(aws, arn)
    state = read(aws, spec(registry))
    assert state[out_of_sync]["in_sync"] is False and state[out_of_sync]["why"]
    assert [key for key in ("repository", "tags") if not state[key]["in_sync"]] == [out_of_sync]
    assert state["in_sync"] is False


def test_reader_sees_a_moved_or_missing_moving_tag_and_a_missing_image(aws, registry):
    converge(aws, mutability="MUTABLE")
    the_spec = spec(registry, moving_tag="latest")
    the_spec["tag_mutability"] = "MUTABLE"
    registry.put(REPO, "abc", manifest(1))
    assert read(aws, the_spec)["registry"]["moving_tag_in_sync"] is False  # no moving tag yet
    registry.put(REPO, "latest", manifest(2))  # moved behind the stack's back
    state = read(aws, the_spec)
    assert state["registry"]["moving_tag_in_sync"] is False and state["in_sync"] is False
    assert state["repository"]["in_sync"] and state["tags"]["in_sync"]
    the_spec["registry"]["tag"] = "new-content"  # the image of changed build inputs is not there yet
    state = read(aws, the_spec)
    assert state["registry"]["tag_digest"] == "" and state["in_sync"] is False


def test_reader_lists_the_registry_tags_across_pages_and_a_missing_repository(aws):
    stub = Stub(page_size=2)
    try:
        only = {"repository_name": REPO, "registry": {"override": stub.address, "insecure": True, "list_tags": True}}
        state = read(aws, only)
        assert state["registry"]["tags"] == [] and state["repository"]["exists"] is False
        for n, tag in enumerate(["e", "d", "c", "b", "a"]):
            stub.put(REPO, tag, manifest(n))
        assert read(aws, only)["registry"]["tags"] == ["a", "b", "c", "d", "e"]
        assert any("last=b" in r[1] for r in stub.requests)
    finally:
        stub.server.shutdown()


def test_reader_fails_on_a_registry_error_without_the_login(aws, registry):
    converge(aws)
    with mock.patch.object(ecr_registry, "decode_token", return_value=("AWS", "wrong-password")):
        with pytest.raises(ecr_registry.RegistryError) as err:
            read(aws, spec(registry))
    assert "401" in str(err.value) and "wrong-password" not in str(err.value) and PASSWORD not in str(err.value)


# ------------------------------------------------------------------------------ modules (main)


def test_stack_state_info_runs_the_ecr_reader(aws, registry):
    converge(aws)
    registry.put(REPO, "abc", manifest(1))
    out = run_module(stack_state_info, {"reader": "ecr", "spec": spec(registry)}, Client(aws))
    assert not out.failed, out.result
    assert out.result["changed"] is False and out.result["state"]["in_sync"] is True
    assert PASSWORD not in json.dumps(out.result)
    registry.blobs.clear()
    registry.tags.clear()
    with mock.patch.object(ecr_registry, "decode_token", return_value=("AWS", "wrong-password")):
        out = run_module(stack_state_info, {"reader": "ecr", "spec": spec(registry)}, Client(aws))
    assert out.failed and "401" in out.result["msg"] and "wrong-password" not in out.result["msg"]


def tag_args(registry, **extra):
    return {"repository_name": REPO, "registry": registry.address, "insecure": True, **extra}


def test_image_tag_moves_the_tag_and_then_changes_nothing(aws, registry):
    digest = registry.put(REPO, "abc", manifest(1))
    old = registry.put(REPO, "latest", manifest(2))
    out = run_module(ecr_image_tag, {**tag_args(registry, source=digest, tag="latest"), "_ansible_diff": True}, Client(aws))
    assert not out.failed, out.result
    assert out.result["changed"] is True
    assert (out.result["digest"], out.result["previous_digest"]) == (digest, old)
    assert out.result["diff"] == {"before": {"latest": old}, "after": {"latest": digest}}
    assert registry.tags[REPO]["latest"] == digest
    assert [(m, p) for m, p, _ in registry.writes()] == [("PUT", f"/v2/{REPO}/manifests/latest")]
    assert PASSWORD not in json.dumps(out.result)
    again = run_module(ecr_image_tag, tag_args(registry, source="abc", tag="latest"), Client(aws))
    assert again.result["changed"] is False and again.result["digest"] == digest
    assert len(registry.writes()) == 1


def test_image_tag_in_check_mode_predicts_without_writing(aws, registry):
    digest = registry.put(REPO, "abc", manifest(1))
    out = run_module(ecr_image_tag, {**tag_args(registry, source="abc", tag="latest"), "_ansible_check_mode": True}, Client(aws))
    assert not out.failed and out.result["changed"] is True
    assert (out.result["digest"], out.result["previous_digest"]) == (digest, "")
    assert registry.writes() == [] and "latest" not in registry.tags[REPO]


def test_image_tag_reads_a_digest_and_fails_on_a_missing_source(aws, registry):
    digest = registry.put(REPO, "abc", manifest(1))
    out = run_module(ecr_image_tag, tag_args(registry, source="abc"), Client(aws))
    assert not out.failed and out.result == {"changed": False, "digest": digest, "previous_digest": "", "registry": registry.address}
    out = run_module(ecr_image_tag, tag_args(registry, source="missing", tag="latest"), Client(aws))
    assert out.failed and "stack/flow:missing is not in the registry" in out.result["msg"]
    assert registry.writes() == []


def test_image_tag_fails_when_the_registry_re_serialises_the_manifest(aws, registry):
    digest = registry.put(REPO, "abc", manifest(1))
    original = registry.put

    def reformat(repo, tag, body, ctype=MANIFEST_TYPE):
        return original(repo, tag, body + b"\n", ctype)

    registry.put = reformat
    out = run_module(ecr_image_tag, tag_args(registry, source=digest, tag="latest"), Client(aws))
    assert out.failed and "re-serialised" in out.result["msg"]
