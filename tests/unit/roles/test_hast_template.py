# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The hast role: hast.conf rendered and parsed back with _hast, its argument spec, and its input checks."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _hast
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    ANSIBLE_MANAGED,
    ROOT,
    entry_point,
    failed_asserts,
    render_template,
    role_defaults,
    role_vars,
    spec_errors,
    trusted,
    walk_options,
)

MARKER = "freebsd_ha.storage:hast - rendered from hast_resources, the same file on every node"
INVENTORY = ["f0", "f1", "f2"]
STORAGE = {
    "name": "storage",
    "primary": "f0",
    "nodes": {
        "f0": {"local": "/dev/ada1", "remote": "tcp://10.0.0.2", "source": "tcp://10.0.0.1"},
        "f1": {"local": "/dev/ada1", "remote": "tcp://10.0.0.1"},
    },
}
NFS = {
    "name": "nfs",
    "primary": "f1",
    "replication": "fullsync",
    "checksum": "sha256",
    "compression": "lzf",
    "timeout": 60,
    "exec": "/usr/local/sbin/hast-event",
    "metaflush": False,
    "provider_name": "nfs0",
    "nodes": {
        "f1": {"local": "/dev/gpt/nfs1", "remote": "10.0.0.1"},
        "f0": {"local": "/dev/gpt/nfs0", "remote": "10.0.0.2"},
    },
}


def render(variables, host="f0"):
    """Render hast.conf for variables on host, with the role's defaults and vars underneath."""
    scope = {**role_defaults("hast"), **trusted(role_vars("hast")), "inventory_hostname": host}
    return render_template("hast", "hast.conf.j2", {**scope, **variables})


def model(resources, listen=()):
    """The parse_hast_conf() shape the role must produce: defaults merged, nodes in sorted order."""
    defaults = role_defaults("hast")["hast_resource_defaults"]
    parsed = []
    for item in resources:
        merged = {**defaults, **item}
        resource = {"name": merged["name"]}
        for key in ("replication", "checksum", "compression", "timeout", "exec", "metaflush"):
            if merged.get(key) is not None:
                resource[key] = merged[key]
        if merged.get("provider_name"):
            resource["provname"] = merged["provider_name"]
        resource["nodes"] = {host: dict(merged["nodes"][host]) for host in sorted(merged["nodes"])}
        parsed.append(resource)
    return {"global": {"listen": list(listen)} if listen else {}, "nodes": {}, "resources": parsed}


def body(text):
    """The rendered text after the ansible_managed comment (the `comment` filter frames it with '#' lines)."""
    lines = text.split("\n")
    assert lines[:3] == ["#", f"# {ANSIBLE_MANAGED}", "#"]
    return "\n".join(lines[3:])


@pytest.mark.parametrize(
    ("resources", "listen"),
    [([STORAGE], []), ([STORAGE, NFS], []), ([NFS], ["tcp://0.0.0.0", "tcp6://[::]:8457"])],
    ids=["one resource with defaults", "two resources with every option", "global listen addresses"],
)
def test_rendered_hast_conf_parses_back_to_the_variables(resources, listen):
    text = render({"hast_resources": resources, "hast_listen": listen})
    expected = model(resources, listen)
    assert _hast.parse_hast_conf(text) == expected
    assert body(text) == _hast.render_hast_conf(expected, header=[MARKER])
    assert _hast.validate_hast_conf(_hast.parse_hast_conf(text), ["f0", "f1"]) == []


def test_rendered_hast_conf_is_identical_on_every_node():
    variables = {"hast_resources": [STORAGE, NFS]}
    assert render(variables, "f0") == render(variables, "f1")


def test_each_node_sees_its_local_and_remote_in_the_rendered_file():
    storage = _hast.parse_hast_conf(render({"hast_resources": [STORAGE]}))["resources"][0]
    assert _hast.node_view(storage, "f1") == {
        "local": "/dev/ada1",
        "remote": "tcp://10.0.0.1",
        "source": None,
        "provname": "storage",
        "metaflush": None,
    }


def test_rendered_hast_conf_carries_the_managed_header_and_marker():
    lines = render({"hast_resources": [STORAGE]}).splitlines()
    assert lines[:4] == ["#", f"# {ANSIBLE_MANAGED}", "#", f"# {MARKER}"]


def test_an_empty_resource_list_renders_only_the_header():
    assert _hast.parse_hast_conf(render({})) == {"global": {}, "nodes": {}, "resources": []}


def doc_block(kind, name, language):
    """The text of the code block that follows `<!-- kind: name -->` in docs/role_hast.md."""
    page = (ROOT / "docs" / "role_hast.md").read_text()
    match = re.search(rf"<!-- {kind}: {re.escape(name)} -->\s*```{language}\n(.*?)```", page, re.S)
    assert match, f"docs/role_hast.md has no {kind} block '{name}'"
    return match.group(1)


def test_the_documented_pair_renders_the_documented_file():
    variables = yaml.safe_load(doc_block("example", "standard-pair", "yaml"))
    rendered = render(variables).replace(ANSIBLE_MANAGED, "Ansible managed")
    assert rendered == doc_block("rendered", "standard-pair", "text")
    assert checks(variables["hast_resources"], "f1") == []


# ---------------------------------------------------------------- argument spec contract


def test_defaults_name_exactly_the_options_of_the_argument_spec():
    assert sorted(role_defaults("hast")) == sorted(entry_point("hast")["options"])


def test_defaults_equal_the_spec_defaults():
    for name, spec in entry_point("hast")["options"].items():
        assert role_defaults("hast")[name] == spec.get("default"), name


def test_every_option_has_a_type_and_a_description():
    for path, spec in walk_options(entry_point("hast")["options"]):
        assert spec.get("type") and spec.get("description"), path
        assert spec["type"] != "list" or spec.get("elements"), path


def test_the_spec_accepts_the_examples_and_rejects_unknown_choices():
    assert spec_errors("hast", {"hast_resources": [STORAGE, NFS]}) == []
    bad = dict(STORAGE, replication="sync")
    assert any("replication" in error for error in spec_errors("hast", {"hast_resources": [bad]}))
    assert spec_errors("hast", {"hast_resources": [{"name": "storage", "nodes": {}}]})


# ---------------------------------------------------------------- cross-field checks


def checks(resources, host="f0"):
    variables = {"hast_resources": resources, "inventory_hostname": host, "groups": {"all": INVENTORY}}
    return failed_asserts("hast", "validate.yml", variables)


def test_valid_resources_pass_every_check():
    assert checks([STORAGE, NFS]) == []
    assert checks([]) == []


def with_nodes(resource, **changes):
    changed = copy.deepcopy(resource)
    changed.update(changes)
    return changed


@pytest.mark.parametrize(
    ("resources", "host", "message"),
    [
        ([STORAGE, STORAGE], "f0", "names a resource more than once"),
        ([with_nodes(STORAGE, nodes={"f0": STORAGE["nodes"]["f0"]})], "f0", "every resource must name the same two"),
        ([STORAGE, with_nodes(NFS, nodes={"f0": NFS["nodes"]["f0"], "f2": NFS["nodes"]["f1"]})], "f0", "same two"),
        ([with_nodes(STORAGE, nodes={"f0": STORAGE["nodes"]["f0"], "f9": STORAGE["nodes"]["f1"]})], "f0", "inventory"),
        ([with_nodes(STORAGE, primary="f2")], "f0", "primary f2 is not one of its nodes"),
        ([with_nodes(STORAGE, name="none")], "f0", "must not be hast.conf keywords"),
        ([with_nodes(STORAGE, name="nfs share")], "f0", "one word"),
        (
            [with_nodes(STORAGE, nodes={"f0": {"remote": "10.0.0.2"}, "f1": STORAGE["nodes"]["f1"]})],
            "f0",
            "every node needs local and remote",
        ),
        ([with_nodes(STORAGE, exec="/usr/local/sbin/my hook")], "f0", "exec"),
        ([STORAGE], "f2", "f2 is not a node of any resource"),
    ],
    ids=[
        "a duplicate resource",
        "a resource with one node",
        "resources on different node pairs",
        "a node outside the inventory",
        "a primary that is not a node",
        "a keyword as resource name",
        "a name with a space",
        "a node without local",
        "an exec path with a space",
        "a host that is no node",
    ],
)
def test_input_checks_refuse_what_hastd_would_reject(resources, host, message):
    failures = checks(resources, host)
    assert failures, "no check failed"
    assert any(message in fail_msg for _condition, fail_msg in failures), failures
