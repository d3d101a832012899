# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""_carp parsers and planner against recorded outputs (the carp role's templates: tests/unit/roles/test_carp_role.py)."""

from __future__ import annotations

import re

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _carp
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture


def interfaces(name):
    return _carp.parse_ifconfig(read_fixture(f"carp/{name}.txt"))


# ---------------------------------------------------------------- ifconfig


def test_parse_ifconfig_reads_the_freebsd14_vhid_with_its_peer_line_and_addresses():
    (name,) = list(interfaces("ifconfig-carp-backup-peer-line-fbsd14-haproxy01"))
    (entry,) = interfaces("ifconfig-carp-backup-peer-line-fbsd14-haproxy01")["vnet0"]["carp"]
    assert name == "vnet0"
    assert entry == {
        "state": "BACKUP",
        "vhid": 1,
        "advbase": 1,
        "advskew": 0,
        "key": None,
        "peer": "224.0.0.18",
        "peer6": "ff02::12",
        "addresses": ["10.1.60.200", "fd5e:d1c2:c9de:60::200"],
    }


def test_parse_ifconfig_keeps_many_vhids_in_kernel_order_with_trailing_spaces():
    block = interfaces("ifconfig-vlan-carp-master-many-vhids-mha2014")["vlan316"]
    assert [entry["vhid"] for entry in block["carp"]] == [*range(14, 26), 33, 34]
    assert {entry["state"] for entry in block["carp"]} == {"MASTER"}
    assert {entry["advskew"] for entry in block["carp"]} == {50}
    assert all(entry["addresses"] == [f"10.30.16.{entry['vhid']}"] for entry in block["carp"])
    assert all(entry["peer"] is None for entry in block["carp"])
    assert block["up"] is True


def test_parse_ifconfig_reads_the_key_printed_by_ifconfig_k():
    (entry,) = interfaces("ifconfig-k-em0-backup-key.fbsd-lab")["em0"]["carp"]
    assert (entry["state"], entry["advskew"], entry["key"]) == ("BACKUP", 100, "labpass")


@pytest.mark.parametrize(
    ("fixture", "state", "advskew", "up"),
    [
        ("ifconfig-em0-backup-advskew100.fbsd-lab", "BACKUP", 100, True),
        ("ifconfig-em0-master-advskew0.fbsd-lab", "MASTER", 0, True),
        ("ifconfig-em0-backup-advskew240.fbsd-lab", "BACKUP", 240, True),
        ("ifconfig-em0-master-advskew240-partitioned.fbsd-lab", "MASTER", 240, True),
        ("ifconfig-em0-init-interface-down.fbsd-lab", "INIT", 0, False),
    ],
)
def test_parse_ifconfig_reads_the_lab_states(fixture, state, advskew, up):
    block = interfaces(fixture)["em0"]
    (entry,) = block["carp"]
    assert (entry["state"], entry["advskew"], entry["addresses"], block["up"]) == (
        state,
        advskew,
        ["127.0.10.100"],
        up,
    )


def test_parse_ifconfig_refuses_a_capture_with_a_shell_prompt_and_grep_separators():
    with pytest.raises(_carp.ParseError, match=r"line outside an interface block: .root@opnsense-fw1"):
        interfaces("ifconfig-grep-carp-opnsense-master")


def test_carp_and_peer_lines_of_the_grep_capture_parse_one_by_one():
    lines = read_fixture("carp/ifconfig-grep-carp-opnsense-master.txt").splitlines()
    carp = [_carp.parse_carp_line(line) for line in lines if line.strip().startswith("carp:")]
    peers = [_carp.parse_peer_line(line) for line in lines if line.strip().startswith("peer ")]
    assert [(entry["state"], entry["vhid"], entry["advskew"]) for entry in carp] == [
        ("MASTER", 11, 0),
        ("MASTER", 33, 0),
    ]
    assert peers == [("224.0.0.18", "ff02::12")] * 2


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        # Pre-10 printers: a state number past the table prints <UNKNOWN>.
        ("\tcarp: <UNKNOWN> vhid 3 advbase 1 advskew 0", ("<UNKNOWN>", 3, None, None)),
        # The single-line spelling third-party tests report (unconfirmed in FreeBSD sources).
        ("\tcarp: BACKUP vhid 1 advbase 1 advskew 0, peer 224.0.0.18", ("BACKUP", 1, None, "224.0.0.18")),
        ('\tcarp: MASTER vhid 2 advbase 2 advskew 10 key "s3cret"', ("MASTER", 2, "s3cret", None)),
    ],
)
def test_parse_carp_line_accepts_the_documented_variants(line, expected):
    entry = _carp.parse_carp_line(line)
    assert (entry["state"], entry["vhid"], entry["key"], entry["peer"]) == expected


@pytest.mark.parametrize(
    "line",
    [
        "\tcarp: PRIMARY vhid 1 advbase 1 advskew 0",
        "\tcarp: MASTER vhid one advbase 1 advskew 0",
        "\tcarp: MASTER vhid 1 advskew 0",
    ],
)
def test_parse_carp_line_rejects_malformed_lines(line):
    with pytest.raises(_carp.ParseError, match=re.escape(line.strip())):
        _carp.parse_carp_line(line)


def test_parse_ifconfig_rejects_a_peer_line_without_its_carp_line():
    text = "em0: flags=8863<UP,BROADCAST> metric 0 mtu 1500\n\tstatus: active\n\t      peer 224.0.0.18 peer6 ff02::12\n"
    with pytest.raises(_carp.ParseError, match="peer line not directly after a carp or vrrp line"):
        _carp.parse_ifconfig(text)


def test_parse_ifconfig_rejects_a_malformed_vhid_tag():
    text = "em0: flags=8863<UP> metric 0 mtu 1500\n\tinet 10.0.0.1 netmask 0xffffffff vhid x\n"
    with pytest.raises(_carp.ParseError, match="malformed vhid"):
        _carp.parse_ifconfig(text)


def test_parse_ifconfig_reads_a_vrrp_line_apart_from_carp():
    text = "em0: flags=8863<UP> metric 0 mtu 1500\n\tvrrp: MASTER vrid 5 prio 100 interval 100\n"
    block = _carp.parse_ifconfig(text)["em0"]
    assert block["carp"] == []
    assert block["vrrp"] == [{"state": "MASTER", "vrid": 5, "prio": 100, "interval": 100, "peer": None, "peer6": None}]
    with pytest.raises(StateError, match="vhid 5 on em0 runs VRRP, not CARP"):
        _carp.find_vhid({"em0": block}, "em0", 5)


def test_parse_ifconfig_attaches_untagged_addresses_of_a_pre10_carp_interface():
    text = (
        "carp0: flags=49<UP,LOOPBACK,RUNNING> metric 0 mtu 1500\n"
        "\tinet 192.168.1.1 netmask 0xffffff00\n"
        "\tcarp: MASTER vhid 1 advbase 1 advskew 0\n"
    )
    (entry,) = _carp.parse_ifconfig(text)["carp0"]["carp"]
    assert entry["addresses"] == ["192.168.1.1"]


def test_find_vhid_refusal_lists_the_vhids_the_interface_has():
    with pytest.raises(StateError) as error:
        _carp.find_vhid(interfaces("ifconfig-carp-backup-peer-line-fbsd14-haproxy01"), "vnet0", 2)
    assert "vhid 2 does not exist on vnet0 (CARP vhids there: 1)" in str(error.value)
    assert "would create an empty vhid" in str(error.value)


def test_find_vhid_refuses_an_interface_missing_from_the_output():
    with pytest.raises(StateError, match="interface em1 is not in the ifconfig output"):
        _carp.find_vhid(interfaces("ifconfig-em0-backup-advskew100.fbsd-lab"), "em1", 1)


def test_error_detectors_match_the_captured_messages():
    assert _carp.is_missing_interface_error(read_fixture("carp/ifconfig-em1-error-no-such-interface.fbsd-lab.txt"))
    assert _carp.is_carp_missing_error(read_fixture("carp/sysctl-net-inet-carp-error-not-loaded.fbsd-lab.txt"))
    assert not _carp.is_carp_missing_error(read_fixture("carp/ifconfig-em0-vhid-state-error-no-vhid.fbsd-lab.txt"))


# ---------------------------------------------------------------- sysctl


def test_parse_sysctl_carp_reads_every_knob_of_the_opnsense_sample():
    assert _carp.parse_sysctl_carp(read_fixture("carp/sysctl-net-inet-carp-opnsense-test-fixture.txt")) == {
        "ifdown_demotion_factor": 240,
        "senderr_demotion_factor": 0,
        "demotion": 0,
        "log": 1,
        "preempt": 1,
        "dscp": 56,
        "allow": 1,
    }


def test_parse_sysctl_carp_reads_the_lab_demotion_and_defaults():
    assert (
        _carp.parse_sysctl_carp(read_fixture("carp/sysctl-net-inet-carp-demotion240.fbsd-lab.txt"))["demotion"] == 240
    )
    assert _carp.parse_sysctl_carp(read_fixture("carp/sysctl-net-inet-carp-defaults.fbsd-lab.txt"))["preempt"] == 0


def test_parse_sysctl_carp_rejects_other_lines():
    with pytest.raises(
        _carp.ParseError, match=re.escape("unrecognised sysctl line: 'net.inet.carp.demotion: 0 -> 240'")
    ):
        _carp.parse_sysctl_carp(read_fixture("carp/sysctl-net-inet-carp-demotion-set-240.fbsd-lab.txt"))


# ---------------------------------------------------------------- rc.conf aliases


def test_parse_rc_conf_aliases_reads_both_foozone_nodes():
    aliases = _carp.parse_rc_conf_aliases(read_fixture("carp/rc-conf-carp-alias-foozone.txt"))
    assert [(a["interface"], a["index"], a["vhid"], a["advskew"], a["pass"], a["address"]) for a in aliases] == [
        ("re0", 0, 1, None, "testpass", "192.168.1.138/32"),
        ("re0", 0, 1, 100, "testpass", "192.168.1.138/32"),
    ]


def test_parse_rc_conf_aliases_reads_values_without_the_inet_keyword():
    first, second = _carp.parse_rc_conf_aliases(read_fixture("carp/rc-conf-local-carp-aliases-mha2014.txt"))
    assert (first["interface"], first["index"], first["family"], first["vhid"], first["advskew"]) == (
        "vlan316",
        14,
        "inet",
        34,
        50,
    )
    assert (second["interface"], second["advskew"], second["address"]) == ("vlan317", 100, "10.30.17.34/32")


def test_parse_rc_conf_aliases_catches_the_typo_in_the_haproxy_sample():
    # Host 2's inet6 line reads "advskew 1ß0" as published: rc.d would pass it to ifconfig, which would fail.
    with pytest.raises(_carp.ParseError, match="advskew '1ß0' is not a number"):
        _carp.parse_rc_conf_aliases(read_fixture("carp/rc-conf-carp-inet-inet6-aliases-haproxy.txt"))
    host1 = read_fixture("carp/rc-conf-carp-inet-inet6-aliases-haproxy.txt").split('hostname="haproxy02')[0]
    aliases = _carp.parse_rc_conf_aliases(host1)
    assert [(a["index"], a["family"], a["address"]) for a in aliases] == [
        (1, "inet", "10.1.60.200/32"),
        (2, "inet6", "fd5e:d1c2:c9de:60::200/128"),
    ]


# ---------------------------------------------------------------- builders and planner


def test_builders_give_the_documented_command_lines():
    assert _carp.build_state_argv("em0", 1, "master") == ["em0", "vhid", "1", "state", "master"]
    assert _carp.build_advskew_argv("em0", 1, 240) == ["em0", "vhid", "1", "advskew", "240"]
    assert _carp.build_demotion_argv(-240) == ["net.inet.carp.demotion=-240"]
    assert _carp.build_sysctl_read_argv() == ["net.inet.carp"]


def entry_of(fixture):
    return interfaces(fixture)["em0"]["carp"][0]


SYSCTL = {"demotion": 0, "preempt": 1}


def test_plan_forces_master_with_low_advskew_first():
    steps = _carp.plan_carp(
        "em0", entry_of("ifconfig-em0-backup-advskew100.fbsd-lab"), SYSCTL, state="master", method="advskew"
    )
    assert steps == [
        ("ifconfig", ["em0", "vhid", "1", "advskew", "0"]),
        ("ifconfig", ["em0", "vhid", "1", "state", "master"]),
    ]


def test_plan_forces_backup_with_the_maximum_skew_a_demotion_reaches():
    steps = _carp.plan_carp(
        "em0", entry_of("ifconfig-em0-master-advskew0.fbsd-lab"), SYSCTL, state="backup", method="advskew"
    )
    assert steps == [
        ("ifconfig", ["em0", "vhid", "1", "advskew", "240"]),
        ("ifconfig", ["em0", "vhid", "1", "state", "backup"]),
    ]


def test_plan_with_method_state_leaves_advskew_alone():
    steps = _carp.plan_carp("em0", entry_of("ifconfig-em0-master-advskew0.fbsd-lab"), SYSCTL, state="backup")
    assert steps == [("ifconfig", ["em0", "vhid", "1", "state", "backup"])]


def test_plan_is_empty_when_state_and_advskew_already_hold():
    entry = entry_of("ifconfig-em0-master-advskew0-after-takeover.fbsd-lab")
    assert _carp.plan_carp("em0", entry, SYSCTL, state="master", method="advskew") == []
    assert _carp.plan_carp("em0", entry, SYSCTL) == []


def test_plan_writes_the_demotion_difference_because_the_kernel_adds():
    entry = entry_of("ifconfig-em0-master-advskew0.fbsd-lab")
    assert _carp.plan_carp("em0", entry, {"demotion": 240}, demotion=0) == [("sysctl", ["net.inet.carp.demotion=-240"])]
    assert _carp.plan_carp("em0", entry, {"demotion": 50}, demotion=240) == [("sysctl", ["net.inet.carp.demotion=190"])]
    assert _carp.plan_carp("em0", entry, {"demotion": 240}, demotion=240) == []


def test_plan_refuses_to_force_an_init_vhid():
    with pytest.raises(StateError, match=r"vhid 1 on em0 is INIT .* bring em0 up"):
        _carp.plan_carp("em0", entry_of("ifconfig-em0-init-interface-down.fbsd-lab"), SYSCTL, state="master")


def test_plan_diff_names_only_the_changed_keys():
    entry = entry_of("ifconfig-em0-backup-advskew100.fbsd-lab")
    options = {"state": "master", "method": "advskew", "advskew": None, "demotion": 0}
    steps = _carp.plan_carp("em0", entry, SYSCTL, **options)
    assert _carp.plan_diff(entry, SYSCTL, steps, **options) == (
        {"advskew": 100, "state": "BACKUP"},
        {"advskew": 0, "state": "MASTER"},
    )


def test_validators_refuse_out_of_range_values_and_odd_interface_names():
    with pytest.raises(StateError, match="advskew must be between 0 and 254, got 255"):
        _carp.validate_range("advskew", 255, _carp.ADVSKEW_MIN, _carp.ADVSKEW_MAX)
    with pytest.raises(StateError, match="invalid interface name 'em0; reboot'"):
        _carp.validate_interface("em0; reboot")
    assert _carp.validate_interface("lagg0.100") == "lagg0.100"
