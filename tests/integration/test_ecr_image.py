"""ecr_image role, for real: podman builds flow_app/Dockerfile on the local stack's base image (a real
Debian + CPython 3.12 + Prefect root filesystem, scripts/base_image.py, imported by the stack's `up`),
pip really installs flow_app/requirements.txt, the image is pushed to the loopback docker-registry and
then run the way the Fargate stand-in runs it (`buildah run --isolation chroot --network host`); moto
stands in for the ECR API (repository, token).

Scenario order (STYLE rule 11): check mode (predicts, writes nothing) -> real run (builds, pushes) ->
the image runs (Prefect, the ECS worker, the flow) -> second run (changed=0, no AWS write, no push) ->
Dockerfile change (new tag) -> moving tag -> drift (check mode reports it, the next run repairs it) -> teardown keeps images without the data opt-in, deletes with it.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import boto3
import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = "tests/integration/playbooks/ecr_image.yml"
MANIFEST_TYPES = ", ".join([
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
])
LABEL = "io.github.dataops.prefect-fargate.content-hash"


# ---------------------------------------------------------------------------------------------- helpers
def registry_get(stack, path: str, accept: str = MANIFEST_TYPES) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"http://{stack.registry_address()}{path}", headers={"Accept": accept})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def registry_tags(stack, repo: str) -> list[str]:
    status, _, body = registry_get(stack, f"/v2/{repo}/tags/list", accept="application/json")
    return sorted(json.loads(body).get("tags") or []) if status == 200 else []


def ecr_client(stack):
    return boto3.client("ecr", endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def image_config_and_files(stack, repo: str, tag: str, skip_layers: int = 0) -> tuple[dict, dict[str, bytes]]:
    """The image config and the regular files of its layers (after the first skip_layers), read back from the registry."""
    status, headers, body = registry_get(stack, f"/v2/{repo}/manifests/{tag}")
    assert status == 200, body
    manifest = json.loads(body)
    _, _, config = registry_get(stack, f"/v2/{repo}/blobs/{manifest['config']['digest']}", accept="*/*")
    files: dict[str, bytes] = {}
    for layer in manifest["layers"][skip_layers:]:
        _, _, blob = registry_get(stack, f"/v2/{repo}/blobs/{layer['digest']}", accept="*/*")
        data = gzip.decompress(blob) if blob[:2] == b"\x1f\x8b" else blob
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                if member.isfile():
                    files["/" + member.name.lstrip("./")] = tar.extractfile(member).read()
    return json.loads(config), files


def containers(storage: Path, *args: str, tool: str = "buildah", check: bool = True, timeout: int = 300):
    """podman/buildah on the stack's image storage (`up` writes base-storage.conf, the role the same as storage.conf)."""
    env = {**os.environ, "CONTAINERS_STORAGE_CONF": str(storage / "base-storage.conf")}
    # stdin: buildah run switches an inherited stdin to non-blocking, which breaks the next ansible-playbook.
    result = subprocess.run([tool, *args], env=env, capture_output=True, text=True, timeout=timeout,
                            stdin=subprocess.DEVNULL)
    if check:
        assert result.returncode == 0, f"{tool} {' '.join(args)}: {result.stdout[-2000:]}{result.stderr[-3000:]}"
    return result


# --------------------------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def ecr(local_stack, tmp_path_factory):
    """The stack's image storage with its base image (`up` imports it), and a copy of flow_app's build files.

    The storage folder, the base image and the build volumes (the host's CA bundle for pip) come from
    inventories/local, as for site.yml."""
    storage = Path(local_stack.state_dir()) / "containers"
    base = local_stack.local_stack_script.BASE_IMAGE
    assert containers(storage, "image", "exists", base, tool="podman", check=False).returncode == 0, \
        f"{base} is not in {storage}: the stack's `up` imports it (scripts/base_image.py)"
    app = tmp_path_factory.mktemp("flow_app")
    for name in ("Dockerfile", "requirements.txt"):
        shutil.copy(REPO / "flow_app" / name, app / name)
    shutil.copytree(REPO / "flow_app" / "flow_common", app / "flow_common", ignore=shutil.ignore_patterns("__pycache__"))
    repo = f"ecr-test-{uuid.uuid4().hex[:8]}"

    def run(**extra):
        extra_vars = {
            "ecr_test_repository": repo,
            "ecr_image_dockerfile": str(app / "Dockerfile"),
            "ecr_image_builder": "podman",
            **extra,
        }
        check = extra_vars.pop("_check", False)
        diff = extra_vars.pop("_diff", False)
        started = time.monotonic()
        result = local_stack.run_playbook(PLAYBOOK, extra_vars=extra_vars, check=check, diff=diff)
        result.seconds = time.monotonic() - started
        return result

    yield {"run": run, "repo": repo, "app": app, "stack": local_stack, "storage": storage, "base": base}
    # Leave nothing behind in moto or the registry, whatever happened above.
    run(ecr_image_state="absent", ecr_image_delete_data=True)


def changed(result) -> list[str]:
    """Names of the changed tasks without the "ecr_image : " role prefix."""
    return [name.split(" : ", 1)[-1] for name in result.changed_tasks]


def mutating(calls):
    return [c.action or f"{c.method} {c.url}" for c in calls if c.deployer_write]


# ------------------------------------------------------------------------------------------------ tests
def test_check_mode_on_an_empty_account_writes_nothing(ecr):
    stack, repo = ecr["stack"], ecr["repo"]
    recorder = stack.MotoRecorder().start()
    result = ecr["run"](_check=True)
    calls = recorder.calls()
    assert result.rc == 0, result.failed_messages or result.stdout[-3000:]
    assert "Report the build and push that would happen" in changed(result)
    assert mutating(calls) == []
    assert registry_tags(stack, repo) == []
    with pytest.raises(ecr_client(stack).exceptions.RepositoryNotFoundException):
        ecr_client(stack).describe_repositories(repositoryNames=[repo])


def test_builds_and_pushes_under_the_content_hash_tag(ecr):
    stack, repo = ecr["stack"], ecr["repo"]
    result = ecr["run"]()
    assert result.rc == 0, result.failed_messages or result.stdout[-3000:]
    print(f"cold build+push run: {result.seconds:.1f}s")
    tag = result.facts("ecr_image__tag")
    assert len(tag) == 16 and int(tag, 16) >= 0
    assert result.facts("ecr_image__image_uri") == f"{stack.registry_address()}/{repo}:{tag}"
    assert result.facts("ecr_image__repository_uri") == f"{stack.registry_address()}/{repo}"
    assert result.facts("ecr_image__pushed") is True
    assert "Build and push with podman" in changed(result)
    # moto's token password is "<account>-auth-token": it must not leak into any output.
    assert "-auth-token" not in result.stdout + result.stderr

    # The manifest is in the registry under exactly that tag, and its digest is exported.
    status, headers, _ = registry_get(stack, f"/v2/{repo}/manifests/{tag}")
    assert status == 200
    assert headers["Docker-Content-Digest"] == result.facts("ecr_image__digest")
    assert registry_tags(stack, repo) == [tag]

    # The image is the real flow_app/Dockerfile built on the base: non-root user, work dir, label with
    # the full content hash, the base's entrypoint, and pip's install of the pins in the RUN layer.
    base_layers = int(containers(ecr["storage"], "image", "inspect", ecr["base"], "--format",
                                 "{{len .RootFS.Layers}}", tool="podman").stdout)
    config, files = image_config_and_files(stack, repo, tag, skip_layers=base_layers)
    assert config["config"]["User"] == "10001:10001"
    assert config["config"]["WorkingDir"] == "/opt/prefect/flows"
    assert config["config"]["Labels"][LABEL].startswith(tag)
    assert config["config"]["Entrypoint"] == ["/usr/bin/tini", "-g", "--", "/opt/prefect/entrypoint.sh"]
    assert "PREFECT_HOME=/home/prefect/.prefect" in config["config"]["Env"]
    site = "/usr/local/lib/python3.12/site-packages"
    for dist in ("prefect_aws-0.7.12", "beautifulsoup4-4.15.0", "soupsieve-4.1.3", "lxml-6.1.3"):
        assert f"{site}/{dist}.dist-info/METADATA" in files, f"{dist} not installed by the RUN step"
    assert any(name.startswith(f"{site}/prefect_aws/") and name.endswith(".pyc") for name in files), "no byte code"
    assert b"prefect:x:10001:10001::/home/prefect:/usr/sbin/nologin" in files["/etc/passwd"]
    # requirements.txt is bind-mounted, not copied: its content must not be in any layer. buildah 1.28
    # (Debian 12) sometimes leaves an empty mount-point placeholder behind, which holds nothing.
    assert files.get("/tmp/requirements.txt", b"") == b"", "requirements.txt content was baked into the image"
    # The host's CA bundle was mounted over the base's for the RUN step only (ecr_image_build_volumes).
    assert "/etc/ssl/certs/ca-certificates.crt" not in files
    ecr["image"] = result.facts("ecr_image__image_uri")

    # ECR side (moto): scan on push, immutable tags, lifecycle policy keeping the last N, tags.
    client = ecr_client(stack)
    described = client.describe_repositories(repositoryNames=[repo])["repositories"][0]
    assert described["imageScanningConfiguration"]["scanOnPush"] is True
    assert described["imageTagMutability"] == "IMMUTABLE"
    policy = json.loads(client.get_lifecycle_policy(repositoryName=repo)["lifecyclePolicyText"])
    assert policy["rules"][0]["selection"] == {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 10}
    tags = {t["Key"]: t["Value"] for t in client.list_tags_for_resource(resourceArn=described["repositoryArn"])["tags"]}
    assert tags == {"Project": "prefect-elt", "Environment": "local", "ManagedBy": "ansible"}


def image_run(ecr, ctr: str, *command: str, env: dict | None = None, check: bool = True):
    """Run a command in a working container of the image as the Fargate stand-in runs a task: chroot
    isolation, the host's network, the image's user (10001)."""
    flags = [f"--env={key}={value}" for key, value in (env or {}).items()]
    args = ("run", "--isolation", "chroot", "--network", "host", *flags, ctr, "--", *command)
    result = containers(ecr["storage"], *args, check=check)
    # buildah 1.28's chroot run has once returned 0 with no output at all for `id -u` on a loaded machine (CI,
    # load ~10): a command that succeeded yet printed nothing is run again, at most twice, before asserting.
    for _ in range(2):
        if not (result.returncode == 0 and not result.stdout and not result.stderr and command[0] in PRINTING):
            break
        result = containers(ecr["storage"], *args, check=check)
    return result


# Commands whose success always prints something (what image_run retries when buildah lost their output).
PRINTING = {"id", "prefect"}


@pytest.fixture
def flow_container(ecr):
    """A buildah working container of the flow image (built by the previous test, or now)."""
    image = ecr.get("image") or ecr["run"]().facts("ecr_image__image_uri")
    ctr = containers(ecr["storage"], "from", "--pull-never", image).stdout.strip().splitlines()[-1]
    yield ctr
    containers(ecr["storage"], "rm", ctr, check=False)


def test_the_image_runs_prefect_the_ecs_worker_and_the_flow(ecr, flow_container):
    stack, ctr = ecr["stack"], flow_container
    assert image_run(ecr, ctr, "id", "-u").stdout.strip() == "10001"
    version = image_run(ecr, ctr, "prefect", "version").stdout
    assert re.search(r"^Version:\s+3\.9\.1$", version, re.M), version
    assert re.search(r"prefect-aws:\s+0\.7\.12", version), version
    image_run(ecr, ctr, "python", "-c", "import bs4, lxml.etree, prefect_aws; from prefect_aws.workers import ECSWorker")
    # flow_common, the code both flows share, comes with the image (a flow pulls only its own package).
    image_run(ecr, ctr, "python", "-c", "from flow_common import retry_on_io, is_transient")
    # pip really installed flow_app/requirements.txt, consistent with what the base has.
    freeze = image_run(ecr, ctr, "python", "-m", "pip", "freeze").stdout.split()
    pinned = [line.strip() for line in (REPO / "flow_app" / "requirements.txt").read_text().splitlines()
              if line.strip() and not line.startswith("#")]
    assert set(pinned) <= set(freeze), sorted(set(pinned) - set(freeze))
    image_run(ecr, ctr, "python", "-m", "pip", "check")

    # The ECS worker, started through the image's entrypoint (tini + entrypoint.sh) as a task would be:
    # it creates its ecs pool on the stack's Prefect server, registers itself, polls once and exits.
    pool = f"ecr-image-test-{uuid.uuid4().hex[:8]}"
    prefect_env = {"PREFECT_API_URL": stack.prefect_api_url()}
    # What ECS gives a task: the region; the emulator's endpoint and test credentials stand in for the task role.
    aws = {"AWS_ENDPOINT_URL": stack.moto_url(), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "AWS_REGION": "us-east-1"}
    try:
        image_run(ecr, ctr, "/usr/bin/tini", "-s", "-g", "--", "/opt/prefect/entrypoint.sh",
                  "prefect", "worker", "start", "--pool", pool, "--type", "ecs", "--run-once",
                  env={**prefect_env, **aws})
        assert stack.prefect_api("GET", f"/work_pools/{pool}")["type"] == "ecs"
        assert stack.prefect_api("POST", f"/work_pools/{pool}/workers/filter", {}) != []
    finally:
        with contextlib.suppress(urllib.error.HTTPError):
            stack.prefect_api("DELETE", f"/work_pools/{pool}")

    # The flow, with its code where pull_from_s3 puts it: one run against the fixture server, the
    # stack's Prefect server and emulated S3, as the image's non-root user.
    s3 = boto3.client("s3", endpoint_url=stack.moto_url(), region_name="us-east-1",
                      aws_access_key_id="testing", aws_secret_access_key="testing")
    bucket = f"ecr-image-test-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    try:
        for package in ("gainers_elt", "gainers_digest"):
            containers(ecr["storage"], "copy", "--chown", "10001:10001", ctr, str(REPO / "flow_app" / package),
                       f"/opt/prefect/flows/{package}")
        image_run(ecr, ctr, "python", "-c", "import gainers_digest.flow")
        run = image_run(ecr, ctr, "python", "-m", "gainers_elt", "--results-bucket", bucket,
                        "--source-url", f"{stack.fixtures_url()}/gainers-losers/",
                        "--fx-api-url", f"{stack.fixtures_url()}/latest", env={**prefect_env, **aws})
        result = json.loads(re.search(r"^\{$.*^\}$", run.stdout, re.M | re.S).group(0))
        assert result["rows"] == 30
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])] == [result["key"]]
    finally:
        for obj in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=obj["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_second_run_builds_pushes_and_writes_nothing(ecr):
    stack, repo = ecr["stack"], ecr["repo"]
    before = registry_tags(stack, repo)
    recorder = stack.MotoRecorder().start()
    result = ecr["run"]()
    calls = recorder.calls()
    assert result.rc == 0, result.failed_messages
    print(f"no-op run: {result.seconds:.1f}s")
    assert result.changed_tasks == []
    assert result.stats()["changed"] == 0
    assert mutating(calls) == []
    assert result.facts("ecr_image__pushed") is False
    assert registry_tags(stack, repo) == before
    names = [name.split(" : ", 1)[-1] for name, res in result.task_results() if not res.get("skipped")]
    assert "Build and push with podman" not in names
    # One reader process decides: no write module, no login, no registry request of its own runs on a no-op.
    assert "Read the repository and the image tags and compare them with the wanted ones" in names
    assert set(names) & set(WRITES + ["Get an ECR registry login", "Check that the registry has the pushed tag"]) == set()

    # Check mode on the deployed repository predicts nothing and makes no AWS write either.
    recorder = stack.MotoRecorder().start()
    check = ecr["run"](_check=True)
    assert check.rc == 0 and check.changed_tasks == [], check.changed_tasks
    assert mutating(recorder.calls()) == []


def test_changing_the_dockerfile_gives_a_new_tag(ecr):
    stack, repo, app = ecr["stack"], ecr["repo"], ecr["app"]
    old_tag = registry_tags(stack, repo)
    dockerfile = app / "Dockerfile"
    original = dockerfile.read_text()
    dockerfile.write_text(original + 'LABEL org.opencontainers.image.version="test-change"\n')
    try:
        result = ecr["run"]()
    finally:
        dockerfile.write_text(original)
    assert result.rc == 0, result.failed_messages
    new_tag = result.facts("ecr_image__tag")
    assert new_tag not in old_tag
    assert registry_tags(stack, repo) == sorted(old_tag + [new_tag])
    # A build argument is an input too.
    result = ecr["run"](ecr_image_build_args={"BASE_IMAGE": ecr["base"], "EXTRA": "1"})
    assert result.rc == 0, result.failed_messages
    assert result.facts("ecr_image__tag") not in [*old_tag, new_tag]


def test_moving_tag_follows_the_image_when_mutable(ecr):
    stack, repo = ecr["stack"], ecr["repo"]
    extra = {"ecr_image_tag_mutability": "MUTABLE", "ecr_image_moving_tag": "latest"}
    result = ecr["run"](**extra)
    assert result.rc == 0, result.failed_messages
    tag = result.facts("ecr_image__tag")
    _, hash_headers, _ = registry_get(stack, f"/v2/{repo}/manifests/{tag}")
    _, latest_headers, _ = registry_get(stack, f"/v2/{repo}/manifests/latest")
    assert latest_headers["Docker-Content-Digest"] == hash_headers["Docker-Content-Digest"]
    assert "Put the manifest under the moving tag" in changed(result)
    ecr["tag"] = tag
    again = ecr["run"](**extra)
    assert again.rc == 0 and again.changed_tasks == [], again.changed_tasks


def test_drift_is_reported_in_check_mode_and_repaired(ecr):
    """Scan on push, the repository's tags and the moving tag changed behind the stack's back: check mode (with
    --diff) reports each change and writes nothing; the next run writes each back; the one after changes nothing."""
    stack, repo = ecr["stack"], ecr["repo"]
    extra = {"ecr_image_tag_mutability": "MUTABLE", "ecr_image_moving_tag": "latest"}
    client = ecr_client(stack)
    arn = client.describe_repositories(repositoryNames=[repo])["repositories"][0]["repositoryArn"]
    client.put_image_scanning_configuration(repositoryName=repo, imageScanningConfiguration={"scanOnPush": False})
    client.tag_resource(resourceArn=arn, tags=[{"Key": "Environment", "Value": "drifted"}, {"Key": "Extra", "Value": "x"}])
    # Point latest at another image of the repository (an older content-hash tag), as a manual push would.
    current = ecr.get("tag") or ecr["run"](**extra, _check=True).facts("ecr_image__tag")
    other = next(tag for tag in registry_tags(stack, repo) if tag not in (current, "latest"))
    status, headers, body = registry_get(stack, f"/v2/{repo}/manifests/{other}")
    assert status == 200
    put = urllib.request.Request(f"http://{stack.registry_address()}/v2/{repo}/manifests/latest", data=body, method="PUT",
                                 headers={"Content-Type": headers["Content-Type"]})
    urllib.request.urlopen(put, timeout=10).close()
    moved = headers["Docker-Content-Digest"]

    recorder = stack.MotoRecorder().start()
    check = ecr["run"](**extra, _check=True, _diff=True)
    assert check.rc == 0, check.failed_messages
    assert sorted(changed(check)) == sorted(WRITES), check.changed_tasks
    assert mutating(recorder.calls()) == []
    assert registry_get(stack, f"/v2/{repo}/manifests/latest")[1]["Docker-Content-Digest"] == moved
    assert client.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageScanningConfiguration"]["scanOnPush"] is False

    result = ecr["run"](**extra)
    assert result.rc == 0, result.failed_messages
    assert sorted(changed(result)) == sorted(WRITES), result.changed_tasks
    assert client.describe_repositories(repositoryNames=[repo])["repositories"][0]["imageScanningConfiguration"]["scanOnPush"] is True
    tags = {t["Key"]: t["Value"] for t in client.list_tags_for_resource(resourceArn=arn)["tags"]}
    assert tags == {"Project": "prefect-elt", "Environment": "local", "ManagedBy": "ansible"}
    _, hash_headers, _ = registry_get(stack, f"/v2/{repo}/manifests/{current}")
    assert registry_get(stack, f"/v2/{repo}/manifests/latest")[1]["Docker-Content-Digest"] == hash_headers["Docker-Content-Digest"]
    again = ecr["run"](**extra)
    assert again.rc == 0 and again.changed_tasks == [], again.changed_tasks


# The role's write tasks: each runs only when the reader finds its resource out of sync.
WRITES = ["Create or update the ECR repository", "Tag the ECR repository", "Put the manifest under the moving tag"]


def test_teardown_keeps_images_without_the_data_opt_in(ecr):
    stack, repo = ecr["stack"], ecr["repo"]
    result = ecr["run"](ecr_image_state="absent")
    assert result.rc == 0, result.failed_messages
    assert result.facts("ecr_image__kept") == [repo]
    assert result.changed_tasks == []
    assert registry_tags(stack, repo) != []
    ecr_client(stack).describe_repositories(repositoryNames=[repo])  # still there

    result = ecr["run"](ecr_image_state="absent", ecr_image_delete_data=True)
    assert result.rc == 0, result.failed_messages
    assert result.facts("ecr_image__kept") == []
    assert registry_tags(stack, repo) == []
    with pytest.raises(ecr_client(stack).exceptions.RepositoryNotFoundException):
        ecr_client(stack).describe_repositories(repositoryNames=[repo])

    again = ecr["run"](ecr_image_state="absent", ecr_image_delete_data=True)
    assert again.rc == 0 and again.changed_tasks == [], again.changed_tasks


def test_existing_image_is_used_without_build_or_repository(ecr):
    stack = ecr["stack"]
    uri = "123456789012.dkr.ecr.us-east-1.amazonaws.com/other:1.2.3"
    recorder = stack.MotoRecorder().start()
    result = ecr["run"](ecr_image_build=False, ecr_image_uri=uri, ecr_test_repository="never-created")
    assert result.rc == 0, result.failed_messages
    assert mutating(recorder.calls()) == []
    assert result.facts("ecr_image__image_uri") == uri
    assert result.facts("ecr_image__repository_uri") == uri.rsplit(":", 1)[0]
    assert result.facts("ecr_image__tag") == "1.2.3"
