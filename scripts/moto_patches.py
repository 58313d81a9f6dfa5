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
  elbv2_ecs_service_targets       An ECS service with loadBalancers has its running tasks registered
                                  as healthy `ip` targets (container port) of its target group.
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

Use: `apply_all()` (idempotent) before moto's server starts (scripts/moto_server.py does), `undo_all()`
to restore moto. Each patch function applies its change and returns a callable that undoes it.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import os
import urllib.error
import urllib.request
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


# --- ELBv2 -----------------------------------------------------------------------------------------


def _ecs_service_targets(account_id: str, region: str, target_group: Any) -> dict[str, int]:
    """IP -> port of the running tasks of every ACTIVE ECS service attached to the target group."""
    from moto.ec2.models import ec2_backends
    from moto.ecs.models import ecs_backends

    targets: dict[str, int] = {}
    ecs = ecs_backends[account_id][region]
    ec2 = ec2_backends[account_id][region]
    for service in list(ecs.services.values()):
        if service.status != "ACTIVE":
            continue
        for lb in service.load_balancers or []:
            if lb.get("targetGroupArn") != target_group.arn:
                continue
            running = max(0, min(int(service.running_count or 0), int(service.desired_count or 0)))
            subnets = ((service.network_configuration or {}).get("awsvpcConfiguration") or {}).get("subnets") or []
            networks = []
            for subnet_id in subnets:
                try:
                    networks.append(ipaddress.ip_network(ec2.get_subnet(subnet_id).cidr_block))
                except Exception:  # noqa: BLE001 - a deleted subnet has no tasks
                    continue
            for index in range(running if networks else 0):
                # Spread over the service's subnets, as ECS does over AZs; stable across calls.
                network = networks[index % len(networks)]
                address = str(network.network_address + 10 + index // len(networks))
                targets[address] = int(lb.get("containerPort") or target_group.port or 80)
    return targets


def elbv2_ecs_service_targets() -> Undo:
    """DescribeTargetHealth: the tasks of an ECS service behind the target group.

    AWS: an ECS service created with `loadBalancers` registers each RUNNING task's private IP (target
    type `ip`, the container port) in the target group; DescribeTargetHealth reports them, `healthy`
    once the health check passes.
    moto 5.2: nothing registers the service's tasks, so DescribeTargetHealth returns [] for the
    target group of a service that reports running tasks (MOTO_ECS_SERVICE_RUNNING).
    Patch: DescribeTargetHealth also reports, as `healthy`, one target per running task of every ACTIVE
    ECS service that names the target group (IPs in the service's subnets, the container port).
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
    "elbv2_ecs_service_targets": elbv2_ecs_service_targets,
    "elbv2_load_balancer_attributes": elbv2_load_balancer_attributes,
    "ec2_nat_gateway_tag_type": ec2_nat_gateway_tag_type,
    "s3_secure_transport": s3_secure_transport,
    "s3_default_encryption": s3_default_encryption,
    "ecr_delete_repository_images": ecr_delete_repository_images,
}

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
