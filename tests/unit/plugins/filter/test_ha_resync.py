# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""resync.yml's judgement: when a re-seed is needed, what it replaces, the confirmation, and where a re-run resumes."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.filter.ha import ha_resource
from ansible_collections.freebsd_ha.storage.plugins.filter.ha_resync import (
    ha_resync_plan,
    ha_resync_progress,
    ha_stale_holds,
)

RESOURCE = ha_resource(
    {
        "nfs": {
            "backend": "zrepl",
            "nodes": ["f0", "f1"],
            "primary": "f0",
            "datasets": [{"name": "zdata/enc/nfsdata", "mountpoint": "/data/nfs"}],
        }
    },
    None,
    ["f0", "f1"],
)
ORIGIN = "zdata/enc/nfsdata"
REPLICA = "zdata/sink/f0/zdata/enc/nfsdata"
ASSESSMENT = {"authoritative": "f0", "writers": ["f0"], "unreachable": [], "epoch": 3}
NOW = 1795269139.0  # 2026-11-21T13:52:19Z
STAMP = "20261121T135219Z"


def read(name, snapshots, holds=(), **props):
    """A zfs_info result (its documented shape) for one dataset and its snapshots [(short name, guid, txg)]."""
    row = {"name": name, "readonly": "on", "referenced": "2322432", "encryption": "off", "freebsd-ha:resync": "-"}
    return {
        "datasets": [dict(row, **props)],
        "snapshots": [
            {"name": f"{name}@{snap}", "dataset": name, "guid": guid, "createtxg": txg} for snap, guid, txg in snapshots
        ],
        "holds": [{"snapshot": f"{name}@{snap}", "tag": tag} for snap, tag in holds],
    }


def plan(source, replica, confirm="f1", force=False, assessment=None):
    judged = ASSESSMENT if assessment is None else assessment
    return ha_resync_plan({"f0": source, "f1": replica}, RESOURCE, judged, confirm, force, NOW)


def test_a_replica_without_a_common_snapshot_is_renamed_to_a_rescue_and_seeded_from_a_new_snapshot():
    result = plan(read(ORIGIN, [("zrepl_a", 1, 10)]), read(REPLICA, [("zrepl_x", 9, 4)]))
    assert result["safe"] and result["needed"]
    (entry,) = result["datasets"]
    assert entry["state"] == "no_common_snapshot"
    assert entry["rename"] and entry["send"]
    assert entry["rescue"] == f"{REPLICA}_rescue_{STAMP}"
    assert entry["snapshot"] == f"ha_resync_{STAMP}"
    assert entry["replica_only_snapshots"] == ["zrepl_x"]
    assert result["loss"] == [
        f"f1:{REPLICA} (no common snapshot): 2322432 bytes referenced, snapshots only there: zrepl_x; "
        f"kept as {REPLICA}_rescue_{STAMP}"
    ]


def test_without_the_confirmation_the_plan_refuses_and_lists_what_the_replica_would_lose():
    result = plan(read(ORIGIN, [("zrepl_a", 1, 10)]), read(REPLICA, [("zrepl_x", 9, 4)]), confirm="")
    assert not result["safe"]
    (reason,) = result["reasons"]
    assert "zrepl_x" in reason and "-e ha_confirm_resync=f1" in reason


def test_confirming_the_writer_is_refused_since_its_copy_is_never_replaced():
    result = plan(read(ORIGIN, [("zrepl_a", 1, 10)]), read(REPLICA, [("zrepl_x", 9, 4)]), confirm="f0")
    assert not result["safe"]
    assert "fail over to f1 first" in result["reasons"][0]


def test_a_diverged_replica_needs_a_re_seed():
    source = read(ORIGIN, [("zrepl_a", 1, 10), ("zrepl_b", 2, 12)])
    replica = read(REPLICA, [("zrepl_a", 1, 5), ("own", 7, 6)])
    (entry,) = plan(source, replica)["datasets"]
    assert entry["state"] == "diverged" and entry["common"] == "zrepl_a"
    assert entry["replica_only_snapshots"] == ["own"]


def test_a_replica_in_sync_is_left_alone_without_confirmation():
    source = read(ORIGIN, [("zrepl_a", 1, 10), ("zrepl_b", 2, 12)])
    replica = read(REPLICA, [("zrepl_a", 1, 5)])
    result = plan(source, replica, confirm="")
    assert result["safe"] and not result["needed"]
    assert result["datasets"][0]["state"] == "in_sync" and not result["datasets"][0]["send"]


def test_on_request_a_replica_in_sync_is_re_seeded():
    source = read(ORIGIN, [("zrepl_a", 1, 10)])
    (entry,) = plan(source, read(REPLICA, [("zrepl_a", 1, 5)]), force=True)["datasets"]
    assert entry["state"] == "requested" and entry["rename"] and entry["snapshot"] == f"ha_resync_{STAMP}"


def test_a_re_run_after_the_rename_reuses_the_interrupted_runs_snapshot_and_renames_nothing():
    source = read(ORIGIN, [("zrepl_a", 1, 10), ("ha_resync_20261120T000000Z", 3, 11)])
    replica = {"failed": True, "msg": f"cannot open '{REPLICA}': dataset does not exist"}
    (entry,) = plan(source, replica)["datasets"]
    assert entry["state"] == "missing" and not entry["rename"] and entry["rescue"] is None
    assert entry["send"] and entry["snapshot"] == "ha_resync_20261120T000000Z"


def test_a_re_run_after_the_send_finishes_without_sending_again():
    source = read(ORIGIN, [("zrepl_a", 1, 10), ("ha_resync_20261120T000000Z", 3, 11)])
    replica = read(REPLICA, [("ha_resync_20261120T000000Z", 3, 2)])
    (entry,) = plan(source, replica)["datasets"]
    assert entry["state"] == "in_progress" and not entry["send"] and not entry["rename"]


def test_a_finished_resync_is_in_sync_and_a_new_request_takes_a_new_snapshot():
    source = read(ORIGIN, [("ha_resync_20261120T000000Z", 3, 11)])
    replica = read(
        REPLICA, [("ha_resync_20261120T000000Z", 3, 2)], **{"freebsd-ha:resync": "ha_resync_20261120T000000Z"}
    )
    assert plan(source, replica)["datasets"][0]["state"] == "in_sync"
    (entry,) = plan(source, replica, force=True)["datasets"]
    assert entry["state"] == "requested" and entry["snapshot"] == f"ha_resync_{STAMP}"


def test_an_older_resync_snapshot_is_not_reused_once_zrepl_snapshotted_after_it():
    source = read(ORIGIN, [("ha_resync_20261120T000000Z", 3, 11), ("zrepl_c", 4, 12)])
    (entry,) = plan(source, read(REPLICA, [("zrepl_x", 9, 4)]))["datasets"]
    assert entry["snapshot"] == f"ha_resync_{STAMP}"


@pytest.mark.parametrize(
    ("assessment", "message"),
    [
        ({"authoritative": "f0", "writers": ["f0"], "unreachable": ["f1"], "epoch": 3}, "f1 do not answer"),
        ({"authoritative": None, "writers": ["f0", "f1"], "unreachable": [], "epoch": 3}, "writers: f0, f1"),
        ({"authoritative": None, "writers": [], "unreachable": [], "epoch": 0}, "writers: none"),
    ],
)
def test_without_both_nodes_and_one_writer_nothing_is_planned(assessment, message):
    result = plan(read(ORIGIN, []), read(REPLICA, []), assessment=assessment)
    assert not result["safe"] and not result["datasets"]
    assert message in result["reasons"][0]


def test_a_missing_source_dataset_is_refused():
    result = plan({"failed": True, "msg": "cannot open"}, read(REPLICA, []))
    assert any("does not exist on the writer f0" in reason for reason in result["reasons"])


def test_every_zrepl_hold_on_either_side_is_released_and_other_holds_are_left():
    source = read(ORIGIN, [("zrepl_a", 1, 10)], holds=[("zrepl_a", "zrepl_STEP_J_nfs_push"), ("zrepl_a", "backup")])
    replica = read(REPLICA, [("zrepl_a", 1, 5)], holds=[("zrepl_a", "zrepl_last_received_J_nfs_sink")])
    release = plan(source, replica, force=True)["release"]
    assert release == {
        "f0": [{"snapshot": f"{ORIGIN}@zrepl_a", "tags": ["zrepl_STEP_J_nfs_push"]}],
        "f1": [{"snapshot": f"{REPLICA}@zrepl_a", "tags": ["zrepl_last_received_J_nfs_sink"]}],
    }


def test_an_encrypted_source_is_sent_raw():
    result = plan(read(ORIGIN, [("zrepl_a", 1, 10)], encryption="aes-256-gcm"), read(REPLICA, []))
    assert result["datasets"][0]["encrypted"]
    assert "sent raw" in result["warnings"][0]


def test_holds_of_the_other_direction_are_stale():
    info = read(
        ORIGIN,
        [("zrepl_a", 1, 10)],
        holds=[
            ("zrepl_a", "zrepl_STEP_J_nfs_push"),
            ("zrepl_a", "zrepl_STEP_J_back_push"),
            ("zrepl_a", "zrepl_last_received_J_nfs_sink"),
        ],
    )
    assert ha_stale_holds(info, [ORIGIN], "sender", ["nfs_push"]) == [
        {"snapshot": f"{ORIGIN}@zrepl_a", "tags": ["zrepl_STEP_J_back_push", "zrepl_last_received_J_nfs_sink"]}
    ]
    assert ha_stale_holds(info, [ORIGIN], "receiver", ["nfs_sink"]) == [
        {"snapshot": f"{ORIGIN}@zrepl_a", "tags": ["zrepl_STEP_J_back_push", "zrepl_STEP_J_nfs_push"]}
    ]
    assert ha_stale_holds({"unreachable": True}, [ORIGIN], "sender", []) == []
    with pytest.raises(ValueError, match="sender or receiver"):
        ha_stale_holds(info, [ORIGIN], "writer", [])


def test_progress_gives_bytes_rate_and_eta():
    progress = ha_resync_progress(baseline=1048576, used_now=11 * 1048576, expected=str(20 * 1048576), started=0, now=5)
    assert progress["bytes"] == 10 * 1048576
    assert progress["eta_seconds"] == 5.0
    assert progress["line"] == "received 10.0 MiB of ~20.0 MiB in 5 s (2.0 MiB/s), ETA 5 s"
    assert ha_resync_progress(0, 0, None, 0, 1)["line"].endswith("ETA unknown")
