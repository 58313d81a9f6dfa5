"""prefect_server role without AWS: its filters (database URL, public URL; the task-definition fingerprint is the
collection's filter, test_ecs_taskdef_fingerprint.py) and its validate entry point (argument spec +
tasks/validate.yml), which refuses bad inputs naming the variable and never shows the auth string."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = REPO / ".venv" / "bin"
SPEC = importlib.util.spec_from_file_location("prefect_server_filters", REPO / "roles/prefect_server/filter_plugins/prefect_server.py")
filters = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(filters)


@pytest.mark.parametrize("password", ["plain", "p@ss:w/rd?#%", "ünïcode+space here"])
def test_database_url_quotes_user_and_password(password):
    url = filters.database_url(password, "prefect", "db.example.internal", 5432, "prefect")
    parts = urlsplit(url)
    assert parts.scheme == "postgresql+asyncpg"
    assert unquote(parts.password) == password and parts.username == "prefect"
    assert parts.hostname == "db.example.internal" and parts.port == 5432 and parts.path == "/prefect"


def test_database_url_needs_a_host():
    with pytest.raises(ValueError, match="host"):
        filters.database_url("pw", "prefect", "", 5432)


@pytest.mark.parametrize("given, scheme, dns, expected", [
    ("https://prefect.example.com/", "http", "x.elb.amazonaws.com", "https://prefect.example.com"),
    ("", "https", "My-ALB-1.us-east-1.elb.amazonaws.com", "https://my-alb-1.us-east-1.elb.amazonaws.com"),
    ("", "http", "", ""),
])
def test_public_url(given, scheme, dns, expected):
    assert filters.public_url(given, scheme, dns) == expected


AUTH = "admin:s3cret-never-shown"
GOOD = {"prefect_server_enabled": True, "prefect_server_name": "prefect-elt-dev", "prefect_server_auth_string": AUTH}
BAD = {
    "ok": ({}, None),
    "auth_missing": ({"prefect_server_auth_string": ""}, "prefect_server_auth_string"),
    "auth_no_colon": ({"prefect_server_auth_string": "adminpassword"}, "prefect_server_auth_string"),
    "backups_off": ({"prefect_server_db_backup_retention_days": 0}, "prefect_server_db_backup_retention_days"),
    "port_postgres": ({"prefect_server_port": 5432}, "prefect_server_port"),
    "public_url_api": ({"prefect_server_public_url": "https://p.example.com/api"}, "prefect_server_public_url"),
    "class": ({"prefect_server_db_instance_class": "t4g.micro"}, "prefect_server_db_instance_class"),
    "storage_type": ({"prefect_server_db_storage_type": "magnetic"}, "prefect_server_db_storage_type"),
    "env_secret": ({"prefect_server_extra_env": {"PREFECT_API_KEY": "x"}}, "prefect_server_extra_env"),
    # Disabled (Cloud or external mode): no auth string needed.
    "disabled": ({"prefect_server_enabled": False, "prefect_server_auth_string": ""}, None),
}


@pytest.fixture(scope="module")
def validated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("prefect_server_validate")
    hosts = {name: {"ansible_connection": "local", "ansible_python_interpreter": str(BIN / "python"), **GOOD, **values}
             for name, (values, _) in BAD.items()}
    (tmp / "hosts.yml").write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    (tmp / "play.yml").write_text(yaml.safe_dump([{
        "name": "Validate", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Validate the role", "ansible.builtin.include_role": {"name": "prefect_server", "tasks_from": "validate"}}],
    }]))
    env = {**os.environ, "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"), "ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
           "PATH": f"{BIN}:{os.environ['PATH']}"}
    proc = subprocess.run([str(BIN / "ansible-playbook"), str(tmp / "play.yml"), "-i", str(tmp / "hosts.yml"), "--forks", "10"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    data = json.loads(proc.stdout[proc.stdout.index("{"):])
    failures = {}
    for play in data["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    failures[host] = result.get("msg", "")
    return failures, proc.stdout + proc.stderr


@pytest.mark.parametrize("case", sorted(BAD))
def test_validate_refuses_naming_the_variable(validated, case):
    failures, output = validated
    expected = BAD[case][1]
    if expected is None:
        assert case not in failures, failures.get(case)
    else:
        assert case in failures, f"{case} was accepted"
        assert expected in str(failures[case])
    assert AUTH.split(":")[1] not in output
