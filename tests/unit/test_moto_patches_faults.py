"""The fault part of the local stack's moto patch layer (scripts/moto_patches_faults.py): AWS throttling on demand.

The share and the seed are tested on the injector itself; the error shapes, the exclusions and the
runtime switch on a real moto server (moto's ThreadedMotoServer on loopback, patch applied), read by
botocore the way the amazon.aws modules read them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from scripts import moto_patches, moto_patches_faults
from scripts.moto_patches_faults import FaultInjector, Request
from tests.helpers.moto_testing import threaded_moto_server

NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def decisions(injector: FaultInjector, n: int = 400) -> list[bool]:
    ops = ["DescribeVpcs", "CreateSubnet", "DescribeSubnets", "CreateTags"]
    return [injector.decide(Request("ec2", ops[i % len(ops)], "ec2")) is not None for i in range(n)]


@pytest.mark.parametrize("rate", [0.05, 0.2, 0.5])
def test_the_share_of_faulted_requests_is_the_rate(rate):
    injector = FaultInjector()
    injector.configure(rate=rate, seed=3)
    hits = decisions(injector, 4000)
    assert abs(sum(hits) / len(hits) - rate) < 0.03
    assert injector.state()["seen"] == 4000 and injector.state()["injected"] == sum(hits)


def test_rate_zero_faults_nothing_and_rate_one_faults_everything():
    injector = FaultInjector()
    assert not any(decisions(injector))  # off by default
    injector.configure(rate=1.0, seed=1)
    assert all(decisions(injector))


def test_the_same_seed_faults_the_same_calls_and_another_seed_others():
    first, second, other = FaultInjector(), FaultInjector(), FaultInjector()
    first.configure(rate=0.2, seed=7)
    second.configure(rate=0.2, seed=7)
    other.configure(rate=0.2, seed=8)
    assert decisions(first) == decisions(second)
    assert decisions(first) != decisions(other)


def test_the_decision_of_an_operation_does_not_depend_on_other_traffic():
    """Another client's requests in between (the worker, a waiter) do not shift which calls are faulted."""
    alone, busy = FaultInjector(), FaultInjector()
    alone.configure(rate=0.3, seed=11)
    busy.configure(rate=0.3, seed=11)
    quiet = [alone.decide(Request("ecs", "DescribeServices", "json")) is not None for _ in range(50)]
    noisy = []
    for _ in range(50):
        busy.decide(Request("sqs", "ReceiveMessage", "json"))
        noisy.append(busy.decide(Request("ecs", "DescribeServices", "json")) is not None)
    assert quiet == noisy


def test_services_limit_the_faults():
    injector = FaultInjector()
    injector.configure(rate=1.0, seed=0, services=["iam"])
    assert injector.decide(Request("ec2", "DescribeVpcs", "ec2")) is None
    assert injector.decide(Request("iam", "GetRole", "query")).code == "Throttling"


def test_a_rate_outside_0_1_is_refused():
    with pytest.raises(ValueError, match="rate must be between 0 and 1"):
        FaultInjector().configure(rate=1.5)


# ----------------------------------------------------------------------------- on a moto server
@pytest.fixture(scope="module")
def server():
    undo = moto_patches.PATCHES["aws_fault_injection"]()
    with threaded_moto_server() as url:
        yield url
    undo()


def switch(url: str, **body) -> dict:
    req = urllib.request.Request(url + "/_local_stack/faults", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def state(url: str) -> dict:
    with urllib.request.urlopen(url + "/_local_stack/faults", timeout=10) as resp:
        return json.loads(resp.read())


def client(url: str, service: str, config: Config = NO_RETRY):
    return boto3.client(service, endpoint_url=url, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing", config=config)


@pytest.fixture
def faults_off(server):
    switch(server, rate=0)
    yield server
    switch(server, rate=0)


CALLS = [  # service, call, protocol, code botocore reads, HTTP status
    ("ec2", lambda c: c.describe_vpcs(), "EC2 query", "RequestLimitExceeded", 503),
    ("iam", lambda c: c.list_roles(), "query", "Throttling", 400),
    ("elbv2", lambda c: c.describe_load_balancers(), "query", "Throttling", 400),
    ("sts", lambda c: c.get_caller_identity(), "query", "Throttling", 400),
    ("ecs", lambda c: c.list_clusters(), "JSON", "ThrottlingException", 400),
    ("logs", lambda c: c.describe_log_groups(), "JSON", "ThrottlingException", 400),
    ("secretsmanager", lambda c: c.list_secrets(), "JSON", "ThrottlingException", 400),
    ("s3", lambda c: c.list_buckets(), "S3 REST", "SlowDown", 503),
    ("s3", lambda c: c.head_bucket(Bucket="any"), "S3 REST (HEAD, no body)", "503", 503),
]


@pytest.mark.parametrize(("service", "call", "protocol", "code", "status"), CALLS,
                         ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in CALLS])
def test_each_protocol_gets_awss_throttling_error(faults_off, service, call, protocol, code, status):
    switch(faults_off, rate=1.0, seed=1)
    with pytest.raises(ClientError) as raised:
        call(client(faults_off, service))
    error = raised.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == (code, status), protocol
    assert state(faults_off)["injected"] == 1


def test_botocore_sees_every_shape_as_retryable_throttling(faults_off):
    """botocore's own retry (the amazon.aws modules' first line) classifies each answer as throttling."""
    from botocore.retries.standard import RetryContext, ThrottledRetryableChecker

    checker = ThrottledRetryableChecker()
    for service, call, protocol, code, _ in CALLS[:-1]:  # HEAD has no body: botocore retries it as a 503
        switch(faults_off, rate=1.0, seed=1)
        with pytest.raises(ClientError) as raised:
            call(client(faults_off, service))
        context = RetryContext(attempt_number=1, parsed_response=raised.value.response)
        assert checker.is_retryable(context), (service, protocol, code)


def test_a_retrying_client_gets_through_and_the_faults_are_counted(faults_off):
    switch(faults_off, rate=0.4, seed=5)
    ec2 = client(faults_off, "ec2", Config(retries={"max_attempts": 10, "mode": "standard"}))
    for _ in range(20):
        ec2.describe_vpcs()
    counted = state(faults_off)
    assert counted["injected"] > 0 and counted["seen"] == 20 + counted["injected"]
    assert counted["by_code"] == {"RequestLimitExceeded": counted["injected"]}


def test_the_emulators_own_paths_and_unsigned_requests_are_never_faulted(faults_off):
    switch(faults_off, rate=1.0, seed=1)
    for path in ("/moto-api/data.json", "/_local_stack/faults"):
        with urllib.request.urlopen(faults_off + path, timeout=10) as resp:
            assert resp.status == 200
    # anonymous S3 (no Authorization): moto answers it (404, no such bucket), no SlowDown
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(faults_off + "/no-such-bucket/key", timeout=10)
    assert raised.value.code == 404
    assert state(faults_off)["injected"] == 0


def test_the_switch_turns_faults_off_at_runtime_and_resets_the_counters(faults_off):
    switch(faults_off, rate=1.0, seed=1)
    with pytest.raises(ClientError):
        client(faults_off, "ecs").list_clusters()
    assert switch(faults_off, rate=0)["injected"] == 0
    assert client(faults_off, "ecs").list_clusters()["clusterArns"] == []
    assert state(faults_off)["seen"] == 0


def test_the_switch_refuses_a_bad_rate(faults_off):
    req = urllib.request.Request(faults_off + "/_local_stack/faults", data=b'{"rate": 2}', method="POST")
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(req, timeout=10)
    assert raised.value.code == 400 and "rate must be between 0 and 1" in raised.value.read().decode()


def test_the_patch_is_listed_and_undone():
    assert "aws_fault_injection" in moto_patches.PATCHES
    assert "aws_fault_injection" in moto_patches.__doc__ and "aws_fault_injection" in moto_patches_faults.__doc__
    import moto.server

    before = moto.server.DomainDispatcherApplication.__dict__["__call__"]
    undo = moto_patches_faults.aws_fault_injection()
    assert moto.server.DomainDispatcherApplication.__dict__["__call__"] is not before
    undo()
    assert moto.server.DomainDispatcherApplication.__dict__["__call__"] is before
