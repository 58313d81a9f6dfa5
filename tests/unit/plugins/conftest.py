"""Harness for the collection's module unit tests: module args in, exit/fail captured, HTTP scripted."""

from __future__ import annotations

import sys
from pathlib import Path
from unittest import mock

import pytest

REPO = Path(__file__).resolve().parents[3]
# The repo is the dataops.prefect_fargate collection through this committed symlink.
if str(REPO / ".collections") not in sys.path:
    sys.path.insert(0, str(REPO / ".collections"))

from ansible.module_utils import basic  # noqa: E402
from ansible.module_utils.testing import patch_module_args  # noqa: E402

from ansible_collections.dataops.prefect_fargate.plugins.module_utils import prefect_api  # noqa: E402

API = "http://prefect.test/api"


class ModuleExit(Exception):
    def __init__(self, result: dict):
        super().__init__(result)
        self.result = result


class ModuleFail(Exception):
    def __init__(self, result: dict):
        super().__init__(result.get("msg"))
        self.result = result


def _exit_json(self, **kwargs):
    kwargs.setdefault("changed", False)
    raise ModuleExit(kwargs)


def _fail_json(self, msg="", **kwargs):
    kwargs["msg"] = msg
    kwargs["failed"] = True
    raise ModuleFail(kwargs)


@pytest.fixture(autouse=True)
def _capture_module_exit(monkeypatch):
    monkeypatch.setattr(basic.AnsibleModule, "exit_json", _exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", _fail_json)


class Call:
    """One scripted answer of PrefectClient.request: what we expect and what we return."""

    def __init__(self, method: str, path: str, result=None, body=mock.ANY):
        self.method, self.path, self.result, self.body = method, path, result, body

    def __repr__(self):
        return f"{self.method} {self.path}"


class ScriptedApi:
    """Replaces PrefectClient.request; answers in order and fails on any unexpected call."""

    def __init__(self, script: list[Call]):
        self.script = list(script)
        self.calls: list[tuple[str, str, object]] = []

    def __call__(self, client, method, path, body=None, allow_404=False, fail_on_error=True):
        self.calls.append((method.upper(), path, body))
        assert self.script, f"unexpected request {method} {path} (script exhausted)"
        expected = self.script.pop(0)
        assert (method.upper(), path) == (expected.method, expected.path), \
            f"expected {expected!r}, module sent {method} {path}"
        if expected.body is not mock.ANY:
            assert body == expected.body, f"{method} {path} body {body!r} != {expected.body!r}"
        return expected.result

    @property
    def writes(self):
        return [(m, p) for m, p, _ in self.calls
                if m != "GET" and not (m == "POST" and prefect_api._READ_ONLY_POST.search(p))]

    def assert_done(self):
        assert not self.script, f"module did not send: {self.script}"


@pytest.fixture
def run_module():
    """run_module(module, args, script, check_mode=False, diff=False) -> (result, api)."""

    def _run(module, args, script, check_mode=False, diff=False, expect_fail=False):
        api = ScriptedApi(script)
        full = {"api_url": API, **args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
        # the request helper is the only place HTTP happens: script its answers (side_effect)
        with patch_module_args(full), \
                mock.patch.object(prefect_api.PrefectClient, "request", autospec=True, side_effect=api):
            with pytest.raises(ModuleFail if expect_fail else ModuleExit) as info:
                module.main()
        if not expect_fail:
            api.assert_done()
        return info.value.result, api

    return _run
