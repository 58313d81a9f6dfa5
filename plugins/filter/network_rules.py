# -*- coding: utf-8 -*-
# Copyright: dataops.prefect_fargate contributors
# Apache License 2.0 (see LICENSE)
"""The vpc role's CIDR rules (plugins/module_utils/network_rules.py), on the standard library's ipaddress.

- ``subnet_cidrs(vpc_cidr, newbits, count)``: the first count subnets of vpc_cidr, newbits longer prefix.
- ``subnet_layout(vpc_cidr, newbits, az_count, public_cidrs, private_cidrs, layout)``: the subnet CIDRs in use,
  {'public': [...], 'private': [...]} (given lists, or derived ones for those left empty).
- ``vpc_network_checks(vpc_cidr, newbits, az_count, public_cidrs, private_cidrs, layout)``: each CIDR rule's
  message by rule name ('' when it holds), in the order the role reports them.
- ``vpc_network_errors(...)``: the same arguments; the messages of the rules that fail.
- ``non_networks(values)``: the entries, as text, that are not an IPv4 network in canonical CIDR form (a /32 is one).
"""

from __future__ import annotations

from ansible_collections.dataops.prefect_fargate.plugins.module_utils.network_rules import (
    non_networks,
    subnet_cidrs,
    subnet_layout,
    vpc_network_checks,
    vpc_network_errors,
)


class FilterModule:
    def filters(self):
        return {
            "subnet_cidrs": subnet_cidrs,
            "subnet_layout": subnet_layout,
            "vpc_network_checks": vpc_network_checks,
            "vpc_network_errors": vpc_network_errors,
            "non_networks": non_networks,
        }
