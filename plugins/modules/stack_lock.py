#!/usr/bin/python
# -*- coding: utf-8 -*-
# Apache-2.0
"""Take or release the stack lock (an SSM parameter created only if absent)."""

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_lock
short_description: One site.yml or teardown.yml at a time per stack, across machines
description:
  - Takes the stack lock, an SSM parameter created with C(PutParameter(Overwrite=false)), which AWS creates
    only when it does not exist yet, so of two runs at the same moment exactly one gets it. The other
    waits up to O(wait_seconds), then fails with a message naming the holder and how to break a stale lock.
  - A held lock is taken over (with a warning) when it has expired (O(ttl_seconds)), when the
    ansible-playbook process that took it on this host is gone (an interrupted run), or with O(break_lock=true).
  - Releasing deletes the parameter only when this run holds it.
  - The lock is bookkeeping, not part of the stack, so the module always reports C(changed=false).
options:
  name:
    description: Name of the SSM parameter, e.g. C(/prefect-elt-dev/stack-lock).
    type: str
    required: true
  state:
    description: C(present) takes the lock, C(absent) releases it.
    type: str
    choices: [present, absent]
    default: present
  run_id:
    description:
      - C(state=absent) the id returned when the lock was taken; nothing is deleted when another run holds it.
      - C(state=present) optional id of this run (one is generated otherwise).
    type: str
    default: ""
  playbook:
    description: What the run is, recorded in the lock for the message another run gets (e.g. C(site.yml)).
    type: str
    default: ""
  ttl_seconds:
    description: The lock expires this long after it was taken (0 never expires).
    type: int
    default: 3600
  wait_seconds:
    description: How long to wait for a held lock before failing (0 fails at once).
    type: int
    default: 0
  poll_seconds:
    description: How often to look at a held lock while waiting.
    type: int
    default: 5
  break_lock:
    description: Take the lock over even though another run holds it (once; use when that run is certainly gone).
    type: bool
    default: false
attributes:
  check_mode:
    description: In check mode the lock is read, never written; a lock held by another run is reported as a warning.
extends_documentation_fragment:
  - dataops.prefect_fargate.common.no_diff
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Take the stack lock
  dataops.prefect_fargate.stack_lock:
    name: /prefect-elt-dev/stack-lock
    playbook: site.yml
    wait_seconds: 600
  register: lock

- name: Release the stack lock
  dataops.prefect_fargate.stack_lock:
    name: /prefect-elt-dev/stack-lock
    state: absent
    run_id: "{{ lock.run_id }}"
"""

RETURN = r"""
run_id:
  description: The id of this run's hold on the lock (pass it to O(state=absent)); empty in check mode.
  returned: always
  type: str
status:
  description: C(acquired), C(released), C(absent) (nothing to release), C(held by another run), C(free) or C(held) (check mode).
  returned: always
  type: str
holder:
  description: The record of the run holding the lock when it could not be taken (or, in check mode, the current holder).
  returned: when another run holds the lock
  type: dict
broken:
  description: Locks taken over, each with the record of the holder and the reason.
  returned: when state=present
  type: list
  elements: dict
account:
  description:
    - The AWS account and partition of the credentials (from C(sts:GetCallerIdentity), which the lock also
      records as the holder's principal). The playbooks pass it on as C(common_account), so no role looks it
      up again.
  returned: when state=present
  type: dict
  sample: {"id": "123456789012", "partition": "aws"}
waited:
  description: Seconds spent waiting for the lock.
  returned: when state=present
  type: float
"""

import time
import uuid

try:
    import botocore
except ImportError:
    pass  # handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_lock import (LockHeld, StackLock,
                                                                                         describe_held, holder_record)

# JSON-protocol services answer throttling with ThrottlingException, which AWSRetry does not retry by default.
THROTTLING = ["ThrottlingException"]


class _Retrying:
    """The SSM client with every call retried on throttling (AWSRetry's aws_retry=True)."""

    def __init__(self, client):
        self._client = client

    def __getattr__(self, name):
        method = getattr(self._client, name)
        return lambda **kwargs: method(aws_retry=True, **kwargs)


def main() -> None:
    module = AnsibleAWSModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            run_id=dict(type="str", default=""),
            playbook=dict(type="str", default=""),
            ttl_seconds=dict(type="int", default=3600),
            wait_seconds=dict(type="int", default=0),
            poll_seconds=dict(type="int", default=5),
            break_lock=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    # AnsibleAWSModule.warn also copies each warning into the result's `warnings` (amazon.aws 11.4), which
    # ansible-core 2.21 shows twice plus a deprecation notice: warn through the plain AnsibleModule.
    warn = module._module.warn  # pylint: disable=protected-access
    retry = AWSRetry.jittered_backoff(catch_extra_error_codes=THROTTLING)
    lock = StackLock(_Retrying(module.client("ssm", retry_decorator=retry)), params["name"])
    try:
        if params["state"] == "present":
            caller = module.client("sts", retry_decorator=retry).get_caller_identity(aws_retry=True)
            account = {"id": caller["Account"], "partition": caller["Arn"].split(":")[1]}
        if module.check_mode:
            current = lock.read()
            if current and params["state"] == "present" and not lock.stale_reason(current[0]):
                warn(describe_held(current[0], params["name"]))
            module.exit_json(changed=False, run_id="", status="held" if current else "free",
                             **({"account": account} if params["state"] == "present" else {}),
                             **({"holder": current[0]} if current else {}))
        if params["state"] == "absent":
            status = lock.release(params["run_id"])
            if status == "held by another run":
                warn(f"Not releasing the stack lock {params['name']}: another run holds it now.")
            module.exit_json(changed=False, run_id=params["run_id"], status=status)
        holder = holder_record(params["ttl_seconds"], params["playbook"], time.time(), params["run_id"] or uuid.uuid4().hex,
                               principal=caller["Arn"])
        try:
            result = lock.acquire(holder, wait_seconds=params["wait_seconds"], poll_seconds=params["poll_seconds"],
                                  break_lock=params["break_lock"])
        except LockHeld as exc:
            module.fail_json(msg=str(exc), holder=exc.holder, status="held by another run", run_id="")
        for taken in result["broken"]:
            warn(f"Took over the stack lock {params['name']} from {taken['holder'].get('owner', 'an unknown run')} "
                 f"({taken['holder'].get('playbook') or 'a playbook'}): {taken['reason']}.")
        module.exit_json(changed=False, run_id=holder["id"], status="acquired", account=account, **result)
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not {'take' if params['state'] == 'present' else 'release'} the stack lock {params['name']}")


if __name__ == "__main__":
    main()
