#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""ECS cluster settings (container insights), which community.aws.ecs_cluster lacks."""

from __future__ import annotations

DOCUMENTATION = r"""
module: ecs_cluster_settings
short_description: Set the container insights setting of an existing ECS cluster
description:
  - Reads the cluster's settings and calls C(UpdateCluster) only when C(containerInsights) differs.
  - C(community.aws.ecs_cluster) cannot manage cluster settings; this fills that gap.
options:
  cluster:
    description: Name or ARN of an existing cluster.
    type: str
    required: true
  container_insights:
    description: Value of the C(containerInsights) setting.
    type: str
    choices: [enabled, disabled, enhanced]
    required: true
extends_documentation_fragment:
  - dataops.prefect_fargate.common
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Turn container insights on
  dataops.prefect_fargate.ecs_cluster_settings:
    cluster: prefect-worker
    container_insights: enabled
"""

RETURN = r"""
settings:
  description: The cluster's settings after the call (predicted in check mode).
  returned: success
  type: list
  elements: dict
  sample: [{"name": "containerInsights", "value": "enabled"}]
"""

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry


# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not
# retry by default (it knows the EC2/query codes: Throttling, RequestLimitExceeded, ...).
THROTTLING = ["ThrottlingException"]


def current_value(settings: list[dict]) -> str:
    for setting in settings or []:
        if setting.get("name") == "containerInsights":
            return setting.get("value", "disabled")
    return "disabled"


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            cluster=dict(type="str", required=True),
            container_insights=dict(type="str", required=True, choices=["enabled", "disabled", "enhanced"]),
        ),
        supports_check_mode=True,
    )
    client = module.client("ecs", retry_decorator=AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING))
    cluster = module.params["cluster"]
    wanted = module.params["container_insights"]
    try:
        clusters = client.describe_clusters(aws_retry=True, clusters=[cluster], include=["SETTINGS"]).get("clusters", [])
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not describe cluster {cluster}")
    active = [c for c in clusters if c.get("status") == "ACTIVE"]
    if not active:
        if module.check_mode:  # the cluster is only predicted in check mode
            module.exit_json(changed=True, settings=[{"name": "containerInsights", "value": wanted}])
        module.fail_json(msg=f"Cluster {cluster} does not exist or is not ACTIVE")

    before = current_value(active[0].get("settings", []))
    result = dict(changed=before != wanted, settings=[{"name": "containerInsights", "value": wanted}])
    if module._diff:
        result["diff"] = dict(before={"containerInsights": before}, after={"containerInsights": wanted})
    if result["changed"] and not module.check_mode:
        try:
            response = client.update_cluster(aws_retry=True, cluster=cluster, settings=[{"name": "containerInsights", "value": wanted}])
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
            module.fail_json_aws(e, msg=f"Could not update the settings of cluster {cluster}")
        result["settings"] = response.get("cluster", {}).get("settings", result["settings"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
