"""ecs_fargate_agent against the local stack: what only matters on AWS (issue #11 items 1, 3, 4).

One stack per module (tests/integration/playbooks/alb_ecs.yml under its own name): the flow-run
crash-detection resources (SQS queue + dead-letter queue, EventBridge rule, queue policy, worker IAM,
worker env var), a cluster without capacity providers, and a delete path that drains the workers
first, deregisters the flow-run task definitions prefect-aws's worker registered and leaves nothing.
"""

from __future__ import annotations

import json

import boto3
import pytest

from tests.helpers import leftovers

PLAYBOOK = "tests/integration/playbooks/alb_ecs.yml"
NAME = "it-ecs-aws"
POOL = "it-ecs-pool"  # ecs_fargate_agent_work_pool_name in the playbook
QUEUE_ACTIONS = {"sqs:GetQueueUrl", "sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:ChangeMessageVisibility"}

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def client(stack, service):
    return boto3.client(service, endpoint_url=stack.moto_url(), region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def statements(document):
    document = json.loads(document) if isinstance(document, str) else document
    items = document["Statement"]
    return items if isinstance(items, list) else [items]


def as_set(value):
    return {value} if isinstance(value, str) else set(value)


@pytest.fixture(scope="module")
def deployed(local_stack):
    return local_stack.deploy(PLAYBOOK, extra_vars={"it_name": NAME})


@pytest.fixture(scope="module")
def account(local_stack):
    return client(local_stack, "sts").get_caller_identity()["Account"]


def test_task_event_queues_are_encrypted_with_a_dead_letter_queue(deployed, local_stack, account):
    sqs = client(local_stack, "sqs")
    url = sqs.get_queue_url(QueueName=f"{NAME}-ecs-events")["QueueUrl"]
    dlq_url = sqs.get_queue_url(QueueName=f"{NAME}-ecs-events-dlq")["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    dlq = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["All"])["Attributes"]
    assert attributes["SqsManagedSseEnabled"] == "true" and dlq["SqsManagedSseEnabled"] == "true"
    redrive = json.loads(attributes["RedrivePolicy"])
    assert redrive["deadLetterTargetArn"] == dlq["QueueArn"] and int(redrive["maxReceiveCount"]) == 3
    assert int(attributes["MessageRetentionPeriod"]) == 604800 and int(dlq["MessageRetentionPeriod"]) == 1209600
    assert sqs.list_queue_tags(QueueUrl=url)["Tags"]["Project"] == "it-alb-ecs"


def test_rule_sends_only_this_clusters_task_state_changes_to_the_queue(deployed, local_stack, account):
    events = client(local_stack, "events")
    rule = events.describe_rule(Name=f"{NAME}-ecs-task-events")
    assert rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"]) == {
        "source": ["aws.ecs"], "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [f"arn:aws:ecs:us-east-1:{account}:cluster/{NAME}"]}}
    targets = events.list_targets_by_rule(Rule=f"{NAME}-ecs-task-events")["Targets"]
    assert [t["Arn"] for t in targets] == [f"arn:aws:sqs:us-east-1:{account}:{NAME}-ecs-events"]


def test_queue_policy_lets_only_the_rule_send(deployed, local_stack, account):
    sqs = client(local_stack, "sqs")
    url = sqs.get_queue_url(QueueName=f"{NAME}-ecs-events")["QueueUrl"]
    policy = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"]
    [statement] = statements(policy)
    assert statement["Effect"] == "Allow" and statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_set(statement["Action"]) == {"sqs:SendMessage"}
    assert statement["Resource"] == f"arn:aws:sqs:us-east-1:{account}:{NAME}-ecs-events"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": rule_arn(local_stack)}}


def rule_arn(stack):
    return client(stack, "events").describe_rule(Name=f"{NAME}-ecs-task-events")["Arn"]


def test_worker_may_read_the_queue_and_nothing_else_of_sqs(deployed, local_stack, account):
    document = client(local_stack, "iam").get_role_policy(RoleName=f"{NAME}-worker-task",
                                                           PolicyName="prefect-ecs-worker")["PolicyDocument"]
    sqs_statements = [s for s in statements(document) if any(a.startswith("sqs:") for a in as_set(s["Action"]))]
    assert len(sqs_statements) == 1
    # Exactly the calls prefect-aws 0.7.12's observer makes (SqsSubscriber.stream_messages).
    assert as_set(sqs_statements[0]["Action"]) == QUEUE_ACTIONS
    assert as_set(sqs_statements[0]["Resource"]) == {f"arn:aws:sqs:us-east-1:{account}:{NAME}-ecs-events"}


def test_worker_container_names_the_queue(deployed, local_stack):
    ecs = client(local_stack, "ecs")
    taskdef = ecs.describe_task_definition(taskDefinition=f"{NAME}-worker")["taskDefinition"]
    env = {e["name"]: e["value"] for e in taskdef["containerDefinitions"][0]["environment"]}
    assert env["PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME"] == f"{NAME}-ecs-events"
    assert env["PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_REGION"] == "us-east-1"


def test_cluster_has_no_capacity_providers(deployed, local_stack):
    """Unused (launchType FARGATE everywhere) and they break CreateCluster on a brand-new account."""
    cluster = client(local_stack, "ecs").describe_clusters(clusters=[NAME])["clusters"][0]
    assert cluster.get("capacityProviders", []) == []
    assert cluster.get("defaultCapacityProviderStrategy", []) == []


def test_delete_drains_deregisters_flow_run_task_definitions_and_leaves_nothing(deployed, local_stack, monkeypatch):
    for variable, value in {"AWS_ENDPOINT_URL": local_stack.moto_url(), "AWS_ACCESS_KEY_ID": "testing",
                            "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(variable, value)  # for tests.helpers.leftovers
    ecs = client(local_stack, "ecs")
    # What prefect-aws's worker registers for a flow run: family prefect_<pool>_<deployment id>.
    families = [f"prefect_{POOL}_0b6f3c1e-8d0a-4a43-9a39-6f1f1c1f0a01", f"prefect_{POOL}_5d7c2e4b-1111-4c22-8d33-0a0b0c0d0e0f"]
    arns = [ecs.register_task_definition(family=family, requiresCompatibilities=["FARGATE"], networkMode="awsvpc",
                                         cpu="512", memory="1024",
                                         containerDefinitions=[{"name": "prefect", "image": "x", "memory": 1024}]
                                         )["taskDefinition"]["taskDefinitionArn"] for family in families * 2]
    # Another pool's family is not this stack's.
    other = ecs.register_task_definition(family="prefect_other-pool_x", containerDefinitions=[
        {"name": "prefect", "image": "x", "memory": 512}])["taskDefinition"]["taskDefinitionArn"]

    run = local_stack.run_playbook(PLAYBOOK, extra_vars={"it_name": NAME, "it_state": "absent"})
    assert run.rc == 0, run.failed_messages or run.stdout[-3000:]
    names = [name for name, _ in run.task_results()]

    def first(task):
        return next(i for i, name in enumerate(names) if name.endswith(task))
    # Drained (scaled to zero, waited) before the service, task definitions and cluster go.
    assert first("Scale the worker service to zero") < first("Wait until the worker service has no running or pending task") \
        < first("Delete the worker service") < first("Deregister the flow-run task definitions") < first("Delete the ECS cluster")
    for arn in arns:
        assert ecs.describe_task_definition(taskDefinition=arn)["taskDefinition"]["status"] == "INACTIVE", arn
    assert ecs.describe_task_definition(taskDefinition=other)["taskDefinition"]["status"] == "ACTIVE"
    ecs.deregister_task_definition(taskDefinition=other)

    # Nothing of the stack is left (the playbook's own network aside, which its first play keeps).
    left = [line for line in leftovers.find_leftovers() if NAME in line or "sqs" in line or "eventbridge" in line]
    assert left == [], left
