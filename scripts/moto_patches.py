"""The local stack's moto patch layer: where moto 5.2 answers differently from AWS, make it answer like AWS.

This docstring is the authoritative list. Roles, playbooks and modules are written for AWS and never
branch on "is this the emulator"; every difference they would otherwise have to work around is fixed
here, one function per gap. Each function's docstring says what AWS does, what moto 5.2 does and what
the patch changes; tests/unit/test_moto_patches.py shows each gap without the patch and gone with it.

  ecs_cluster_capacity_providers  DescribeClusters always returns capacityProviders and
                                  defaultCapacityProviderStrategy (empty lists when none are set).
  ecs_list_tags_always_a_list     ListTagsForResource always returns `tags` (an empty list on an
                                  untagged cluster), so community.aws.ecs_tag can read it.
  ecs_create_service_settings     CreateService keeps healthCheckGracePeriodSeconds,
                                  deploymentConfiguration (with AWS's defaults), enableExecuteCommand,
                                  enableECSManagedTags, placementConstraints and placementStrategy.
  ecs_update_service_task_definition_arn
                                  UpdateService stores the task definition's full ARN, as AWS returns it.
  ecs_fargate_task_resources      RunTask of a Fargate task definition whose containers have no
                                  container-level memory uses the task-level cpu/memory (no 500).
  ecs_task_lifecycle              A Fargate task starts PROVISIONING and moves only as its container
                                  host (the Fargate stand-in) reports: PENDING, RUNNING, DEPROVISIONING,
                                  STOPPED with exit codes/stopCode; StopTask sets desiredStatus STOPPED
                                  and leaves lastStatus to the host; an ENI in the subnet (default
                                  security group when none given); one container entry per definition;
                                  ListTasks lists desiredStatus RUNNING by default and filters serviceName.
  ecs_service_scheduler           A Fargate service keeps desiredCount real tasks of its current task
                                  definition, replaces stopped ones, rolls new revisions (old STOPPED,
                                  new RUNNING), circuit breaker; runningCount/pendingCount/deployments
                                  come from the tasks (not MOTO_ECS_SERVICE_RUNNING).
  ecs_task_state_change_events    Every task state change is an "ECS Task State Change" event on the
                                  default bus, delivered to matching rules (SQS: AWS's exact message,
                                  only when the queue policy lets EventBridge send).
  elbv2_ecs_service_targets       An ECS service with loadBalancers has its RUNNING tasks (ENI address,
                                  container port) as healthy `ip` targets of its target group.
  elbv2_load_balancer_attributes  DescribeLoadBalancerAttributes reports every attribute with AWS's
                                  default value from the start (idle_timeout, access_logs, http2, ...).
  ec2_nat_gateway_tag_type        DescribeTags reports a NAT gateway's resource type as `natgateway`
                                  (moto says `nat-gateway`, so a resource-type filter found nothing).
  s3_secure_transport             Bucket policies are evaluated with aws:SecureTransport=true (the
                                  loopback endpoint stands in for AWS's TLS endpoint) and a statement
                                  whose Bool/String condition does not match does not apply.
  s3_default_encryption           An object written without an encryption header into a bucket with no
                                  encryption configuration is stored with SSE-S3 (AES256), as S3 has
                                  done for every bucket since January 2023.
  ecr_delete_repository_images    DeleteRepository sees the images of the loopback registry (address in
                                  LOCAL_STACK_ECR_REGISTRY_URL): refuses a non-empty repository without
                                  force, deletes its images with force.

  IAM enforcement (scripts/moto_patches_iam.py; its docstring says what each does and what stays
  unenforced): iam_unknown_resource_matches, iam_condition_not_met_is_neutral,
  iam_action_names_ignore_case, iam_trust_policy_principals, iam_pass_role_checked,
  s3_iam_action_names, s3_access_denied_names_principal, json_access_denied_exception.

  Pending delays (scripts/moto_patches_delays.py, all 0 unless LOCAL_STACK_DELAY_NAT_S / _ALB_S /
  _SERVICE_S or POST /_local_stack/delays set them): nat_gateway_pending_delay,
  elbv2_provisioning_delay, ecs_service_deployment_delay, elbv2_targets_initial_while_provisioning
  (targets report `initial` while their load balancer is held provisioning, as on AWS),
  nat_gateway_route_consistency (a route to a NAT gateway id EC2 does not know is refused with
  InvalidNatGatewayID.NotFound as on AWS, a new gateway's too for LOCAL_STACK_DELAY_NAT_UNKNOWN_S seconds).
  Faults (scripts/moto_patches_faults.py; not a gap but AWS throttling on demand, off by default):
  aws_fault_injection (a seeded share of AWS requests answered ThrottlingException / RequestLimitExceeded /
  Throttling / SlowDown in the request's protocol; switched at runtime through POST /_local_stack/faults).
  Application Auto Scaling (scripts/moto_patches_autoscaling.py): autoscaling_deregister_deletes_policies,
  autoscaling_put_policy_replaces_alarms.
  RDS (scripts/moto_patches_rds.py; the local stack's PostgreSQL server is the engine of postgres instances):
  rds_postgres_create_database, rds_postgres_endpoint, rds_managed_master_secret,
  rds_rotate_master_user_password, rds_postgres_master_password, rds_postgres_delete_database,
  rds_reset_drops_local_databases; rds_gp3_baseline_performance (gp3 instances report their baseline Iops and
  StorageThroughput).

Use: `apply_all()` (idempotent) before moto's server starts (scripts/moto_server.py does), `undo_all()`
to restore moto. Each patch function applies its change and returns a callable that undoes it.

The Fargate stand-in (scripts/fargate_standin.py) is the container host of the ECS patches: it talks to
this control plane through fargate_poll / fargate_report / fargate_logs, which scripts/moto_server.py
serves as POST /_local_stack/fargate/{poll,report,logs} (a private channel, not an AWS API).
"""

from __future__ import annotations

import copy
import datetime
import fnmatch
import functools
import inspect
import ipaddress
import json
import math
import os
import random
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]

# The loopback registry that stands in for ECR's registry side (http://host:port); set by local_stack.py.
ECR_REGISTRY_ENV = "LOCAL_STACK_ECR_REGISTRY_URL"


def _replace(owner: Any, name: str, new: Any) -> Undo:
    """Set owner.name to new; the returned callable puts the original back."""
    original = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)

    def undo() -> None:
        setattr(owner, name, original)

    setattr(owner, name, new)
    return undo


# --- ECS -------------------------------------------------------------------------------------------


def ecs_cluster_capacity_providers() -> Undo:
    """DescribeClusters/CreateCluster: always report capacity providers.

    AWS: a cluster created without capacity providers is described with `capacityProviders: []` and
    `defaultCapacityProviderStrategy: []`.
    moto 5.2: stores None and leaves both keys out of the answer, so community.aws.ecs_cluster fails on
    its second run with KeyError 'capacityProviders'.
    Patch: a new cluster stores empty lists for both when none are given.
    """
    from moto.ecs.models import Cluster

    original = Cluster.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        if self.capacity_providers is None:
            self.capacity_providers = []
        if self.default_capacity_provider_strategy is None:
            self.default_capacity_provider_strategy = []

    return _replace(Cluster, "__init__", __init__)


def ecs_list_tags_always_a_list() -> Undo:
    """ListTagsForResource: always return `tags`.

    AWS: the answer always carries `tags` (an empty list for an untagged resource).
    moto 5.2: a cluster created without tags stores None and the answer has no `tags` key, so
    community.aws.ecs_tag fails (KeyError 'tags') on an untagged cluster.
    Patch: answer an empty list instead of None.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.list_tags_for_resource

    @functools.wraps(original)
    def list_tags_for_resource(self: Any, resource_arn: str) -> list[dict[str, str]]:
        return original(self, resource_arn) or []

    return _replace(EC2ContainerServiceBackend, "list_tags_for_resource", list_tags_for_resource)


# AWS's deploymentConfiguration for a rolling-update (ECS) service when the request leaves parts out.
ECS_DEFAULT_DEPLOYMENT_CONFIGURATION = {
    "deploymentCircuitBreaker": {"enable": False, "rollback": False},
    "maximumPercent": 200,
    "minimumHealthyPercent": 100,
}


def ecs_create_service_settings() -> Undo:
    """CreateService: keep the settings the request gave.

    AWS: CreateService stores healthCheckGracePeriodSeconds, deploymentConfiguration (filled with
    defaults: circuit breaker off, maximumPercent 200, minimumHealthyPercent 100), enableExecuteCommand,
    enableECSManagedTags, placementConstraints and placementStrategy, and DescribeServices returns them.
    moto 5.2: CreateService drops all of them (UpdateService keeps them), so a second run of
    community.aws.ecs_service sees a difference and changes the service once more.
    Patch: after moto creates the service, store those request parameters on it.
    """
    from moto.ecs.responses import EC2ContainerServiceResponse

    original = EC2ContainerServiceResponse.create_service

    @functools.wraps(original)
    def create_service(self: Any) -> Any:
        result = original(self)
        service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
        grace = self._get_param("healthCheckGracePeriodSeconds")
        if grace is not None:
            service.health_check_grace_period_seconds = int(grace)
        if (service.deployment_controller or {}).get("type", "ECS") == "ECS":
            wanted = self._get_param("deploymentConfiguration") or {}
            service.deployment_configuration = {**ECS_DEFAULT_DEPLOYMENT_CONFIGURATION, **wanted}
        service.enable_execute_command = bool(self._get_param("enableExecuteCommand", False))
        service.enable_ecs_managed_tags = bool(self._get_param("enableECSManagedTags", False))
        for param, attr in (("placementConstraints", "placement_constraints"), ("placementStrategy", "placement_strategy")):
            if self._get_param(param) is not None:
                setattr(service, attr, self._get_param(param))
        return result

    return _replace(EC2ContainerServiceResponse, "create_service", create_service)


def ecs_update_service_task_definition_arn() -> Undo:
    """UpdateService: store the task definition's ARN.

    AWS: DescribeServices/UpdateService return `taskDefinition` as the full ARN, whatever form
    (family, family:revision, ARN) the request used.
    moto 5.2: UpdateService stores the string as given (`family:revision`), so a module comparing the
    service's task definition with an ARN sees a difference that is not there.
    Patch: after moto updates the service, replace the stored value by the resolved ARN.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    original = EC2ContainerServiceBackend.update_service

    @functools.wraps(original)
    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        task_definition = service_properties.get("task_definition")
        service = original(self, service_properties)
        if task_definition:
            service.task_definition = self.describe_task_definition(task_definition).arn
        return service

    return _replace(EC2ContainerServiceBackend, "update_service", update_service)


def ecs_fargate_task_resources() -> Undo:
    """RunTask: a Fargate task definition without container-level memory.

    AWS: Fargate sizes a task by the task definition's task-level `cpu` and `memory`; container-level
    `memory` is optional (prefect-aws's flow-run task definitions have none).
    moto 5.2: RunTask adds up container-level memory for every task and answers 500 (TypeError in
    `_calculate_task_resource_requirements`) when a container has none.
    Patch: a container without memory counts 0, and a task definition with task-level cpu/memory
    (every Fargate one) reports those as the task's requirements.
    """
    from moto.ecs.models import EC2ContainerServiceBackend

    def _calculate_task_resource_requirements(task_definition: Any) -> dict[str, Any]:
        def container_memory(container: dict[str, Any]) -> int:
            for key in ("Memory", "MemoryReservation", "memory", "memoryReservation"):
                if container.get(key) is not None:
                    return int(container[key])
            return 0

        requirements: dict[str, Any] = {"CPU": 0, "MEMORY": 0, "PORTS": [], "PORTS_UDP": []}
        for container in task_definition.container_definitions:
            requirements["CPU"] += int(container.get("cpu", container.get("Cpu", 0)) or 0)
            requirements["MEMORY"] += container_memory(container)
            for mapping in container.get("PortMappings", container.get("portMappings", [])) or []:
                host_port = mapping.get("hostPort", mapping.get("HostPort"))
                if host_port is not None:
                    requirements["PORTS"].append(host_port)
        if getattr(task_definition, "cpu", None):
            requirements["CPU"] = int(task_definition.cpu)
        if getattr(task_definition, "memory", None):
            requirements["MEMORY"] = int(task_definition.memory)
        return requirements

    return _replace(EC2ContainerServiceBackend, "_calculate_task_resource_requirements",
                    staticmethod(_calculate_task_resource_requirements))


# --- ECS on Fargate: task lifecycle, service scheduler, task state-change events --------------------
#
# ECS's control plane is moto (patched below); Fargate's container runtime is the local stack's
# Fargate stand-in (scripts/fargate_standin.py). The stand-in talks to the control plane through a
# private channel (not an AWS API, like moto's own /moto-api/): scripts/moto_server.py routes
# POST /_local_stack/fargate/{poll,report,logs} to fargate_poll / fargate_report / fargate_logs.

FARGATE_CAPACITY_PROVIDERS = ("FARGATE", "FARGATE_SPOT")
# What DescribeTasks reports for a Fargate task started with platform version LATEST (or none).
FARGATE_PLATFORM_VERSION = "1.4.0"
# How many tasks of one service deployment the stand-in runs at once (default 1: tasks share the
# host's network, so two worker tasks would bind the same port); the others stay PROVISIONING, as in a
# region without Fargate capacity. And how many tasks it runs at once in all.
MAX_SERVICE_TASKS_ENV = "LOCAL_STACK_FARGATE_MAX_SERVICE_TASKS"
MAX_TASKS_ENV = "LOCAL_STACK_FARGATE_MAX_TASKS"
# AWS keeps a stopped task describable for at least an hour.
STOPPED_TASK_RETENTION_SECONDS = 3600
# ECS task states in lifecycle order; a report never moves a task backwards.
TASK_STATES = ("PROVISIONING", "PENDING", "ACTIVATING", "RUNNING", "DEACTIVATING", "STOPPING",
               "DEPROVISIONING", "STOPPED")
# Lifetime of the task-role credentials handed to a task (they are not rotated locally).
TASK_CREDENTIALS_SECONDS = 6 * 3600

_LOCK = threading.RLock()  # one control plane: poll, report, StopTask and the scheduler never interleave
_WORK = threading.Condition()  # a waiting poll wakes up on any task change (long poll)
_GENERATION = [0]  # bumped on every task change, under _WORK
_TASK_LISTENERS: list[Callable[[Any], None]] = []  # called after every lastStatus/desiredStatus change
_RECONCILERS: list[Callable[[Any], None]] = []  # the service scheduler, called with an ECS backend


class TaskFailedToStart(Exception):
    """A task the control plane cannot start; the message is the task's stoppedReason (AWS's words)."""


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _env_int(name: str, default: int) -> int:
    try:
        return max(0, int(os.environ.get(name, default)))
    except ValueError:
        return default


def is_fargate_task(task: Any) -> bool:
    """A task whose state the Fargate stand-in drives (made while ecs_task_lifecycle was applied)."""
    return getattr(task, "_fargate", None) is not None


def _ecs_backends() -> list[Any]:
    from moto.ecs.models import ecs_backends

    return [backend for account in list(ecs_backends.keys()) for backend in list(ecs_backends[account].values())]


def _fargate_tasks(backend: Any) -> list[Any]:
    return [task for tasks in list(backend.tasks.values()) for task in list(tasks.values()) if is_fargate_task(task)]


def _find_task(backend: Any, cluster_name: str, task_str: str) -> Any:
    task_id = task_str.split("/")[-1]
    for arn, task in list(backend.tasks.get(cluster_name, {}).items()):
        if arn == task_str or arn.split("/")[-1] == task_id:
            return task
    return None


def _find_task_anywhere(task_arn: str) -> Any:
    for backend in _ecs_backends():
        for task in _fargate_tasks(backend):
            if task.task_arn == task_arn:
                return task
    return None


def _changed(task: Any) -> None:
    """Record a state change: bump the task's version and tell the listeners (task events)."""
    task.version = int(getattr(task, "version", 0) or 0) + 1
    task.updated_at = _now()
    _notify(task)


def _wake() -> None:
    with _WORK:
        _GENERATION[0] += 1
        _WORK.notify_all()


def _notify(task: Any) -> None:
    _wake()
    for listener in list(_TASK_LISTENERS):
        try:
            listener(task)
        except Exception as err:  # noqa: BLE001 - a listener must never break the API call
            print(f"moto patches: task listener {listener.__name__} failed: {err!r}", file=sys.stderr, flush=True)


def _set_last_status(task: Any, status: str) -> None:
    if task.last_status != status:
        task.last_status = status
        _changed(task)


class _FargateContainer:
    """A container of a Fargate task, as DescribeTasks reports it (moto's Container models only one)."""

    def __init__(self, task: Any, definition: dict[str, Any], partition: str) -> None:
        self.container_arn = (f"arn:{partition}:ecs:{task.region_name}:{task._account_id}:container/"
                              f"{task.cluster_name}/{task.id}/{uuid.uuid4()}")
        self.task_arn = task.task_arn
        self.name = definition.get("name")
        self.image = definition.get("image")
        self.image_digest: str | None = None
        self.runtime_id: str | None = None
        self.last_status = "PENDING"
        self.exit_code: int | None = None
        self.reason: str | None = None
        self.network_bindings: list[dict[str, Any]] = []
        self.network_interfaces: list[dict[str, str]] = []
        self.health_status = "UNKNOWN"
        self.cpu = str(definition.get("cpu") or 0)
        self.memory = str(definition["memory"]) if definition.get("memory") else None
        self.memory_reservation = str(definition["memoryReservation"]) if definition.get("memoryReservation") else None
        self.essential = definition.get("essential", True) is not False

    def event_shape(self) -> dict[str, Any]:
        shape = {"containerArn": self.container_arn, "lastStatus": self.last_status, "name": self.name,
                 "image": self.image, "imageDigest": self.image_digest, "runtimeId": self.runtime_id,
                 "taskArn": self.task_arn, "networkInterfaces": self.network_interfaces, "cpu": self.cpu,
                 "memory": self.memory, "memoryReservation": self.memory_reservation,
                 "exitCode": self.exit_code, "reason": self.reason}
        return {key: value for key, value in shape.items() if value is not None}


class _WithoutNetwork:
    """A task definition seen without awsvpc networking: moto's Task then makes no ENI (we make it)."""

    network_mode = None

    def __init__(self, task_definition: Any) -> None:
        self._task_definition = task_definition

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task_definition, name)


def _free_address(ec2: Any, subnet: Any) -> str:
    """The first address of the subnet no ENI uses (AWS reserves the first four)."""
    network = ipaddress.ip_network(subnet.cidr_block)
    used = {eni.private_ip_address for eni in list(ec2.enis.values())}
    for offset in range(4, network.num_addresses - 1):
        address = str(network.network_address + offset)
        if address not in used:
            return address
    raise _invalid_parameter(f"The subnet {subnet.id} has no free IP addresses.")


def _invalid_parameter(message: str) -> Exception:
    from moto.ecs.exceptions import InvalidParameterException

    return InvalidParameterException(message)


def _partition(region: str) -> str:
    from moto.utilities.utils import get_partition

    return get_partition(region)


def _attach_network(task: Any, backend: Any, network_configuration: dict[str, Any]) -> None:
    """Give an awsvpc task its ENI as Fargate does: an address of one of its subnets (spread over them),
    the VPC's default security group when none is given, an ElasticNetworkInterface attachment."""
    from moto.ec2.models import ec2_backends
    from moto.ec2.utils import generate_dns_from_ip

    config = network_configuration.get("awsvpcConfiguration") or {}
    subnets = config.get("subnets") or []
    if not subnets:
        raise _invalid_parameter("subnets can not be empty.")
    ec2 = ec2_backends[backend.account_id][backend.region_name]
    backend._fargate_next_subnet = getattr(backend, "_fargate_next_subnet", -1) + 1
    subnet_id = subnets[backend._fargate_next_subnet % len(subnets)]
    try:
        subnet = ec2.get_subnet(subnet_id)
    except Exception as err:  # noqa: BLE001 - moto's InvalidSubnetIdError
        raise _invalid_parameter(
            f"Error retrieving subnet information for [{subnet_id}]: {getattr(err, 'message', err)}") from err
    groups = config.get("securityGroups") or []
    if not groups:
        default = ec2.get_security_group_from_name("default", subnet.vpc_id)
        groups = [default.id] if default else []
    attachment_id = str(uuid.uuid4())
    partition = _partition(backend.region_name)
    eni = ec2.create_network_interface(
        subnet=subnet, private_ip_address=_free_address(ec2, subnet), group_ids=groups,
        description=f"arn:{partition}:ecs:{backend.region_name}:{backend.account_id}:attachment/{attachment_id}")
    eni.status = "in-use"
    eni.device_index = 1
    address = eni.private_ip_address
    task.network_configuration = network_configuration
    task.availability_zone = subnet.availability_zone
    task.attachments = [{
        "id": attachment_id, "type": "ElasticNetworkInterface", "status": "ATTACHED",
        "details": [{"name": "subnetId", "value": subnet.id},
                    {"name": "networkInterfaceId", "value": eni.id},
                    {"name": "macAddress", "value": eni.mac_address},
                    {"name": "privateDnsName", "value": getattr(eni, "private_dns_name", None)
                     or generate_dns_from_ip(address, "internal")},
                    {"name": "privateIPv4Address", "value": address}],
    }]
    task._fargate["eni"] = eni.id
    for container in task.containers:
        container.network_interfaces = [{"attachmentId": attachment_id, "privateIpv4Address": address}]


def task_private_ip(task: Any) -> str | None:
    for attachment in getattr(task, "attachments", None) or []:
        for detail in attachment.get("details", []):
            if detail.get("name") == "privateIPv4Address":
                return detail.get("value")
    return None


def _release_network(task: Any) -> None:
    """AWS deletes a stopped task's ENI."""
    from moto.ec2.models import ec2_backends

    eni_id = task._fargate.pop("eni", None)
    for attachment in getattr(task, "attachments", None) or []:
        attachment["status"] = "DELETED"
    if eni_id:
        try:
            ec2_backends[task._account_id][task.region_name].delete_network_interface(eni_id)
        except Exception:  # noqa: BLE001,S110 - already gone (e.g. its subnet was deleted)
            pass


def _finish(task: Any, reason: str | None = None, stop_code: str | None = None,
            containers: dict[str, dict[str, Any]] | None = None, when: datetime.datetime | None = None) -> None:
    """Move a task to STOPPED: nothing runs for it any more. A reason/stopCode given earlier (StopTask,
    the scheduler) wins over the one given here (the container host's)."""
    if task.last_status == "STOPPED":
        return
    now = _now()
    if task.desired_status != "STOPPED":
        task.desired_status = "STOPPED"
        task.stopping_at = when or now
        task._fargate["died"] = True  # nobody asked: the service scheduler counts it
    if reason and not task.stopped_reason:
        task.stopped_reason = reason
    if stop_code and not task.stop_code:
        task.stop_code = stop_code
    for container in task.containers:
        report = (containers or {}).get(container.name, {})
        container.last_status = "STOPPED"
        if report.get("exitCode") is not None:
            container.exit_code = int(report["exitCode"])
        container.reason = report.get("reason") or container.reason
    if task._fargate.get("started"):
        task.execution_stopped_at = when or now
    _set_last_status(task, "DEPROVISIONING")
    _release_network(task)
    task.stopped_at = _now()
    _set_last_status(task, "STOPPED")


def request_stop(task: Any, reason: str, stop_code: str) -> None:
    """Set a task's desired status to STOPPED (StopTask, the scheduler). A task the stand-in has not
    taken yet stops at once; a taken one is stopped by the stand-in, which then reports STOPPED."""
    if task.desired_status == "STOPPED" or task.last_status == "STOPPED":
        return
    task.desired_status = "STOPPED"
    task.stopped_reason = reason
    task.stop_code = stop_code
    task.stopping_at = _now()
    if task._fargate["claimed"]:
        _changed(task)
    else:
        _finish(task)


def ecs_task_lifecycle() -> Undo:
    """RunTask/StopTask/DescribeTasks/ListTasks: a Fargate task lives the life the container host gives it.

    AWS: a Fargate task from RunTask starts PROVISIONING (desiredStatus RUNNING), goes PENDING while
    its image is pulled, RUNNING once its containers run, and DEPROVISIONING -> STOPPED when its
    essential container exits (stopCode EssentialContainerExited, each container's exitCode) or after
    StopTask, which only sets desiredStatus STOPPED (stoppedReason "Task stopped by user" or the reason
    given, stopCode UserInitiated) until the container has exited. Each task gets an ENI with an
    address of one of its subnets (the VPC's default security group when none is given), has one
    container entry per container definition, createdAt/startedAt/stoppedAt/version/cpu/memory/
    platformVersion. ListTasks lists tasks with desiredStatus RUNNING unless asked for STOPPED and
    filters by serviceName; StopTask of an unknown task is InvalidParameterException. Tags given to
    RunTask are returned by DescribeTasks(include=[TAGS]) (moto already does; prefect-aws's observer
    reads them).
    moto 5.2: a Fargate task is RUNNING at once and then advances one state per DescribeTasks call
    (ManagedState) until STOPPED, whatever runs; StopTask sets STOPPED at once; RunTask answers 500
    without securityGroups or in a VPC without DNS hostnames, gives the ENI a random 10.x address,
    reports only the first container (exitCode 0, taskArn = the task definition's ARN); ListTasks lists
    stopped tasks and ignores serviceName; StopTask of an unknown task answers 500.
    Patch: Fargate tasks start PROVISIONING with no automatic progression; the Fargate stand-in moves
    them (fargate_poll / fargate_report) and StopTask only asks it to. EC2 tasks keep moto's model.
    """
    from moto.ecs.models import EC2ContainerServiceBackend, Task

    original_init = Task.__init__
    init_signature = inspect.signature(original_init)

    @functools.wraps(original_init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        bound = init_signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        params = bound.arguments
        fargate = params["container_instance_arn"] is None and (
            params["launch_type"] == "FARGATE" or params["capacity_provider_name"] in FARGATE_CAPACITY_PROVIDERS)
        if not fargate:
            original_init(**params)
            return
        task_definition, network = params["task_definition"], params["networking_configuration"]
        if task_definition.network_mode == "awsvpc" and not network:
            raise _invalid_parameter(
                "Network Configuration must be provided when networkMode 'awsvpc' is specified.")
        original_init(**{**params, "task_definition": _WithoutNetwork(task_definition), "networking_configuration": None})
        self._transitions = []  # ManagedState: no automatic progression
        self._fargate = {"claimed": False, "started": False, "died": False}
        self.last_status = "PROVISIONING"
        self.launch_type = self.launch_type or "FARGATE"
        self.platform_version = self.platform_version if self.platform_version not in (None, "LATEST") \
            else FARGATE_PLATFORM_VERSION
        self.platform_family = "Linux"
        self.cpu, self.memory = task_definition.cpu, task_definition.memory
        self.created_at = _now()
        self.version = 1
        self.health_status = "UNKNOWN"
        self.stopped_reason = None
        self.stop_code = None
        self.enable_execute_command = False
        self.ephemeral_storage = {"sizeInGiB": 20}
        self.containers = [_FargateContainer(self, definition, _partition(self.region_name))
                           for definition in task_definition.container_definitions]
        if task_definition.network_mode == "awsvpc":
            _attach_network(self, params["backend"], network)
        with _LOCK:
            _notify(self)  # the PROVISIONING event

    original_stop = EC2ContainerServiceBackend.stop_task

    @functools.wraps(original_stop)
    def stop_task(self: Any, cluster_str: str, task_str: str, reason: str | None) -> Any:
        cluster = self._get_cluster(cluster_str)
        task = _find_task(self, cluster.name, task_str)
        if task is None:
            raise _invalid_parameter("The referenced task was not found.")
        if not is_fargate_task(task):
            return original_stop(self, cluster_str, task_str, reason)
        with _LOCK:
            request_stop(task, reason or "Task stopped by user", "UserInitiated")
        return task

    original_list = EC2ContainerServiceBackend.list_tasks

    @functools.wraps(original_list)
    def list_tasks(self: Any, cluster_str: str | None = None, container_instance: str | None = None,
                   family: str | None = None, started_by: str | None = None, service_name: str | None = None,
                   desiredStatus: str | None = None) -> list[Any]:  # noqa: N803 - moto's name
        tasks = original_list(self, cluster_str, container_instance, family, started_by, None, desiredStatus or "RUNNING")
        if service_name:
            tasks = [task for task in tasks if task.group == f"service:{service_name.split('/')[-1]}"]
        return tasks

    undo = [_replace(Task, "__init__", __init__), _replace(EC2ContainerServiceBackend, "stop_task", stop_task),
            _replace(EC2ContainerServiceBackend, "list_tasks", list_tasks)]

    def undo_all() -> None:
        for step in reversed(undo):
            step()

    return undo_all


# --- the Fargate stand-in's private channel (POST /_local_stack/fargate/...) ---------------------------
#
# poll    {"tasks": [taskArn the stand-in holds], "wait": seconds (<= 20)}
#         -> {"start": [spec], "stop": [{"taskArn", "reason"}]}
#         spec: {"taskArn", "clusterArn", "taskDefinitionArn", "accountId", "region", "availabilityZone",
#                "privateIpv4Address", "group", "startedBy",
#                "credentials": {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration", "RoleArn"} | null,
#                "containers": [{"name", "image", "essential", "entryPoint", "command", "workingDirectory",
#                                "user", "environment": {name: value} (definition + overrides + secrets),
#                                "stopTimeout", "logConfiguration"}]}
# report  {"taskArn", "lastStatus": PENDING|RUNNING|STOPPED, "at": epoch seconds, "pullStartedAt"?,
#          "pullStoppedAt"?, "stoppedReason"?, "stopCode"?,
#          "containers": [{"name", "exitCode"?, "reason"?, "runtimeId"?, "imageDigest"?, "lastStatus"?}]}
#         -> 200 {"taskArn", "lastStatus", "desiredStatus"} | 404 {"taskArn", "known": false} | 400 {"message"}
# logs    {"taskArn", "container", "events": [{"timestamp": epoch ms, "message"}]} -> {"accepted": n}


def _role_trusts_ecs_tasks(policy_document: Any) -> bool:
    try:
        document = json.loads(policy_document) if isinstance(policy_document, str) else policy_document
    except ValueError:
        return False
    statements = (document or {}).get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        principal = statement.get("Principal") or {}
        services = principal.get("Service", []) if isinstance(principal, dict) else []
        services = services if isinstance(services, list) else [services]
        actions = statement.get("Action", [])
        actions = actions if isinstance(actions, list) else [actions]
        if statement.get("Effect") == "Allow" and "ecs-tasks.amazonaws.com" in services and any(
                fnmatch.fnmatch("sts:AssumeRole", action) for action in actions):
            return True
    return False


def _task_role_credentials(account_id: str, region: str, role_arn: str, session_name: str) -> dict[str, str]:
    """What the container credentials endpoint would hand the task: STS credentials of its task role."""
    from moto.iam.models import iam_backends
    from moto.sts.models import sts_backends

    partition = _partition(region)
    unable = (f"ECS was unable to assume the role '{role_arn}' that was provided for this task. Please verify that "
              "the role being passed has the proper trust relationship and permissions and that your IAM user has "
              "permissions to pass this role.")
    try:
        role = iam_backends[role_arn.split(":")[4] or account_id][partition].get_role_by_arn(role_arn)
    except Exception as err:  # noqa: BLE001 - moto's NotFoundException
        raise TaskFailedToStart(unable) from err
    if not _role_trusts_ecs_tasks(role.assume_role_policy_document):
        raise TaskFailedToStart(unable)
    assumed = sts_backends[account_id][partition].assume_role(
        region_name=region, role_session_name=session_name, role_arn=role_arn, policy="",
        duration=TASK_CREDENTIALS_SECONDS, external_id="")
    return {"AccessKeyId": assumed.access_key_id, "SecretAccessKey": assumed.secret_access_key,
            "SessionToken": assumed.session_token, "RoleArn": role_arn,
            "Expiration": assumed.expiration.strftime("%Y-%m-%dT%H:%M:%SZ")}


ASM_FAILURE = ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
               "failed: unable to retrieve secret from asm: service call has been retried 1 time(s): ")
SSM_FAILURE = ("ResourceInitializationError: unable to pull secrets or registry auth: execution resource retrieval "
               "failed: unable to retrieve secrets from ssm: service call has been retried 1 time(s): ")


def _secret_value(account_id: str, region: str, value_from: str) -> str:
    """Resolve one `secrets` entry as ECS does (with the execution role, which is not checked here).

    Secrets Manager: `arn:...:secret:name-AbCdEf` (the secret string) or
    `arn:...:secret:name-AbCdEf:json-key:version-stage:version-id` (a key of the JSON secret string; the
    last two may be empty). Anything else is an SSM parameter (name or ARN); `/aws/reference/secretsmanager/<id>`
    reads a Secrets Manager secret through SSM, as AWS does.
    """
    from moto.secretsmanager.models import secretsmanager_backends
    from moto.ssm.models import ssm_backends

    if value_from.startswith("arn:") and value_from.split(":")[2] == "secretsmanager":
        parts = value_from.split(":")
        secret_id = ":".join(parts[:7])
        json_key, stage, version = (parts[7:10] + ["", "", ""])[:3]
        backend = secretsmanager_backends[parts[4]][parts[3]]
        try:
            answer = backend.get_secret_value(secret_id, version or None, stage or None)
        except Exception as err:  # noqa: BLE001 - SecretNotFoundException and friends
            code = type(err).__name__.replace("SecretNotFoundException", "ResourceNotFoundException")
            message = getattr(err, "message", "") or "Secrets Manager can't find the specified secret."
            raise TaskFailedToStart(f"{ASM_FAILURE}failed to fetch secret {secret_id} from secrets manager: "
                                    f"{code}: {message} status code: 400, request id: {uuid.uuid4()}") from err
        value = answer.get("SecretString")
        if value is None and answer.get("SecretBinary") is not None:
            binary = answer["SecretBinary"]
            value = binary.decode() if isinstance(binary, bytes) else str(binary)
        if not json_key:
            return value or ""
        try:
            document = json.loads(value or "")
        except ValueError as err:
            raise TaskFailedToStart(f"{ASM_FAILURE}retrieved secret from Secrets Manager did not contain json key "
                                    f"{json_key}") from err
        if not isinstance(document, dict) or json_key not in document:
            raise TaskFailedToStart(f"{ASM_FAILURE}retrieved secret from Secrets Manager did not contain json key "
                                    f"{json_key}")
        item = document[json_key]
        return item if isinstance(item, str) else json.dumps(item)
    name, param_account, param_region = value_from, account_id, region
    if value_from.startswith("arn:"):
        parts = value_from.split(":")
        param_region, param_account = parts[3], parts[4]
        name = "/" + parts[5].split("/", 1)[1] if parts[5].count("/") > 1 else parts[5].split("/", 1)[1]
    if name.startswith("/aws/reference/secretsmanager/"):
        return _secret_value(account_id, region, _secret_arn(account_id, region, name.split("/", 4)[4]))
    parameter = None
    try:
        parameter = ssm_backends[param_account][param_region].get_parameter(name)
    except Exception:  # noqa: BLE001,S110 - handled as missing below
        pass
    if parameter is None:
        raise TaskFailedToStart(f"{SSM_FAILURE}invalid parameters: {name}")
    if parameter.parameter_type == "SecureString":
        return parameter.decrypt(parameter.value) or ""
    return parameter.value


def _secret_arn(account_id: str, region: str, secret_id: str) -> str:
    from moto.secretsmanager.models import secretsmanager_backends

    secret = secretsmanager_backends[account_id][region].secrets.get(secret_id)
    if secret is None:
        raise TaskFailedToStart(f"{SSM_FAILURE}invalid parameters: /aws/reference/secretsmanager/{secret_id}")
    return secret.arn


LOG_GROUP_MISSING = ("ResourceInitializationError: failed to validate logger args: create stream has been retried 1 "
                     "times: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log "
                     "group does not exist. : exit status 1")


def _log_destination(task: Any, container: dict[str, Any]) -> dict[str, str] | None:
    """The awslogs group/stream of a container, created as the awslogs driver does at container start."""
    from moto.logs.models import logs_backends

    config = container.get("logConfiguration") or {}
    if config.get("logDriver") != "awslogs":
        return None
    options = config.get("options") or {}
    group, region = options.get("awslogs-group"), options.get("awslogs-region") or task.region_name
    prefix = options.get("awslogs-stream-prefix")
    stream = f"{prefix}/{container['name']}/{task.id}" if prefix else task.id
    logs = logs_backends[task._account_id][region]
    if group not in logs.groups:
        if str(options.get("awslogs-create-group", "false")).lower() != "true":
            raise TaskFailedToStart(LOG_GROUP_MISSING)
        logs.create_log_group(group, {})
    if stream not in logs.groups[group].streams:
        logs.create_log_stream(group, stream)
    return {"region": region, "group": group, "stream": stream}


def _task_spec(task: Any) -> dict[str, Any]:
    """Everything the stand-in needs to run a task, resolved by the control plane as ECS does."""
    backend = task._backend
    task_definition = backend.describe_task_definition(task.task_definition_arn)
    overrides = task.overrides or {}
    container_overrides = {item.get("name"): item for item in overrides.get("containerOverrides") or []}
    role_arn = overrides.get("taskRoleArn") or getattr(task_definition, "task_role_arn", None)
    containers, logs = [], {}
    for definition in task_definition.container_definitions:
        override = container_overrides.get(definition["name"], {})
        environment = {item["name"]: item.get("value", "") for item in definition.get("environment") or []}
        environment.update({item["name"]: item.get("value", "") for item in override.get("environment") or []})
        for secret in definition.get("secrets") or []:
            environment[secret["name"]] = _secret_value(task._account_id, task.region_name, secret["valueFrom"])
        destination = _log_destination(task, definition)
        if destination:
            logs[definition["name"]] = destination
        containers.append({
            "name": definition["name"], "image": definition.get("image"),
            "essential": definition.get("essential", True) is not False,
            "entryPoint": definition.get("entryPoint") or None,
            "command": override.get("command") or definition.get("command") or None,
            "workingDirectory": definition.get("workingDirectory") or None,
            "user": definition.get("user") or None,
            "environment": environment,
            "stopTimeout": int(definition.get("stopTimeout") or 30),
            "logConfiguration": definition.get("logConfiguration") or None,
        })
    credentials = _task_role_credentials(task._account_id, task.region_name, role_arn, task.id) if role_arn else None
    task._fargate["logs"] = logs
    return {
        "taskArn": task.task_arn, "clusterArn": task.cluster_arn, "taskDefinitionArn": task.task_definition_arn,
        "accountId": task._account_id, "region": task.region_name,
        "availabilityZone": getattr(task, "availability_zone", None), "privateIpv4Address": task_private_ip(task),
        "group": task.group, "startedBy": task.started_by or None,
        "credentials": credentials, "containers": containers,
    }


def _capacity_key(task: Any) -> tuple[str, str, str] | None:
    """Service tasks share the per-deployment capacity; RunTask'd ones only the total."""
    if task.group.startswith("service:") and (task.started_by or "").startswith("ecs-svc/"):
        return (task.cluster_arn, task.group, task.started_by)
    return None


def _prune_stopped(backend: Any) -> None:
    cutoff = _now() - datetime.timedelta(seconds=STOPPED_TASK_RETENTION_SECONDS)
    for tasks in list(backend.tasks.values()):
        for arn, task in list(tasks.items()):
            if is_fargate_task(task) and task.last_status == "STOPPED" and getattr(task, "stopped_at", None) \
                    and task.stopped_at < cutoff:
                tasks.pop(arn, None)


def fargate_poll(body: dict[str, Any]) -> dict[str, Any]:
    """The stand-in asks what to do: runs the service scheduler, then answers the tasks to start and
    to stop. `body["tasks"]`: the ARNs the stand-in holds; a task it was given earlier and no longer
    holds has lost its container host (the stand-in restarted) and is STOPPED. `body["wait"]` (seconds,
    at most 20): with nothing new to do, wait that long for a task change before answering (long poll:
    a RunTask or StopTask reaches the stand-in at once)."""
    held = set(body.get("tasks") or [])
    deadline = time.monotonic() + min(max(float(body.get("wait") or 0), 0.0), 20.0)
    while True:
        with _WORK:
            generation = _GENERATION[0]
        answer, news = _poll_once(held)
        remaining = deadline - time.monotonic()
        if news or remaining <= 0:
            return answer
        with _WORK:
            if _GENERATION[0] == generation:
                _WORK.wait(remaining)


def _poll_once(held: set[str]) -> tuple[dict[str, Any], bool]:
    """One round of fargate_poll: (answer, whether it holds something the stand-in was not told yet)."""
    start: list[dict[str, Any]] = []
    stop: list[dict[str, str]] = []
    news = False
    per_deployment, total = _env_int(MAX_SERVICE_TASKS_ENV, 1), _env_int(MAX_TASKS_ENV, 10)
    with _LOCK:
        known: set[str] = set()
        backends = _ecs_backends()
        for backend in backends:
            for reconcile in list(_RECONCILERS):
                reconcile(backend)
            _prune_stopped(backend)
        tasks = sorted((task for backend in backends for task in _fargate_tasks(backend)), key=lambda t: t.created_at)
        running: dict[Any, int] = {}
        for task in tasks:
            if task._fargate["claimed"] and task.last_status != "STOPPED":
                running[_capacity_key(task)] = running.get(_capacity_key(task), 0) + 1
        in_use = sum(running.values())
        for task in tasks:
            arn = task.task_arn
            known.add(arn)
            if task.last_status == "STOPPED":
                continue
            if task._fargate["claimed"]:
                if arn not in held:
                    _finish(task, "Task stopped: its container host stopped (the local Fargate stand-in restarted)")
                elif task.desired_status == "STOPPED":
                    stop.append({"taskArn": arn, "reason": task.stopped_reason or ""})
                    news |= not task._fargate.get("stop_sent")
                    task._fargate["stop_sent"] = True
                continue
            key = _capacity_key(task)
            if in_use >= total or (key is not None and running.get(key, 0) >= per_deployment):
                continue  # no capacity: stays PROVISIONING
            try:
                spec = _task_spec(task)
            except Exception as error:  # noqa: BLE001 - TaskFailedToStart, or the emulator's own error
                failure = str(error) if isinstance(error, TaskFailedToStart) else \
                    f"CannotStartContainerError: {getattr(error, 'message', None) or error!r}"
                _set_last_status(task, "PENDING")
                _finish(task, failure, "TaskFailedToStart", {container.name: {"reason": failure} for container in task.containers})
                continue
            task._fargate["claimed"] = True
            running[key] = running.get(key, 0) + 1
            in_use += 1
            start.append(spec)
        stop += [{"taskArn": arn, "reason": "Task not found: the emulator no longer knows it"}
                 for arn in sorted(held - known)]
    return {"start": start, "stop": stop}, bool(news or start or held - known)


def _timestamp(value: Any) -> datetime.datetime | None:
    if value in (None, ""):
        return None
    if isinstance(value, (int, float)):
        return datetime.datetime.fromtimestamp(float(value), datetime.timezone.utc)
    return datetime.datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def fargate_report(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The stand-in reports a task's state: PENDING (pulling), RUNNING (its containers run) or STOPPED."""
    status = body.get("lastStatus")
    if status not in ("PENDING", "RUNNING", "STOPPED") or not body.get("taskArn"):
        return 400, {"message": "taskArn and lastStatus PENDING, RUNNING or STOPPED are required"}
    with _LOCK:
        task = _find_task_anywhere(body["taskArn"])
        if task is None:
            return 404, {"taskArn": body["taskArn"], "known": False}
        if task.last_status == "STOPPED" or TASK_STATES.index(task.last_status) > TASK_STATES.index(status):
            return 200, {"taskArn": task.task_arn, "lastStatus": task.last_status, "desiredStatus": task.desired_status}
        at = _timestamp(body.get("at")) or _now()
        reported = {item.get("name"): item for item in body.get("containers") or []}
        for container in task.containers:
            item = reported.get(container.name, {})
            container.runtime_id = item.get("runtimeId") or container.runtime_id
            container.image_digest = item.get("imageDigest") or container.image_digest
        if status == "PENDING":
            task.pull_started_at = _timestamp(body.get("pullStartedAt")) or at
            _set_last_status(task, "PENDING")
        elif status == "RUNNING":
            task.pull_started_at = getattr(task, "pull_started_at", None) or at
            task.pull_stopped_at = _timestamp(body.get("pullStoppedAt")) or at
            task.started_at = at
            task.connectivity, task.connectivity_at = "CONNECTED", at
            task._fargate["started"] = True
            for container in task.containers:
                container.last_status = reported.get(container.name, {}).get("lastStatus") or "RUNNING"
            _set_last_status(task, "RUNNING")
        else:
            _finish(task, body.get("stoppedReason"), body.get("stopCode"), reported, at)
        for reconcile in list(_RECONCILERS):
            reconcile(task._backend)
        return 200, {"taskArn": task.task_arn, "lastStatus": task.last_status, "desiredStatus": task.desired_status}


def fargate_logs(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Container output lines from the stand-in: written to the container's awslogs stream, as the
    awslogs driver does (a container without awslogs has nowhere to send them)."""
    from moto.logs.models import logs_backends

    with _LOCK:
        task = _find_task_anywhere(body.get("taskArn") or "")
        if task is None:
            return 404, {"accepted": 0}
        destination = (task._fargate.get("logs") or {}).get(body.get("container"))
        events = sorted(({"timestamp": int(item["timestamp"]), "message": str(item["message"])}
                         for item in body.get("events") or []), key=lambda item: item["timestamp"])
        if not destination or not events:
            return 200, {"accepted": 0}
        try:
            logs_backends[task._account_id][destination["region"]].put_log_events(
                destination["group"], destination["stream"], events)
        except Exception as err:  # noqa: BLE001 - group/stream deleted meanwhile: the lines are lost, as on AWS
            return 200, {"accepted": 0, "message": str(err)}
        return 200, {"accepted": len(events)}


# --- ECS service scheduler --------------------------------------------------------------------------


def _service_is_fargate(service: Any) -> bool:
    if (service.deployment_controller or {}).get("type", "ECS") != "ECS":
        return False
    strategy = getattr(service, "capacity_provider_strategy", None) or []
    return service.launch_type == "FARGATE" or any(
        item.get("capacityProvider") in FARGATE_CAPACITY_PROVIDERS for item in strategy)


def _scheduler_state(service: Any) -> dict[str, Any]:
    state = service.__dict__.get("_fargate_scheduler")
    if state is None:
        state = {"deployments": [], "deaths": 0, "last_death": 0.0, "last_completed": None}
        service.__dict__["_fargate_scheduler"] = state
        _new_deployment(service, state)
    return state


def _new_deployment(service: Any, state: dict[str, Any]) -> dict[str, Any]:
    now = _now()
    for deployment in state["deployments"]:
        if deployment["status"] == "PRIMARY":
            deployment["status"], deployment["updatedAt"] = "ACTIVE", now
    task_definition = service.task_definition
    if task_definition:
        task_definition = service._backend.describe_task_definition(task_definition).arn
    deployment = {
        "id": f"ecs-svc/{random.randint(10**18, 10**19 - 1)}", "status": "PRIMARY", "taskDefinition": task_definition,
        "createdAt": now, "updatedAt": now, "launchType": service.launch_type or None,
        "capacityProviderStrategy": getattr(service, "capacity_provider_strategy", None) or None,
        "platformVersion": service.platform_version or "LATEST", "platformFamily": "Linux",
        "networkConfiguration": service.network_configuration or None,
        "rolloutState": "IN_PROGRESS", "failedTasks": 0,
    }
    state["deployments"].insert(0, deployment)
    state["deaths"] = 0  # a new deployment is a new attempt: no relaunch throttling carried over
    return deployment


def _deployment_may_complete(deployment: dict[str, Any]) -> bool:
    """Hook of scripts/moto_patches_delays.py (ecs_service_deployment_delay): True unless a delay holds it."""
    return True


def service_tasks(service: Any) -> list[Any]:
    """The tasks the service started (group service:<name> in its cluster), newest last."""
    tasks = [task for task in list(service._backend.tasks.get(service.cluster_name, {}).values())
             if is_fargate_task(task) and task.group == f"service:{service.name}"]
    state = service.__dict__.get("_fargate_scheduler")
    if state is not None:
        ids = {deployment["id"] for deployment in state["deployments"]} | state.setdefault("past_ids", set())
        tasks = [task for task in tasks if task.started_by in ids]
    return sorted(tasks, key=lambda task: task.created_at)


def _counts(tasks: list[Any]) -> tuple[int, int]:
    running = sum(1 for task in tasks if task.last_status == "RUNNING")
    pending = sum(1 for task in tasks if task.desired_status == "RUNNING"
                  and task.last_status in ("PROVISIONING", "PENDING", "ACTIVATING"))
    return running, pending


def _service_event(service: Any, message: str) -> None:
    service.events.insert(0, {"id": str(uuid.uuid4()), "createdAt": _now(), "message": f"(service {service.name}) {message}"})
    del service.events[100:]


def _task_ids(tasks: list[Any]) -> str:
    return " ".join(f"(task {task.id})" for task in tasks)


def _start_service_tasks(backend: Any, service: Any, deployment: dict[str, Any], count: int) -> list[Any]:
    task_definition = backend.describe_task_definition(deployment["taskDefinition"])
    tags: list[dict[str, str]] = []
    if service.propagate_tags == "SERVICE":
        tags += list(service.tags or [])
    elif service.propagate_tags == "TASK_DEFINITION":
        tags += list(task_definition.tags or [])
    if getattr(service, "enable_ecs_managed_tags", False):
        tags += [{"key": "aws:ecs:serviceName", "value": service.name},
                 {"key": "aws:ecs:clusterName", "value": service.cluster_name}]
    strategy = getattr(service, "capacity_provider_strategy", None) or None
    return backend.run_task(service.cluster_arn, deployment["taskDefinition"], count, None, deployment["id"], tags,
                            None if strategy and service.launch_type != "FARGATE" else "FARGATE",
                            service.network_configuration or None, f"service:{service.name}",
                            service.platform_version, strategy if service.launch_type != "FARGATE" else None)


def _restart_delay(deaths: int) -> float:
    """Seconds before replacing a task after `deaths` consecutive unrequested stops (ECS throttles
    relaunches of a service whose tasks keep dying): at once twice, then 5 s doubling up to 2 min."""
    return 0.0 if deaths < 3 else float(min(5 * 2 ** (deaths - 3), 120))


def _reconcile_service(backend: Any, service: Any, state: dict[str, Any]) -> None:
    now = time.time()
    tasks = service_tasks(service)
    primary = state["deployments"][0]
    by_id = {deployment["id"]: deployment for deployment in state["deployments"]}
    for task in tasks:  # count tasks that died (nobody asked them to stop)
        if task.last_status == "STOPPED" and task._fargate.get("died") and not task._fargate.get("counted"):
            task._fargate["counted"] = True
            state["deaths"] += 1
            state["last_death"] = now
            if not task._fargate.get("started") and task.started_by in by_id:
                by_id[task.started_by]["failedTasks"] += 1
        if task.last_status == "RUNNING" and task.started_by == primary["id"]:
            primary["failedTasks"] = 0
            if (_now() - task.started_at).total_seconds() > 30:
                state["deaths"] = 0
    breaker = (getattr(service, "deployment_configuration", None) or {}).get("deploymentCircuitBreaker") or {}
    threshold = min(max(3, math.ceil(service.desired_count * 0.5)), 200)
    if breaker.get("enable") and primary["rolloutState"] == "IN_PROGRESS" and primary["failedTasks"] >= threshold:
        primary["rolloutState"] = "FAILED"
        primary["rolloutStateReason"] = "ECS deployment circuit breaker: tasks failed to start."
        _service_event(service, f"(deployment {primary['id']}) deployment failed: tasks failed to start.")
        if breaker.get("rollback") and state["last_completed"] and state["last_completed"] != primary["taskDefinition"]:
            service.task_definition = state["last_completed"]
            failed, primary = primary, _new_deployment(service, state)
            _service_event(service, f"(deployment {failed['id']}) rolling back to deployment {primary['id']}.")
    target = service.desired_count if service.status == "ACTIVE" else 0
    live = [task for task in tasks if task.desired_status == "RUNNING"]
    primary_live = [task for task in live if task.started_by == primary["id"]]
    old_live = [task for task in live if task.started_by != primary["id"]]
    reason = f"Scaling activity initiated by (deployment {primary['id']})"
    stopped: list[Any] = []
    # Scale in: tasks not running yet first, then the oldest.
    for task in sorted(primary_live, key=lambda t: (t.last_status == "RUNNING", t.created_at))[:max(0, len(primary_live) - target)]:
        request_stop(task, reason, "ServiceSchedulerInitiated")
        stopped.append(task)
        live.remove(task)
        primary_live.remove(task)
    config = getattr(service, "deployment_configuration", None) or {}
    maximum = max(target, target * int(config.get("maximumPercent", 200)) // 100)
    wanted = min(target - len(primary_live), maximum - len(live))
    can_start = primary["rolloutState"] != "FAILED" and now >= state["last_death"] + _restart_delay(state["deaths"])
    if wanted > 0 and can_start and primary["taskDefinition"]:
        started = _start_service_tasks(backend, service, primary, wanted)
        _service_event(service, f"has started {len(started)} tasks: {_task_ids(started)}.")
    # Rolling update: stop old tasks while enough tasks stay RUNNING (minimumHealthyPercent).
    minimum = math.ceil(target * int(config.get("minimumHealthyPercent", 100)) / 100)
    running = sum(1 for task in live if task.last_status == "RUNNING")
    for task in sorted(old_live, key=lambda t: (t.last_status == "RUNNING", t.created_at)):
        if task.last_status != "RUNNING" or running - 1 >= minimum:
            running -= task.last_status == "RUNNING"
            request_stop(task, reason, "ServiceSchedulerInitiated")
            stopped.append(task)
    if stopped:
        _service_event(service, f"has stopped {len(stopped)} running tasks: {_task_ids(stopped)}.")
    # Drained deployments leave the list; the primary completes when it runs the desired count alone.
    for deployment in state["deployments"][1:]:
        if not any(task.started_by == deployment["id"] and task.last_status != "STOPPED" for task in tasks):
            state["deployments"].remove(deployment)
            state.setdefault("past_ids", set()).add(deployment["id"])
    primary_running = sum(1 for task in service_tasks(service)
                          if task.started_by == primary["id"] and task.last_status == "RUNNING")
    if primary["rolloutState"] == "IN_PROGRESS" and len(state["deployments"]) == 1 and service.status == "ACTIVE" \
            and primary_running >= service.desired_count and _deployment_may_complete(primary):
        primary["rolloutState"] = "COMPLETED"
        primary["updatedAt"] = _now()
        state["last_completed"] = primary["taskDefinition"]
        _service_event(service, f"(deployment {primary['id']}) deployment completed.")
        _service_event(service, "has reached a steady state.")


def reconcile_services(backend: Any) -> None:
    """Run the service scheduler once over every Fargate service of one ECS backend."""
    with _LOCK:
        deployment_ids: set[str] = set()
        for service in list(backend.services.values()):
            if not _service_is_fargate(service):
                continue
            state = _scheduler_state(service)
            try:
                _reconcile_service(backend, service, state)
            except Exception as err:  # noqa: BLE001 - one service must not stop the scheduler
                message = f"(service {service.name}) was unable to place a task. Reason: {getattr(err, 'message', None) or err}."
                if not service.events or service.events[0]["message"] != message:  # once, not on every poll
                    _service_event(service, message.split(") ", 1)[1])
                    print(f"moto patches: scheduling service {service.name} failed: {err!r}", file=sys.stderr, flush=True)
            deployment_ids |= {d["id"] for d in state["deployments"]} | state.get("past_ids", set())
        for task in _fargate_tasks(backend):  # tasks of a service that was replaced by a new one of that name
            if task.group.startswith("service:") and (task.started_by or "").startswith("ecs-svc/") \
                    and task.started_by not in deployment_ids and task.desired_status == "RUNNING":
                request_stop(task, f"Scaling activity initiated by (deployment {task.started_by})",
                             "ServiceSchedulerInitiated")


def _add_class_attribute(owner: type, name: str, value: Any) -> Undo:
    """Set a class attribute that may not exist yet; the returned callable restores the class."""
    missing = object()
    original = owner.__dict__.get(name, missing)
    setattr(owner, name, value)

    def undo() -> None:
        if original is missing:
            delattr(owner, name)
        else:
            setattr(owner, name, original)

    return undo


def ecs_service_scheduler() -> Undo:
    """ECS services on Fargate run real tasks.

    AWS: the service scheduler keeps desiredCount tasks of the service's current task definition
    (group `service:<name>`, startedBy the deployment id `ecs-svc/<n>`, the service's network
    configuration, tags propagated when asked), replaces a task that stopped, and on a new task
    definition (or forceNewDeployment, or a new network configuration) starts a new deployment:
    new tasks start and old ones stop as maximumPercent/minimumHealthyPercent allow (old STOPPED,
    new RUNNING). runningCount/pendingCount and each deployment's counts and rolloutState
    (IN_PROGRESS -> COMPLETED; FAILED when the circuit breaker trips, with a rollback if enabled)
    come from those tasks; scaling to 0 or deleting the service stops them.
    CreateService without securityGroups uses the VPC's default security group.
    moto 5.2: a service has no tasks at all; runningCount is a fixed number from
    MOTO_ECS_SERVICE_RUNNING, and the single deployment never changes with the task definition;
    CreateService without securityGroups answers 500 (KeyError).
    Patch: for ACTIVE services with launchType FARGATE (or a FARGATE/FARGATE_SPOT capacity provider
    strategy) a scheduler keeps real tasks (RunTask'd through moto, so ecs_task_lifecycle applies)
    and derives the counts and deployments from them. It runs after CreateService/UpdateService/
    DeleteService and on every poll and report of the Fargate stand-in; with no stand-in running the
    tasks stay PROVISIONING, as in a region without Fargate capacity. The stand-in runs at most
    LOCAL_STACK_FARGATE_MAX_SERVICE_TASKS (default 1) tasks per deployment: the others stay
    PROVISIONING. Relaunches of tasks that keep dying are throttled (at once twice, then from 5 s
    doubling to 2 min); the circuit breaker counts tasks that never reached RUNNING (no health checks).
    """
    from moto.ecs.models import EC2ContainerServiceBackend, Service
    from moto.ecs.responses import EC2ContainerServiceResponse

    def counted(index: int, stored: str, name: str) -> property:
        def get(self: Any) -> Any:
            if _service_is_fargate(self):
                return _counts(service_tasks(self))[index]
            return self.__dict__.get(stored, self.__dict__.get(name, 0))

        def put(self: Any, value: Any) -> None:
            self.__dict__[stored] = value

        return property(get, put)

    def get_deployments(self: Any) -> list[dict[str, Any]]:
        if not _service_is_fargate(self):
            return self.__dict__.get("_moto_deployments", self.__dict__.get("deployments", []))
        state = _scheduler_state(self)
        tasks = service_tasks(self)
        answer = []
        for deployment in list(state["deployments"]):
            mine = [task for task in tasks if task.started_by == deployment["id"]]
            running, pending = _counts(mine)
            desired = self.desired_count if deployment["status"] == "PRIMARY" and self.status == "ACTIVE" \
                else sum(1 for task in mine if task.desired_status == "RUNNING")
            reason = deployment.get("rolloutStateReason") or (
                f"ECS deployment {deployment['id']} completed." if deployment["rolloutState"] == "COMPLETED"
                else f"ECS deployment {deployment['id']} in progress.")
            answer.append({key: value for key, value in {
                **deployment, "desiredCount": desired, "runningCount": running, "pendingCount": pending,
                "rolloutStateReason": reason}.items() if value is not None})
        return answer

    def set_deployments(self: Any, value: Any) -> None:
        self.__dict__["_moto_deployments"] = value

    def reconciled(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            result = method(self, *args, **kwargs)
            reconcile_services(self)
            return result

        return wrapper

    original_update = EC2ContainerServiceBackend.update_service

    @functools.wraps(original_update)
    def update_service(self: Any, service_properties: dict[str, Any]) -> Any:
        props = dict(service_properties)
        before = self._get_service(props.get("cluster", "default"), str(props.get("service", "")).split("/")[-1])

        def shape(service: Any) -> tuple[Any, ...]:
            task_definition = service.task_definition and self.describe_task_definition(service.task_definition).arn
            return task_definition, json.dumps(service.network_configuration or {}, sort_keys=True), service.platform_version

        with _LOCK:
            if _service_is_fargate(before):
                _scheduler_state(before)
            old = shape(before)
            service = original_update(self, service_properties)
            if _service_is_fargate(service):
                state = _scheduler_state(service)
                if shape(service) != old or props.get("force_new_deployment"):
                    _new_deployment(service, state)
            reconcile_services(self)
        return service

    original_create_response = EC2ContainerServiceResponse.create_service

    @functools.wraps(original_create_response)
    def create_service_response(self: Any) -> Any:
        result = original_create_response(self)
        strategy = self._get_param("capacityProviderStrategy")
        if strategy and not self._get_param("launchType"):
            service = self.ecs_backend._get_service(self._get_param("cluster", "default"), self._get_param("serviceName"))
            service.launch_type = None
            service.capacity_provider_strategy = strategy
            reconcile_services(self.ecs_backend)
        return result

    original_validate = Service._validate_network

    @functools.wraps(original_validate)
    def validate_network(self: Any, network_configuration: dict[str, Any]) -> dict[str, Any]:
        config = network_configuration.get("awsvpcConfiguration") or {}
        if "securityGroups" in config:
            return original_validate(self, network_configuration)
        original_validate(self, {**network_configuration, "awsvpcConfiguration": {**config, "securityGroups": []}})
        return network_configuration  # the tasks get the VPC's default security group

    undo = [
        _replace(Service, "_validate_network", validate_network),
        _add_class_attribute(Service, "running_count", counted(0, "_moto_running_count", "running_count")),
        _add_class_attribute(Service, "pending_count", counted(1, "_moto_pending_count", "pending_count")),
        _add_class_attribute(Service, "deployments", property(get_deployments, set_deployments)),
        _replace(EC2ContainerServiceBackend, "create_service", reconciled(EC2ContainerServiceBackend.create_service)),
        _replace(EC2ContainerServiceBackend, "delete_service", reconciled(EC2ContainerServiceBackend.delete_service)),
        _replace(EC2ContainerServiceBackend, "update_service", update_service),
        _replace(EC2ContainerServiceResponse, "create_service", create_service_response),
    ]
    _RECONCILERS.append(reconcile_services)

    def undo_all() -> None:
        _RECONCILERS.remove(reconcile_services)
        for step in reversed(undo):
            step()

    return undo_all


# --- ECS task state-change events -------------------------------------------------------------------


def _iso(value: datetime.datetime | None) -> str | None:
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.timezone.utc)
    return value.astimezone(datetime.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def task_state_change_event(task: Any) -> dict[str, Any]:
    """The "ECS Task State Change" event AWS sends for the task's current state."""
    detail = {
        "attachments": getattr(task, "attachments", None) or [],
        "attributes": [{"name": "ecs.cpu-architecture", "value": "x86_64"}],
        "availabilityZone": getattr(task, "availability_zone", None),
        "capacityProviderName": task.capacity_provider_name,
        "clusterArn": task.cluster_arn,
        "connectivity": getattr(task, "connectivity", None),
        "connectivityAt": _iso(getattr(task, "connectivity_at", None)),
        "containers": [container.event_shape() for container in task.containers],
        "cpu": task.cpu, "memory": task.memory,
        "createdAt": _iso(task.created_at),
        "desiredStatus": task.desired_status,
        "enableExecuteCommand": False,
        "ephemeralStorage": {"sizeInGiB": 20},
        "executionStoppedAt": _iso(getattr(task, "execution_stopped_at", None)),
        "group": task.group,
        "launchType": task.launch_type,
        "lastStatus": task.last_status,
        "overrides": task.overrides or {"containerOverrides": [{"name": c.name} for c in task.containers]},
        "platformVersion": task.platform_version,
        "platformFamily": "Linux",
        "pullStartedAt": _iso(getattr(task, "pull_started_at", None)),
        "pullStoppedAt": _iso(getattr(task, "pull_stopped_at", None)),
        "startedAt": _iso(getattr(task, "started_at", None)),
        "startedBy": task.started_by or None,
        "stopCode": task.stop_code,
        "stoppedAt": _iso(getattr(task, "stopped_at", None)),
        "stoppedReason": task.stopped_reason,
        "stoppingAt": _iso(getattr(task, "stopping_at", None)),
        "updatedAt": _iso(getattr(task, "updated_at", None) or task.created_at),
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "version": task.version,
    }
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "ECS Task State Change", "source": "aws.ecs",
        "account": task._account_id, "time": _now().strftime("%Y-%m-%dT%H:%M:%SZ"), "region": task.region_name,
        "resources": [task.task_arn], "detail": {key: value for key, value in detail.items() if value is not None},
    }


def _policy_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _queue_accepts(queue: Any, rule_arn: str, account_id: str) -> bool:
    """Whether the queue's policy lets EventBridge (events.amazonaws.com, for this rule) send to it."""
    try:
        policy = json.loads(queue.policy or "{}")
    except ValueError:
        return False
    context = {"aws:sourcearn": rule_arn, "aws:sourceaccount": account_id}
    allowed = False
    for statement in _policy_list(policy.get("Statement", [])):
        principal = statement.get("Principal")
        if not (principal == "*" or (isinstance(principal, dict) and (
                "*" in _policy_list(principal.get("AWS", [])) or
                "events.amazonaws.com" in _policy_list(principal.get("Service", []))))):
            continue
        if not any(fnmatch.fnmatch("sqs:sendmessage", action.lower()) for action in _policy_list(statement.get("Action", []))):
            continue
        if not any(fnmatch.fnmatch(queue.queue_arn, resource) for resource in _policy_list(statement.get("Resource", "*"))):
            continue
        matches = True
        for operator, pairs in (statement.get("Condition") or {}).items():
            for key, expected in pairs.items():
                actual = context.get(key.lower())
                wanted = [str(item) for item in _policy_list(expected)]
                if operator in ("ArnEquals", "StringEquals"):
                    matches &= actual in wanted
                elif operator in ("ArnLike", "StringLike"):
                    matches &= actual is not None and any(fnmatch.fnmatchcase(actual, item) for item in wanted)
                else:
                    matches = False  # an operator not evaluated here: do not guess that it allows
        if not matches:
            continue
        if statement.get("Effect") == "Deny":
            return False
        allowed = True
    return allowed


def deliver_event(account_id: str, region: str, event: dict[str, Any]) -> None:
    """Put an AWS service event on the default bus: every ENABLED rule whose pattern matches sends it
    to its targets. SQS targets (without input transformation) get the event exactly, when the queue
    policy lets EventBridge send; other targets go through moto's own delivery."""
    from moto.events.models import events_backends
    from moto.sqs.models import sqs_backends
    from moto.utilities.utils import get_partition as partition_of  # noqa: F401 - keeps moto's import order

    try:
        bus = events_backends[account_id][region].describe_event_bus("default")
    except Exception:  # noqa: BLE001 - no bus: nobody listens
        return
    for rule in list(bus.rules.values()):
        if rule.state != "ENABLED" or not rule.event_pattern.matches_event(event):
            continue
        others = []
        for target in list(rule.targets):
            parts = target["Arn"].split(":")
            if parts[2] != "sqs" or any(key in target for key in ("InputTransformer", "Input", "InputPath")):
                others.append(target)
                continue
            try:
                queue = sqs_backends[parts[4]][parts[3]].get_queue(parts[5])
            except Exception:  # noqa: BLE001 - the queue is gone: FailedInvocations on AWS
                continue
            if not _queue_accepts(queue, rule.arn, account_id):
                print(f"moto patches: {event['detail-type']} not delivered to {queue.queue_arn}: its policy does not "
                      f"let events.amazonaws.com (rule {rule.arn}) sqs:SendMessage", file=sys.stderr, flush=True)
                continue
            sqs_backends[parts[4]][parts[3]].send_message(
                queue_name=parts[5], message_body=json.dumps(event),
                group_id=(target.get("SqsParameters") or {}).get("MessageGroupId"))
        if others:
            copy_of_rule = copy.copy(rule)
            copy_of_rule.targets = others
            copy_of_rule.send_to_targets({**event, "time": time.time()})


def _emit_task_state_change(task: Any) -> None:
    deliver_event(task._account_id, task.region_name, task_state_change_event(task))


def ecs_task_state_change_events() -> Undo:
    """EventBridge: "ECS Task State Change" events.

    AWS: every change of a task's lastStatus (and of its desiredStatus) is an event on the account's
    default bus (source aws.ecs, detail-type "ECS Task State Change", resources [taskArn], detail =
    the task as DescribeTasks shows it: clusterArn, taskArn, lastStatus, desiredStatus, containers with
    exitCode/reason, stopCode, stoppedReason, group, startedBy, launchType, timestamps, version); rules
    deliver it to their targets, to an SQS queue when the queue policy lets events.amazonaws.com send.
    prefect-aws's ECS observer reads them from such a queue to detect crashed flow runs.
    moto 5.2: ECS sends no events.
    Patch: every state change of a Fargate task (ecs_task_lifecycle) is delivered to the matching
    ENABLED rules of the default bus: to SQS targets exactly as AWS sends it, after checking the queue
    policy (Allow for events.amazonaws.com, sqs:SendMessage, the queue ARN; ArnEquals/ArnLike/
    StringEquals/StringLike on aws:SourceArn/aws:SourceAccount; other condition operators do not
    match); other targets through moto's own delivery.
    """
    _TASK_LISTENERS.append(_emit_task_state_change)
    return lambda: _TASK_LISTENERS.remove(_emit_task_state_change)


# --- ELBv2 -----------------------------------------------------------------------------------------


def _ecs_service_targets(account_id: str, region: str, target_group: Any) -> dict[str, int]:
    """IP -> container port of the RUNNING tasks of every ECS service attached to the target group."""
    from moto.ecs.models import ecs_backends

    targets: dict[str, int] = {}
    for service in list(ecs_backends[account_id][region].services.values()):
        for lb in service.load_balancers or []:
            if lb.get("targetGroupArn") != target_group.arn:
                continue
            for task in service_tasks(service):
                address = task_private_ip(task)
                if task.last_status == "RUNNING" and address:
                    targets[address] = int(lb.get("containerPort") or target_group.port or 80)
    return targets


def elbv2_ecs_service_targets() -> Undo:
    """DescribeTargetHealth: the tasks of an ECS service behind the target group.

    AWS: an ECS service created with `loadBalancers` registers each RUNNING task's private IP (target
    type `ip`, the container port) in the target group; DescribeTargetHealth reports them, `healthy`
    once the health check passes.
    moto 5.2: nothing registers the service's tasks, so DescribeTargetHealth returns [] for the
    target group of a service that runs tasks.
    Patch: DescribeTargetHealth also reports, as `healthy`, the private IP (ENI address) and container
    port of every RUNNING task of each ECS service that names the target group (the tasks the
    ecs_service_scheduler patch keeps); a task that stops leaves the target group.
    """
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus

    original = ELBv2Backend.describe_target_health

    @functools.wraps(original)
    def describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
        answer = original(self, target_group_arn, targets)
        target_group = self.target_groups[target_group_arn]
        service_targets = _ecs_service_targets(self.account_id, self.region_name, target_group)
        if not service_targets:
            return answer

        def healthy(ip: str, port: int) -> Any:
            return FakeHealthStatus(ip, port, target_group.health_check_port, "healthy")

        if not targets:
            registered = {status.instance_id for status in answer}
            return answer + [healthy(ip, port) for ip, port in service_targets.items() if ip not in registered]
        return [healthy(t["Id"], service_targets[t["Id"]]) if t["Id"] in service_targets else status
                for t, status in zip(targets, answer)]

    return _replace(ELBv2Backend, "describe_target_health", describe_target_health)


# AWS's DescribeLoadBalancerAttributes answer for a new load balancer, per type.
ELBV2_DEFAULT_ATTRIBUTES = {
    "application": {
        "access_logs.s3.enabled": "false",
        "access_logs.s3.bucket": "",
        "access_logs.s3.prefix": "",
        "client_keep_alive.seconds": "3600",
        "connection_logs.s3.enabled": "false",
        "connection_logs.s3.bucket": "",
        "connection_logs.s3.prefix": "",
        "deletion_protection.enabled": "false",
        "idle_timeout.timeout_seconds": "60",
        "load_balancing.cross_zone.enabled": "true",
        "routing.http.desync_mitigation_mode": "defensive",
        "routing.http.drop_invalid_header_fields.enabled": "false",
        "routing.http.preserve_host_header.enabled": "false",
        "routing.http.x_amzn_tls_version_and_cipher_suite.enabled": "false",
        "routing.http.xff_client_port.enabled": "false",
        "routing.http.xff_header_processing.mode": "append",
        "routing.http2.enabled": "true",
        "waf.fail_open.enabled": "false",
        "zonal_shift.config.enabled": "false",
    },
    "network": {
        "access_logs.s3.enabled": "false",
        "access_logs.s3.bucket": "",
        "access_logs.s3.prefix": "",
        "deletion_protection.enabled": "false",
        "dns_record.client_routing_policy": "any_availability_zone",
        "load_balancing.cross_zone.enabled": "false",
        "zonal_shift.config.enabled": "false",
    },
}


def elbv2_load_balancer_attributes() -> Undo:
    """DescribeLoadBalancerAttributes: every attribute, with AWS's defaults.

    AWS: a new application load balancer reports all its attributes with their defaults
    (idle_timeout.timeout_seconds 60, access_logs.s3.enabled false, routing.http2.enabled true, ...).
    moto 5.2: reports only access_logs.s3.bucket/prefix, deletion_protection.enabled and
    load_balancing.cross_zone.enabled until a key is set, so amazon.aws.elb_application_lb fails with a
    KeyError on the first attribute option it compares (idle_timeout, http2, ...).
    Patch: a new load balancer starts with AWS's default attributes for its type.
    """
    from moto.elbv2.models import FakeLoadBalancer

    original = FakeLoadBalancer.__init__

    @functools.wraps(original)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self.attrs = {**ELBV2_DEFAULT_ATTRIBUTES.get(self.type, {}), **{
            key: value for key, value in self.attrs.items() if key not in ELBV2_DEFAULT_ATTRIBUTES.get(self.type, {})}}

    return _replace(FakeLoadBalancer, "__init__", __init__)


# --- EC2 -------------------------------------------------------------------------------------------


def ec2_nat_gateway_tag_type() -> Undo:
    """DescribeTags: a NAT gateway's resource type is `natgateway`.

    AWS: DescribeTags names a NAT gateway's tags with resource type `natgateway`, and the
    `resource-type=natgateway` filter finds them.
    moto 5.2: reports `nat-gateway`, so the filter finds nothing; amazon.aws.ec2_vpc_nat_gateway (which
    reads tags with that filter) sees no tags and re-tags the NAT gateway on every run.
    Patch: moto's resource-type name for the `nat-` prefix becomes `natgateway`.
    """
    from moto.ec2 import utils

    original = utils.EC2_PREFIX_TO_RESOURCE["nat"]

    def undo() -> None:
        utils.EC2_PREFIX_TO_RESOURCE["nat"] = original

    utils.EC2_PREFIX_TO_RESOURCE["nat"] = "natgateway"  # the same dict moto.ec2.models.tags reads
    return undo


# --- S3 --------------------------------------------------------------------------------------------

# The request context of every request to the loopback endpoint: it stands in for AWS's TLS endpoint.
S3_REQUEST_CONTEXT = {"aws:securetransport": "true"}


def _condition_matches(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool | None:
    """True/False for the operators evaluated here; None for the others (moto's own handling)."""
    actual = context.get(key.lower())
    values = [str(v) for v in (expected if isinstance(expected, list) else [expected])]
    if operator == "Bool":
        return actual is not None and actual.lower() in [v.lower() for v in values]
    if operator == "StringEquals":
        return actual is not None and actual in values
    if operator == "StringNotEquals":
        return actual is None or actual not in values
    return None


def s3_secure_transport() -> Undo:
    """Bucket policy: the request came over TLS (aws:SecureTransport = true).

    AWS: a bucket policy statement applies only when its Condition matches; requests to the HTTPS
    endpoint have aws:SecureTransport=true, so the usual TLS-only `Deny` with
    `Bool: {aws:SecureTransport: false}` refuses only plain-HTTP requests.
    moto 5.2: evaluates the bucket policy on object requests (Get/Put/Delete/HeadObject,
    DeleteObjects) but skips conditions with operators it does not know (`Bool` among them) as if they
    matched, and answers DENIED for a statement whose condition does not match; so the TLS-only Deny
    refuses every object request.
    Patch: evaluate each statement against the context {aws:SecureTransport: true} (Bool,
    StringEquals, StringNotEquals); a statement whose condition does not match does not apply.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult
    from moto.s3.models import FakeBucket

    original = FakeBucket.get_permission

    @functools.wraps(original)
    def get_permission(self: Any, action: str, resource: str) -> Any:
        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = json.loads(self.policy.decode() if isinstance(self.policy, bytes) else self.policy)
        statements = policy.get("Statement", [])
        result = PermissionResult.NEUTRAL
        for statement in statements if isinstance(statements, list) else [statements]:
            conditions = statement.get("Condition") or {}
            kept: dict[str, dict[str, Any]] = {}
            applies = True
            for operator, pairs in conditions.items():
                for key, expected in pairs.items():
                    matched = _condition_matches(operator, key, expected, S3_REQUEST_CONTEXT)
                    if matched is None:
                        kept.setdefault(operator, {})[key] = expected
                    elif not matched:
                        applies = False
            if not applies:
                continue
            rest = {k: v for k, v in statement.items() if k != "Condition"}
            if kept:
                rest["Condition"] = kept
            permission = IAMPolicyStatement(rest).is_action_permitted(action, resource)
            if permission == PermissionResult.DENIED:
                return permission
            if permission == PermissionResult.PERMITTED:
                result = permission
        return result

    return _replace(FakeBucket, "get_permission", get_permission)


# --- ECR -------------------------------------------------------------------------------------------


def _registry_request(url: str, method: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request to the registry; (0, {}, b"") when it cannot be reached (not running: nothing to see)."""
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()
    except (urllib.error.URLError, OSError):
        return 0, {}, b""


MANIFEST_TYPES = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])


def ecr_delete_repository_images() -> Undo:
    """DeleteRepository: the images are in the loopback registry.

    AWS: ECR's API and its registry are one service: DeleteRepository refuses a repository that holds
    images (RepositoryNotEmptyException) unless `force`, and with `force` deletes the images too.
    moto 5.2: answers the ECR API only; images pushed to the local stack's registry (its address in
    LOCAL_STACK_ECR_REGISTRY_URL) are unknown to it, so a non-empty repository is deleted without
    force and its images stay in the registry.
    Patch: when LOCAL_STACK_ECR_REGISTRY_URL is set, DeleteRepository lists the repository's tags in
    that registry; with tags and no force it raises RepositoryNotEmptyException, with force it deletes
    every manifest first.
    """
    from moto.ecr.exceptions import RepositoryNotEmptyException
    from moto.ecr.models import ECRBackend

    original = ECRBackend.delete_repository

    @functools.wraps(original)
    def delete_repository(self: Any, repository_name: str, registry_id: str | None = None, force: bool = False) -> Any:
        base = os.environ.get(ECR_REGISTRY_ENV, "").rstrip("/")
        if base and repository_name in self.repositories:
            status, _, body = _registry_request(f"{base}/v2/{repository_name}/tags/list", "GET")
            tags = (json.loads(body or b"{}").get("tags") or []) if status == 200 else []
            if tags and not force:
                raise RepositoryNotEmptyException(repository_name, registry_id or self.account_id)
            digests = set()
            for tag in tags:
                status, headers, _ = _registry_request(f"{base}/v2/{repository_name}/manifests/{tag}", "HEAD",
                                                       {"Accept": MANIFEST_TYPES})
                digest = {k.lower(): v for k, v in headers.items()}.get("docker-content-digest")
                if status == 200 and digest:
                    digests.add(digest)
            for digest in sorted(digests):
                _registry_request(f"{base}/v2/{repository_name}/manifests/{digest}", "DELETE")
        return original(self, repository_name, registry_id, force)

    return _replace(ECRBackend, "delete_repository", delete_repository)


def s3_default_encryption() -> Undo:
    """S3 default encryption for every bucket.

    AWS: since January 2023 every bucket has SSE-S3 as its base level of encryption; an object written
    without an ``x-amz-server-side-encryption`` header (and no bucket configuration) is stored with
    AES256 and HeadObject/GetObject report ``ServerSideEncryption: AES256``.
    moto 5.2: such an object is stored unencrypted and reports no ServerSideEncryption.
    Patch: PutObject with no encryption, into a bucket with no encryption configuration, uses AES256.
    """
    from moto.s3.models import S3Backend

    original = S3Backend.put_object

    @functools.wraps(original)
    def put_object(self, bucket_name, key_name, value, *args, **kwargs):
        if kwargs.get("encryption") is None and not self.get_bucket(bucket_name).encryption:
            kwargs["encryption"] = "AES256"
        return original(self, bucket_name, key_name, value, *args, **kwargs)

    return _replace(S3Backend, "put_object", put_object)


# --- apply / undo ----------------------------------------------------------------------------------

PATCHES: dict[str, Callable[[], Undo]] = {
    "ecs_cluster_capacity_providers": ecs_cluster_capacity_providers,
    "ecs_list_tags_always_a_list": ecs_list_tags_always_a_list,
    "ecs_create_service_settings": ecs_create_service_settings,
    "ecs_update_service_task_definition_arn": ecs_update_service_task_definition_arn,
    "ecs_fargate_task_resources": ecs_fargate_task_resources,
    "ecs_task_lifecycle": ecs_task_lifecycle,
    "ecs_service_scheduler": ecs_service_scheduler,
    "ecs_task_state_change_events": ecs_task_state_change_events,
    "elbv2_ecs_service_targets": elbv2_ecs_service_targets,
    "elbv2_load_balancer_attributes": elbv2_load_balancer_attributes,
    "ec2_nat_gateway_tag_type": ec2_nat_gateway_tag_type,
    "s3_secure_transport": s3_secure_transport,
    "s3_default_encryption": s3_default_encryption,
    "ecr_delete_repository_images": ecr_delete_repository_images,
}

# IAM enforcement, in its own module (the tests import this one as scripts.moto_patches, moto_server.py
# as moto_patches with the scripts folder on sys.path).
try:
    from scripts import moto_patches_iam
except ImportError:
    import moto_patches_iam  # type: ignore[no-redef]

PATCHES.update(moto_patches_iam.PATCHES)

# Pending delays (NAT, load balancer, service deployment), 0 unless configured: scripts/moto_patches_delays.py.
try:
    from scripts import moto_patches_delays
except ImportError:
    import moto_patches_delays  # type: ignore[no-redef]

PATCHES.update(moto_patches_delays.PATCHES)
# Fault injection (AWS throttling on demand), in its own module too.
try:
    from scripts import moto_patches_faults
except ImportError:
    import moto_patches_faults  # type: ignore[no-redef]

PATCHES.update(moto_patches_faults.PATCHES)
# Application Auto Scaling gaps (worker autoscaling), in their own module.
try:
    from scripts import moto_patches_autoscaling
except ImportError:
    import moto_patches_autoscaling  # type: ignore[no-redef]

PATCHES.update(moto_patches_autoscaling.PATCHES)
# RDS: the local PostgreSQL server as the engine of postgres instances (scripts/moto_patches_rds.py).
try:
    from scripts import moto_patches_rds
except ImportError:
    import moto_patches_rds  # type: ignore[no-redef]

PATCHES.update(moto_patches_rds.PATCHES)

_APPLIED: dict[str, Undo] = {}


def apply_all() -> list[str]:
    """Apply every patch not applied yet (idempotent); returns the names of all applied patches."""
    for name, patch in PATCHES.items():
        if name not in _APPLIED:
            _APPLIED[name] = patch()
    return list(_APPLIED)


def undo_all() -> None:
    """Undo every applied patch, newest first."""
    for name in reversed(list(_APPLIED)):
        _APPLIED.pop(name)()
