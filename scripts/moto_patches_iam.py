"""The local stack's moto patch layer, IAM enforcement part: where moto 5.2 evaluates IAM unlike AWS.

With enforcement on (`POST /moto-api/reset-auth 0`, scripts/local_iam.py), moto checks every request
against the policies of the IAM user or assumed role that signed it. These patches make that check
answer as AWS would for the policies this project ships (docs/deployer-policy.json, the task roles of
roles/ecs_fargate_agent), one function per gap; each docstring says what AWS does, what moto 5.2 does
and what the patch changes; tests/unit/test_moto_patches_iam.py shows each gap and its fix.

  iam_unknown_resource_matches    Where moto does not know the request's resource (every service but
                                  S3, IAM roles, SQS queues and sts:AssumeRole), a statement's Resource
                                  is not evaluated: resource-scoped Allow statements apply (moto
                                  matched them against "*" and denied).
  iam_condition_not_met_is_neutral
                                  A statement whose Condition does not hold does not apply (moto: an
                                  explicit Deny, even for Allow statements); String*/Arn*/Bool
                                  operators are evaluated on the keys the emulator knows, a key it does
                                  not populate counts as satisfied.
  iam_action_names_ignore_case    Action/NotAction match case-insensitively, as in IAM.
  iam_trust_policy_principals     Trust policies: a Principal that is not the caller makes the
                                  statement not apply (moto: Deny, or a 500 for a `Service` principal);
                                  `AWS` matches the caller, its role or its account; a `Service`
                                  principal matches no IAM user or role (the services run inside the
                                  emulator: scripts/moto_patches.py's Fargate channel assumes task
                                  roles itself).
  iam_pass_role_checked           iam:PassRole is checked where AWS checks it: the task and execution
                                  roles of ECS RegisterTaskDefinition/RunTask/StartTask/CreateService/
                                  UpdateService (iam:PassedToService ecs-tasks.amazonaws.com) and the
                                  role of EC2 CreateFlowLogs (vpc-flow-logs.amazonaws.com).
  s3_iam_action_names             S3 requests are authorised with IAM's S3 action names
                                  (scripts/deployer_policy.py's mapping: HeadBucket is s3:ListBucket,
                                  ?encryption is s3:Get/PutEncryptionConfiguration, ...), DeleteObjects
                                  per object, CopyObject also reads the source.
  s3_access_denied_names_principal
                                  S3's AccessDenied names the principal and the action.
  json_access_denied_exception    JSON-protocol services (ECS, ECR, Logs, Secrets Manager, EventBridge,
                                  SQS) answer AccessDeniedException as JSON (moto sent XML: botocore
                                  saw code "403" and the raw XML).

What stays unenforced: resource scoping outside S3, IAM roles, SQS queues and sts:AssumeRole; condition
keys the emulator does not populate (aws:SourceArn, ecs:cluster, aws:SourceAccount, ...); NotResource
(moto treats a statement without Resource as matching); resource-based policies other than S3 bucket
policies and trust policies; permission boundaries and SCPs; the loopback container registry (ECR's
layer actions).

Use: scripts/moto_patches.py's apply_all() applies these with its own; each function applies its change
and returns a callable that undoes it.
"""

from __future__ import annotations

import fnmatch
import functools
import importlib.util
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

Undo = Callable[[], None]

# Moto's resource when it does not know the request's resource.
UNKNOWN_RESOURCE = "*"


def _replace(owner: Any, name: str, new: Any) -> Undo:
    """Set owner.name to new; the returned callable puts the original back (or the inherited one)."""
    inherited = isinstance(owner, type) and name not in owner.__dict__
    original = getattr(owner, name) if inherited or not isinstance(owner, type) else owner.__dict__[name]

    def undo() -> None:
        if inherited:
            delattr(owner, name)
        else:
            setattr(owner, name, original)

    setattr(owner, name, new)
    return undo


def _chain(*undos: Undo) -> Undo:
    def undo() -> None:
        for step in reversed(undos):
            step()

    return undo


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _enforcing() -> bool:
    """True when moto authorises the next request (the no-auth allowance is used up)."""
    from moto import settings
    from moto.core.authorization import ActionAuthenticatorMixin

    return ActionAuthenticatorMixin.request_count >= settings.INITIAL_NO_AUTH_ACTION_COUNT


# --- access denied, in the request's protocol -------------------------------------------------------


def _json_target(headers: Any) -> str:
    """The X-Amz-Target of a JSON-protocol request, "" for others (headers: a dict, werkzeug's or botocore's)."""
    items = headers.items() if hasattr(headers, "items") else headers
    return next((str(value) for key, value in items if str(key).lower() == "x-amz-target" and value), "")


def _denied_message(principal: str, action: str, resource: str | None = None) -> str:
    where = f" on resource: {resource}" if resource and resource != UNKNOWN_RESOURCE else ""
    return f"User: {principal} is not authorized to perform: {action}{where}"


def _access_denied(request: Any, action: str, resource: str | None = None) -> Exception:
    """The AccessDenied error AWS answers to this request (S3, JSON or query protocol)."""
    from moto.core.exceptions import JsonRESTError, _RESTError
    from moto.iam.access_control import S3IAMRequest
    from moto.s3.exceptions import BucketAccessDeniedError, S3AccessDeniedError

    message = _denied_message(request._access_key.arn, action, resource)
    if isinstance(request, S3IAMRequest):
        bucket = request._data.get("BucketName")
        error = BucketAccessDeniedError(bucket) if bucket else S3AccessDeniedError()
        error.message = message
        return error
    target = _json_target(request._headers)
    if target:

        class AccessDeniedException(JsonRESTError):
            code = 403

        # SQS keeps its query-protocol error codes in JSON (awsQueryCompatible): AccessDenied.
        return AccessDeniedException("AccessDenied" if target.startswith("AmazonSQS.") else "AccessDeniedException",
                                     message)

    class AccessDenied(_RESTError):
        code = 403

    return AccessDenied("AccessDenied", message)


def json_access_denied_exception() -> Undo:
    """AccessDenied of a JSON-protocol service (ECS, ECR, Logs, Secrets Manager, EventBridge, SQS).

    AWS: answers HTTP 403 with a JSON body `{"__type": "AccessDeniedException", "message": "User: <arn>
    is not authorized to perform: <action> ..."}`; botocore raises ClientError code AccessDeniedException.
    moto 5.2: answers the query protocol's XML error document, which botocore's JSON parser cannot read:
    the ClientError's code is "403" and its message the raw XML, so a module that handles
    AccessDeniedException (as amazon.aws modules do on AWS) does not recognise it.
    Patch: a denied request carrying X-Amz-Target gets AWS's JSON AccessDeniedException (same message;
    SQS, query-compatible, keeps the code AccessDenied).
    """
    from moto.iam.access_control import IAMRequest

    original = IAMRequest._raise_access_denied

    @functools.wraps(original)
    def _raise_access_denied(self: Any) -> None:
        if _json_target(self._headers):
            raise _access_denied(self, self._action)
        original(self)

    return _replace(IAMRequest, "_raise_access_denied", _raise_access_denied)


def s3_access_denied_names_principal() -> Undo:
    """S3 AccessDenied: name the principal and the action.

    AWS: since 2024 S3 includes the context of an access denied error for requests within the account:
    "User: <arn> is not authorized to perform: s3:<Action> ... because no identity-based policy allows".
    moto 5.2: answers "Access Denied" only, so a denied playbook run does not say who lacked what.
    Patch: the message is "User: <arn> is not authorized to perform: s3:<Action>" (code AccessDenied).
    """
    from moto.iam.access_control import S3IAMRequest

    def _raise_access_denied(self: Any) -> None:
        raise _access_denied(self, self._action)

    return _replace(S3IAMRequest, "_raise_access_denied", _raise_access_denied)


# --- policy evaluation -------------------------------------------------------------------------------


def iam_unknown_resource_matches() -> Undo:
    """A statement's Resource when moto does not know the request's resource.

    AWS: evaluates every statement's Resource against the ARN of the resource the request acts on.
    moto 5.2: knows that ARN only for S3 (bucket/object), IAM actions naming an existing role, SQS actions
    naming an existing queue and sts:AssumeRole; for every other request it checks Resource against the
    literal "*", so an Allow with a resource-scoped Resource (`arn:aws:ecs:*:*:cluster/prefect-elt-*`)
    never matches and the request is denied although AWS would allow it.
    Patch: when the resource is unknown ("*"), the statement is evaluated as if its Resource were "*":
    for those services enforcement is by action only (a statement's Resource is not enforced).
    """
    from moto.iam.access_control import IAMPolicyStatement

    original = IAMPolicyStatement.is_action_permitted

    @functools.wraps(original)
    def is_action_permitted(self: Any, action: str, resource: str = UNKNOWN_RESOURCE, *args: Any, **kwargs: Any) -> Any:
        if resource == UNKNOWN_RESOURCE and self._statement.get("Resource") not in (None, "", UNKNOWN_RESOURCE):
            unscoped = IAMPolicyStatement({**self._statement, "Resource": UNKNOWN_RESOURCE})
            return original(unscoped, action, resource, *args, **kwargs)
        return original(self, action, resource, *args, **kwargs)

    return _replace(IAMPolicyStatement, "is_action_permitted", is_action_permitted)


def _condition_holds(operator: str, key: str, expected: Any, context: dict[str, str]) -> bool:
    """One condition key of one operator; unknown operators and keys the context lacks count as holding."""
    actual = context.get(key.lower())
    if actual is None:
        return True  # a key the emulator does not populate: not enforced
    base = operator[: -len("IfExists")] if operator.endswith("IfExists") else operator
    values = [str(v) for v in _as_list(expected)]
    if base in ("StringEquals", "ArnEquals"):
        return actual in values
    if base == "StringEqualsIgnoreCase":
        return actual.lower() in [v.lower() for v in values]
    if base in ("StringNotEquals", "ArnNotEquals"):
        return actual not in values
    if base == "StringNotEqualsIgnoreCase":
        return actual.lower() not in [v.lower() for v in values]
    if base in ("StringLike", "ArnLike"):
        return any(fnmatch.fnmatchcase(actual, v) for v in values)
    if base in ("StringNotLike", "ArnNotLike"):
        return not any(fnmatch.fnmatchcase(actual, v) for v in values)
    if base == "Bool":
        return actual.lower() in [v.lower() for v in values]
    return True


def iam_condition_not_met_is_neutral() -> Undo:
    """A statement whose Condition does not hold.

    AWS: a statement applies only when all its conditions hold; otherwise it neither allows nor denies.
    Condition keys are case-insensitive; a policy may have several Allow statements for one action that
    differ only by condition (docs/deployer-policy.json: iam:PassRole with iam:PassedToService
    ecs-tasks.amazonaws.com, and again with vpc-flow-logs.amazonaws.com).
    moto 5.2: a statement whose condition does not hold answers DENIED, even an Allow statement, so the
    second PassRole statement denies what the first allows; it evaluates StringEquals only and pairs the
    expected values with the present keys by position.
    Patch: conditions that do not hold make the statement NEUTRAL; StringEquals/NotEquals(IgnoreCase),
    StringLike/NotLike, ArnEquals/NotEquals/Like/NotLike and Bool (and their IfExists forms) are evaluated
    on the request's context (moto populates sts:ExternalId; iam_pass_role_checked adds
    iam:PassedToService); a key the context lacks, and any other operator, counts as satisfied.
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def _check_conditions(self: Any, incoming_condition_values: dict[str, str] | None) -> bool:
        context = {str(k).lower(): str(v) for k, v in (incoming_condition_values or {}).items()}
        for operator, pairs in (self._statement.get("Condition") or {}).items():
            for key, expected in (pairs or {}).items():
                if not _condition_holds(operator, key, expected, context):
                    return False
        return True

    @functools.wraps(original)
    def is_action_permitted(self: Any, action: str, resource: str = UNKNOWN_RESOURCE, principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:
        if self._statement.get("Condition") and not self._check_conditions(incoming_condition_values):
            return PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    return _chain(_replace(IAMPolicyStatement, "_check_conditions", _check_conditions),
                  _replace(IAMPolicyStatement, "is_action_permitted", is_action_permitted))


def iam_action_names_ignore_case() -> Undo:
    """Action and NotAction match case-insensitively.

    AWS: action names in a policy are case-insensitive (`s3:getobject` grants s3:GetObject).
    moto 5.2: matches them case-sensitively, so such a policy is denied here and allowed on AWS.
    Patch: Action/NotAction patterns and the request's action are compared in lower case (Resource
    stays case-sensitive, as in IAM).
    """
    from moto.iam.access_control import IAMPolicyStatement

    original = IAMPolicyStatement._check_element_matches

    @functools.wraps(original)
    def _check_element_matches(self: Any, statement_element: Any, value: str) -> bool:
        if statement_element not in ("Action", "NotAction"):
            return original(self, statement_element, value)
        return any(self._match(str(pattern).lower(), value.lower())
                   for pattern in _as_list(self._statement[statement_element]))

    return _replace(IAMPolicyStatement, "_check_element_matches", _check_element_matches)


def _principal_matches(expected: Any, caller_arn: str) -> bool:
    """Whether a trust policy's Principal names the caller (an IAM user or an assumed-role session)."""
    if expected == "*":
        return True
    if not isinstance(expected, dict):
        return False
    parts = caller_arn.split(":", 5)
    partition, account = (parts[1], parts[4]) if len(parts) == 6 else ("aws", "")
    names = {caller_arn, account, f"arn:{partition}:iam::{account}:root"}
    if len(parts) == 6 and parts[5].startswith("assumed-role/"):
        names.add(f"arn:{partition}:iam::{account}:role/{parts[5].split('/')[1]}")
    # A `Service` (or `Federated`) principal names no IAM user or role: only the service itself.
    return any(p == "*" or p in names for p in _as_list(expected.get("AWS")))


def iam_trust_policy_principals() -> Undo:
    """sts:AssumeRole: who a trust policy's Principal names.

    AWS: a trust policy statement applies to the principals it names: `AWS` (an ARN, an account ID or
    `arn:aws:iam::<account>:root` for every principal of the account, "*"), `Service` (the AWS service,
    e.g. ECS assuming a task role for ecs-tasks.amazonaws.com); a statement naming someone else does not
    apply.
    moto 5.2: compares the caller with `Principal.AWS` only: a statement with a `Service` principal
    raises TypeError (HTTP 500 on AssumeRole of every ECS task role), one naming another principal
    answers DENIED, and an account principal never matches.
    Patch: a statement whose Principal does not name the caller is NEUTRAL; `AWS` matches the caller's
    ARN, the role of an assumed-role caller, its account ID and account root; a `Service` principal
    matches no caller (ECS's own AssumeRole of task roles happens inside the emulator, in
    scripts/moto_patches.py's Fargate channel, which checks the trust policy itself).
    """
    from moto.iam.access_control import IAMPolicyStatement, PermissionResult

    original = IAMPolicyStatement.is_action_permitted

    def _check_principal(self: Any, principal: str) -> bool:
        expected = self._statement.get("Principal")
        return not expected or _principal_matches(expected, principal)

    @functools.wraps(original)
    def is_action_permitted(self: Any, action: str, resource: str = UNKNOWN_RESOURCE, principal: str | None = None,
                            incoming_condition_values: dict[str, str] | None = None) -> Any:
        if principal and self._statement.get("Principal") and not self._check_principal(principal):
            return PermissionResult.NEUTRAL
        return original(self, action, resource, principal, incoming_condition_values)

    return _chain(_replace(IAMPolicyStatement, "_check_principal", _check_principal),
                  _replace(IAMPolicyStatement, "is_action_permitted", is_action_permitted))


# --- iam:PassRole --------------------------------------------------------------------------------------

ECS_TASKS = "ecs-tasks.amazonaws.com"
# Request action -> (service the role is passed to, where the request names roles).
PASS_ROLE_ACTIONS = {
    "ecs:RegisterTaskDefinition": (ECS_TASKS, ("taskRoleArn", "executionRoleArn")),
    "ecs:RunTask": (ECS_TASKS, ("taskDefinition", "overrides.taskRoleArn", "overrides.executionRoleArn")),
    "ecs:StartTask": (ECS_TASKS, ("taskDefinition", "overrides.taskRoleArn", "overrides.executionRoleArn")),
    "ecs:CreateService": (ECS_TASKS, ("taskDefinition",)),
    "ecs:UpdateService": (ECS_TASKS, ("taskDefinition",)),
    "ec2:CreateFlowLogs": ("vpc-flow-logs.amazonaws.com", ("DeliverLogsPermissionArn",)),
}


def _request_params(request: Any) -> dict[str, Any]:
    """The request's parameters: its JSON body, else the query/form parameters (first value each)."""
    body = request._body
    if body:
        try:
            parsed = json.loads(body.decode() if isinstance(body, bytes) else body)
            if isinstance(parsed, dict):
                return parsed
        except ValueError:
            pass
    return {k: (v[0] if isinstance(v, list) and v else v) for k, v in (request._data or {}).items()}


def _passed_roles(request: Any, params: dict[str, Any], fields: tuple[str, ...]) -> list[str]:
    """The role ARNs a request passes: named directly, or those of the task definition it names."""
    roles: list[str] = []
    for field in fields:
        value: Any = params
        for part in field.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        if not value:
            continue
        if field == "taskDefinition":
            from moto.ecs.models import ecs_backends

            try:
                definition = ecs_backends[request.account_id][request._region].describe_task_definition(str(value))
            except Exception:  # noqa: BLE001 - moto answers the unknown task definition itself
                continue
            roles += [r for r in (getattr(definition, "task_role_arn", None),
                                  getattr(definition, "execution_role_arn", None)) if r]
        else:
            roles.append(str(value))
    return list(dict.fromkeys(roles))


def iam_pass_role_checked() -> Undo:
    """iam:PassRole where a request hands a role to a service.

    AWS: a request that gives a role to a service needs iam:PassRole on that role, with the condition key
    iam:PassedToService set to the service: ECS RegisterTaskDefinition (taskRoleArn, executionRoleArn),
    RunTask/StartTask (the task definition's roles and the overrides), CreateService/UpdateService (the
    task definition's roles): ecs-tasks.amazonaws.com; EC2 CreateFlowLogs (DeliverLogsPermissionArn):
    vpc-flow-logs.amazonaws.com. Denied: "... is not authorized to perform: iam:PassRole on resource: <role>".
    moto 5.2: checks only the request's own action; iam:PassRole is never checked.
    Patch: after the request's action is allowed, each passed role is checked as iam:PassRole on the role's
    ARN with {iam:PassedToService: <service>}; a denial names iam:PassRole and the role.
    """
    from moto.iam.access_control import IAMPolicy, IAMRequestBase, PermissionResult

    original = IAMRequestBase.check_action_permitted

    @functools.wraps(original)
    def check_action_permitted(self: Any, resource: str) -> None:
        original(self, resource)
        service_and_fields = PASS_ROLE_ACTIONS.get(self._action)
        if not service_and_fields:
            return
        service, fields = service_and_fields
        policies = self._access_key.collect_policies()
        for role_arn in _passed_roles(self, _request_params(self), fields):
            permitted = False
            for policy in policies:
                result = IAMPolicy(policy).is_action_permitted(
                    "iam:PassRole", role_arn, None, {"iam:PassedToService": service})
                if result == PermissionResult.DENIED:
                    permitted = False
                    break
                permitted = permitted or result == PermissionResult.PERMITTED
            if not permitted:
                raise _access_denied(self, "iam:PassRole", role_arn)

    return _replace(IAMRequestBase, "check_action_permitted", check_action_permitted)


# --- S3 ------------------------------------------------------------------------------------------------


def _deployer_policy() -> Any:
    """scripts/deployer_policy.py (the one request -> IAM action mapping), loaded by path."""
    path = Path(__file__).resolve().with_name("deployer_policy.py")
    spec = importlib.util.spec_from_file_location("local_stack_deployer_policy", path)
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module


def _s3_checks(response: Any, mapping: Any, bucket: str | None, key: str | None) -> list[tuple[str, str | None, str | None]]:
    """(IAM action, bucket, key) checks of one S3 request; [] when the mapping does not know it."""
    headers = {str(k).lower(): str(v) for k, v in response.headers.items()}
    method = response.method.upper()
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(response.uri).query, keep_blank_values=True)
    if bucket and not key and method == "POST" and "delete" in query:  # DeleteObjects: every object
        import xmltodict

        body = response.body.decode() if isinstance(response.body, bytes) else str(response.body or "")
        objects = _as_list((xmltodict.parse(body).get("Delete") or {}).get("Object"))
        return [("DeleteObjectVersion" if obj.get("VersionId") else "DeleteObject", bucket, obj.get("Key"))
                for obj in objects if isinstance(obj, dict)]
    try:
        actions = mapping.s3_action(method, response.uri, headers, "")
    except mapping.UnmappedRequest:
        return []
    checks: list[tuple[str, str | None, str | None]] = [(actions[0], bucket, key)]
    for action in actions[1:]:
        if action in ("GetObject", "GetObjectVersion") and "x-amz-copy-source" in headers:  # CopyObject's source
            source = urllib.parse.unquote(headers["x-amz-copy-source"].split("?", 1)[0]).lstrip("/")
            source_bucket, _, source_key = source.partition("/")
            checks.append((action, source_bucket, source_key))
        else:
            checks.append((action, bucket, key))
    return checks


def s3_iam_action_names() -> Undo:
    """S3: authorise a request with IAM's action names.

    AWS: S3 requests need IAM actions that are mostly not the API names: HeadBucket and ListObjects(V2)
    need s3:ListBucket, Get/PutBucketEncryption s3:Get/PutEncryptionConfiguration, the
    ?publicAccessBlock and ?ownershipControls sub-resources s3:Get/PutBucketPublicAccessBlock and
    s3:Get/PutBucketOwnershipControls, DeleteObjects s3:DeleteObject(Version) on each object, CopyObject
    s3:GetObject on its source too.
    moto 5.2: checks its own names: s3:HeadBucket (not an IAM action: a policy granting s3:ListBucket is
    denied), s3:ListBucket for ?encryption/?ownershipControls/?publicAccessBlock reads, s3:CreateBucket for
    their writes, s3:DeleteBucket for their deletes, and s3:DeleteObject on the bucket (not the objects) for
    DeleteObjects.
    Patch: with enforcement on, the actions come from scripts/deployer_policy.py's S3 mapping (the one
    the deployer policy is derived with); every action is checked, on the object's or bucket's ARN,
    DeleteObjects per object, CopyObject's read on the source object. A request the mapping does not know
    keeps moto's own check.
    """
    from moto.s3.responses import S3Response

    mapping = _deployer_policy()
    original = S3Response._authenticate_and_authorize_s3_action

    @functools.wraps(original)
    def _authenticate_and_authorize_s3_action(self: Any, bucket_name: str | None = None, key_name: str | None = None) -> None:
        checks = _s3_checks(self, mapping, bucket_name, key_name) if _enforcing() else []
        if not checks:
            return original(self, bucket_name=bucket_name, key_name=key_name)
        moto_action = self.data.get("Action")
        try:
            for action, bucket, key in checks:
                self.data["Action"] = action
                original(self, bucket_name=bucket, key_name=key)
        finally:
            self.data["Action"] = moto_action
        return None

    return _replace(S3Response, "_authenticate_and_authorize_s3_action", _authenticate_and_authorize_s3_action)


# --- apply / undo (scripts/moto_patches.py applies these with its own) ---------------------------------

PATCHES: dict[str, Callable[[], Undo]] = {
    "iam_unknown_resource_matches": iam_unknown_resource_matches,
    "iam_condition_not_met_is_neutral": iam_condition_not_met_is_neutral,
    "iam_action_names_ignore_case": iam_action_names_ignore_case,
    "iam_trust_policy_principals": iam_trust_policy_principals,
    "iam_pass_role_checked": iam_pass_role_checked,
    "s3_iam_action_names": s3_iam_action_names,
    "s3_access_denied_names_principal": s3_access_denied_names_principal,
    "json_access_denied_exception": json_access_denied_exception,
}
