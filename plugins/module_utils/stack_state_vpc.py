# -*- coding: utf-8 -*-
# Apache-2.0
"""Reader of the vpc role's resources for dataops.prefect_fargate.stack_state_info.

One EC2 client reads everything the vpc role converges (VPC, subnets, internet gateway, route tables,
NAT gateways and their elastic IPs, S3 gateway endpoint) and says, resource by resource, whether it
already is what the role's write task would make it. The comparisons mirror the stock modules' own
(amazon.aws ec2_vpc_net, ec2_vpc_subnet, ec2_vpc_igw, ec2_vpc_route_table, ec2_vpc_nat_gateway,
ec2_vpc_endpoint, with purge_tags: true): `in_sync` is true only when that module would change nothing,
so skipping it is exact; anything unknown or missing is out of sync and the stock module runs (and
decides). The reader never writes.

spec (built by roles/vpc/tasks/create.yml):
  name, cidr, tags (the role's vpc_tags), region, layout (public|private), nat_gateways (single|per_az),
  s3_endpoint: bool, and either
  azs: [az, ...], subnets: [{name, cidr, az, tier}] (the layout as given), or
  az_count, azs (the wanted zones, or [] for the first az_count available ones in name order, as the role's
  defaults say), subnet_cidrs: {public: [cidr per zone], private: [...]}: the reader then lays the subnets out.
  When every wanted CIDR already is a subnet of the VPC, in az_count distinct zones that the tiers agree on (and
  that are `azs`, when given), those zones are the layout: a subnet's zone never changes, so none is looked up.
  Otherwise it looks the zones up (DescribeAvailabilityZones, available ones only). `layout` in the result says
  which ({azs, available_azs (empty without a lookup), subnets, error}); with an error nothing else is returned.
"""

from __future__ import annotations

import json

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.stack_state_common import read_all, tag_dict


def _filters(**values):
    return [{"Name": k.replace("_", "-") if not k.startswith("tag") else k, "Values": v if isinstance(v, list) else [v]}
            for k, v in values.items()]


def _snake(item):
    out = camel_dict_to_snake_dict(item, ignore_list=["Tags"])
    out["tags"] = tag_dict(item.get("Tags"))
    return out


def _out(resource_id, in_sync, why=""):
    return {"id": resource_id or "", "in_sync": bool(in_sync), "why": "" if in_sync else why}


def _detached_gateways(ec2, name, tags):
    """ec2_vpc_igw creates a gateway (tagged) and then attaches it: a run stopped in between leaves a detached
    gateway of the stack, which the role adopts instead of making a second one. Ids of those, oldest first."""
    want = dict(tags, Name="%s-igw" % name)
    found = ec2.describe_internet_gateways(aws_retry=True, Filters=_filters(**{"tag:Name": want["Name"]}))["InternetGateways"]
    return [g["InternetGatewayId"] for g in found
            if not g.get("Attachments") and all(tag_dict(g.get("Tags")).get(k) == v for k, v in want.items())]


def choose_layout(ec2, spec):
    """The zones and subnets of the network: {azs, available_azs, subnets: [{name, cidr, az, tier}], error}."""
    filters = _filters(state="available", zone_type="availability-zone", **({"zone_name": list(spec["azs"])} if spec["azs"] else {}))
    available = [z["ZoneName"] for z in ec2.describe_availability_zones(aws_retry=True, Filters=filters)["AvailabilityZones"]]
    count = int(spec["az_count"])
    azs = list(spec["azs"]) if spec["azs"] else sorted(available)[:count]
    missing = [az for az in azs if az not in available]
    out = {"azs": azs, "available_azs": available, "subnets": [], "error": ""}
    if missing:
        out["error"] = "vpc_azs %s are not available availability zones of this region (available: %s)." % (
            json.dumps(missing), json.dumps(available))
    elif len(azs) != count:
        out["error"] = "The region offers only %d available availability zones; vpc_az_count is %d." % (len(available), count)
    tiers = ["public"] + (["private"] if spec["layout"] == "private" else [])
    for tier in tiers:
        cidrs = list((spec.get("subnet_cidrs") or {}).get(tier) or [])
        if len(cidrs) < len(azs):
            out["error"] = out["error"] or "vpc_%s_subnet_cidrs must list one CIDR per availability zone (%d), got %s." % (
                tier, len(azs), json.dumps(cidrs))
            continue
        out["subnets"] += [{"tier": tier, "az": az, "cidr": cidrs[i], "name": "%s-%s-%s" % (spec["name"], tier, az)}
                           for i, az in enumerate(azs)]
    return out


def existing_layout(spec, subnets):
    """The zones and subnets of a network whose subnets all exist already: each wanted CIDR is a subnet of the VPC,
    the tiers agree on the zone of each index, and the zones are distinct, az_count of them (and vpc_azs, when
    given). A subnet's zone never changes, so no zone lookup is needed then. None otherwise."""
    by_cidr = {s["CidrBlock"]: s["AvailabilityZone"] for s in subnets}
    tiers = ["public"] + (["private"] if spec["layout"] == "private" else [])
    count = int(spec["az_count"])
    azs = None
    for tier in tiers:
        cidrs = list((spec.get("subnet_cidrs") or {}).get(tier) or [])[:count]
        zones = [by_cidr.get(cidr) for cidr in cidrs]
        if len(zones) != count or None in zones or (azs is not None and zones != azs):
            return None
        azs = zones
    if len(set(azs)) != count or (spec["azs"] and list(spec["azs"]) != azs):
        return None
    subnets = [{"tier": tier, "az": az, "cidr": spec["subnet_cidrs"][tier][i], "name": "%s-%s-%s" % (spec["name"], tier, az)}
               for tier in tiers for i, az in enumerate(azs)]
    return {"azs": azs, "available_azs": [], "subnets": subnets, "error": ""}


def read_vpc(ec2, spec):
    """Read the network of one stack; returns the ids found and whether each resource is in sync."""
    if "subnets" in spec:
        return _read_network(ec2, spec, _fetch(ec2, spec))
    # The network is read first: when its subnets already are the layout, their zones are the zones (no lookup).
    fetched = _fetch(ec2, spec)
    layout = existing_layout(spec, fetched["got"]["subnets"]) if fetched["got"] else None
    if layout is None:
        layout = choose_layout(ec2, spec)
        if layout["error"]:
            return {"layout": layout, "in_sync": False}
    result = _read_network(ec2, dict(spec, azs=layout["azs"], subnets=layout["subnets"]), fetched)
    result["layout"] = layout
    return result


def _fetch(ec2, spec):
    """The VPC (by name and CIDR) and, when there is exactly one, everything in it, the independent reads at once:
    {vpcs, got} (got None without one VPC). Nothing here depends on the zones."""
    vpcs = ec2.describe_vpcs(aws_retry=True, Filters=_filters(**{"tag:Name": spec["name"], "cidr-block": spec["cidr"]}))["Vpcs"]
    if len(vpcs) != 1:
        return {"vpcs": vpcs, "got": None}
    vpc_id = vpcs[0]["VpcId"]
    return {"vpcs": vpcs, "got": read_all({
        "dns_support": lambda: ec2.describe_vpc_attribute(aws_retry=True, VpcId=vpc_id, Attribute="enableDnsSupport"),
        "dns_hostnames": lambda: ec2.describe_vpc_attribute(aws_retry=True, VpcId=vpc_id, Attribute="enableDnsHostnames"),
        "subnets": lambda: ec2.describe_subnets(aws_retry=True, Filters=_filters(vpc_id=vpc_id))["Subnets"],
        "igws": lambda: ec2.describe_internet_gateways(aws_retry=True, Filters=_filters(**{"attachment.vpc-id": vpc_id}))["InternetGateways"],
        "tables": lambda: ec2.describe_route_tables(aws_retry=True, Filters=_filters(vpc_id=vpc_id))["RouteTables"],
        "nats": lambda: ec2.describe_nat_gateways(
            aws_retry=True, Filters=_filters(vpc_id=vpc_id, state=["pending", "available"])) if spec["layout"] == "private" else {},
        "endpoints": lambda: ec2.describe_vpc_endpoints(aws_retry=True, Filters=_filters(
            vpc_id=vpc_id, service_name="com.amazonaws.%s.s3" % spec["region"]))["VpcEndpoints"] if spec.get("s3_endpoint") else [],
    })}


def _read_network(ec2, spec, fetched):
    name, tags = spec["name"], dict(spec.get("tags") or {})
    result = {"vpc": _out("", False, "no VPC named %s with CIDR %s" % (name, spec["cidr"])), "subnets": {},
              "internet_gateway": _out("", False, "no internet gateway attached"), "public_route_table": _out("", False, "not found"),
              "nat_gateways": [], "nat_addresses": [], "nats": {}, "private_route_tables": {},
              "s3_endpoint": _out("", not spec.get("s3_endpoint"), "not found")}
    subnet_names = [s["name"] for s in spec["subnets"]]
    nat_azs = [] if spec["layout"] != "private" else spec["azs"] if spec.get("nat_gateways") == "per_az" else spec["azs"][:1]
    nat_names = {az: "%s-nat-%s" % (name, az) for az in nat_azs}
    for subnet in spec["subnets"]:
        result["subnets"][subnet["name"]] = _out("", False, "not found")
    for az in nat_azs:
        result["nats"][nat_names[az]] = _out("", False, "not found")
    if spec["layout"] == "private":
        for az in spec["azs"]:
            result["private_route_tables"]["%s-private-%s" % (name, az)] = _out("", False, "not found")

    # The NAT elastic IPs are found by tag, in or out of a VPC (the role allocates them before the NATs); they are
    # only needed for a NAT gateway still to make, so they are read only then.
    with_nats = bool(nat_names) and spec["layout"] == "private"

    def read_addresses():
        result["nat_addresses"] = [_snake(a) for a in ec2.describe_addresses(
            aws_retry=True, Filters=_filters(domain="vpc", **{"tag:Name": sorted(nat_names.values())}))["Addresses"]]

    vpcs = fetched["vpcs"]
    if len(vpcs) != 1:
        if vpcs:
            result["vpc"]["why"] = "%d VPCs match" % len(vpcs)
        else:
            read_all({"gateways": lambda: result["internet_gateway"].update(detached=_detached_gateways(ec2, name, tags)),
                      "addresses": read_addresses if with_nats else lambda: None})
        return _finish(result)
    vpc = vpcs[0]
    vpc_id = vpc["VpcId"]
    got = fetched["got"]
    dns_support, dns_hostnames = got["dns_support"], got["dns_hostnames"]
    want = dict(tags, Name=name)
    why = []
    if tag_dict(vpc.get("Tags")) != want:
        why.append("tags")
    if not dns_support["EnableDnsSupport"]["Value"]:
        why.append("DNS support")
    if not dns_hostnames["EnableDnsHostnames"]["Value"]:
        why.append("DNS hostnames")
    result["vpc"] = _out(vpc_id, not why, ", ".join(why))

    # Subnets: ec2_vpc_subnet finds one by VPC + CIDR; map_public false, no IPv6, tags exact.
    by_cidr = {s["CidrBlock"]: s for s in got["subnets"]}
    ids_by_name = {}
    for subnet in spec["subnets"]:
        found = by_cidr.get(subnet["cidr"])
        if not found:
            continue
        why = []
        if found["AvailabilityZone"] != subnet["az"]:
            why.append("availability zone")
        if found.get("MapPublicIpOnLaunch"):
            why.append("map_public")
        if found.get("AssignIpv6AddressOnCreation"):
            why.append("assign IPv6")
        if any(a.get("Ipv6CidrBlockState", {}).get("State") in ("associated", "associating")
               for a in found.get("Ipv6CidrBlockAssociationSet") or []):
            why.append("IPv6 CIDR")
        if tag_dict(found.get("Tags")) != dict(tags, Name=subnet["name"], Tier=subnet["tier"]):
            why.append("tags")
        result["subnets"][subnet["name"]] = dict(_out(found["SubnetId"], not why, ", ".join(why)),
                                                 availability_zone=found["AvailabilityZone"])
        ids_by_name[subnet["name"]] = found["SubnetId"]

    igws = got["igws"]
    igw_id = ""
    if len(igws) == 1:
        igw_id = igws[0]["InternetGatewayId"]
        tags_ok = tag_dict(igws[0].get("Tags")) == dict(tags, Name="%s-igw" % name)
        result["internet_gateway"] = _out(igw_id, tags_ok, "tags")
    elif not igws:
        result["internet_gateway"]["detached"] = _detached_gateways(ec2, name, tags)

    tables = got["tables"]
    public_ids = [ids_by_name.get(s["name"], "") for s in spec["subnets"] if s["tier"] == "public"]
    purge_public = not (spec.get("s3_endpoint") and spec["layout"] == "public")
    result["public_route_table"] = _route_table(tables, dict(tags, Name="%s-public" % name, Tier="public"),
                                                {"DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw_id},
                                                public_ids, purge_public)

    nat_by_az = {}
    if spec["layout"] == "private":
        nats = got["nats"]
        result["nat_gateways"] = [_snake(n) for n in nats.get("NatGateways", [])]
        for az, nat_name in nat_names.items():
            subnet_id = ids_by_name.get("%s-public-%s" % (name, az), "")
            found = [n for n in nats.get("NatGateways", []) if subnet_id and n["SubnetId"] == subnet_id]
            if not found:
                continue
            why = []
            if found[0]["State"] != "available":
                why.append("state %s" % found[0]["State"])
            if tag_dict(found[0].get("Tags")) != dict(tags, Name=nat_name):
                why.append("tags")
            result["nats"][nat_name] = _out(found[0]["NatGatewayId"], not why, ", ".join(why))
            nat_by_az[az] = found[0]["NatGatewayId"]
        if with_nats and len(nat_by_az) < len(nat_names):
            read_addresses()  # a NAT gateway to make: the elastic IP an earlier run allocated for it, if any
        for index, az in enumerate(spec["azs"]):
            nat_id = nat_by_az.get(az if spec.get("nat_gateways") == "per_az" else spec["azs"][0], "")
            private = [ids_by_name.get(s["name"], "") for s in spec["subnets"] if s["tier"] == "private" and s["az"] == az]
            rt_name = "%s-private-%s" % (name, az)
            result["private_route_tables"][rt_name] = _route_table(
                tables, dict(tags, Name=rt_name, Tier="private"), {"DestinationCidrBlock": "0.0.0.0/0", "NatGatewayId": nat_id},
                private, not spec.get("s3_endpoint"))

    if spec.get("s3_endpoint"):
        task_tables = ([t["id"] for t in result["private_route_tables"].values()] if spec["layout"] == "private"
                       else [result["public_route_table"]["id"]])
        for endpoint in got["endpoints"]:
            if endpoint.get("State", "").lower() in ("deleting", "deleted", "failed", "rejected", "expired"):
                continue
            if "" not in task_tables and sorted(endpoint.get("RouteTableIds") or []) == sorted(task_tables):
                tags_ok = tag_dict(endpoint.get("Tags")) == dict(tags, Name="%s-s3" % name)
                result["s3_endpoint"] = _out(endpoint["VpcEndpointId"], tags_ok, "tags")
                break
    return _finish(result)


def _route_table(tables, want_tags, want_route, subnet_ids, purge_routes):
    """One route table as ec2_vpc_route_table (lookup: tag, purge_subnets, purge_tags) would converge it."""
    matches = [t for t in tables if all(tag_dict(t.get("Tags")).get(k) == v for k, v in want_tags.items())]
    if len(matches) != 1:
        return _out("", False, "%d tables match the tags" % len(matches))
    table = matches[0]
    why = []
    if tag_dict(table.get("Tags")) != want_tags:
        why.append("tags")
    target = [v for k, v in want_route.items() if k != "DestinationCidrBlock"][0]
    routes = table.get("Routes") or []
    if not target or not any(set(want_route.items()) <= set((k, v) for k, v in r.items() if isinstance(v, str)) for r in routes):
        why.append("default route")
    if purge_routes and any(r.get("DestinationCidrBlock") and r.get("Origin") == "CreateRoute"
                            and r.get("DestinationCidrBlock") != want_route["DestinationCidrBlock"] for r in routes):
        why.append("extra routes")
    associated = sorted(a["SubnetId"] for a in table.get("Associations") or [] if not a.get("Main") and a.get("SubnetId"))
    if "" in subnet_ids or associated != sorted(subnet_ids):
        why.append("subnet associations")
    return _out(table["RouteTableId"], not why, ", ".join(why))


def _finish(result):
    resources = [result["vpc"], result["internet_gateway"], result["public_route_table"], result["s3_endpoint"]]
    for group in ("subnets", "nats", "private_route_tables"):
        resources += list(result[group].values())
    result["in_sync"] = all(r["in_sync"] for r in resources)
    return result
