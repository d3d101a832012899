# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Role zfs_push: its templates render what the command accepts, and validate.yml refuses unusable settings."""

from __future__ import annotations

import importlib.util
import json

import pytest

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_resource
from ansible_collections.freebsd_ha.storage.tests.unit.roles.role_helpers import (
    ANSIBLE_MANAGED,
    ROLES,
    entry_point,
    failed_asserts,
    render_template,
    role_defaults,
    role_vars,
)

_SPEC = importlib.util.spec_from_file_location("zfs_push", ROLES / "zfs_push" / "files" / "zfs_push.py")
zp = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(zp)

RESOURCES = {
    "svc": {
        "backend": "zfs",
        "nodes": ["f0", "f1", "f2"],
        "primary": "f0",
        "datasets": [{"name": "tank/svc/db", "mountpoint": "/svc/db"}, {"name": "tank/svc/www"}],
    }
}
HOSTVARS = {
    "f0": {"ansible_host": "10.0.0.1"},
    "f1": {"ansible_host": "10.0.0.2", "ha_link_address": "192.168.9.2"},
    "f2": {},
}


def scope(**extra):
    return {**role_defaults("zfs_push"), **role_vars("zfs_push"), "hostvars": HOSTVARS, **extra}


def test_each_node_gets_a_configuration_the_command_accepts_naming_every_other_node():
    job = ha_resource(RESOURCES, "svc", list(HOSTVARS))
    config = json.loads(render_template("zfs_push", "zfs_push.json.j2", scope(item=job, inventory_hostname="f1")))
    assert zp.validate_config(config) == config
    assert config["node"] == "f1" and config["comment"].startswith(ANSIBLE_MANAGED)
    # ha_link_address wins over ansible_host; without either the inventory name is the ssh destination.
    assert {node: f["address"] for node, f in config["followers"].items()} == {"f0": "10.0.0.1", "f2": "f2"}
    assert config["followers"]["f0"]["datasets"] == {"tank/svc/db": "tank/svc/db", "tank/svc/www": "tank/svc/www"}
    assert (config["keep"], config["prefix"], config["ssh_options"][1]) == (24, "zfs_push_", "BatchMode=yes")


def test_the_cron_file_has_the_managed_header_and_one_system_crontab_line_per_resource():
    jobs = [{"name": "svc"}, {"name": "mail"}]
    text = render_template(
        "zfs_push", "cron.j2", scope(__zfs_push_jobs=jobs, __zfs_push_python="/usr/local/bin/python3.11")
    )
    assert text.startswith(f"#\n# {ANSIBLE_MANAGED}\n#\n# freebsd_ha.storage:zfs_push\n")
    lines = [line.split("\t") for line in text.splitlines() if line and not line.startswith("#") and "=" not in line]
    assert lines == [
        [
            "*/5 * * * *",
            "root",
            "/usr/local/bin/python3.11 /usr/local/sbin/freebsd-ha-zfs-push"
            f" --config /usr/local/etc/freebsd_ha/zfs_push/{name}.json",
        ]
        for name in ("svc", "mail")
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"zfs_push_prefix": "ha_"},
        {"zfs_push_prefix": "h"},
        {"zfs_push_prefix": "zrepl_x"},
        {"zfs_push_prefix": "bad prefix"},
        {"zfs_push_schedule": "*/5 * * *"},
        {"zfs_push_keep": 0},
    ],
    ids=[
        "a prefix that would prune the runbook snapshots",
        "a prefix that begins ha_",
        "a prefix that would prune zrepl's snapshots",
        "a prefix with a space",
        "four cron fields",
        "keeping nothing",
    ],
)
def test_unusable_settings_are_refused(settings):
    failures = failed_asserts("zfs_push", "validate.yml", {**settings, "inventory_hostname": "f0"}, only="usable")
    assert len(failures) == 1 and "zfs_push_prefix" in failures[0][1]


@pytest.mark.parametrize("settings", [{}, {"zfs_push_schedule": "@every_minute"}, {"zfs_push_prefix": "hourly-"}])
def test_usable_settings_pass(settings):
    assert failed_asserts("zfs_push", "validate.yml", {**settings, "inventory_hostname": "f0"}, only="usable") == []


def test_defaults_name_exactly_the_options_of_the_argument_spec():
    options = entry_point("zfs_push")["options"]
    assert role_defaults("zfs_push") == {name: spec["default"] for name, spec in options.items()}
