# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Many pairs (examples/inventory/lab_fleet): three resources on six nodes provisioned in one run, one failed over
by name, an unnamed target refused, the status of every resource in one run. The tests run in file order."""

from __future__ import annotations

import json

DATASETS = {
    "nfs": {"f0": "zdata/enc/nfsdata", "f1": "zdata/sink/f0/zdata/enc/nfsdata"},
    "web": {"f2": "zdata/web", "f3": "zdata/sink/f2/zdata/web"},
    "db": {"f4": "zdata/db", "f5": "zdata/db"},
}


def writers(fleet):
    return {name: fleet.writable(nodes) for name, nodes in DATASETS.items()}


def test_one_run_provisions_every_pair(fleet):
    _, changed, _ = fleet.playbook("provision_pair")
    assert sorted(changed) == ["f0", "f1", "f2", "f3", "f4", "f5"] and all(changed.values())
    assert writers(fleet) == {"nfs": ["f0"], "web": ["f2"], "db": ["f4"]}
    assert [fleet.carp(n) for n in ("f0", "f1", "f2", "f3", "f4", "f5")] == [
        {1: "MASTER"},
        {1: "BACKUP"},
        {2: "MASTER"},
        {2: "BACKUP"},
        {3: "MASTER"},
        {3: "BACKUP"},
    ]
    assert fleet.sh("f3", "zfs get -H -o value readonly,mountpoint zdata/sink/f2/zdata/web/static").split() == [
        "on",
        "/data/web/static",
    ]


def test_a_second_run_changes_nothing_on_any_node(fleet):
    assert set(fleet.playbook("provision_pair")[1].values()) == {0}


def test_a_runbook_without_a_named_resource_is_refused(fleet):
    code, _, output = fleet.playbook("failover", check=False)
    assert code != 0 and "several resources exist (db, nfs, web); name one with -e ha_resource=NAME" in output
    assert writers(fleet) == {"nfs": ["f0"], "web": ["f2"], "db": ["f4"]}


def test_failover_of_one_named_resource_leaves_the_others_alone(fleet):
    fleet.playbook("failover", "-e", "ha_resource=nfs")
    assert writers(fleet) == {"nfs": ["f1"], "web": ["f2"], "db": ["f4"]}
    assert fleet.carp("f1") == {1: "MASTER"} and fleet.carp("f2") == {2: "MASTER"}


def test_status_shows_every_resource_in_one_run(fleet, tmp_path):
    target = tmp_path / "status.json"
    _, _, output = fleet.playbook("status", "-e", f"ha_status_json={target}")
    for line in (
        "resource db (zfs): writer f4, epoch 1",
        "resource nfs (zrepl): writer f1, epoch 2",
        "resource web (zrepl): writer f2, epoch 1",
    ):
        assert line in output
    document = json.loads(target.read_text())
    assert sorted(document) == ["db", "nfs", "web"] and document["nfs"]["writer"] == "f1"
