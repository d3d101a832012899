# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook filters: resolving a resource and judging the gathered state of its nodes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import (
    ha_assess,
    ha_replication_peers,
    ha_resource,
    ha_unsynced,
)

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


def test_a_write_forced_into_the_read_only_replica_refuses_failover_and_names_the_repairs():
    resource = ha_resource(RESOURCES)
    snapshots = [("zrepl_20261121_120000_000", 10, 5)]
    writer = info("zdata/enc/nfsdata", "off", "f0", "1", snapshots)
    replica = info(REPLICA, "on", "f0", "1", snapshots)
    replica["datasets"][0]["written"] = 102400
    judged = ha_assess({"f0": writer, "f1": replica}, resource, "failover", "f1")
    assert not judged["safe"] and judged["diverged"] == ["f1"]
    assert "written to after its newest snapshot (102400 bytes changed)" in judged["reasons"][0]
    assert "resync.yml -e ha_confirm_resync=f1 -e ha_resync_force=true" in judged["reasons"][0]
    # Failback to a node written to that way keeps its copy in a rescue first: a warning, not a refusal.
    origin = info("zdata/enc/nfsdata", "on", "f0", "1", snapshots)
    origin["datasets"][0]["written"] = 102400
    failback = ha_assess({"f0": origin, "f1": info(REPLICA, "off", "f1", "2", snapshots)}, resource, "failback", "f0")
    assert failback["safe"] and "written to after its newest snapshot" in failback["warnings"][0]
    # The writer's own writes after its newest snapshot are its live data, not a divergence.
    writer["datasets"][0]["written"] = 4096
    replica["datasets"][0]["written"] = 0
    assert ha_assess({"f0": writer, "f1": replica}, resource, "failover", "f1")["safe"]


# ---------------------------------------------------------------- N nodes (backend zfs): move, unplanned, rejoin

RING = {
    "www": {
        "backend": "zfs",
        "nodes": ["f0", "f1", "f2"],
        "primary": "f0",
        "datasets": [{"name": "zdata/www"}, {"name": "zdata/db"}],
    }
}


def ring_info(readonly, writer, epoch, www, db):
    """zfs_info of a ring node: both datasets with the same role and their snapshots [(name, guid, txg)]."""
    first, second = info("zdata/www", readonly, writer, epoch, www), info("zdata/db", readonly, writer, epoch, db)
    return {"datasets": first["datasets"] + second["datasets"], "snapshots": first["snapshots"] + second["snapshots"]}


S1, S2, S3 = ("s1", 101, 10), ("s2", 102, 20), ("s3", 103, 30)
D1, D2 = ("d1", 201, 11), ("d2", 202, 21)


def test_a_planned_move_to_any_follower_is_safe_and_the_lag_covers_every_follower():
    resource = ha_resource(RING)
    states = {
        "f0": ring_info("off", "f0", "1", [S1, S2], [D1, D2]),
        "f1": ring_info("on", "f0", "1", [S1, S2], [D1, D2]),
        "f2": ring_info("on", "f0", "1", [S1], [D1]),
    }
    judged = ha_assess(states, resource, "move", "f2")
    assert judged["safe"], judged["reasons"]
    assert judged["authoritative"] == "f0" and set(judged["lag"]) == {"f1", "f2"}
    assert judged["lag"]["f2"]["zdata/www"]["snapshots_behind"] == 1


def test_the_best_follower_holds_the_newest_snapshots_by_guid_whatever_the_createtxg():
    resource = ha_resource(RING)
    # f2's pool numbers its transactions higher, but f1 holds the newer snapshots.
    states = {
        "f0": None,
        "f1": ring_info("on", "f0", "1", [S1, S2, S3], [D1, D2]),
        "f2": ring_info("on", "f0", "1", [("s1", 101, 500)], [("d1", 201, 501), ("d2", 202, 502)]),
    }
    assert ha_assess(states, resource)["best_follower"] == "f1"
    states["f2"] = ring_info("on", "f0", "1", [S1, S2, S3], [D1, D2])
    assert ha_assess(states, resource)["best_follower"] == "f1"  # a tie goes to the first in inventory order


def test_an_unplanned_move_rescues_a_follower_that_got_ahead_of_the_new_writer_only_when_acknowledged():
    resource = ha_resource(RING)
    states = {
        "f0": None,
        "f1": ring_info("on", "f0", "1", [S1, S2], [D1, D2]),
        "f2": ring_info("on", "f0", "1", [S1, S3], [D1, D2]),
    }
    refused = ha_assess(states, resource, "failover", "f1", source="f1")
    assert not refused["safe"] and refused["diverged"] == ["f2"]
    accepted = ha_assess(states, resource, "failover", "f1", True, source="f1")
    assert accepted["safe"], accepted["reasons"]
    assert any("zdata/www on f2 has snapshots newer" in warning for warning in accepted["warnings"])


def test_a_move_is_refused_while_a_returning_old_writer_is_not_rejoined():
    resource = ha_resource(RING)
    states = {
        "f0": ring_info("off", "f0", "1", [S1], [D1]),
        "f1": ring_info("off", "f1", "2", [S1, ("ha_failover_e1", 104, 40)], [D1, ("ha_failover_e1", 204, 41)]),
        "f2": ring_info("on", "f1", "2", [S1, ("ha_failover_e1", 104, 40)], [D1, ("ha_failover_e1", 204, 41)]),
    }
    judged = ha_assess(states, resource, "move", "f2")
    assert judged["stale"] == ["f0"]
    assert any("run rejoin.yml first" in reason for reason in judged["reasons"])


def test_rejoin_keeps_a_diverged_old_writer_in_a_rescue_and_needs_a_writer():
    resource = ha_resource(RING)
    states = {
        "f0": ring_info("off", "f0", "1", [S1, ("late", 150, 50)], [D1]),
        "f1": ring_info("off", "f1", "2", [S1, S2], [D1, D2]),
        "f2": ring_info("on", "f1", "2", [S1, S2], [D1, D2]),
    }
    judged = ha_assess(states, resource, "rejoin")
    assert judged["safe"], judged["reasons"]
    assert judged["diverged"] == ["f0"] and judged["stale"] == ["f0"]
    states["f1"] = ring_info("on", "f1", "2", [S1, S2], [D1, D2])
    nobody = ha_assess(states, resource, "rejoin")
    assert not nobody["safe"] and "run failover.yml" in nobody["reasons"][-1]


def test_rejoin_of_the_zrepl_origin_points_at_failback():
    resource = ha_resource(RESOURCES)
    states = {
        "f0": info("zdata/enc/nfsdata", "on", "f0", "1", [("s1", 11, 5)]),
        "f1": info(REPLICA, "off", "f1", "2", [("s1", 11, 7), ("ha_failover_e1", 12, 8)]),
    }
    judged = ha_assess(states, resource, "rejoin")
    assert not judged["safe"] and "run failback.yml" in judged["reasons"][0]


def test_replication_peers_name_each_followers_copy_and_rescue_only_the_listed_ones():
    resource = ha_resource(RESOURCES)
    peers = ha_replication_peers(resource, "f1", ["f0", "f1"], {"f0": "10.0.0.1"}, ["f0"])
    assert peers == [
        {
            "host": "10.0.0.1",
            "name": "f0",
            "targets": {REPLICA: "zdata/enc/nfsdata"},
            "discard_target_changes": True,
        }
    ]


def test_unsynced_lists_every_follower_dataset_without_the_newest_snapshot_including_missing_ones():
    resource = ha_resource(RING)
    states = {
        "f0": ring_info("on", "f0", "1", [S1, S2], [D1, D2]),
        "f1": ring_info("on", "f0", "1", [S1, S2], [D1, D2]),
        "f2": ring_info("on", "f0", "1", [S1, S2], [D1]),
    }
    judged = ha_assess(states, resource, "status", source="f0")
    assert ha_unsynced(judged, ["f0", "f1", "f2"], "f0") == ["f2:zdata/db"]
    states["f1"] = {"failed": True, "msg": "missing"}
    judged = ha_assess(states, resource, "status", source="f0")
    assert ha_unsynced(judged, ["f1"], "f0") == ["f1:zdata/www", "f1:zdata/db"]
