"""Repository-level checks: inventories and precedence, role specs vs defaults, playbook syntax, build."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
ENV = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}"}
ROLES = sorted(p.name for p in (REPO / "roles").iterdir() if (p / "tasks" / "main.yml").exists())
INVENTORIES = ["local", "dev", "prod"]


def host_vars(env: str) -> dict:
    out = subprocess.run(
        [str(BIN / "ansible-inventory"), "-i", f"inventories/{env}", "--host", "localhost"],
        cwd=REPO, env=ENV, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out)


def test_environment_overrides_a_shared_default():
    shared = yaml.safe_load((REPO / "group_vars/all/stack.yml").read_text())
    assert shared["aws_region"] == "us-east-1"
    dev = host_vars("dev")
    # dev's own group beats the shared group_vars/all ...
    assert dev["aws_region"] == "ap-southeast-2"
    # ... also when a play resolves it (templated, as the roles see it).
    result = subprocess.run([str(BIN / "ansible"), "localhost", "-i", "inventories/dev", "-m", "ansible.builtin.debug",
                             "-a", "msg={{ aws_region }}/{{ stack_name }}"], cwd=REPO, env=ENV, capture_output=True, text=True)
    assert "ap-southeast-2/prefect-elt-dev" in result.stdout, result.stdout + result.stderr
    # ... while what dev does not set still comes from the shared defaults.
    assert dev["stack_project"] == shared["stack_project"]
    assert dev["stack_env"] == "dev"


@pytest.mark.parametrize("env", INVENTORIES)
def test_every_inventory_names_its_environment(env):
    values = host_vars(env)
    assert values["stack_env"] == env
    assert values["ansible_connection"] == "dataops.prefect_fargate.local_forkserver"


def test_no_clear_text_secret_is_committed():
    tracked = subprocess.run(["git", "ls-files", "inventories"], cwd=REPO, capture_output=True, text=True).stdout.split()
    for path in tracked:
        if not (REPO / path).is_file() or (REPO / path).is_symlink():
            continue
        text = (REPO / path).read_text()
        if path.endswith("vault.yml"):
            assert text.startswith("$ANSIBLE_VAULT"), f"{path} must be ansible-vault encrypted"
        assert "pnu_" not in text or path.endswith(".example"), f"{path} looks like it holds a Prefect API key"


@pytest.mark.parametrize("role", ROLES)
def test_argument_spec_covers_every_default(role):
    defaults = yaml.safe_load((REPO / "roles" / role / "defaults/main.yml").read_text()) or {}
    specs = yaml.safe_load((REPO / "roles" / role / "meta/argument_specs.yml").read_text())["argument_specs"]
    options = specs["main"]["options"]
    assert set(defaults) - set(options) == set(), "defaults without an argument spec"
    for name, spec in options.items():
        assert name.startswith(f"{role}_"), f"{name} is not prefixed with {role}_"
        assert spec.get("description"), f"{name} has no description"
        if not spec.get("required"):
            assert name in defaults, f"optional {name} has no default in defaults/main.yml"
    assert specs.get("validate", {}).get("options") == options, "entry point 'validate' must mirror 'main'"


@pytest.mark.parametrize("role", ROLES)
def test_role_has_both_directions_and_docs(role):
    tasks = REPO / "roles" / role / "tasks"
    for name in ("main.yml", "validate.yml", "create.yml", "delete.yml"):
        assert (tasks / name).exists(), f"roles/{role}/tasks/{name} missing"
    assert (REPO / "roles" / role / "README.md").exists()


@pytest.mark.parametrize("playbook", ["site.yml", "teardown.yml"])
@pytest.mark.parametrize("env", INVENTORIES)
def test_playbook_syntax(playbook, env):
    result = subprocess.run([str(BIN / "ansible-playbook"), playbook, "-i", f"inventories/{env}", "--syntax-check"],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_collection_builds(tmp_path):
    result = subprocess.run([str(BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(tmp_path), "."],
                            cwd=REPO, env=ENV, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    (artifact,) = tmp_path.glob("dataops-prefect_fargate-*.tar.gz")
    names = tarfile.open(artifact).getnames()
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert any(n.startswith("roles/vpc/") for n in names)
    assert any(n.startswith("plugins/modules/") for n in names)
    assert not any(n.startswith((".venv", ".local-stack", "tests/", ".collections")) for n in names)
