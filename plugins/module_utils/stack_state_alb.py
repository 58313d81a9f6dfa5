# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the alb role's resources for dataops.prefect_fargate.stack_state_info.

One EC2 and one ELBv2 client read what the alb role converges: the subnets it is given (and their VPC), the
load balancer's security group, the target group, the load balancer with its attributes, tags and listeners.
Each resource is `in_sync` only when the role's write task would change nothing:

- amazon.aws.ec2_security_group (purge_rules, purge_rules_egress, purge_tags): the group exists in the VPC, its
  ingress and egress rules are exactly the wanted ones (ports, CIDRs, descriptions) and its tags are the wanted
  ones (the description cannot change: the module only warns);
- community.aws.elb_target_group: same protocol, port, VPC and target type, the wanted health check, the
  deregistration delay and tags;
- amazon.aws.elb_application_lb (purge_listeners, purge_tags): same subnets and security group, every attribute
  the role passes, tags, and listeners as amazon.aws's own listener comparison (module_utils.elbv2) groups them.

Anything missing or different is out of sync, and the stock module decides. The reader never writes.

spec (built by roles/alb/tasks/create.yml):
  subnet_ids: [subnet id]
  security_group: {name, tags, ingress: [rule], egress: [rule]}, rules as ec2_security_group takes them
                  (proto, ports, cidr_ip | group_id, rule_desc; cidr_ip "vpc" stands for the CIDR of the subnets' VPC)
  target_group: {name, protocol, port, target_type, health_check: {HealthCheck* fields and Matcher as
                 DescribeTargetGroups returns them}, deregistration_delay, tags}
  server_target_group: optional, the same shape as target_group (the self-hosted Prefect server's group;
                       result key server_target_group, part of in_sync only when given)
  stale_target_groups: optional, names of target groups the role made once and no longer wants (the server's when
                       the self-hosted server is turned off); result key stale_target_groups lists those that still
                       exist ({name, arn}), each one making in_sync false
  load_balancer: {name, listeners (as elb_application_lb takes them, TargetGroupName allowed; a listener with
                  `Rules` also has its non-default rules compared as elb_application_lb's purge_rules does),
                  attributes: {attribute key: string value}, tags}
"""

from __future__ import annotations

from ansible_collections.amazon.aws.plugins.module_utils.elbv2 import _group_listeners, _group_rules
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import error_code, read_all, tag_dict

try:
    from botocore.exceptions import ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def _out(resource_id, why):
    return {"id": resource_id or "", "in_sync": not why, "why": ", ".join(why)}


def permissions(perms):
    """Security group permissions -> set of (protocol, from, to, kind, target, description), one per range."""
    rules = set()
    for perm in perms or []:
        key = (str(perm.get("IpProtocol")), perm.get("FromPort"), perm.get("ToPort"))
        for r in perm.get("IpRanges") or []:
            rules.add(key + ("ipv4", r["CidrIp"], r.get("Description")))
        for r in perm.get("Ipv6Ranges") or []:
            rules.add(key + ("ipv6", r["CidrIpv6"], r.get("Description")))
        for r in perm.get("UserIdGroupPairs") or []:
            rules.add(key + ("group", r["GroupId"], r.get("Description")))
        for r in perm.get("PrefixListIds") or []:
            rules.add(key + ("prefix", r["PrefixListId"], r.get("Description")))
    return rules


def wanted_rules(rules, vpc_cidr=""):
    """Rules as ec2_security_group takes them (proto, ports | from_port/to_port, cidr_ip | cidr_ipv6 | group_id, each a value or
    a list, rule_desc) in the shape of permissions(); the CIDR "vpc" stands for vpc_cidr."""
    out = set()
    for rule in rules or []:
        proto = str(rule.get("proto", "tcp"))
        if rule.get("ports") is not None:
            ports = [(int(p), int(p)) if "-" not in str(p) else tuple(int(x) for x in str(p).split("-", 1)) for p in _list(rule["ports"])]
        elif rule.get("from_port") is not None:
            ports = [(int(rule["from_port"]), int(rule["to_port"]))]
        else:
            ports = [(None, None)]
        if proto in ("all", "-1"):
            proto, ports = "-1", [(None, None)]
        targets = [("group", g) for g in _list(rule.get("group_id"))]
        targets += [("ipv6" if ":" in c else "ipv4", vpc_cidr if c == "vpc" else c) for c in _list(rule.get("cidr_ip")) + _list(rule.get("cidr_ipv6"))]
        for low, high in ports:
            for kind, target in targets:
                out.add((proto, low, high, kind, target, rule.get("rule_desc")))
    return out


def _list(value):
    if value is None or value == "":
        return []
    return list(value) if isinstance(value, (list, tuple)) else [value]


def read_security_group(ec2, vpc_id, want, vpc_cidr=""):
    """One security group as ec2_security_group (purge_rules, purge_tags) would converge it; egress is compared
    only when the spec lists it (the module leaves egress alone without rules_egress)."""
    found = ec2.describe_security_groups(aws_retry=True, Filters=[
        {"Name": "group-name", "Values": [want["name"]]}, {"Name": "vpc-id", "Values": [vpc_id]}])["SecurityGroups"]
    if not found:
        return _out("", ["not found"])
    group = found[0]
    why = []
    if permissions(group.get("IpPermissions")) != wanted_rules(want.get("ingress"), vpc_cidr):
        why.append("ingress rules")
    if want.get("egress") is not None and permissions(group.get("IpPermissionsEgress")) != wanted_rules(want["egress"], vpc_cidr):
        why.append("egress rules")
    if tag_dict(group.get("Tags")) != dict(want.get("tags") or {}):
        why.append("tags")
    return _out(group["GroupId"], why)


def read_subnets(ec2, subnet_ids):
    """The given subnets with their zone and VPC; one call. An unknown id is not an error here: the role's check
    (roles/common subnets_span_azs) compares what was found with what was given and names the input."""
    if not subnet_ids:
        return []
    try:
        subnets = ec2.describe_subnets(aws_retry=True, SubnetIds=list(subnet_ids))["Subnets"]
    except ClientError as exc:
        if error_code(exc) != "InvalidSubnetID.NotFound":
            raise
        subnets = ec2.describe_subnets(aws_retry=True, Filters=[{"Name": "subnet-id", "Values": list(subnet_ids)}])["Subnets"]
    return [{"id": s["SubnetId"], "availability_zone": s["AvailabilityZone"], "vpc_id": s["VpcId"]} for s in subnets]


def read_target_group(elb, want, vpc_id):
    """A target group by name, compared with what community.aws.elb_target_group would make it."""
    result = dict(_out("", ["not found"]), arn="")
    try:
        groups = elb.describe_target_groups(aws_retry=True, Names=[want["name"]])["TargetGroups"]
    except ClientError as exc:
        if error_code(exc) != "TargetGroupNotFound":
            raise
        groups = []
    if groups:
        group = groups[0]
        why = []
        for key, value in (("Protocol", want["protocol"]), ("Port", int(want["port"])), ("VpcId", vpc_id),
                           ("TargetType", want["target_type"])):
            if group.get(key) != value:
                why.append(key)
        for key, value in (want.get("health_check") or {}).items():
            if group.get(key) != value:
                why.append(key)
        attributes = {a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(
            aws_retry=True, TargetGroupArn=group["TargetGroupArn"])["Attributes"]}
        if attributes.get("deregistration_delay.timeout_seconds") != str(want["deregistration_delay"]):
            why.append("deregistration delay")
        tags = elb.describe_tags(aws_retry=True, ResourceArns=[group["TargetGroupArn"]])["TagDescriptions"]
        if tag_dict(tags[0].get("Tags") if tags else []) != dict(want.get("tags") or {}):
            why.append("tags")
        result = dict(_out(group["TargetGroupArn"], why), arn=group["TargetGroupArn"])
    return result


def read_stale_target_groups(elb, names):
    """The target groups of these names that exist ({name, arn}), in one call (a missing name fails the whole
    DescribeTargetGroups call, so they are asked one by one only then)."""
    if not names:
        return []
    try:
        groups = elb.describe_target_groups(aws_retry=True, Names=list(names))["TargetGroups"]
    except ClientError as exc:
        if error_code(exc) != "TargetGroupNotFound":
            raise
        groups = []
        for name in names if len(names) > 1 else []:
            try:
                groups += elb.describe_target_groups(aws_retry=True, Names=[name])["TargetGroups"]
            except ClientError as inner:
                if error_code(inner) != "TargetGroupNotFound":
                    raise
    return [{"name": g["TargetGroupName"], "arn": g["TargetGroupArn"]} for g in groups]


def _with_arns(actions, target_groups):
    """Actions with TargetGroupName replaced by the ARN (as elb_application_lb does before comparing)."""
    out = []
    for action in actions or []:
        action = dict(action)
        name = action.pop("TargetGroupName", None)
        if name is not None:
            action["TargetGroupArn"] = target_groups.get(name) or "not-found"
        out.append(action)
    return out


def rules_differ(elb, current_listeners, wanted_listeners):
    """Whether elb_application_lb would add, re-prioritise, modify or purge a rule of a listener given with Rules."""
    by_port = {int(listener["Port"]): listener for listener in current_listeners}
    for listener in wanted_listeners:
        if "Rules" not in listener:
            continue
        current = by_port.get(int(listener["Port"]))
        if current is None:
            return True  # the listener itself is missing (already out of sync)
        current_rules = []
        for page in elb.get_paginator("describe_rules").paginate(ListenerArn=current["ListenerArn"]):
            current_rules += page.get("Rules", [])
        if any(_group_rules(current_rules, listener["Rules"])):
            return True
    return False


def _describe_balancer(elb, name):
    try:
        return elb.describe_load_balancers(aws_retry=True, Names=[name])["LoadBalancers"]
    except ClientError as exc:
        if error_code(exc) != "LoadBalancerNotFound":
            raise
        return []


def read_alb(client, spec):
    ec2, elb = client("ec2"), client("elbv2")
    want = spec["load_balancer"]
    result = {"subnets": [], "vpc": {"id": "", "cidr": ""},
              "security_group": _out("", ["VPC not found"]), "target_group": _out("", ["not found"]),
              "load_balancer": dict(_out("", ["not found"]), dns_name="", state="")}
    result["target_group"]["arn"] = ""
    # Reads that do not wait for each other run at once (read_all): the subnets, the balancer and the target
    # groups to delete first; then the VPC of the subnets; then what needs the VPC or the balancer's ARN.
    first = read_all({
        "subnets": lambda: read_subnets(ec2, spec.get("subnet_ids") or []),
        "balancers": lambda: _describe_balancer(elb, want["name"]),
        "stale_target_groups": lambda: read_stale_target_groups(elb, spec.get("stale_target_groups") or []),
    })
    result["subnets"], result["stale_target_groups"] = first["subnets"], first["stale_target_groups"]
    vpc_ids = sorted({s["vpc_id"] for s in result["subnets"]})
    vpc = ec2.describe_vpcs(aws_retry=True, VpcIds=vpc_ids)["Vpcs"][0] if len(vpc_ids) == 1 else None
    if vpc:
        result["vpc"] = {"id": vpc["VpcId"], "cidr": vpc["CidrBlock"]}
    arn = first["balancers"][0]["LoadBalancerArn"] if first["balancers"] else ""
    reads = {"target_group": lambda: read_target_group(elb, spec["target_group"], result["vpc"]["id"])}
    if vpc:
        reads["security_group"] = lambda: read_security_group(ec2, vpc["VpcId"], spec["security_group"], vpc["CidrBlock"])
    if spec.get("server_target_group"):
        reads["server_target_group"] = lambda: read_target_group(elb, spec["server_target_group"], result["vpc"]["id"])
    if arn:
        reads["attributes"] = lambda: elb.describe_load_balancer_attributes(aws_retry=True, LoadBalancerArn=arn)["Attributes"]
        reads["tags"] = lambda: elb.describe_tags(aws_retry=True, ResourceArns=[arn])["TagDescriptions"]
        reads["listeners"] = lambda: [listener for page in elb.get_paginator("describe_listeners").paginate(LoadBalancerArn=arn)
                                      for listener in page.get("Listeners", [])]
    got = read_all(reads)
    for key in ("target_group", "security_group", "server_target_group"):
        if key in got:
            result[key] = got[key]
    target_groups = {spec["target_group"]["name"]: result["target_group"]["arn"]}
    if spec.get("server_target_group"):
        target_groups[spec["server_target_group"]["name"]] = result["server_target_group"]["arn"]

    if arn:
        lb = first["balancers"][0]
        why = []
        if lb.get("Type") != "application":
            why.append("type")
        if {z["SubnetId"] for z in lb.get("AvailabilityZones") or []} != set(spec.get("subnet_ids") or []):
            why.append("subnets")
        if set(lb.get("SecurityGroups") or []) != {result["security_group"]["id"]}:
            why.append("security groups")
        attributes = {a["Key"]: a["Value"] for a in got["attributes"]}
        for key, value in (want.get("attributes") or {}).items():
            if attributes.get(key, "") != str(value):
                why.append(key)
        tags = got["tags"]
        if tag_dict(tags[0].get("Tags") if tags else []) != dict(want.get("tags") or {}):
            why.append("tags")
        current = got["listeners"]
        listeners = []
        for listener in want.get("listeners") or []:
            listener = dict(listener, DefaultActions=_with_arns(listener.get("DefaultActions"), target_groups))
            if "Rules" in listener:
                listener["Rules"] = [dict(rule, Actions=_with_arns(rule.get("Actions"), target_groups))
                                     for rule in listener["Rules"] or []]
            listeners.append(listener)
        add, modify, delete = _group_listeners(current, [{k: v for k, v in item.items() if k != "Rules"}
                                                         for item in listeners])
        if add or modify or delete or rules_differ(elb, current, listeners):
            why.append("listeners")
        result["load_balancer"] = dict(_out(arn, why), dns_name=lb.get("DNSName", ""), state=(lb.get("State") or {}).get("Code", ""))
    result["in_sync"] = not result["stale_target_groups"] and all(
        result[k]["in_sync"] for k in ("security_group", "target_group", "load_balancer")
        + (("server_target_group",) if "server_target_group" in result else ()))
    return result
