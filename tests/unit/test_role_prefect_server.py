"""prefect_server role without AWS: its filters (database URL, public URL, task-definition fingerprint) and its
validate entry point (argument spec + tasks/validate.yml), which refuses bad inputs naming the variable and never
shows the auth string."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

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


WANTED = {
    "family": "s", "taskRoleArn": "", "executionRoleArn": "arn:exec", "networkMode": "awsvpc",
    "cpu": "1024", "memory": "2048", "requiresCompatibilities": ["FARGATE"],
    "runtimePlatform": {"cpuArchitecture": "X86_64", "operatingSystemFamily": "LINUX"},
    "containerDefinitions": [{
        "name": "prefect-server", "image": "img:1", "essential": True,
        "command": ["prefect", "server", "start", "--host", "0.0.0.0", "--port", "4200"],
        "environment": [{"name": "B", "value": "2"}, {"name": "A", "value": "1"}],
        "secrets": [{"name": "PREFECT_SERVER_API_AUTH_STRING", "valueFrom": "arn:auth"}],
        "portMappings": [{"containerPort": 4200, "hostPort": 4200, "protocol": "tcp"}],
        "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/ecs/s-server"}},
    }],
}


def test_fingerprint_equal_for_what_ecs_returns():
    described = dict(camel_dict_to_snake_dict(WANTED), status="ACTIVE", revision=3)
    described["container_definitions"][0]["environment"].reverse()
    described["container_definitions"][0]["log_configuration"]["options"] = {"awslogs-group": "/ecs/s-server"}
    assert filters.taskdef_fingerprint(described) == filters.taskdef_fingerprint(WANTED)


@pytest.mark.parametrize("change", [
    lambda d: d.update(memory="4096"),
    lambda d: d["containerDefinitions"][0].update(image="img:2"),
    lambda d: d["containerDefinitions"][0]["secrets"].append({"name": "X", "valueFrom": "arn:x"}),
    lambda d: d["containerDefinitions"][0]["environment"].append({"name": "PREFECT_UI_API_URL", "value": "http://b/api"}),
])
def test_fingerprint_differs_on_content(change):
    changed = json.loads(json.dumps(WANTED))
    change(changed)
    assert filters.taskdef_fingerprint(changed) != filters.taskdef_fingerprint(WANTED)


def test_fingerprint_of_nothing_or_inactive_is_empty():
    assert filters.taskdef_fingerprint(None) == {}
    assert filters.taskdef_fingerprint(dict(WANTED, status="INACTIVE")) == {}


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
