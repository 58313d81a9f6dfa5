"""Run one AWS module of the collection against a real botocore client answering from botocore's Stubber: every
request must be the next scripted one, with exactly these parameters; the module must wrap its client with AWSRetry
(throttling retried, its sleeps skipped)."""

from __future__ import annotations

import boto3
import pytest
from ansible.module_utils.testing import patch_module_args
from botocore.stub import Stubber

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ..conftest import ModuleExit, ModuleFail


def throttled(operation, params):
    return ("error", operation, "ThrottlingException", params)


def run(module, service, args, script, check_mode=False, diff=True, expect_fail=False):
    """Run `module` against scripted answers: items are (operation, response, params) or
    ("error", operation, code, params)."""
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="k", aws_secret_access_key="s")
    stubber = Stubber(client)
    for item in script:
        if item[0] == "error":
            _unused, operation, code, params = item
            stubber.add_client_error(operation, service_error_code=code, expected_params=params)
        else:
            operation, response, params = item
            stubber.add_response(operation, response, params)
    wrapped = {}

    def fake_client(self, name, retry_decorator=None, **kwargs):
        assert name == service
        wrapped["retry"] = retry_decorator is not None
        if retry_decorator is None:  # a client without retries: throttling fails at once
            return client
        return RetryingBotoClientWrapper(client, retry_decorator)

    full = {**args, "_ansible_check_mode": check_mode, "_ansible_diff": diff}
    with patch_module_args(full), stubber, pytest.MonkeyPatch.context() as mp:
        mp.setattr(AnsibleAWSModule, "client", fake_client)
        mp.setattr("time.sleep", lambda seconds: None)
        with pytest.raises(ModuleFail if expect_fail else ModuleExit) as info:
            module.main()
        if not expect_fail:
            stubber.assert_no_pending_responses()
    # A module that fails on its arguments may end before it makes a client; any client it makes retries.
    assert wrapped.get("retry", expect_fail), "the module must wrap its client with AWSRetry (retry_decorator)"
    return info.value.result
