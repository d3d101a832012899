# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The HAST runbook filters: the hast section, the hast role's variables, and the judgement of both nodes."""

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_node_summary, ha_resource, ha_status_table
from ansible_collections.freebsd_ha.storage.plugins.filter.ha_hast import (
    ha_hast_assess,
    ha_hast_conf,
    ha_hast_in_sync,
    ha_hast_resource,
    ha_hast_seen,
    ha_hast_table,
)

RESOURCES = {
    "vol": {
        "backend": "hast",
        "nodes": ["f0", "f1"],
        "primary": "f0",
        "services": ["nfsd"],
        "hast": {"resource": "shared", "pool": "hpool", "mountpoint": "/data/vol", "local": "/dev/ada1"},
    }
}


def resolved(**hast):
    resources = {"vol": dict(RESOURCES["vol"], hast=dict(RESOURCES["vol"]["hast"], **hast))}
    return ha_hast_resource(ha_resource(resources, None, ["f0", "f1"]))


def hast_info(role, status, localcnt, remotecnt, *, dirty=0, resuid=7214398201146834491, log=(), bug=False):
    """A hast_info result (its documented RETURN shape) with the one resource `shared`."""
    view = {
        "name": "shared",
        "role": role,
        "status": status,
        "complete": status == "complete",
        "dirty_bytes": dirty,
        "device_present": role == "primary",
        "configured": True,
        "hastd_running": True,
        "metadata": {"state": "present", "localcnt": localcnt, "remotecnt": remotecnt, "resuid": resuid},
        "split_brain": {"suspected": bool(log), "evidence": list(log)},
        "bug_292322": {"suspected": bug, "evidence": []},
    }
    return {"hastd_running": True, "resources": {"shared": view}}


def pool(writer, epoch, readonly="off"):
    """A zfs_info result on the pool's root dataset."""
    return {
        "datasets": [
            {
                "name": "hpool",
                "readonly": readonly,
                "mounted": "yes",
                "freebsd-ha:writer": writer,
                "freebsd-ha:epoch": epoch,
            }
        ],
        "snapshots": [],
    }


HEALTHY = {
    "f0": {"hast": hast_info("primary", "complete", 0, 0, dirty=10485760), "pool": pool("f0", "1")},
    "f1": {"hast": hast_info("secondary", "complete", 0, 0), "pool": {"skipped": True}},
}
UNREACHABLE = {"hast": {"unreachable": True, "msg": "ssh: connect to host f0: Connection refused"}}


def test_the_section_is_completed_and_the_pool_root_carries_the_record():
    resource = resolved()
    assert resource["hast"]["providers"] == {"f0": "/dev/ada1", "f1": "/dev/ada1"}
    assert resource["hast"]["replication"] == "memsync"
    assert resource["hast"]["device"] == "/dev/hast/shared"
    assert resource["datasets"] == [{"name": "hpool", "mountpoint": "/data/vol"}]
    assert resource["node_datasets"]["f1"] == {"hpool": "hpool"}


def test_the_provider_name_names_the_device():
    assert resolved(provider_name="nfs0")["hast"]["device"] == "/dev/hast/nfs0"


@pytest.mark.parametrize(
    ("hast", "message"),
    [
        ({"pool": "hpool/data"}, "hast.pool: invalid pool name"),
        ({"resource": "memsync"}, "hast.resource must be one hast.conf word"),
        ({"replication": "sync"}, "hast.replication must be one of fullsync, memsync, async"),
        ({"providers": {"f0": "/dev/ada1"}}, "give the local provider either as local"),
        ({"sise": 3}, "hast.sise: unknown key"),
        ({"timeout": 0}, "hast.timeout must be a positive number"),
        ({"mountpoint": "data"}, "hast.mountpoint must be an absolute path"),
        ({"local": "/dev/ada 1"}, "hast.local must be one hast.conf word"),
    ],
)
def test_a_malformed_section_is_refused_naming_the_key(hast, message):
    with pytest.raises(AnsibleFilterError, match=message):
        resolved(**hast)


def test_providers_per_node_must_name_every_node():
    resources = {"vol": dict(RESOURCES["vol"], hast={"pool": "hpool", "providers": {"f0": "/dev/ada1", "f2": "x"}})}
    with pytest.raises(AnsibleFilterError, match="providers must name exactly the nodes"):
        ha_hast_resource(ha_resource(resources))


def test_a_resource_without_a_section_is_refused():
    resources = {"vol": {"backend": "hast", "nodes": ["f0", "f1"], "primary": "f0"}}
    with pytest.raises(AnsibleFilterError, match="needs a hast: section"):
        ha_hast_resource(ha_resource(resources))


def test_the_role_variables_give_each_node_its_peer_as_remote():
    conf = ha_hast_conf(resolved(timeout=3), {"f0": "10.0.0.1", "f1": "10.0.0.2"})
    assert conf == [
        {
            "name": "shared",
            "primary": "f0",
            "nodes": {
                "f0": {"local": "/dev/ada1", "remote": "10.0.0.2"},
                "f1": {"local": "/dev/ada1", "remote": "10.0.0.1"},
            },
            "replication": "memsync",
            "timeout": 3,
        }
    ]


def test_the_sections_addresses_win_and_a_missing_one_is_refused():
    conf = ha_hast_conf(resolved(addresses={"f1": "tcp://192.168.9.2"}), {"f0": "10.0.0.1", "f1": "10.0.0.2"})
    assert conf[0]["nodes"]["f0"]["remote"] == "tcp://192.168.9.2"
    with pytest.raises(AnsibleFilterError, match="no replication address for f1"):
        ha_hast_conf(resolved(), {"f0": "10.0.0.1"})


def test_a_healthy_pair_fails_over_safely_and_the_generic_status_table_reads_it():
    result = ha_hast_assess(HEALTHY, resolved(), "failover", "f1")
    assert result["safe"], result["reasons"]
    assert (result["authoritative"], result["writers"], result["epoch"], result["next_epoch"]) == ("f0", ["f0"], 1, 2)
    assert result["in_sync"] and result["lag"]["f1"]["hpool"]["in_sync"]
    nodes = {node: ha_node_summary(view) for node, view in result["nodes"].items()}
    status = {
        "resource": "vol",
        "backend": "hast",
        "writer": "f0",
        "epoch": 1,
        "nodes": nodes,
        "lag": result["lag"],
        "warnings": [],
    }
    assert any(line.startswith("f0       writer") and "hpool" in line for line in ha_status_table(status))


def test_the_hast_table_shows_roles_counters_and_the_pool_record():
    lines = ha_hast_table(ha_hast_assess(HEALTHY, resolved()))
    assert lines[0] == "HAST resource shared (pool hpool): writer f0, epoch 1, in sync"
    assert lines[2].split() == ["f0", "primary", "complete", "10485760", "0/0", "writable", "f0/1"]
    assert lines[3].split() == ["f1", "secondary", "complete", "0", "0/0", "exported", "-"]


def test_a_sync_in_progress_is_not_in_sync():
    states = dict(HEALTHY, f0={"hast": hast_info("primary", "complete", 1, 0), "pool": pool("f0", "1")})
    result = ha_hast_assess(states, resolved())
    assert not result["in_sync"]
    assert not ha_hast_in_sync(result, "f0", "f1")


def test_an_unplanned_failover_needs_the_acknowledgement_and_names_the_state_last_seen():
    seen = {
        "seen_at": "2026-11-21T15:00:00",
        "nodes": {"f0": {"role": "primary", "status": "degraded", "dirty_bytes": 4194304}},
    }
    states = {"f0": UNREACHABLE, "f1": {"hast": hast_info("secondary", None, 0, 0), "seen": seen}}
    refused = ha_hast_assess(states, resolved(), "failover", "f1")
    assert not refused["safe"]
    assert "ha_accept_data_loss=true" in refused["reasons"][0]
    assert "primary degraded with 4194304 dirty bytes" in refused["reasons"][0]
    assert ha_hast_assess(states, resolved(), "failover", "f1", True)["safe"]
    assert (
        "f0       UNREACHABLE (last seen 2026-11-21T15:00:00: primary degraded, 4194304 dirty bytes)"
        in ha_hast_table(refused)
    )


def test_a_planned_failover_with_the_acknowledgement_is_refused():
    result = ha_hast_assess(HEALTHY, resolved(), "failover", "f1", True)
    assert result["reasons"] == [
        "every node answers: run the planned failover (drop ha_accept_data_loss), it loses nothing"
    ]


def test_failback_needs_both_nodes():
    states = {"f0": UNREACHABLE, "f1": {"hast": hast_info("primary", "degraded", 1, 0), "pool": pool("f1", "2")}}
    assert "failback needs both nodes" in ha_hast_assess(states, resolved(), "failback", "f1")["reasons"][0]


def test_a_split_brain_refuses_every_runbook_but_resync_and_names_it():
    states = {
        "f0": {"hast": hast_info("primary", "degraded", 1, 0), "pool": pool("f0", "1")},
        "f1": {"hast": hast_info("primary", "degraded", 1, 0), "pool": pool("f1", "2")},
    }
    for runbook in ("status", "failover", "rejoin", "provision"):
        result = ha_hast_assess(states, resolved(), runbook, "f1")
        assert not result["safe"]
        assert "resync.yml -e ha_target=f1 -e ha_confirm_resync=f0" in " ".join(result["reasons"])
        assert result["stale"] == []
    assert "both copies were written since their last sync" in result["split_brain"][0]


def test_a_resync_shows_what_the_loser_loses_and_needs_the_confirmation():
    states = {
        "f0": {"hast": hast_info("primary", "degraded", 1, 0, dirty=6291456), "pool": pool("f0", "1")},
        "f1": {"hast": hast_info("primary", "degraded", 1, 0), "pool": {"failed": True, "msg": "does not exist"}},
    }
    refused = ha_hast_assess(states, resolved(), "resync", "f1")
    assert refused["reasons"] == [
        "resync keeps f1's data and throws away f0's (every write f0 made since the last sync with f1; its provider "
        "is re-initialised (hastctl create) and copied in full from f1); confirm with -e ha_confirm_resync=f0"
    ]
    assert refused["loses"]["pool_writer"] == "f0" and refused["loses"]["dirty_bytes"] == 6291456
    assert refused["loses"]["wrote_since_last_sync"]
    assert "split brain" in refused["warnings"][0]
    assert not ha_hast_assess(states, resolved(), "resync", "f1", False, "f1")["safe"]
    assert ha_hast_assess(states, resolved(), "resync", "f1", False, "f0")["safe"]


def test_a_resync_without_a_winner_or_without_divergence_is_refused():
    assert "needs the winner" in ha_hast_assess(HEALTHY, resolved(), "resync", "")["reasons"][0]
    reasons = ha_hast_assess(HEALTHY, resolved(), "resync", "f0", False, "f1")["reasons"]
    assert reasons == [
        "the copies of shared have not diverged: nothing to resync; a node that lags catches up as secondary "
        "(rejoin.yml)"
    ]


def test_a_returning_primary_that_wrote_nothing_is_stale_and_fenced():
    states = {
        "f0": {"hast": hast_info("primary", "degraded", 0, 0)},
        "f1": {"hast": hast_info("primary", "degraded", 1, 0), "pool": pool("f1", "2")},
    }
    result = ha_hast_assess(states, resolved(), "status")
    assert (result["authoritative"], result["stale"], result["reasons"]) == ("f1", ["f0"], [])
    assert "a returning old primary" in result["warnings"][0]


def test_two_primaries_without_the_pool_is_a_split_brain():
    states = {
        "f0": {"hast": hast_info("primary", "degraded", 0, 0)},
        "f1": {"hast": hast_info("primary", "degraded", 0, 0)},
    }
    result = ha_hast_assess(states, resolved(), "failover", "f1")
    assert "neither holds the pool" in result["split_brain"][0] and not result["safe"]


def test_split_brain_log_lines_count_only_when_the_peer_cannot_be_compared():
    line = "Nov 21 13:57:05 f1 hastd[123]: [shared] (secondary) Split-brain detected, exiting."
    states = dict(HEALTHY, f1={"hast": hast_info("secondary", "complete", 0, 0, log=[line])})
    resolved_now = ha_hast_assess(states, resolved(), "failover", "f1")
    assert resolved_now["safe"] and "counters show it resolved" in resolved_now["warnings"][0]
    alone = ha_hast_assess({"f0": UNREACHABLE, "f1": states["f1"]}, resolved(), "failover", "f1", True)
    assert not alone["safe"] and "resync.yml" in alone["reasons"][0]


def test_bug_292322_is_a_warning_not_a_refusal():
    states = dict(HEALTHY, f0={"hast": hast_info("primary", "degraded", 0, 0, bug=True), "pool": pool("f0", "1")})
    result = ha_hast_assess(states, resolved(), "status")
    assert result["safe"] and "FreeBSD bug 292322" in result["warnings"][0]


def test_a_node_without_the_resource_or_metadata_needs_provisioning():
    bare = {"hastd_running": True, "resources": {}}
    result = ha_hast_assess(dict(HEALTHY, f1={"hast": bare}), resolved(), "failover", "f1")
    assert result["reasons"] == ["f1 has no HAST resource shared in hast.conf: run provision.yml"]
    assert ha_hast_assess(dict(HEALTHY, f1={"hast": bare}), resolved(), "provision")["safe"]


def test_an_interrupted_switch_leaves_the_newer_copy_authoritative():
    # f0 was demoted after writing while f1 was away; f1 never got those writes.
    states = {"f0": {"hast": hast_info("secondary", None, 1, 0)}, "f1": {"hast": hast_info("secondary", None, 0, 0)}}
    result = ha_hast_assess(states, resolved(), "failover", "f1")
    assert result["authoritative"] == "f0"
    assert "make f0 primary again" in result["reasons"][0]
    assert ha_hast_assess(states, resolved(), "failover", "f0")["safe"]


def test_the_last_seen_record_holds_each_reachable_node():
    record = ha_hast_seen(ha_hast_assess(HEALTHY, resolved()))
    assert record == {
        "resource": "vol",
        "epoch": 1,
        "writer": "f0",
        "nodes": {
            "f0": {"role": "primary", "status": "complete", "dirty_bytes": 10485760, "counters": [0, 0]},
            "f1": {"role": "secondary", "status": "complete", "dirty_bytes": 0, "counters": [0, 0]},
        },
    }


def test_an_unknown_runbook_is_refused():
    with pytest.raises(AnsibleFilterError, match="unknown runbook 'move'"):
        ha_hast_assess(HEALTHY, resolved(), "move")
