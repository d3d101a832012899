# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ggated role: argument_specs contract, the plan, gg.exports parsed back, rc.conf, and the refusals.

The templates and the assert conditions are rendered with Ansible's own Templar and the role's defaults and vars,
so the tests see what the role would write; gg.exports is then read back with _geom.parse_exports, which follows
ggated's line_parse().
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _geom
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError

ROLE = Path(__file__).resolve().parents[3] / "roles" / "ggated"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "role_ggated.md"
MANAGED = "Ansible managed: do not edit"


def load(relative):
    return yaml.safe_load((ROLE / relative).read_text())


def trusted(value):
    """Mark every string of a YAML value as a template, as Ansible does for role files."""
    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {key: trusted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [trusted(item) for item in value]
    return value


RESOURCE = {
    "name": "data",
    "mirror": "gm0",
    "primary": "f0",
    "nodes": {"f0": {"disk": "/dev/ada1"}, "f1": {"disk": "/dev/da1"}},
}
HOSTVARS = {
    "f0": {"ansible_host": "127.0.10.1", "ha_link_address": "10.0.0.1"},
    "f1": {"ansible_host": "127.0.10.2"},
}


def templar(host, **overrides):
    """Return a Templar with the role's defaults and vars for host, overrides as inventory/play vars."""
    variables = trusted({**load("defaults/main.yml"), **load("vars/main.yml")})
    variables.update(HOSTVARS[host])
    variables.update(
        inventory_hostname=host,
        hostvars=HOSTVARS,
        ansible_managed=MANAGED,
        ggated_resources=[RESOURCE],
    )
    variables.update(overrides)
    plan_source = trust_as_template((ROLE / "templates" / "ggated_plan.json.j2").read_text())
    variables["__ggated_plan"] = json.loads(Templar(loader=DataLoader(), variables=variables).template(plan_source))
    return Templar(loader=DataLoader(), variables=variables)


def render(host, template, **overrides):
    source = trust_as_template((ROLE / "templates" / template).read_text())
    return templar(host, **overrides).template(source)


def failing_asserts(host, **overrides):
    """Return the names of validate.yml's assert tasks whose conditions fail for some loop item on host."""
    t = templar(host, **overrides)
    failed = []
    for task in load("tasks/validate.yml"):
        if "ansible.builtin.assert" not in task or "__ggated_authority" in task["loop"]:
            continue  # the authority check loops over a registered result; test_authority_record... covers it
        loop_var = task["loop_control"]["loop_var"]
        items = t.template(trust_as_template(task["loop"]))
        for item in items:
            scoped = Templar(loader=DataLoader(), variables={**t.available_variables, loop_var: item})
            if not all(
                scoped.evaluate_conditional(trust_as_template(c)) for c in task["ansible.builtin.assert"]["that"]
            ):
                failed.append(task["name"])
                break
    return failed


# ---------------------------------------------------------------- contract


def test_argument_specs_options_match_defaults():
    options = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    defaults = load("defaults/main.yml")
    assert sorted(options) == sorted(defaults)
    for name, spec in options.items():
        assert spec.get("default") == defaults[name], name
        assert spec.get("description") and spec.get("type"), name


def test_resource_defaults_cover_the_documented_per_resource_settings():
    spec = load("meta/argument_specs.yml")["argument_specs"]["main"]["options"]
    resource_options = spec["ggated_resources"]["options"]
    defaults = load("defaults/main.yml")["ggated_resource_defaults"]
    assert sorted(spec["ggated_resource_defaults"]["options"]) == sorted(defaults)
    assert set(defaults) <= set(resource_options)


def test_internal_vars_are_prefixed_and_public_vars_are_documented():
    assert all(name.startswith("__ggated_") for name in load("vars/main.yml"))
    readme = (ROLE / "README.md").read_text()
    page = DOCS.read_text()
    for name in load("defaults/main.yml"):
        assert f"`{name}`" in readme, name
        assert f"`{name}`" in page, name


# ---------------------------------------------------------------- plan and gg.exports


def test_plan_gives_each_node_its_role_peer_and_disks():
    (standby,) = templar("f1").available_variables["__ggated_plan"]
    assert (standby["role"], standby["peer"], standby["peer_address"]) == ("standby", "f0", "10.0.0.1")
    assert (standby["local_disk"], standby["peer_disk"], standby["mirror"]) == ("/dev/da1", "/dev/ada1", "gm0")
    (primary,) = templar("f0").available_variables["__ggated_plan"]
    assert (primary["role"], primary["peer_address"], primary["peer_disk"]) == ("primary", "127.0.10.2", "/dev/da1")
    assert (primary["local_priority"], primary["remote_priority"], primary["balance"]) == (1, 0, "prefer")
    assert templar("f0", ggated_resources=[]).available_variables["__ggated_plan"] == []


def test_standby_exports_its_disk_to_the_primary_only_and_parses_back():
    text = render("f1", "gg.exports.j2")
    assert text.startswith("#\n# Ansible managed: do not edit\n#\n# freebsd_ha.storage:ggated\n")
    entries = _geom.parse_exports(text)
    assert [(e["host"], e["mask"], e["access"], e["direct"], e["path"]) for e in entries] == [
        ("10.0.0.1", None, "RW", None, "/dev/da1")
    ]
    _geom.check_exports_to_peers(entries, ["10.0.0.1"])
    with pytest.raises(StateError, match="not the peer"):
        _geom.check_exports_to_peers(entries, ["127.0.10.2"])
    assert _geom.serialise_exports(entries) in text


def test_primary_exports_nothing_and_direct_flags_render():
    assert _geom.parse_exports(render("f0", "gg.exports.j2")) == []
    resource = dict(RESOURCE, direct=False)
    (entry,) = _geom.parse_exports(render("f1", "gg.exports.j2", ggated_resources=[resource]))
    assert (entry["access"], entry["direct"]) == ("RW", False)


def test_extra_exports_render_and_networks_parse_back_as_networks():
    extra = [{"host": "10.0.0.0/24", "path": "/tmp/test.img", "access": "ro"}]
    text = render("f1", "gg.exports.j2", ggated_extra_exports=extra, ggated_allow_networks=True)
    entries = _geom.parse_exports(text)
    assert [(e["host"], e["mask"], e["access"]) for e in entries] == [("10.0.0.1", None, "RW"), ("10.0.0.0", 24, "RO")]
    with pytest.raises(StateError, match="network or wildcard"):
        _geom.check_exports_to_peers(entries, ["10.0.0.1"])
    _geom.check_exports_to_peers(entries, ["10.0.0.1"], allow_networks=True)


def test_rc_conf_fragment_enables_ggated_on_the_standby_only_and_is_valid_sh(tmp_path):
    standby, primary = render("f1", "ggated.rc.conf.j2"), render("f0", "ggated.rc.conf.j2")
    assert 'ggated_enable="YES"' in standby and 'ggated_enable="NO"' in primary
    assert 'ggated_flags="-a 127.0.10.2 -p 3080"' in standby
    assert 'ggated_config="/etc/gg.exports"' in standby
    assert "# freebsd_ha.storage:ggated" in primary
    fragment = tmp_path / "ggated"
    fragment.write_text(standby)
    subprocess.run(["sh", "-n", str(fragment)], check=True)


# ---------------------------------------------------------------- refusals (validate.yml)


def test_a_good_resource_passes_every_check():
    assert failing_asserts("f1") == []
    assert failing_asserts("f0") == []


@pytest.mark.parametrize(
    ("overrides", "failed"),
    [
        (
            {"ggated_resources": [dict(RESOURCE, primary="f9")]},
            "Check that each resource names two nodes, one of them its primary",
        ),
        (
            {"ggated_resources": [dict(RESOURCE, nodes={**RESOURCE["nodes"], "f2": {"disk": "/dev/ada1"}})]},
            "Check that each resource names two nodes, one of them its primary",
        ),
        ({"ggated_resources": [dict(RESOURCE, mirror="a-much-too-long-name")]}, "Check the mirror name and both disks"),
        (
            {"ggated_resources": [dict(RESOURCE, nodes={"f0": {"disk": "ada1"}, "f1": {"disk": "/dev/da1"}})]},
            "Check the mirror name and both disks",
        ),
        (
            {"hostvars": {**HOSTVARS, "f0": {"ansible_host": "f0.example.org"}}},
            "Check that the peer is one IPv4 address (ggated authenticates nobody)",
        ),
        (
            {
                "ggated_resources": [
                    dict(
                        RESOURCE,
                        nodes={"f0": {"disk": "/dev/ada1", "address": "10.0.0.0/24"}, "f1": {"disk": "/dev/da1"}},
                    )
                ]
            },
            "Check that the peer is one IPv4 address (ggated authenticates nobody)",
        ),
        (
            {
                "ggated_resources": [
                    dict(
                        RESOURCE, nodes={"f0": {"disk": "/dev/ada1", "address": "0.0.0.0"}, "f1": {"disk": "/dev/da1"}}
                    )
                ]
            },
            "Check that the peer is one IPv4 address (ggated authenticates nobody)",
        ),
        ({"ggated_resources": [dict(RESOURCE, local_priority=0)]}, "Check the priorities keep reads on the local disk"),
        (
            {"ggated_resources": [dict(RESOURCE, balance="fastest")]},
            "Check the priorities keep reads on the local disk",
        ),
        (
            {"ggated_extra_exports": [{"host": "10.0.0.0/24", "path": "/dev/ada2"}]},
            "Check the extra exports name one address each",
        ),
        (
            {"ggated_extra_exports": [{"host": "0.0.0.0", "path": "/dev/ada2"}]},
            "Check the extra exports name one address each",
        ),
    ],
    ids=[
        "primary not a node",
        "three nodes",
        "mirror name too long",
        "disk not under /dev",
        "peer known only by name",
        "peer address is a network",
        "peer address is the wildcard",
        "local priority not above remote",
        "unknown balance",
        "extra export to a network",
        "extra export to the wildcard",
    ],
)
def test_validation_refuses(overrides, failed):
    assert failed in failing_asserts("f1", **overrides)


def test_networks_in_extra_exports_pass_only_when_allowed():
    extra = [{"host": "10.0.0.0/24", "path": "/dev/ada2"}, {"host": "10.0.0.7/32", "path": "/dev/ada3"}]
    assert failing_asserts("f1", ggated_extra_exports=extra, ggated_allow_networks=True) == []
    assert failing_asserts("f1", ggated_extra_exports=extra[1:]) == []


def test_authority_record_naming_another_writer_is_refused():
    tasks = {task["name"]: task for task in load("tasks/validate.yml")}
    check = tasks["Refuse to provision a resource whose recorded writer is not its primary"]
    (entry,) = templar("f1").available_variables["__ggated_plan"]

    def passes(record):
        content = base64.b64encode(json.dumps(record).encode()).decode()
        scoped = Templar(
            loader=DataLoader(), variables={"__ggated_record": {"content": content, "__ggated_entry": entry}}
        )
        return all(scoped.evaluate_conditional(trust_as_template(c)) for c in check["ansible.builtin.assert"]["that"])

    assert passes({"writer": "f0", "epoch": 3})
    assert passes({"epoch": 1})
    assert not passes({"writer": "f1", "epoch": 4})


def test_every_task_is_named_and_uses_fqcn():
    for path in [*sorted((ROLE / "tasks").glob("*.yml")), ROLE / "handlers" / "main.yml"]:
        for task in yaml.safe_load(path.read_text()):
            assert task.get("name"), path
            module = next(k for k in task if "." in k or k in ("block",))
            assert re.match(r"^(ansible\.builtin|freebsd_ha\.storage)\.", module), (path, module)
