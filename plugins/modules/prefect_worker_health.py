#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: prefect_worker_health
short_description: Check that the Prefect server and worker service are healthy (ECS, load balancer, Prefect)
version_added: 0.1.0
description:
  - Runs up to four read-only checks and reports each one with the values it observed
    - V(server) a Prefect server answers its health endpoint (O(server_health_url)) with a 2xx status,
      so it has started, its database migrations included;
    - V(ecs) the ECS service is stable, C(runningCount == desiredCount) (and > 0) and its
      C(PRIMARY) deployment has C(rolloutState=COMPLETED);
    - V(target_group) the load balancer target group has at least O(min_healthy_targets) healthy
      targets; a target group with no registered target at all is unhealthy (the service has not
      attached any task yet);
    - V(workers) at least O(min_workers) workers of the Prefect work pool are C(ONLINE).
  - The checks run in the order given; V(server) is not in the default list (Prefect Cloud has no
    server to wait for).
  - Without O(wait_timeout) it checks once and returns C(healthy) (never fails for an unhealthy
    service unless O(fail_on_unhealthy)), which suits an C(until:) loop that prints one line per
    poll. With O(wait_timeout) it polls internally.
  - AWS connection options come from C(module_defaults) of C(group/aws) (see notes) and the Prefect
    ones from C(group/dataops.prefect_fargate.prefect).
extends_documentation_fragment:
  - dataops.prefect_fargate.common.read_only
  - dataops.prefect_fargate.prefect
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
attributes:
  check_mode:
    description: Read-only; behaves the same in check mode.
  diff_mode:
    description: Nothing is changed, so there is nothing to diff.
options:
  api_url:
    description:
      - Base URL of the Prefect REST API. Required when O(checks) contains V(workers), or V(server)
        without O(server_health_url).
    type: str
    required: false
  checks:
    description: Which checks to run. Remove one to disable it (for example V(ecs) without ECS).
    type: list
    elements: str
    choices: [server, ecs, target_group, workers]
    default: [ecs, target_group, workers]
  server_health_url:
    description:
      - Health endpoint of the Prefect server for the V(server) check, for example
        C(https://prefect.example.com/api/health). Default C(<api_url>/health).
      - The request authenticates with O(auth_string) or O(api_key), verifies TLS per O(validate_certs), and
        each poll is one request bounded by O(timeout) and retried O(retries) times.
      - Messages name this URL (any C(user:password@) in it blanked), never the credentials.
    type: str
  ecs_cluster:
    description: Name or ARN of the ECS cluster. Required for the V(ecs) check.
    type: str
  ecs_service:
    description: Name or ARN of the ECS service. Required for the V(ecs) check.
    type: str
  target_group_arn:
    description: ARN of the worker target group. Required for the V(target_group) check.
    type: str
  min_healthy_targets:
    description: Healthy targets needed for the V(target_group) check.
    type: int
    default: 1
  work_pool_name:
    description: Prefect work pool the workers poll. Required for the V(workers) check.
    type: str
  min_workers:
    description: ONLINE workers needed in O(work_pool_name).
    type: int
    default: 1
  wait_timeout:
    description:
      - Seconds to keep polling until healthy. V(0) checks once.
    type: int
    default: 0
  poll_interval:
    description: Seconds between polls when O(wait_timeout) > 0.
    type: int
    default: 5
  fail_on_unhealthy:
    description: Fail (with the message naming what is unhealthy) instead of returning C(healthy=false).
    type: bool
    default: false
notes:
  - "To let a play-level C(module_defaults: group/aws) reach this module, the collection's
    C(meta/runtime.yml) puts it in the action group C(dataops.prefect_fargate.aws), which extends
    C(amazon.aws.aws) and C(community.aws.aws): use C(group/dataops.prefect_fargate.aws) as the
    module_defaults key and every amazon.aws/community.aws module gets the same defaults.
    The plain C(group/aws) group belongs to ansible.builtin and cannot be extended by another
    collection."
  - "IAM: C(ecs:DescribeServices), C(elasticloadbalancing:DescribeTargetHealth)."
"""

EXAMPLES = r"""
- name: Wait until the worker service is healthy (one progress line per poll)
  dataops.prefect_fargate.prefect_worker_health:
    ecs_cluster: prefect-elt-dev
    ecs_service: prefect-elt-dev-worker
    target_group_arn: "{{ alb_target_group_arn }}"
    work_pool_name: prefect-elt-dev-ecs
    min_workers: 1
  register: health
  until: health.healthy
  retries: 30
  delay: 10

- name: Wait up to 10 minutes for a self-hosted server (fails naming the URL and the last answer)
  dataops.prefect_fargate.prefect_worker_health:
    checks: [server]
    server_health_url: https://prefect.example.com/api/health
    auth_string: "{{ prefect_api_auth_string }}"
    timeout: 10
    retries: 0
    wait_timeout: 600
    poll_interval: 5
    fail_on_unhealthy: true

- name: A worker outside ECS (no service, no load balancer) - only the Prefect workers
  dataops.prefect_fargate.prefect_worker_health:
    checks: [workers]
    work_pool_name: local-process
    wait_timeout: 60
    fail_on_unhealthy: true
"""

RETURN = r"""
healthy:
  description: True when every enabled check passed.
  returned: always
  type: bool
msg:
  description: One line, C(healthy) or naming each unhealthy check with its observed values.
  returned: always
  type: str
  sample: "unhealthy: ecs (running 1/2, rollout IN_PROGRESS); workers (0/1 ONLINE in pool p)"
checks:
  description: Per-check result with C(healthy), C(detail) and the observed values.
  returned: always
  type: dict
  contains:
    ecs:
      description: desired, running, pending, rollout_state, status.
      returned: when the ecs check is enabled
      type: dict
    target_group:
      description: reported, healthy_targets, states (target state -> count).
      returned: when the target_group check is enabled
      type: dict
    server:
      description: healthy, detail (the URL and its answer), url.
      returned: when the server check is enabled
      type: dict
    workers:
      description: online, workers (name -> status), pool_status.
      returned: when the workers check is enabled
      type: dict
polls:
  description: Number of polls made.
  returned: always
  type: int
"""

import time

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.prefect_api import (
    PREFECT_MUTUALLY_EXCLUSIVE,
    PrefectClient,
    prefect_argument_spec,
    redact_url,
)


def check_server(client, url):
    healthy, detail = client.server_health(url)
    return dict(healthy=healthy, detail=detail, url=redact_url(url or client.api_url + "/health"))


def check_ecs(ecs, cluster, service):
    resp = ecs.describe_services(cluster=cluster, services=[service], aws_retry=True)
    services = resp.get("services") or []
    if not services:
        reason = "; ".join("%s: %s" % (f.get("arn"), f.get("reason")) for f in resp.get("failures") or [])
        return dict(healthy=False, detail="service %s not found in cluster %s (%s)" % (service, cluster, reason or "absent"))
    svc = services[0]
    primary = next((d for d in svc.get("deployments") or [] if d.get("status") == "PRIMARY"), {})
    observed = dict(
        status=svc.get("status"),
        desired=svc.get("desiredCount", 0),
        running=svc.get("runningCount", 0),
        pending=svc.get("pendingCount", 0),
        deployments=len(svc.get("deployments") or []),
        rollout_state=primary.get("rolloutState"),
    )
    problems = []
    if observed["status"] != "ACTIVE":
        problems.append("status %s" % observed["status"])
    if observed["desired"] == 0 or observed["running"] != observed["desired"]:
        problems.append("running %s/%s" % (observed["running"], observed["desired"]))
    if observed["rollout_state"] != "COMPLETED":
        problems.append("rollout %s" % (observed["rollout_state"] or "unknown"))
    detail = ", ".join(problems) or "running %s/%s, rollout COMPLETED" % (observed["running"], observed["desired"])
    return dict(healthy=not problems, detail=detail, **observed)


def check_targets(elbv2, target_group_arn, minimum):
    descriptions = elbv2.describe_target_health(
        TargetGroupArn=target_group_arn, aws_retry=True).get("TargetHealthDescriptions") or []
    states = {}
    for item in descriptions:
        state = (item.get("TargetHealth") or {}).get("State", "unknown")
        states[state] = states.get(state, 0) + 1
    healthy_count = states.get("healthy", 0)
    if not descriptions:
        # On AWS a target group behind a running service always lists its tasks; none registered means
        # the service has not (yet) attached any task to the load balancer: not healthy.
        return dict(healthy=False, reported=True, healthy_targets=0, states={},
                    detail="0 healthy (need %d); no targets registered" % minimum)
    ok = healthy_count >= minimum
    detail = "%d healthy (need %d); %s" % (
        healthy_count, minimum, ", ".join("%s=%d" % kv for kv in sorted(states.items())))
    return dict(healthy=ok, reported=True, healthy_targets=healthy_count, states=states, detail=detail)


def check_workers(client, pool, minimum):
    found = client.get_work_pool(pool)
    if found is None:
        return dict(healthy=False, online=0, workers={}, pool_status=None,
                    detail="work pool %s does not exist" % pool)
    online, workers = client.online_workers(pool)
    observed = dict(online=len(online), workers={w.get("name"): w.get("status") for w in workers},
                    pool_status=found.get("status"))
    ok = len(online) >= minimum
    return dict(healthy=ok, detail="%d/%d ONLINE in pool %s (pool %s)" % (
        len(online), minimum, pool, observed["pool_status"]), **observed)


def run_checks(module, clients):
    params = module.params
    results = {}
    for name in params["checks"]:
        try:
            if name == "server":
                results[name] = check_server(clients["prefect"], params["server_health_url"])
            elif name == "ecs":
                results[name] = check_ecs(clients["ecs"], params["ecs_cluster"], params["ecs_service"])
            elif name == "target_group":
                results[name] = check_targets(clients["elbv2"], params["target_group_arn"], params["min_healthy_targets"])
            else:
                results[name] = check_workers(clients["prefect"], params["work_pool_name"], params["min_workers"])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            # a transient AWS error is an observation (unhealthy now), not a crash of the poll loop
            results[name] = dict(healthy=False, detail="AWS error: %s" % exc)
    return results


def summary(results):
    bad = ["%s (%s)" % (name, res["detail"]) for name, res in results.items() if not res["healthy"]]
    if bad:
        return False, "unhealthy: " + "; ".join(bad)
    return True, "healthy: " + "; ".join("%s (%s)" % (n, r["detail"]) for n, r in results.items())


def main():
    argument_spec = prefect_argument_spec(
        checks=dict(type="list", elements="str", choices=["server", "ecs", "target_group", "workers"],
                    default=["ecs", "target_group", "workers"]),
        server_health_url=dict(type="str"),
        ecs_cluster=dict(type="str"),
        ecs_service=dict(type="str"),
        target_group_arn=dict(type="str"),
        min_healthy_targets=dict(type="int", default=1),
        work_pool_name=dict(type="str"),
        min_workers=dict(type="int", default=1),
        wait_timeout=dict(type="int", default=0),
        poll_interval=dict(type="int", default=5),
        fail_on_unhealthy=dict(type="bool", default=False),
    )
    argument_spec["api_url"]["required"] = False
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        mutually_exclusive=PREFECT_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    params = module.params
    needs = {"ecs": ("ecs_cluster", "ecs_service"), "target_group": ("target_group_arn",),
             "workers": ("work_pool_name", "api_url"), "server": ("server_health_url or api_url",)}
    for check in params["checks"]:
        missing = [opt for opt in needs[check] if not any(params.get(o) for o in opt.split(" or "))]
        if missing:
            module.fail_json(msg="check %s needs %s (or remove %s from checks)" % (check, ", ".join(missing), check))

    clients = {}
    if "ecs" in params["checks"]:
        clients["ecs"] = module.client("ecs", retry_decorator=AWSRetry.jittered_backoff())
    if "target_group" in params["checks"]:
        clients["elbv2"] = module.client("elbv2", retry_decorator=AWSRetry.jittered_backoff())
    if "workers" in params["checks"] or "server" in params["checks"]:
        clients["prefect"] = PrefectClient(module)

    started = time.monotonic()
    deadline = started + max(0, params["wait_timeout"])
    polls = 0
    while True:
        polls += 1
        results = run_checks(module, clients)
        healthy, message = summary(results)
        if healthy or time.monotonic() + params["poll_interval"] > deadline:
            break
        time.sleep(params["poll_interval"])

    result = dict(changed=False, healthy=healthy, msg=message, checks=results, polls=polls)
    if not healthy and params["fail_on_unhealthy"]:
        if params["wait_timeout"] > 0:
            result["msg"] = "%s (still, after %d poll(s) in %.0f s; wait_timeout %d s)" % (
                message, polls, time.monotonic() - started, params["wait_timeout"])
        module.fail_json(**result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
