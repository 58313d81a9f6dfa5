"""Run one AnsibleAWSModule's main() in-process with a given client and catch how it exits.

For module tests that script the client themselves (a mock, or a moto client wrapped to accept aws_retry=);
tests/unit/plugins/modules/aws_stubs.py is the Stubber-based runner that also checks AWSRetry."""

from __future__ import annotations

from unittest import mock

import pytest
from ansible.module_utils.testing import patch_module_args

AWS_MODULE = "ansible_collections.amazon.aws.plugins.module_utils.modules.AnsibleAWSModule"


class Client:
    """A boto3 client as AnsibleAWSModule hands it out: its calls accept (and drop) aws_retry=."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        attr = getattr(self._client, name)
        if not callable(attr) or name == "get_paginator":
            return attr
        return lambda *a, aws_retry=None, **kw: attr(*a, **kw)


class Exit(Exception):
    """How the module ended: exit_json (failed False) or fail_json (failed True), with its result."""

    def __init__(self, result: dict, failed: bool):
        super().__init__(result)
        self.result, self.failed = result, failed


def run_module(module, args: dict, client) -> Exit:
    """Run module.main() with args (region us-east-1 unless given) and `client` as every client it asks for."""
    def exit_json(self, **kwargs):
        raise Exit(kwargs, False)

    def fail_json(self, **kwargs):
        raise Exit(kwargs, True)

    with patch_module_args({"region": "us-east-1", **args}), \
            mock.patch(f"{AWS_MODULE}.client", return_value=client), \
            mock.patch(f"{AWS_MODULE}.exit_json", exit_json), \
            mock.patch(f"{AWS_MODULE}.fail_json", fail_json), \
            pytest.raises(Exit) as caught:
        module.main()
    return caught.value
