"""The vpc and alb roles' CIDR rules on Python's ipaddress (plugins/module_utils/network_rules.py), exposed as the
collection's filters dataops.prefect_fargate.* (plugins/filter/network_rules.py). They replace ansible.utils IP
filters: the messages are the ones the Jinja rules gave, byte for byte, and the derived subnets are ipsubnet's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.ansible.utils.plugins.filter.ipsubnet import ipsubnet
from ansible_collections.dataops.prefect_fargate.plugins.filter.network_rules import FilterModule
from ansible_collections.dataops.prefect_fargate.plugins.module_utils.network_rules import CHECKS

FILTERS = FilterModule().filters()
REPO = Path(__file__).resolve().parents[2]
PUBLIC, PRIVATE = "vpc_public_subnet_cidrs", "vpc_private_subnet_cidrs"


def errors(vpc_cidr="10.20.0.0/16", newbits=4, az_count=2, public=(), private=(), layout="private"):
    return FILTERS["vpc_network_errors"](vpc_cidr, newbits, az_count, list(public), list(private), layout)


def cidr_msg(got):
    return ("vpc_cidr must be an IPv4 network address in CIDR notation with a prefix from /16 to /28 "
            f"(e.g. 10.20.0.0/16), got '{got}'.")


def range_msg(got):
    return ("vpc_cidr must lie inside a private range (10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10: "
            f"RFC 1918 or the shared 100.64.0.0/10), got '{got}', a publicly routable or reserved range.")


def newbits_msg(newbits, cidr="10.20.0.0/16", azs=2):
    return (f"vpc_subnet_newbits ({newbits}) must leave subnets of /28 or larger inside vpc_cidr {cidr} and room "
            f"for {2 * azs} subnets ({azs} AZs x public + private).")


def bad_msg(name, entry, cidr="10.20.0.0/16"):
    return f"{name} entry '{entry}' must be an IPv4 network address (prefix /28 or larger) inside vpc_cidr {cidr}."


def overlap_msg(pairs):
    return ("Subnet CIDRs in vpc_public_subnet_cidrs / vpc_private_subnet_cidrs must not overlap: "
            f"{pairs} do.")


# --- subnet_cidrs: what vars/main.yml got from ansible.utils.ipsubnet(prefix + newbits, i), i = 0..count-1

@pytest.mark.parametrize(("cidr", "newbits", "count", "expected"), [
    ("10.20.0.0/16", 4, 4, ["10.20.0.0/20", "10.20.16.0/20", "10.20.32.0/20", "10.20.48.0/20"]),
    ("10.20.0.0/24", 2, 4, ["10.20.0.0/26", "10.20.0.64/26", "10.20.0.128/26", "10.20.0.192/26"]),
    ("192.168.16.0/20", 3, 6, ["192.168.16.0/23", "192.168.18.0/23", "192.168.20.0/23", "192.168.22.0/23",
                               "192.168.24.0/23", "192.168.26.0/23"]),
    ("10.20.0.0/26", 2, 4, ["10.20.0.0/28", "10.20.0.16/28", "10.20.0.32/28", "10.20.0.48/28"]),
    ("10.20.0.0/28", 0, 1, ["10.20.0.0/28"]),
    ("10.20.0.0/16", "4", 2, ["10.20.0.0/20", "10.20.16.0/20"]),  # newbits as text, as Jinja's int filter takes it
])
def test_subnet_cidrs(cidr, newbits, count, expected):
    assert FILTERS["subnet_cidrs"](cidr, newbits, count) == expected


def test_the_last_28_of_a_24():
    got = FILTERS["subnet_cidrs"]("10.20.0.0/24", 4, 16)
    assert len(got) == 16 and got[0] == "10.20.0.0/28" and got[-1] == "10.20.0.240/28"


@pytest.mark.parametrize(("cidr", "newbits"), [
    (cidr, newbits) for cidr in ("10.20.0.0/16", "10.20.0.0/24", "172.16.32.0/20", "10.20.0.0/28", "100.64.0.0/10")
    for newbits in (0, 1, 2, 4, 8) if int(cidr.split("/")[1]) + newbits <= 32])
@pytest.mark.parametrize("count", [1, 2, 6, 16])
def test_subnet_cidrs_are_ipsubnets(cidr, newbits, count):
    """The same subnets as ansible.utils.ipsubnet for every index it has one for (it gives False past the end)."""
    prefix = int(cidr.split("/")[1]) + newbits
    expected = [s for s in (ipsubnet(cidr, str(prefix), i) for i in range(count)) if s is not False]
    assert FILTERS["subnet_cidrs"](cidr, newbits, count) == expected


@pytest.mark.parametrize(("cidr", "newbits", "count", "expected"), [
    ("banana", 4, 4, []), (None, 4, 4, []), (5, 4, 4, []), ("10.20.0.1/16", 4, 4, []), ("fd00::/56", 4, 4, []),
    (["10.20.0.0/16"], 4, 4, []), ("10.20.0.0/28", 5, 4, []), ("10.20.0.0/16", -1, 4, []), ("10.20.0.0/16", 4, "x", []),
    ("10.20.0.0/16", 4, -3, []), ("10.20.0.0/16", None, None, []),
    # newbits that are not a number count as 0 (Jinja's int filter): vpc_cidr itself is the one subnet
    ("10.20.0.0/16", "x", 4, ["10.20.0.0/16"]), ("10.20.0.0/16", float("inf"), 2, ["10.20.0.0/16"]),
])
def test_subnet_cidrs_of_garbage(cidr, newbits, count, expected):
    assert FILTERS["subnet_cidrs"](cidr, newbits, count) == expected


def test_subnet_cidrs_gives_only_the_subnets_that_exist():
    assert FILTERS["subnet_cidrs"]("10.20.0.0/28", 1, 4) == ["10.20.0.0/29", "10.20.0.8/29"]
    assert FILTERS["subnet_cidrs"]("10.20.0.0/16", 1, 10**9) == ["10.20.0.0/17", "10.20.128.0/17"]


# --- subnet_layout: vpc__public_subnet_cidrs / vpc__private_subnet_cidrs

@pytest.mark.parametrize(("args", "public", "private"), [
    (("10.20.0.0/16", 4, 2, [], [], "private"), ["10.20.0.0/20", "10.20.16.0/20"], ["10.20.32.0/20", "10.20.48.0/20"]),
    (("10.20.0.0/16", 4, 2, [], [], "public"), ["10.20.0.0/20", "10.20.16.0/20"], []),
    (("10.20.0.0/16", 4, 3, [], [], "private"), ["10.20.0.0/20", "10.20.16.0/20", "10.20.32.0/20"],
     ["10.20.48.0/20", "10.20.64.0/20", "10.20.80.0/20"]),
    (("10.20.0.0/16", 4, 2, ["a", "b"], [], "private"), ["a", "b"], ["10.20.32.0/20", "10.20.48.0/20"]),
    (("10.20.0.0/16", 4, 2, [], ["p"], "private"), ["10.20.0.0/20", "10.20.16.0/20"], ["p"]),
    (("10.20.0.0/16", 4, 2, ["a"], ["p"], "public"), ["a"], []),
    (("10.20.0.0/16", 4, 2, [], [], "x"), ["10.20.0.0/20", "10.20.16.0/20"], ["10.20.32.0/20", "10.20.48.0/20"]),
    (("banana", 4, 2, [], [], "private"), [], []),
    (("10.20.0.0/16", 4, -1, [], [], "private"), [], []),
])
def test_subnet_layout(args, public, private):
    assert FILTERS["subnet_layout"](*args) == {"public": public, "private": private}


def test_subnet_layout_of_its_own_result_is_the_same():
    """vpc_network_checks may be given the inputs or vars/main.yml's lists: both give the same layout."""
    for args in [("10.20.0.0/16", 4, 2, [], [], "private"), ("10.20.0.0/16", 4, 2, ["a"], [], "public"),
                 ("10.20.0.0/16", 4, 0, [], [], "private"), ("banana", 4, 2, [], ["p"], "private")]:
        first = FILTERS["subnet_layout"](*args)
        assert FILTERS["subnet_layout"](*args[:3], first["public"], first["private"], args[5]) == first


# --- vpc_network_errors / vpc_network_checks: every message, its gating and order

def test_valid_inputs_have_no_errors():
    assert errors() == []
    assert errors(layout="public") == []
    assert errors("10.20.0.0/24", 2) == []
    assert errors("192.168.0.0/16", 12) == []
    assert errors("100.64.0.0/16") == []
    assert errors(public=["10.20.0.0/28", "10.20.1.0/28"]) == []
    assert errors(public=["10.20.0.0/24", "10.20.1.0/24"], private=["10.20.128.0/20", "10.20.144.0/20"]) == []
    assert errors(newbits=3, az_count=3) == []
    assert errors(newbits="4") == [] and errors(newbits=4.7) == []


@pytest.mark.parametrize(("cidr", "shown"), [
    ("banana", "banana"), ("10.20.0.1/16", "10.20.0.1/16"), ("10.20.0.0/29", "10.20.0.0/29"), ("10.0.0.0/8", "10.0.0.0/8"),
    ("10.0.0.0/15", "10.0.0.0/15"), ("10.20.0.300/16", "10.20.0.300/16"), ("", ""), ("fd00::/56", "fd00::/56"),
    (" 10.20.0.0/16", " 10.20.0.0/16"), ("10.20.0.0", "10.20.0.0"), ("10.20.0.0/255.255.0.0", "10.20.0.0/255.255.0.0"),
    ("10.020.0.0/16", "10.020.0.0/16"), ("10.20/16", "10.20/16"),
    # Not strings: shown as a template prints them (None as nothing); ansible.utils.ipv4 raised on None and dicts.
    (None, ""), (5, "5"), (True, "True"), (["10.20.0.0/16"], "['10.20.0.0/16']"), ({"a": 1}, "{'a': 1}"),
])
def test_a_vpc_cidr_that_is_not_a_network_of_16_to_28(cidr, shown):
    # newbits 0 would fail too: its rule reads vpc_cidr, so only the vpc_cidr message is given
    assert errors(cidr, newbits=0) == [cidr_msg(shown)]


@pytest.mark.parametrize("cidr", ["8.8.0.0/16", "172.32.0.0/16", "100.128.0.0/16", "192.169.0.0/16"])
def test_a_vpc_cidr_outside_the_private_ranges(cidr):
    assert errors(cidr) == [range_msg(cidr)]


def test_the_private_range_and_newbits_rules_both_report():
    assert errors("8.8.0.0/16", 0) == [range_msg("8.8.0.0/16"), newbits_msg(0, "8.8.0.0/16")]


@pytest.mark.parametrize(("cidr", "newbits", "azs", "shown"), [
    ("10.20.0.0/16", 0, 2, "0"), ("10.20.0.0/16", -1, 2, "-1"), ("10.20.0.0/16", 13, 2, "13"),
    ("10.20.0.0/16", 1, 2, "1"), ("10.20.0.0/16", 1, 3, "1"), ("10.20.0.0/16", 2, 3, "2"),
    ("10.20.0.0/26", 4, 2, "4"), ("10.20.0.0/28", 4, 2, "4"), ("10.20.0.0/16", "x", 2, "x"),
    ("10.20.0.0/16", None, 2, ""), ("10.20.0.0/16", [4], 2, "[4]"), ("10.20.0.0/16", 10**30, 2, str(10**30)),
])
def test_newbits_that_leave_no_room(cidr, newbits, azs, shown):
    assert errors(cidr, newbits, azs) == [newbits_msg(shown, cidr, azs)]


def test_newbits_12_leave_28s():
    assert errors(newbits=12) == []


@pytest.mark.parametrize(("public", "private", "layout", "expected"), [
    (["10.20.0.0/20"], [], "private", 'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR per '
     'availability zone (2), got ["10.20.0.0/20"] and ["10.20.32.0/20", "10.20.48.0/20"].'),
    ([], ["10.20.128.0/20", "10.20.144.0/20", "10.20.160.0/20"], "private",
     'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR per availability zone (2), got '
     '["10.20.0.0/20", "10.20.16.0/20"] and ["10.20.128.0/20", "10.20.144.0/20", "10.20.160.0/20"].'),
    (["10.20.0.0/20"], [], "public",
     'vpc_public_subnet_cidrs must list one CIDR per availability zone (2), got ["10.20.0.0/20"].'),
    # a layout other than the two (argument_specs refuses it): both lists named, only the public one shown
    (["10.20.0.0/20"], [], "x", 'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR per '
     'availability zone (2), got ["10.20.0.0/20"].'),
    ([None], [], "private", 'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR per '
     'availability zone (2), got [null] and ["10.20.32.0/20", "10.20.48.0/20"].'),
    (["10.20.0.0/20\u00e9"], [], "private", 'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR '
     'per availability zone (2), got ["10.20.0.0/20\\u00e9"] and ["10.20.32.0/20", "10.20.48.0/20"].'),
])
def test_one_cidr_per_zone(public, private, layout, expected):
    assert errors(public=public, private=private, layout=layout) == [expected]


def test_a_string_for_a_list_is_counted_as_jinja_does():
    assert FILTERS["vpc_network_errors"]("10.20.0.0/16", 4, 2, "10.20.0.0/20", [], "private") == [
        'vpc_public_subnet_cidrs and vpc_private_subnet_cidrs must list one CIDR per availability zone (2), got '
        '"10.20.0.0/20" and ["10.20.32.0/20", "10.20.48.0/20"].']


@pytest.mark.parametrize(("public", "private", "expected"), [
    (["10.99.0.0/24", "10.99.1.0/24"], [], bad_msg(PUBLIC, "10.99.0.0/24") + " " + bad_msg(PUBLIC, "10.99.1.0/24")),
    (["10.20.0.0/20", "10.99.0.0/20"], [], bad_msg(PUBLIC, "10.99.0.0/20")),
    (["10.20.0.1/24", "10.20.1.0/24"], [], bad_msg(PUBLIC, "10.20.0.1/24")),
    (["10.20.0.0/29", "10.20.1.0/24"], [], bad_msg(PUBLIC, "10.20.0.0/29")),
    (["10.20.0.1/32", "10.20.1.0/24"], [], bad_msg(PUBLIC, "10.20.0.1/32")),
    (["10.0.0.0/12", "10.20.1.0/24"], [], bad_msg(PUBLIC, "10.0.0.0/12")),
    (["fd00::/64", "10.20.1.0/24"], [], bad_msg(PUBLIC, "fd00::/64")),
    (["0.0.0.0/0", "10.20.1.0/24"], [], bad_msg(PUBLIC, "0.0.0.0/0")),
    ([], ["10.20.0.0/20", "garbage"], bad_msg(PRIVATE, "garbage")),
    ([5, None], [True, ["x"]], " ".join([bad_msg(PUBLIC, "5"), bad_msg(PUBLIC, ""), bad_msg(PRIVATE, "True"),
                                         bad_msg(PRIVATE, "['x']")])),
    ([{"a": 1}, 1.5], [], bad_msg(PUBLIC, "{'a': 1}") + " " + bad_msg(PUBLIC, "1.5")),
    # overlaps are checked only once every entry is a subnet of vpc_cidr
    (["10.99.0.0/24", "10.20.0.0/24"], ["10.20.0.0/24", "10.20.1.0/24"], bad_msg(PUBLIC, "10.99.0.0/24")),
])
def test_subnets_that_are_not_networks_inside_vpc_cidr(public, private, expected):
    assert errors(public=public, private=private) == [expected]


@pytest.mark.parametrize(("public", "private", "pairs"), [
    (["10.20.0.0/24", "10.20.0.128/25"], [], "10.20.0.0/24 and 10.20.0.128/25"),
    ([], ["10.20.0.0/20", "10.20.64.0/20"], "10.20.0.0/20 and 10.20.0.0/20"),  # the derived public one
    (["10.20.200.0/24", "10.20.200.0/24"], ["10.20.200.0/24", "10.20.201.0/24"],
     "10.20.200.0/24 and 10.20.200.0/24, 10.20.200.0/24 and 10.20.200.0/24, 10.20.200.0/24 and 10.20.200.0/24"),
    (["10.20.0.0/16", "10.20.1.0/24"], [], "10.20.0.0/16 and 10.20.1.0/24, 10.20.0.0/16 and 10.20.32.0/20, "
                                           "10.20.0.0/16 and 10.20.48.0/20"),
])
def test_overlapping_subnets(public, private, pairs):
    assert errors(public=public, private=private) == [overlap_msg(pairs)]


def test_the_public_layout_ignores_the_private_list():
    assert errors(private=["10.20.0.0/20", "10.20.0.0/20"], layout="public") == []
    assert errors(private=["garbage"], layout="public") == []


def test_checks_are_keyed_by_rule_in_order_and_errors_are_their_messages():
    checks = FILTERS["vpc_network_checks"]("8.8.0.0/16", 0, 2, [], [], "private")
    assert tuple(checks) == CHECKS == ("cidr", "private_range", "newbits", "subnet_count", "subnets", "overlaps")
    assert checks["private_range"] == range_msg("8.8.0.0/16") and checks["newbits"] == newbits_msg(0, "8.8.0.0/16")
    assert [m for m in checks.values() if m] == errors("8.8.0.0/16", 0)
    assert set(FILTERS["vpc_network_checks"]("10.20.0.0/16", 4, 2, [], [], "private").values()) == {""}


GARBAGE = [None, 0, -1, 5, 1.5, float("nan"), float("inf"), True, "", "x", "10.20.0.0/16", "fd00::/8", [], [None], ["x"],
           {}, {"10.20.0.0/24": 1}, ("10.20.0.0/20",), object(), b"10.20.0.0/16", 10**40]


@pytest.mark.parametrize("value", GARBAGE, ids=[f"{i}-{type(v).__name__}" for i, v in enumerate(GARBAGE)])
@pytest.mark.parametrize("position", range(6))
def test_garbage_anywhere_gives_messages_not_exceptions(value, position):
    args = ["10.20.0.0/16", 4, 2, [], [], "private"]
    args[position] = value
    got = FILTERS["vpc_network_errors"](*args)
    assert isinstance(got, list) and all(isinstance(m, str) and m for m in got)
    assert isinstance(FILTERS["subnet_layout"](*args), dict)


def test_garbage_in_two_lists_at_once_does_not_raise():
    for public, private in [({"10.20.0.0/24": 1, "10.20.1.0/24": 2}, ["10.20.2.0/24", "10.20.3.0/24"]),
                            ("ab", ["10.20.2.0/24", "10.20.3.0/24"]), (["10.20.0.0/24", "10.20.1.0/24"], "ab")]:
        assert isinstance(errors(public=public, private=private), list)


# --- non_networks: the alb role's alb_allowed_cidrs rule

@pytest.mark.parametrize(("values", "bad"), [
    (["0.0.0.0/0", "203.0.113.0/24", "10.0.0.0/31"], []),
    (["203.0.113.7"], ["203.0.113.7"]),
    (["203.0.113.5/32", "0.0.0.0/32"], []),  # one address: a valid security group CIDR (ipv4('net') refused it)
    (["203.0.113.5/31"], ["203.0.113.5/31"]),
    (["10.0.0.0/33"], ["10.0.0.0/33"]),
    (["10.0.0.1/31"], ["10.0.0.1/31"]),
    (["10.0.0.0/255.255.255.0"], ["10.0.0.0/255.255.255.0"]),
    (["10.0.0.0/024"], ["10.0.0.0/024"]),
    (["fd00::/64"], ["fd00::/64"]),
    (["10.0.0.0/8 "], ["10.0.0.0/8 "]),
    ([5, None, True], ["5", "None", "True"]),
    (["x", "10.0.0.0/8", "x", "y"], ["x", "y"]),
    (5, ["5"]),
])
def test_non_networks(values, bad):
    assert FILTERS["non_networks"](values) == bad


# --- the roles use these filters, not ansible.utils' IP filters

def test_the_vpc_rules_use_every_check_in_order():
    task = yaml.safe_load((REPO / "roles/vpc/tasks/validate.yml").read_text())[0]
    used = [m.group(1) for rule in task["vars"]["vpc__rules"]
            for m in [re.search(r"vpc__network\['(\w+)'\] == ''", rule["ok"])] if m]
    assert used == list(CHECKS)
    for rule in task["vars"]["vpc__rules"]:
        if "vpc__network" in rule["ok"]:
            key = re.search(r"\['(\w+)'\]", rule["ok"]).group(1)
            assert rule["msg"] == "{{ vpc__network['" + key + "'] }}", rule


def test_no_ansible_utils_ip_filters_in_the_roles_or_playbooks():
    pattern = re.compile(r"ansible\.utils\.(ip\w*|network_in_network|supernet_of|subnet_of|cidr_merge)\b")
    paths = [*REPO.glob("roles/**/*.yml"), *REPO.glob("playbooks/*.yml"), *REPO.glob("*.yml")]
    assert paths
    assert [str(p) for p in paths if pattern.search(p.read_text())] == []
