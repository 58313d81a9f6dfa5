#!/usr/bin/env python3
"""IAM enforced on the local stack's emulator: the deployer acts with docs/deployer-policy.json only.

    local_iam.py enforce     create (or keep) the principals and their access keys, then switch moto's
                             IAM enforcement on: every request must be signed by a key that exists
                             in the emulator and is allowed by its principal's policies
    local_iam.py off         switch enforcement off (moto accepts any credentials again)
    local_iam.py status      whether enforcement is on, and which principals have working keys
    local_iam.py run --as PRINCIPAL -- COMMAND ...
                             run COMMAND with that principal's keys in AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY

Principals (IAM users in the emulator):
  deployer  only policy: docs/deployer-policy.json (inline, as shipped). inventories/local acts as this
            user whenever the credentials file exists (site.yml, teardown.yml, molecule's converge).
  harness   AdministratorAccess: the test harness (verify checks, leftover checks, test helpers) that
            reads everything; not the product.

The Fargate stand-in needs no principal: it plays ECS inside the emulator (scripts/moto_patches.py hands
each task its task role's STS credentials), and the task's processes act with those credentials only.
The keys go to <LOCAL_STACK_STATE>/iam/credentials.json (mode 0600) and are never printed. The
instance (ports, state folder) is scripts/local_stack.py's: the same LOCAL_STACK_* / *_PORT variables.
What the emulator enforces and what it does not: scripts/moto_patches_iam.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import local_stack  # noqa: E402  (the scripts folder is not a package)

REPO = local_stack.REPO
POLICY = REPO / "docs" / "deployer-policy.json"
REGION = os.environ.get("AWS_DEFAULT_REGION", "us-east-1")
ENDPOINT = f"http://{local_stack.HOST}:{local_stack.PORTS['moto']}"
CREDENTIALS = local_stack.STATE / "iam" / "credentials.json"
# Credentials moto accepts while enforcement is off (what the local stack used before).
OPEN_KEY = {"access_key_id": "testing", "secret_access_key": "testing"}
ADMINISTRATOR = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}


def principals() -> dict[str, dict[str, Any]]:
    """Name -> IAM user name and its inline policies (its only policies)."""
    return {
        "deployer": {"user": "local-stack-deployer",
                     "policies": {"deployer-policy": json.loads(POLICY.read_text())}},
        "harness": {"user": "local-stack-harness",
                    "policies": {"administrator-access": ADMINISTRATOR}},
    }


# --- the emulator's auth switch (moto's /moto-api, never authenticated) ---------------------------------


def set_enforcement(on: bool) -> None:
    """POST /moto-api/reset-auth: 0 requests without auth (on), or infinitely many (off)."""
    # Not form-encoded (urllib's default): moto reads the raw body, which Flask empties for forms.
    req = urllib.request.Request(f"{ENDPOINT}/moto-api/reset-auth", data=b"0" if on else b"inf", method="POST",
                                 headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        resp.read()


def client(service: str, key: dict[str, str]):
    import boto3

    return boto3.client(service, endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=key["access_key_id"], aws_secret_access_key=key["secret_access_key"])


def caller_arn(key: dict[str, str]) -> str | None:
    """The ARN the emulator sees for this key (sts:GetCallerIdentity needs no permission), or None."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return client("sts", key).get_caller_identity()["Arn"]
    except (ClientError, BotoCoreError):
        return None


def enforced() -> bool:
    """On when a key that exists nowhere is refused (sts:GetCallerIdentity, read-only)."""
    return caller_arn({"access_key_id": "AKIALOCALSTACKPROBE0", "secret_access_key": "probe"}) is None


# --- the credentials file --------------------------------------------------------------------------------


def read_credentials(path: Path = CREDENTIALS) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def write_credentials(data: dict[str, Any], path: Path = CREDENTIALS) -> None:
    """Write atomically, readable by the owner only (0600 in a 0700 folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def credentials(principal: str, path: Path = CREDENTIALS) -> dict[str, str]:
    """boto3 keyword arguments (aws_access_key_id, aws_secret_access_key) of a principal; the open
    `testing` key when the local stack has no credentials file (enforcement never switched on)."""
    key = read_credentials(path).get("principals", {}).get(principal) or OPEN_KEY
    return {"aws_access_key_id": key["access_key_id"], "aws_secret_access_key": key["secret_access_key"]}


def credentials_env(principal: str, path: Path = CREDENTIALS) -> dict[str, str]:
    """The same as AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment variables."""
    key = credentials(principal, path)
    return {"AWS_ACCESS_KEY_ID": key["aws_access_key_id"], "AWS_SECRET_ACCESS_KEY": key["aws_secret_access_key"]}


# --- principals ------------------------------------------------------------------------------------------


def ensure_principal(iam: Any, spec: dict[str, Any], known: dict[str, str] | None) -> tuple[dict[str, str], list[str]]:
    """Make the user exactly as specified (its inline policies and nothing else); keep a known key that
    still exists, else replace its keys with a new one. Returns (key record, changes)."""
    user = spec["user"]
    changes: list[str] = []
    try:
        iam.get_user(UserName=user)
    except iam.exceptions.NoSuchEntityException:
        iam.create_user(UserName=user)
        changes.append("user created")
    for name in iam.list_user_policies(UserName=user)["PolicyNames"]:
        if name not in spec["policies"]:
            iam.delete_user_policy(UserName=user, PolicyName=name)
            changes.append(f"policy {name} removed")
    for attached in iam.list_attached_user_policies(UserName=user)["AttachedPolicies"]:
        iam.detach_user_policy(UserName=user, PolicyArn=attached["PolicyArn"])
        changes.append(f"managed policy {attached['PolicyName']} detached")
    for group in iam.list_groups_for_user(UserName=user)["Groups"]:
        iam.remove_user_from_group(UserName=user, GroupName=group["GroupName"])
        changes.append(f"removed from group {group['GroupName']}")
    for name, document in spec["policies"].items():
        try:
            current = iam.get_user_policy(UserName=user, PolicyName=name)["PolicyDocument"]
            if isinstance(current, str):
                current = json.loads(current)
        except iam.exceptions.NoSuchEntityException:
            current = None
        if current != document:
            iam.put_user_policy(UserName=user, PolicyName=name, PolicyDocument=json.dumps(document))
            changes.append(f"policy {name} set")
    existing = [k["AccessKeyId"] for k in iam.list_access_keys(UserName=user)["AccessKeyMetadata"]]
    user_arn = iam.get_user(UserName=user)["User"]["Arn"]
    if known and known.get("access_key_id") in existing and known.get("user") == user:
        return {**known, "arn": user_arn}, changes
    for key_id in existing:
        iam.delete_access_key(UserName=user, AccessKeyId=key_id)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    changes.append("access key created")
    return {"user": user, "arn": user_arn, "access_key_id": key["AccessKeyId"],
            "secret_access_key": key["SecretAccessKey"]}, changes


def cmd_enforce(_: argparse.Namespace) -> int:
    # Set up with enforcement off (the harness key may not exist yet, e.g. after /moto-api/reset).
    set_enforcement(False)
    iam = client("iam", OPEN_KEY)
    known = read_credentials().get("principals", {})
    records: dict[str, dict[str, str]] = {}
    for name, spec in principals().items():
        records[name], changes = ensure_principal(iam, spec, known.get(name))
        print(f"  {name:<9} {records[name]['arn']:<55} {', '.join(changes) or 'unchanged'}")
    write_credentials({"endpoint_url": ENDPOINT, "region": REGION, "principals": records})
    print(f"  keys      {CREDENTIALS} (0600)")
    set_enforcement(True)
    if not enforced():
        print("local-iam: enforcement did not switch on", file=sys.stderr)
        return 1
    missing = [name for name in records if caller_arn(records[name]) != records[name]["arn"]]
    if missing:
        print(f"local-iam: the emulator does not accept the keys of {', '.join(missing)}", file=sys.stderr)
        return 1
    print("  moto      IAM enforcement on")
    return 0


def cmd_off(_: argparse.Namespace) -> int:
    set_enforcement(False)
    print("  moto      IAM enforcement off")
    return 0


def cmd_status(_: argparse.Namespace) -> int:
    try:
        on = enforced()
    except (urllib.error.URLError, OSError):
        print(f"  moto      not reachable at {ENDPOINT}")
        return 1
    print(f"  moto      IAM enforcement {'on' if on else 'off'}")
    records = read_credentials().get("principals", {})
    if not records:
        print(f"  keys      none ({CREDENTIALS} does not exist)")
    for name, record in records.items():
        arn = caller_arn(record) if on else None
        state = "key accepted" if arn else ("key NOT accepted" if on else "not checked (enforcement off)")
        print(f"  {name:<9} {record.get('arn', '?'):<55} {state}")
    return 0 if not on or all(caller_arn(r) for r in records.values()) else 1


def cmd_run(args: argparse.Namespace) -> int:
    command = [c for c in args.command if c != "--"] if args.command[:1] == ["--"] else args.command
    if not command:
        print("local-iam: run needs a command after --", file=sys.stderr)
        return 2
    env = {**os.environ, **credentials_env(args.principal), "AWS_ENDPOINT_URL": ENDPOINT,
           "AWS_DEFAULT_REGION": REGION}
    env.pop("AWS_SESSION_TOKEN", None)
    os.execvpe(command[0], command, env)
    return 0  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="action", required=True)
    for name, func in (("enforce", cmd_enforce), ("off", cmd_off), ("status", cmd_status)):
        sub.add_parser(name).set_defaults(func=func)
    run = sub.add_parser("run", help="run a command with a principal's keys in the environment")
    run.add_argument("--as", dest="principal", required=True, choices=sorted(principals()))
    run.add_argument("command", nargs=argparse.REMAINDER)
    run.set_defaults(func=cmd_run)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
