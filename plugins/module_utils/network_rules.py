# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""The vpc role's CIDR rules and subnet layout and the alb role's CIDR check, on the standard library's ipaddress:
what the roles did with the ansible.utils IP filters, whose argument-spec check on every call made the vpc rules
cost about half a second a run. Plain Python: the collection's filters (plugins/filter/network_rules.py) expose
them to the roles, unit tests call them. They never raise: a value that is not a network is reported.
"""

from __future__ import annotations

import ipaddress
import json
from itertools import combinations
from typing import Any

# AWS accepts a publicly routable VPC CIDR but the VPC then cannot reach the owners of that range (and 0.0.0.0/8,
# 127.0.0.0/8, 169.254.0.0/16, 224.0.0.0/4 are refused outright): RFC 1918 and the shared 100.64.0.0/10 only.
PRIVATE_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10")
_PRIVATE_NETWORKS = tuple(ipaddress.IPv4Network(r) for r in PRIVATE_RANGES)
# /28: the smallest subnet (and VPC) AWS allows; /16: the largest VPC.
MAX_PREFIX = 28
MIN_VPC_PREFIX = 16
# Rule names of vpc_network_checks, in the order the role reports them.
CHECKS = ("cidr", "private_range", "newbits", "subnet_count", "subnets", "overlaps")


def _int(value: Any) -> int:
    """Jinja's ``int`` filter: 0 when the value is not a number ("4.7" gives 4)."""
    try:
        return int(value, 10) if isinstance(value, str) else int(value)
    except (TypeError, ValueError, OverflowError):
        try:
            return int(float(value))
        except (TypeError, ValueError, OverflowError):
            return 0


def _text(value: Any) -> str:
    """A value as a template prints it (None as nothing)."""
    return "" if value is None else str(value)


def _string(value: Any) -> str:
    """Jinja's ``string`` filter."""
    return value if isinstance(value, str) else str(value)


def _json(value: Any) -> str:
    """Ansible's ``to_json`` (anything else as text instead of an error)."""
    try:
        return json.dumps(value, default=lambda o: o.isoformat() if hasattr(o, "isoformat") else str(o))
    except (TypeError, ValueError):
        return json.dumps(_text(value))


def _length(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        return -1


def ipv4_network(value: Any) -> ipaddress.IPv4Network | None:
    """The IPv4 network a string names in canonical CIDR form (no host bits, a /prefix), else None."""
    if not isinstance(value, str):
        return None
    try:
        network = ipaddress.ip_network(value)
    except ValueError:
        return None
    if not isinstance(network, ipaddress.IPv4Network) or str(network) != value:
        return None
    return network


def non_networks(values: Any) -> list[str]:
    """The entries of a list, as text, that are not an IPv4 network in canonical CIDR form, each once in list order:
    host bits set, no prefix, a netmask or leading zeros. A /32 (one address) is a network here, as for a security
    group rule; ansible.utils.ipv4('net'), which this replaced, took it for an address and refused it."""
    try:
        texts = [_string(v) for v in values]
    except TypeError:
        texts = [_string(values)]
    bad: list[str] = []
    for text in texts:
        network = ipv4_network(text)
        if network is None and text not in bad:
            bad.append(text)
    return bad


def subnet_cidrs(vpc_cidr: Any, newbits: Any, count: Any) -> list[str]:
    """The first count subnets of vpc_cidr with newbits more prefix bits, in address order (ansible.utils'
    ipsubnet(prefix + newbits, i) for i in 0..count-1); only those that exist: none when vpc_cidr is not an IPv4
    network or the prefix would pass /32."""
    network = ipv4_network(vpc_cidr)
    bits = _int(newbits)
    if network is None or bits < 0 or network.prefixlen + bits > 32:
        return []
    wanted = max(0, min(_int(count), 2 ** bits))
    size = 2 ** (32 - network.prefixlen - bits)
    base = int(network.network_address)
    return [f"{ipaddress.IPv4Address(base + i * size)}/{network.prefixlen + bits}" for i in range(wanted)]


def subnet_layout(vpc_cidr: Any, newbits: Any, az_count: Any, public_cidrs: Any, private_cidrs: Any,
                  layout: Any) -> dict[str, Any]:
    """The subnet CIDRs the vpc role uses: {'public': ..., 'private': ...}. A non-empty list given is used as it
    is; an empty one takes blocks of subnet_cidrs(vpc_cidr, newbits, 2 * az_count), the first az_count for the
    public subnets, the next ones for the private subnets. No private subnets with the public layout."""
    azs = max(_int(az_count), 0)
    derived = subnet_cidrs(vpc_cidr, newbits, 2 * azs)
    return {"public": public_cidrs if _length(public_cidrs) > 0 else derived[:azs],
            "private": [] if layout == "public" else private_cidrs if _length(private_cidrs) > 0 else derived[azs:]}


def _bad_subnets(network: ipaddress.IPv4Network, lists: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    bad = []
    for name, cidrs in lists:
        for cidr in cidrs:
            subnet = ipv4_network(cidr)
            if subnet is None or subnet.prefixlen > MAX_PREFIX or not subnet.subnet_of(network):
                bad.append((name, cidr))
    return bad


def vpc_network_checks(vpc_cidr: Any, newbits: Any, az_count: Any, public_cidrs: Any, private_cidrs: Any,
                       layout: Any) -> dict[str, str]:
    """Each CIDR rule of the vpc role (CHECKS, in order) with its message, '' when it holds. A rule that reads a
    value an earlier rule checks holds while that rule fails (an unparsable CIDR cannot be split into subnets).
    public_cidrs / private_cidrs: vpc_public_subnet_cidrs / vpc_private_subnet_cidrs, as given (empty ones are
    derived, subnet_layout) or as subnet_layout gave them."""
    checks = dict.fromkeys(CHECKS, "")
    network = ipv4_network(vpc_cidr)
    if network is None or not MIN_VPC_PREFIX <= network.prefixlen <= MAX_PREFIX:
        checks["cidr"] = ("vpc_cidr must be an IPv4 network address in CIDR notation with a prefix from /16 to /28 "
                          f"(e.g. 10.20.0.0/16), got '{_text(vpc_cidr)}'.")
        return checks
    if not any(network.subnet_of(r) for r in _PRIVATE_NETWORKS):
        checks["private_range"] = (
            f"vpc_cidr must lie inside a private range ({', '.join(PRIVATE_RANGES)}: RFC 1918 or the shared "
            f"100.64.0.0/10), got '{vpc_cidr}', a publicly routable or reserved range.")
    bits, azs = _int(newbits), _int(az_count)
    if not (bits >= 1 and network.prefixlen + bits <= MAX_PREFIX and 2 ** bits >= 2 * azs):
        checks["newbits"] = (
            f"vpc_subnet_newbits ({_text(newbits)}) must leave subnets of /28 or larger inside vpc_cidr {vpc_cidr} "
            f"and room for {2 * azs} subnets ({_text(az_count)} AZs x public + private).")
        return checks
    cidrs = subnet_layout(vpc_cidr, newbits, az_count, public_cidrs, private_cidrs, layout)
    public_cidrs, private_cidrs = cidrs["public"], cidrs["private"]
    if _length(public_cidrs) != azs or (layout != "public" and _length(private_cidrs) != azs):
        checks["subnet_count"] = (
            f"vpc_public_subnet_cidrs{'' if layout == 'public' else ' and vpc_private_subnet_cidrs'} must list one "
            f"CIDR per availability zone ({_text(az_count)}), got {_json(public_cidrs)}"
            f"{' and ' + _json(private_cidrs) if layout == 'private' else ''}.")
        return checks
    bad = _bad_subnets(network, [("vpc_public_subnet_cidrs", public_cidrs), ("vpc_private_subnet_cidrs", private_cidrs)])
    if bad:
        checks["subnets"] = " ".join(
            f"{name} entry '{_text(cidr)}' must be an IPv4 network address (prefix /28 or larger) inside vpc_cidr "
            f"{vpc_cidr}." for name, cidr in bad)
        return checks
    cidrs = list(public_cidrs) + list(private_cidrs)
    overlaps = [(a, b) for a, b in combinations(cidrs, 2) if ipv4_network(a).overlaps(ipv4_network(b))]
    if overlaps:
        checks["overlaps"] = ("Subnet CIDRs in vpc_public_subnet_cidrs / vpc_private_subnet_cidrs must not overlap: "
                              f"{', '.join(f'{a} and {b}' for a, b in overlaps)} do.")
    return checks


def vpc_network_errors(vpc_cidr: Any, newbits: Any, az_count: Any, public_cidrs: Any, private_cidrs: Any,
                       layout: Any) -> list[str]:
    """The messages of the CIDR rules that fail (vpc_network_checks), in order; [] when all hold."""
    return [msg for msg in vpc_network_checks(vpc_cidr, newbits, az_count, public_cidrs, private_cidrs, layout).values()
            if msg]
