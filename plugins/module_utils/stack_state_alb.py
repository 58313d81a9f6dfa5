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
  known_subnets: optional, [{id, availability_zone, vpc_id}] already known (not described again)
  vpc: optional, {id, cidr} of the subnets' VPC when known (not described again when the subnets are in it)
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


def read_subnets(ec2, subnet_ids, known=()):
    """The given subnets with their zone and VPC; one call. An unknown id is not an error here: the role's check
    (roles/common subnets_span_azs) compares what was found with what was given and names the input.

    `known` lists subnets ({id, availability_zone, vpc_id}) the caller already read or made in this run (the vpc
    role's facts): a subnet's zone and VPC never change, so those are not described again.
    """
    known = {s["id"]: s for s in known or [] if s.get("id") and s.get("availability_zone") and s.get("vpc_id")}
    out = [dict((k, known[i][k]) for k in ("id", "availability_zone", "vpc_id")) for i in subnet_ids or [] if i in known]
    ask = [i for i in subnet_ids or [] if i not in known]
    if not ask:
        return out
    try:
        subnets = ec2.describe_subnets(aws_retry=True, SubnetIds=ask)["Subnets"]
    except ClientError as exc:
        if error_code(exc) != "InvalidSubnetID.NotFound":
            raise
        subnets = ec2.describe_subnets(aws_retry=True, Filters=[{"Name": "subnet-id", "Values": ask}])["Subnets"]
    return out + [{"id": s["SubnetId"], "availability_zone": s["AvailabilityZone"], "vpc_id": s["VpcId"]} for s in subnets]


def find_target_group(elb, name):
    """The target group of this name, or None."""
    try:
        groups = elb.describe_target_groups(aws_retry=True, Names=[name])["TargetGroups"]
    except ClientError as exc:
        if error_code(exc) != "TargetGroupNotFound":
            raise
        return None
    return groups[0] if groups else None


def compare_target_group(want, group, attributes, tags, vpc_id):
    """A found target group (None: missing) against what community.aws.elb_target_group would make it; its
    attributes ({key: value}) and tags (dict) were read by the caller, the tags together with the balancer's."""
    if group is None:
        return dict(_out("", ["not found"]), arn="")
    why = []
    for key, value in (("Protocol", want["protocol"]), ("Port", int(want["port"])), ("VpcId", vpc_id),
                       ("TargetType", want["target_type"])):
        if group.get(key) != value:
            why.append(key)
    for key, value in (want.get("health_check") or {}).items():
        if group.get(key) != value:
            why.append(key)
    if attributes.get("deregistration_delay.timeout_seconds") != str(want["deregistration_delay"]):
        why.append("deregistration delay")
    if tags != dict(want.get("tags") or {}):
        why.append("tags")
    return dict(_out(group["TargetGroupArn"], why), arn=group["TargetGroupArn"])


def read_tags(elb, arns):
    """{arn: tags} of load balancers and target groups, in one DescribeTags call (it takes up to 20 ARNs)."""
    if not arns:
        return {}
    answer = elb.describe_tags(aws_retry=True, ResourceArns=list(arns))["TagDescriptions"]
    found = {d["ResourceArn"]: tag_dict(d.get("Tags")) for d in answer}
    return {arn: found.get(arn, {}) for arn in arns}


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
    result = {"subnets": [], "vpc": {"id": "", "cidr": ""}, "security_group": _out("", ["VPC not found"]),
              "load_balancer": dict(_out("", ["not found"]), dns_name="", state="")}
    # Reads that do not wait for each other run at once (read_all): the subnets, the balancer, the target groups
    # and those to delete first; then the VPC of the subnets; then what needs the VPC or the ARNs, with the tags of
    # the balancer and its groups in one call.
    groups = {"target_group": spec["target_group"]}
    if spec.get("server_target_group"):
        groups["server_target_group"] = spec["server_target_group"]
    first = read_all(dict({
        "subnets": lambda: read_subnets(ec2, spec.get("subnet_ids") or [], spec.get("known_subnets")),
        "balancers": lambda: _describe_balancer(elb, want["name"]),
        "stale_target_groups": lambda: read_stale_target_groups(elb, spec.get("stale_target_groups") or []),
    }, **{key: (lambda name=group["name"]: find_target_group(elb, name)) for key, group in groups.items()}))
    result["subnets"], result["stale_target_groups"] = first["subnets"], first["stale_target_groups"]
    vpc_ids = sorted({s["vpc_id"] for s in result["subnets"]})
    vpc = None
    if len(vpc_ids) == 1:
        known_vpc = spec.get("vpc") or {}
        # A VPC's primary CIDR never changes: the one the caller knows (the vpc role's) is not described again.
        vpc = ({"VpcId": known_vpc["id"], "CidrBlock": known_vpc["cidr"]} if known_vpc.get("cidr") and known_vpc.get("id") == vpc_ids[0]
               else ec2.describe_vpcs(aws_retry=True, VpcIds=vpc_ids)["Vpcs"][0])
    if vpc:
        result["vpc"] = {"id": vpc["VpcId"], "cidr": vpc["CidrBlock"]}
    arn = first["balancers"][0]["LoadBalancerArn"] if first["balancers"] else ""
    found_groups = {key: first[key] for key in groups if first[key]}
    reads = {"tags": lambda: read_tags(elb, ([arn] if arn else []) + [g["TargetGroupArn"] for g in found_groups.values()])}
    for key, group in found_groups.items():
        reads[key + "_attributes"] = lambda group_arn=group["TargetGroupArn"]: {
            a["Key"]: a["Value"] for a in elb.describe_target_group_attributes(aws_retry=True, TargetGroupArn=group_arn)["Attributes"]}
    if vpc:
        reads["security_group"] = lambda: read_security_group(ec2, vpc["VpcId"], spec["security_group"], vpc["CidrBlock"])
    if arn:
        reads["attributes"] = lambda: elb.describe_load_balancer_attributes(aws_retry=True, LoadBalancerArn=arn)["Attributes"]
        reads["listeners"] = lambda: [listener for page in elb.get_paginator("describe_listeners").paginate(LoadBalancerArn=arn)
                                      for listener in page.get("Listeners", [])]
    got = read_all(reads)
    for key, group in groups.items():
        found = found_groups.get(key)
        result[key] = compare_target_group(group, found, got.get(key + "_attributes", {}),
                                           got["tags"].get(found["TargetGroupArn"], {}) if found else {}, result["vpc"]["id"])
    if "security_group" in got:
        result["security_group"] = got["security_group"]
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
        if got["tags"].get(arn, {}) != dict(want.get("tags") or {}):
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
