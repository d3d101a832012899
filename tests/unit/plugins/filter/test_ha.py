# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook filters: resolving a resource and judging the gathered state of its nodes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_assess, ha_resource

RESOURCES = {
    "nfs": {
        "backend": "zrepl",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "services": ["mountd", "nfsd"],
        "datasets": [{"name": "zdata/enc/nfsdata", "mountpoint": "/data/nfs"}],
    }
}
REPLICA = "zdata/sink/f0/zdata/enc/nfsdata"


def info(name, readonly, writer, epoch, snapshots):
    """A zfs_info result (its documented shape) for one dataset and its snapshots [(short name, guid, txg)]."""
    return {
        "datasets": [
            {
                "name": name,
                "readonly": readonly,
                "mounted": "yes",
                "freebsd-ha:writer": writer,
                "freebsd-ha:epoch": epoch,
            }
        ],
        "snapshots": [
            {"name": f"{name}@{snap}", "dataset": name, "guid": guid, "createtxg": txg, "creation": 1795269139}
            for snap, guid, txg in snapshots
        ],
    }


def test_resolving_names_the_replica_under_the_sink_on_the_other_node():
    resource = ha_resource(RESOURCES, None, ["f0", "f1"])
    assert resource["node_datasets"] == {
        "f0": {"zdata/enc/nfsdata": "zdata/enc/nfsdata"},
        "f1": {"zdata/enc/nfsdata": REPLICA},
    }
    assert resource["family"] == "zfs"


def test_block_backends_are_their_own_family():
    resource = ha_resource({"vol": {"backend": "hast", "nodes": ["f0", "f1"], "primary": "f1"}})
    assert resource["family"] == "hast"


@pytest.mark.parametrize(
    ("name", "hosts", "message"),
    [("nosuch", ["f0", "f1"], "unknown resource 'nosuch'"), ("nfs", ["f0"], "f1 are not in the inventory")],
)
def test_bad_input_is_refused_with_what_to_fix(name, hosts, message):
    with pytest.raises(AnsibleFilterError, match=message):
        ha_resource(RESOURCES, name, hosts)


def test_a_node_whose_read_failed_counts_every_dataset_missing():
    resource = ha_resource(RESOURCES)
    states = {
        "f0": info("zdata/enc/nfsdata", "off", "f0", "1", [("s1", 11, 5)]),
        "f1": {"failed": True, "msg": "root 'zdata/sink/f0/zdata/enc/nfsdata' does not exist; check roots"},
    }
    judged = ha_assess(states, resource, "failover", "f1")
    assert judged["nodes"]["f1"]["missing"] == [REPLICA]
    assert any("f1 lacks dataset(s)" in reason for reason in judged["reasons"])


def test_a_returning_old_writer_is_stale_and_the_replica_knows_the_epoch_from_snapshot_names():
    resource = ha_resource(RESOURCES)
    states = {
        "f0": info("zdata/enc/nfsdata", "off", "f0", "3", [("ha_failover_e3", 30, 9)]),
        "f1": info(REPLICA, "off", "f1", "4", [("ha_failover_e3", 30, 12)]),
    }
    judged = ha_assess(states, resource, "status")
    assert (judged["authoritative"], judged["stale"], judged["epoch"]) == ("f1", ["f0"], 4)
    assert judged["reasons"] == [] and "a returning old writer" in judged["warnings"][0]


def test_an_unplanned_failover_needs_the_acknowledgement():
    resource = ha_resource(RESOURCES)
    states = {"f0": None, "f1": info(REPLICA, "on", "f0", "1", [("ha_failover_e2", 20, 7)])}
    refused = ha_assess(states, resource, "failover", "f1")
    assert any("ha_accept_data_loss=true" in reason for reason in refused["reasons"])
    accepted = ha_assess(states, resource, "failover", "f1", True)
    assert accepted["safe"] and accepted["next_epoch"] == 3
