"""The local stack's moto patch layer, pending delays: hold long AWS creations in their pending state.

On AWS a cold deploy is dominated by waits (a NAT gateway is `pending` for a minute or two, a load
balancer `provisioning` for a few minutes, an ECS service deployment IN_PROGRESS until its tasks are
healthy); moto makes everything ready at once, so a converge that waits for each in turn looks as fast as
one that overlaps them. These patches hold each resource in its pending state for a configurable time,
measured from its creation, so that the benchmark (bench/bench_converge.py --delays) shows how much of
the sum of the waits a converge pays. All default to 0 (moto's behaviour).

  nat_gateway_pending_delay       A new NAT gateway reports `pending` for LOCAL_STACK_DELAY_NAT_S
                                  seconds, then `available`.
  elbv2_provisioning_delay        A new load balancer reports `provisioning` for LOCAL_STACK_DELAY_ALB_S
                                  seconds, then `active` (moto: active on the first describe).
  elbv2_targets_initial_while_provisioning
                                  Targets of a load balancer held `provisioning` report `initial`
                                  (AWS health-checks them only once it is active).
  nat_gateway_route_consistency   A route to a NAT gateway id EC2 does not know is refused with
                                  InvalidNatGatewayID.NotFound (moto accepts any id), and so is a route
                                  to a new NAT gateway for LOCAL_STACK_DELAY_NAT_UNKNOWN_S seconds (EC2's
                                  eventual consistency: a seconds-old id may not be known yet).
  ecs_service_deployment_delay    A service deployment stays IN_PROGRESS for at least
                                  LOCAL_STACK_DELAY_SERVICE_S seconds after it starts, even when its
                                  tasks already run (moto_patches.ecs_service_scheduler completes it as
                                  soon as they do).

The delays come from the environment of the moto server and can be changed while it runs (for new
resources only) with set_delays(), which scripts/moto_server.py serves as POST /_local_stack/delays
{"nat": s, "alb": s, "service": s, "nat_unknown": s} (a private channel, not an AWS API).
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable
from typing import Any

Undo = Callable[[], None]

ENV = {"nat": "LOCAL_STACK_DELAY_NAT_S", "alb": "LOCAL_STACK_DELAY_ALB_S", "service": "LOCAL_STACK_DELAY_SERVICE_S",
       "nat_unknown": "LOCAL_STACK_DELAY_NAT_UNKNOWN_S"}
_OVERRIDES: dict[str, float] = {}


def delay(kind: str) -> float:
    """Seconds a new resource of `kind` (nat, alb, service) stays pending: set_delays() value, else the environment, else 0."""
    if kind in _OVERRIDES:
        return _OVERRIDES[kind]
    try:
        return max(0.0, float(os.environ.get(ENV[kind], "0") or 0))
    except ValueError:
        return 0.0


def set_delays(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Set the delays for resources created from now on; answers the delays in force."""
    for kind in ENV:
        if kind in body:
            try:
                _OVERRIDES[kind] = max(0.0, float(body[kind]))
            except (TypeError, ValueError):
                return 400, {"message": f"{kind} must be a number of seconds, got {body[kind]!r}"}
    return 200, {kind: delay(kind) for kind in ENV}


def _replace(owner: Any, name: str, new: Any) -> Undo:
    had = name in vars(owner)
    old = vars(owner).get(name)
    setattr(owner, name, new)

    def undo() -> None:
        if had:
            setattr(owner, name, old)
        else:
            delattr(owner, name)
    return undo


def _chain(*undos: Undo) -> Undo:
    def undo() -> None:
        for one in reversed(undos):
            one()
    return undo


def nat_gateway_pending_delay() -> Undo:
    """AWS: a new NAT gateway is `pending` (typically 1-2 minutes), then `available`.
    moto 5.2: `available` at once. Patch: `pending` until LOCAL_STACK_DELAY_NAT_S seconds after creation."""
    from moto.ec2.models.nat_gateways import NatGateway

    def get_state(self: Any) -> str:
        state = self.__dict__.get("_ls_state", "available")
        if state == "available" and time.monotonic() < self.__dict__.get("_ls_ready_at", 0.0):
            return "pending"
        return state

    def set_state(self: Any, value: str) -> None:
        if "_ls_state" not in self.__dict__:  # the first assignment is the creation (__init__)
            self.__dict__["_ls_ready_at"] = time.monotonic() + delay("nat")
        self.__dict__["_ls_state"] = value

    return _replace(NatGateway, "state", property(get_state, set_state))


def nat_gateway_route_consistency() -> Undo:
    """AWS: CreateRoute/ReplaceRoute with a NatGatewayId EC2 does not know fail with
    InvalidNatGatewayID.NotFound, and right after CreateNatGateway the new id may not be known yet (EC2 is
    eventually consistent; its API reference asks clients to retry).
    moto 5.2: any id is accepted and the route points at nothing. Patch: an unknown id is refused as on AWS,
    and so is a new gateway's until LOCAL_STACK_DELAY_NAT_UNKNOWN_S seconds after its creation."""
    from moto.ec2.exceptions import EC2ClientError
    from moto.ec2.models.nat_gateways import NatGatewayBackend
    from moto.ec2.models.route_tables import RouteBackend

    original_create_nat = NatGatewayBackend.create_nat_gateway

    def create_nat_gateway(self: Any, *args: Any, **kwargs: Any) -> Any:
        gateway = original_create_nat(self, *args, **kwargs)
        gateway._ls_known_at = time.monotonic() + delay("nat_unknown")
        return gateway

    def check(backend: Any, nat_gateway_id: str | None) -> None:
        if nat_gateway_id is None:
            return
        gateway = backend.nat_gateways.get(nat_gateway_id)
        if gateway is None or time.monotonic() < getattr(gateway, "_ls_known_at", 0.0):
            raise EC2ClientError("InvalidNatGatewayID.NotFound", f"The natGateway ID '{nat_gateway_id}' does not exist")

    def guarded(original: Callable[..., Any]) -> Callable[..., Any]:
        signature = inspect.signature(original)  # moto passes the id by keyword to one, by position to the other

        def route_write(self: Any, *args: Any, **kwargs: Any) -> Any:
            check(self, signature.bind(self, *args, **kwargs).arguments.get("nat_gateway_id"))
            return original(self, *args, **kwargs)
        return route_write

    return _chain(_replace(NatGatewayBackend, "create_nat_gateway", create_nat_gateway),
                  _replace(RouteBackend, "create_route", guarded(RouteBackend.create_route)),
                  _replace(RouteBackend, "replace_route", guarded(RouteBackend.replace_route)))


def elbv2_provisioning_delay() -> Undo:
    """AWS: a new load balancer is `provisioning` (a few minutes), then `active`.
    moto 5.2: `active` on the first DescribeLoadBalancers. Patch: stays `provisioning` until
    LOCAL_STACK_DELAY_ALB_S seconds after creation."""
    from moto.elbv2.models import FakeLoadBalancer

    original_init = FakeLoadBalancer.__init__
    original_activate = FakeLoadBalancer.activate

    def init(self: Any, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        self._ls_ready_at = time.monotonic() + delay("alb")

    def activate(self: Any) -> None:
        if time.monotonic() >= getattr(self, "_ls_ready_at", 0.0):
            original_activate(self)

    return _chain(_replace(FakeLoadBalancer, "__init__", init), _replace(FakeLoadBalancer, "activate", activate))


def elbv2_targets_initial_while_provisioning() -> Undo:
    """AWS: the targets of a load balancer that is still `provisioning` are not health-checked yet: they report
    `initial` (Elb.RegistrationInProgress) until it is active, so a wait for healthy targets also waits for
    the load balancer.
    moto 5.2: `healthy` at once (with elbv2_ecs_service_targets). Patch: while any load balancer forwarding
    to the target group is held `provisioning` (elbv2_provisioning_delay), every target reports `initial`."""
    from moto.elbv2.models import ELBv2Backend, FakeHealthStatus

    original = ELBv2Backend.describe_target_health

    def describe_target_health(self: Any, target_group_arn: str, targets: list[dict[str, Any]]) -> list[Any]:
        answer = original(self, target_group_arn, targets)
        target_group = self.target_groups.get(target_group_arn)
        now = time.monotonic()
        provisioning = [arn for arn in getattr(target_group, "load_balancer_arns", []) or []
                        if now < getattr(self.load_balancers.get(arn), "_ls_ready_at", 0.0)]
        if provisioning:
            return [FakeHealthStatus(status.instance_id, status.port, status.health_check_port, "initial", "Elb.RegistrationInProgress")
                    for status in answer]
        return answer

    return _replace(ELBv2Backend, "describe_target_health", describe_target_health)


def _moto_patches() -> Any:
    return sys.modules.get("scripts.moto_patches") or sys.modules["moto_patches"]


def ecs_service_deployment_delay() -> Undo:
    """AWS: a service deployment is IN_PROGRESS until its tasks are running and healthy (minutes with
    image pulls and health-check grace). moto 5.2: with moto_patches.ecs_service_scheduler, COMPLETED as
    soon as the tasks run. Patch: not before LOCAL_STACK_DELAY_SERVICE_S seconds after the deployment
    started."""
    patches = _moto_patches()
    started: dict[str, float] = {}

    def may_complete(deployment: dict[str, Any]) -> bool:
        ready_at = started.setdefault(deployment["id"], time.monotonic() + delay("service"))
        return time.monotonic() >= ready_at

    return _replace(patches, "_deployment_may_complete", may_complete)


PATCHES: dict[str, Callable[[], Undo]] = {
    "nat_gateway_pending_delay": nat_gateway_pending_delay,
    "nat_gateway_route_consistency": nat_gateway_route_consistency,
    "elbv2_provisioning_delay": elbv2_provisioning_delay,
    "elbv2_targets_initial_while_provisioning": elbv2_targets_initial_while_provisioning,
    "ecs_service_deployment_delay": ecs_service_deployment_delay,
}
