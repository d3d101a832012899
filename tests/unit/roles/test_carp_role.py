# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The carp role: its templates rendered as the template action does and parsed back, and every validate.yml refusal.

Controller code (the templar) is needed here, so these live with the other role tests and not under
tests/unit/plugins/module_utils (ansible-test runs those without the controller).
"""

from __future__ import annotations

import re
import subprocess

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _carp
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    ANSIBLE_MANAGED,
    entry_point,
    failed_asserts,
    render_template,
    role_defaults,
    trusted,
)
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import role_vars as load_role_vars


def role_vars(**overrides):
    """Return the role's defaults, overrides and its vars templated as Ansible would for host f1."""
    values = {**role_defaults("carp"), "inventory_hostname": "f1", **overrides}
    raw = trusted(load_role_vars("carp"))
    for name in ("__carp_ha_vhids", "__carp_items", "__carp_passwords", "__carp_marker"):
        values[name] = Templar(loader=DataLoader(), variables={**values, **raw}).template(raw[name])
    return values


def carp_asserts(**variables):
    """Return the failing asserts of roles/carp/tasks/validate.yml for these variables (nothing registered taken)."""
    registered = {
        "inventory_hostname": "f1",
        "__carp_rc_conf_taken": {"results": []},
        "__carp_devd_script_stat": {"stat": {"exists": True, "executable": True}},
    }
    return failed_asserts("carp", "validate.yml", {**registered, **variables})


HA_RESOURCES = {
    "nfs": {
        "backend": "zrepl",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "carp": {"interface": "lagg0.100", "vhid": 1, "address": "10.0.0.100/32", "advskew_backup": 120},
    },
    "web": {"backend": "zrepl", "nodes": ["f0", "f2"], "primary": "f0", "carp": {"interface": "em0", "vhid": 3}},
    "iscsi": {"backend": "hast", "nodes": ["f0", "f1"], "primary": "f1", "carp": None},
}


def test_role_derives_vhids_from_ha_resources_for_this_host_only():
    values = role_vars(
        ha_resources=HA_RESOURCES,
        carp_password="labpass",
        carp_vhids=[{"interface": "em0", "vhid": 2, "address": "fd00::2/128", "advskew": 5}],
    )
    assert [
        (i["interface"], i["rc_name"], i["vhid"], i["advskew"], i["family"], i["alias_index"])
        for i in values["__carp_items"]
    ] == [
        ("em0", "em0", 2, 5, "inet6", 0),
        ("lagg0.100", "lagg0_100", 1, 120, "inet", 0),
    ]
    assert values["__carp_passwords"] == {"em0/2": "labpass", "lagg0.100/1": "labpass"}
    assert all("password" not in item for item in values["__carp_items"])


def test_rendered_rc_conf_fragment_passes_sh_n_and_parses_back():
    values = role_vars(
        carp_password="labpass",
        carp_alias_index_start=3,
        carp_vhids=[
            {"interface": "em0", "vhid": 1, "address": "192.168.1.138/32", "advskew": 100},
            {"interface": "em0", "vhid": 2, "address": "fd5e:d1c2:c9de:60::200/128", "password": "other-pass"},
            {"interface": "vlan316", "vhid": 34, "address": "10.30.16.34/32", "alias_index": 14, "advbase": 2},
        ],
    )
    text = render_template("carp", "netif.j2", values)
    assert text.splitlines()[:2] == ["#", f"# {ANSIBLE_MANAGED}"]
    assert "# freebsd_ha.storage:carp" in text.splitlines()
    checked = subprocess.run(["sh", "-n"], input=text, text=True, capture_output=True, check=False)
    assert checked.returncode == 0, checked.stderr
    parsed = _carp.parse_rc_conf_aliases(text)
    assert [
        (a["interface"], a["index"], a["family"], a["vhid"], a["advbase"], a["advskew"], a["pass"], a["address"])
        for a in parsed
    ] == [
        ("em0", 3, "inet", 1, 1, 100, "labpass", "192.168.1.138/32"),
        ("em0", 4, "inet6", 2, 1, 0, "other-pass", "fd5e:d1c2:c9de:60::200/128"),
        ("vlan316", 14, "inet", 34, 2, 0, "labpass", "10.30.16.34/32"),
    ]


# The notify statement of devd.conf(5): priority, the three matches and an action, each ending in ";".
DEVD_NOTIFY_RE = re.compile(
    r'notify (\d+) \{\s*match "system"\s+"CARP";\s*match "subsystem"\s+"([^"]+)";\s*'
    r'match "type"\s+"([^"]+)";\s*action "([^"]+) \$subsystem \$type";\s*\};'
)


def test_rendered_devd_rule_has_the_shape_of_the_real_hook_and_matches_only_our_vhids():
    assert DEVD_NOTIFY_RE.search(read_fixture("carp/devd-conf-carp-notify-foozone.txt")) is not None
    values = role_vars(
        carp_password="labpass",
        carp_devd_script="/usr/local/libexec/carp-event",
        carp_vhids=[
            {"interface": "em0", "vhid": 1, "address": "10.0.0.1/32"},
            {"interface": "lagg0.100", "vhid": 12, "address": "10.0.1.1/32"},
        ],
    )
    text = render_template("carp", "devd-carp.conf.j2", values)
    rule = DEVD_NOTIFY_RE.search(text)
    assert rule is not None, text
    priority, subsystem, types, script = rule.groups()
    assert (priority, types, script) == ("10", "(MASTER|BACKUP|INIT)", "/usr/local/libexec/carp-event")
    # devd anchors every expression (implicit ^$).
    candidates = ("1@em0", "12@lagg0.100", "11@em0", "1@em01", "12@lagg0x100")
    assert [s for s in candidates if re.fullmatch(subsystem, s)] == ["1@em0", "12@lagg0.100"]
    assert "# freebsd_ha.storage:carp" in text.splitlines()


def test_role_defaults_name_exactly_the_argument_spec_options():
    spec = entry_point("carp")["options"]
    assert sorted(role_defaults("carp")) == sorted(spec)
    assert all(spec[name].get("default") == value for name, value in role_defaults("carp").items())


def test_role_checks_pass_for_a_valid_pair_from_ha_resources():
    assert carp_asserts(ha_resources=HA_RESOURCES, carp_password="labpass") == []


def test_role_refuses_a_vhid_twice_on_one_interface():
    failures = carp_asserts(
        ha_resources=HA_RESOURCES,
        carp_password="labpass",
        carp_vhids=[{"interface": "lagg0.100", "vhid": 1, "address": "10.0.0.101/32", "alias_index": 5}],
    )
    assert [name for name, _msg in failures] == ["Check that vhids and alias numbers are unique per interface"]
    assert "lagg0.100 vhid 1" in failures[0][1]


@pytest.mark.parametrize("password", ["", "two words", "x" * 20, "pa$$", "it's"])
def test_role_refuses_a_pass_rc_d_or_ifconfig_would_mangle_without_printing_it(password):
    failures = carp_asserts(
        carp_password=password, carp_vhids=[{"interface": "em0", "vhid": 1, "address": "10.0.0.1/32"}]
    )
    assert [name for name, _msg in failures] == ["Check the CARP passes without printing them"]
    assert "the CARP pass of em0/1 (interface/vhid)" in failures[0][1]
    assert not password or password not in failures[0][1]


def test_role_refuses_an_address_without_prefix_length_and_bad_numbers():
    failures = carp_asserts(
        carp_password="labpass",
        carp_vhids=[{"interface": "em0", "vhid": 256, "address": "10.0.0.1", "advskew": 255}],
    )
    assert [name for name, _msg in failures] == ["Check each vhid's numbers, address and interface name"]
    assert "got advskew 255, advbase 1, alias_index 0, address 10.0.0.1" in failures[0][1]


def test_role_refuses_alias_variables_rc_conf_already_sets():
    taken = {"results": [{"rc": 0, "item": {"rc_name": "em0", "alias_index": 0}}, {"rc": 1, "item": {}}]}
    failures = carp_asserts(
        carp_password="labpass",
        carp_vhids=[{"interface": "em0", "vhid": 1, "address": "10.0.0.1/32"}],
        __carp_rc_conf_taken=taken,
    )
    assert [name for name, _msg in failures] == ["Check that rc.conf does not set the same alias variables"]
    assert "already sets ifconfig_em0_alias0;" in failures[0][1]


def test_role_refuses_a_devd_hook_without_an_installed_script():
    vhids = [{"interface": "em0", "vhid": 1, "address": "10.0.0.1/32"}]
    failures = carp_asserts(carp_password="labpass", carp_vhids=vhids, carp_devd_hook=True)
    assert [name for name, _msg in failures] == ["Check the devd hook settings"]
    failures = carp_asserts(
        carp_password="labpass",
        carp_vhids=vhids,
        carp_devd_hook=True,
        carp_devd_script="/usr/local/libexec/carp-event",
        __carp_devd_script_stat={"stat": {"exists": False, "executable": False}},
    )
    assert [name for name, _msg in failures] == ["Check that the devd hook script is installed"]
