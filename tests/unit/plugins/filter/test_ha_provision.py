# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The provisioning filters: what a node serves over every resource, and the judgement of one resource's nodes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_resource
from ansible_collections.freebsd_ha.storage.plugins.filter.ha_provision import ha_node_provision, ha_provision_plan

ORIGIN = "zdata/enc/nfsdata"
REPLICA = f"zdata/sink/f0/{ORIGIN}"
RESOURCES = {
    "nfs": {
        "backend": "zrepl",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "services": ["mountd", "nfsd"],
        "encryption_root": "zdata/enc",
        "datasets": [{"name": ORIGIN, "mountpoint": "/data/nfs"}],
        "carp": {"interface": "em0", "vhid": 1, "address": "192.168.1.138/32"},
    },
    "db": {
        "backend": "zrepl",
        "nodes": ["f2", "f1"],
        "primary": "f2",
        "services": ["postgresql"],
        "datasets": [{"name": "zdata/db", "mountpoint": "/data/db"}],
    },
}
HOSTS = ["f0", "f1", "f2"]
ADDRESSES = {"f0": "10.0.0.1", "f1": "10.0.0.2", "f2": "10.0.0.3"}


def pool(*rows, snapshots=()):
    """A zfs_info result of a pool read: rows (name, readonly, writer, epoch), snapshots (dataset, short, guid, txg)."""
    return {
        "datasets": [
            {"name": n, "readonly": ro, "mounted": "yes", "freebsd-ha:writer": w, "freebsd-ha:epoch": e}
            for n, ro, w, e in (("zdata", "off", "-", "-"), *rows)
        ],
        "snapshots": [
            {"name": f"{d}@{s}", "dataset": d, "guid": g, "createtxg": t, "creation": 1795269139}
            for d, s, g, t in snapshots
        ],
    }


def plan(states, overrides=None):
    return ha_provision_plan(states, ha_resource(RESOURCES, "nfs", HOSTS), overrides or {}, "zrepl_20261121_120000_000")


def test_fresh_nodes_are_seeded_at_epoch_one():
    judged = plan({"f0": pool(), "f1": pool()})
    assert (judged["safe"], judged["fresh"], judged["epoch"]) == (True, True, 1)
    assert judged["seed"] == [{"name": ORIGIN, "node": "f1", "target": REPLICA}]


def test_a_provisioned_pair_keeps_its_epoch_and_needs_no_seed():
    states = {
        "f0": pool((ORIGIN, "off", "f0", "3"), snapshots=[(ORIGIN, "zrepl_a", 7, 10)]),
        "f1": pool((REPLICA, "on", "f0", "3"), snapshots=[(REPLICA, "zrepl_a", 7, 4)]),
    }
    judged = plan(states)
    assert (judged["safe"], judged["fresh"], judged["epoch"], judged["seed"]) == (True, False, 3, [])
    assert judged["records"]["f1"] == {REPLICA: "f0@3"}


@pytest.mark.parametrize(
    ("states", "overrides", "reason"),
    [
        (
            {"f0": pool((ORIGIN, "on", "f0", "1")), "f1": pool((REPLICA, "off", "f1", "2"))},
            {},
            f"f1: {REPLICA} records writer f1 (epoch 2)",
        ),
        ({"f0": pool(), "f1": pool((REPLICA, "on", None, "-"))}, {}, "but f0 lacks zdata/enc/nfsdata"),
        (
            {
                "f0": pool((ORIGIN, "off", "f0", "1"), snapshots=[(ORIGIN, "a", 1, 5)]),
                "f1": pool((REPLICA, "on", "f0", "1"), snapshots=[(REPLICA, "other", 2, 5)]),
            },
            {},
            "shares no snapshot with f0's",
        ),
        ({"f0": pool(), "f1": pool()}, {"f1": ["/usr/local/etc/rc.conf.d/nfsd"]}, "was not written by the boot guard"),
        ({"f0": {"failed": True, "msg": "no pool zdata"}, "f1": pool()}, {}, "f0: its pool cannot be read (no pool"),
    ],
)
def test_refusals_name_what_to_do(states, overrides, reason):
    judged = plan(states, overrides)
    assert not judged["safe"]
    assert any(reason in text for text in judged["reasons"]), judged["reasons"]


def test_a_node_serving_two_resources_gets_one_config_for_both():
    served = ha_node_provision(RESOURCES, "f1", HOSTS, ADDRESSES)
    assert served["encryption_roots"] == [{"name": "zdata/sink", "key": "f1:zdata"}]
    assert served["key_files"] == [{"name": "f1:zdata"}]
    # One sink per root: zrepl refuses two receiving jobs with overlapping root_fs.
    assert [job["type"] for job in served["zrepl_jobs"]] == ["sink"]
    assert served["zrepl_jobs"][0]["serve"]["client_identities"] == ["f2", "f0"]
    assert served["zrepl_identity"] is None
    assert [entry["peers"] for entry in served["guard"]] == [["f2@10.0.0.3"], ["f0@10.0.0.1"]]
    assert served["guard_before"] == ["postgresql", "mountd", "nfsd", "zrepl"]


def test_the_origin_pushes_to_the_other_node_and_keeps_foreign_snapshots():
    served = ha_node_provision(RESOURCES, "f0", HOSTS, ADDRESSES)
    (job,) = served["zrepl_jobs"]
    assert (job["name"], job["connect"]["host"], job["filesystems"]) == ("nfs_push", "10.0.0.2", {ORIGIN: True})
    assert {"type": "regex", "negate": True, "regex": "^zrepl_"} in job["pruning"]["keep_sender"]
    assert served["guard"][0]["origin"] is True and served["guard"][0]["carp"] == "em0 1"


def test_two_resources_in_one_direction_are_refused():
    resources = dict(RESOURCES, more={**RESOURCES["nfs"], "datasets": [{"name": "zdata/enc/more"}]})
    with pytest.raises(AnsibleFilterError, match="both replicate f0 -> f1 with zrepl"):
        ha_node_provision(resources, "f0", HOSTS, ADDRESSES)
