"""ecr_image role without servers: the real flow_app/Dockerfile is linted, and bad inputs fail in
validate.yml with a message naming the variable, before any AWS call."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
APP = REPO / "flow_app"
BUILDERS = {"podman", "buildah", "docker"}
DEFAULTS = yaml.safe_load((REPO / "roles/ecr_image/defaults/main.yml").read_text())


# ------------------------------------------------------------------------------- flow_app/Dockerfile
def instructions(text: str) -> list[tuple[str, str]]:
    """Dockerfile instructions (keyword, arguments) with continuations joined and comments dropped."""
    logical, out = "", []
    for line in text.splitlines():
        if line.lstrip().startswith("#") and not logical:
            continue
        logical += line.rstrip("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            if logical.strip():
                keyword, _, args = logical.strip().partition(" ")
                out.append((keyword.upper(), args.strip()))
            logical = ""
    return out


DOCKERFILE = instructions((APP / "Dockerfile").read_text())


def test_base_image_is_the_official_image_of_the_pinned_prefect():
    pinned = re.search(r"^prefect==(\S+)$", (REPO / "requirements.txt").read_text(), re.M).group(1)
    assert DOCKERFILE[0] == ("ARG", f"BASE_IMAGE=prefecthq/prefect:{pinned}-python3.12")
    assert [args for kw, args in DOCKERFILE if kw == "FROM"] == ["${BASE_IMAGE}"]


def test_runs_as_a_numeric_non_root_user():
    users = [args for kw, args in DOCKERFILE if kw == "USER"]
    assert users and re.fullmatch(r"[1-9][0-9]*:[1-9][0-9]*", users[-1]), users
    assert DOCKERFILE[-1][0] in ("USER", "CMD", "ENTRYPOINT", "WORKDIR")
    assert [kw for kw, _ in DOCKERFILE].index("USER") > max(i for i, (kw, _) in enumerate(DOCKERFILE) if kw == "RUN")


def test_no_secrets_and_only_hashed_files_reach_the_image():
    for keyword, args in DOCKERFILE:
        if keyword in ("ENV", "ARG", "LABEL"):
            assert not re.search(r"(SECRET|PASSWORD|TOKEN|API_KEY|ACCESS_KEY)\w*=", args, re.I), args
        assert keyword not in ("ADD",), "use COPY or a bind mount, ADD fetches URLs and unpacks archives"
    sources = {m.group(1) for _, args in DOCKERFILE for m in re.finditer(r"source=([^,\s]+)", args)}
    sources |= {args.split()[0] for kw, args in DOCKERFILE if kw == "COPY" and not args.startswith("--from")}
    # a bind-mounted folder: every file in it (flow_common/)
    files = {f.relative_to(APP).as_posix() for source in sources for f in [APP / source, *(APP / source).rglob("*")]
             if f.is_file() and "__pycache__" not in f.parts}
    assert files and files <= set(DEFAULTS["ecr_image_context_files"]), "every file the Dockerfile reads must be hashed"
    runs = [args for kw, args in DOCKERFILE if kw == "RUN"]
    assert len(runs) == 1, "one RUN layer"
    assert "--no-cache-dir" in runs[0] and "pip check" in runs[0]


def test_dockerignore_keeps_the_context_to_the_hashed_files():
    lines = [line for line in (APP / ".dockerignore").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "*"
    assert {line[1:] for line in lines[1:]} == set(DEFAULTS["ecr_image_context_files"])


def test_every_requirement_is_pinned():
    lines = [line.strip() for line in (APP / "requirements.txt").read_text().splitlines()
             if line.strip() and not line.strip().startswith("#")]
    assert lines and all(re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[A-Za-z0-9_.+\-]+", line) for line in lines), lines


# ------------------------------------------------------------------------------------- bad inputs
# One playbook run, one inventory host per case (forks run them in parallel); AWS points at a closed
# port, so reaching any AWS module would fail with a connection error instead of the expected message.
CASES = {
    "unknown_builder": ({"ecr_image_builder": "kaniko"}, "ecr_image_builder"),
    "builder_not_installed": ({"ecr_image_builder": "buildah", "_path": "no-builders"}, "apt-get install"),
    "no_builder_at_all": ({"_path": "no-builders"}, "ecr_image_build: false"),
    "dockerfile_missing": ({"ecr_image_dockerfile": "/nonexistent/Dockerfile"}, "ecr_image_dockerfile"),
    "dockerfile_not_given": ({"ecr_image_dockerfile": ""}, "ecr_image_dockerfile must name an existing Dockerfile"),
    "context_file_missing": ({"ecr_image_context_files": ["requirements.txt", "nope.txt"]}, "ecr_image_context_files"),
    "moving_tag_on_immutable": ({"ecr_image_moving_tag": "latest"}, "ecr_image_moving_tag"),
    "insecure_without_override": ({"ecr_test_registry_override": ""}, "ecr_image_registry_insecure"),
    "bad_uri": ({"ecr_image_build": False, "ecr_image_uri": "example.com/flow"}, "ecr_image_uri"),
    "bad_repository_name": ({"ecr_test_repository": "Flow_Image"}, "ecr_image_repository_name"),
    "bad_keep": ({"ecr_image_keep_images": 0}, "ecr_image_keep_images"),
    "build_volume_not_absolute": ({"ecr_image_build_volumes": ["certs/ca.crt:/etc/ssl/certs/ca-certificates.crt"]},
                                  "ecr_image_build_volumes"),
    "build_volume_with_docker": ({"ecr_image_builder": "docker", "ecr_image_build_volumes": ["/etc/hosts:/etc/hosts:ro"]},
                                 "docker build has no --volume"),
    "build_volume_source_missing": ({"ecr_image_build_volumes": ["/nonexistent/ca.crt:/etc/ssl/certs/ca-certificates.crt:ro"]},
                                    "/nonexistent/ca.crt"),
}


@pytest.fixture(scope="module")
def bad_input_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ecr_bad_inputs")
    hosts = {}
    for name, (values, _) in CASES.items():
        values = {k: v for k, v in values.items() if not k.startswith("_")}
        hosts[name] = {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"),
                       "aws_region": "us-east-1", "aws_endpoint_url": "http://127.0.0.1:9",
                       "aws_access_key": "testing", "aws_secret_key": "testing", "local_registry": "127.0.0.1:9",
                       # The role ships no Dockerfile: the inventory gives the repo's (group_vars/all/roles.yml).
                       "ecr_image_dockerfile": str(APP / "Dockerfile"),
                       **values}
    inventory = tmp / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    # A PATH with every system command except the image builders ("not installed").
    no_builders = tmp / "bin"
    no_builders.mkdir()
    for folder in ("/usr/local/sbin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        for tool in Path(folder).iterdir() if Path(folder).is_dir() else []:
            if tool.name not in BUILDERS and not (no_builders / tool.name).exists():
                (no_builders / tool.name).symlink_to(tool)
    results = {}
    for path_kind in ("full", "no-builders"):
        names = [n for n, (values, _) in CASES.items() if values.get("_path", "full") == path_kind]
        env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
               "PATH": f"{BIN}:{no_builders}" if path_kind == "no-builders" else f"{BIN}:{os.environ['PATH']}"}
        proc = subprocess.run(
            [str(BIN / "ansible-playbook"), "tests/integration/playbooks/ecr_image.yml", "-i", str(inventory),
             "-e", json.dumps({"ecr_image_test_hosts": ",".join(names)}), "--forks", "10"],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=300,
        )
        data = json.loads(proc.stdout[proc.stdout.index("{"):])
        for play in data["plays"]:
            for task in play["tasks"]:
                for host, result in task["hosts"].items():
                    if result.get("failed"):
                        results[host] = (task["task"]["name"], result.get("msg", ""))
    return results


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_fails_in_validation_naming_the_variable(bad_input_run, case):
    assert case in bad_input_run, f"{case} did not fail"
    task, msg = bad_input_run[case]
    expected = CASES[case][1]
    assert expected in str(msg), msg
    # Failed in the argument spec or a validate.yml task - never in an AWS call.
    assert "arg spec" in task or task.split(" : ", 1)[-1].startswith(("Validate", "Fail when")), task
