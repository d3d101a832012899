# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one-call peer read of a dataset set, its parser and the per-peer planner, against recorded zfs-fuse output."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _fanout as fanout
from ansible_collections.freebsd_ha.storage.plugins.module_utils import _replication as repl
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import ParseError
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture

TARGETS = ["zdata/svc/a", "zdata/svc/b"]


def sources():
    parsed = repl.parse_get(read_fixture("zfs/zfs-get-guids-set-source.zfs-fuse.txt"))
    return {name: repl.snapshot_guids_of(parsed, name)[0] for name in TARGETS}


def peer(discard=False):
    return {"name": "f2", "host": "f2", "targets": {t: t for t in TARGETS}, "discard_target_changes": discard}


def test_the_peer_read_is_one_ssh_call_with_two_zfs_commands_and_the_parents():
    argv = fanout.build_peer_read_argv(["-o", "BatchMode=yes"], "f1", ["zdata/svc/a", "zdata/x y/b"])
    assert argv[:3] == ["-o", "BatchMode=yes", "f1"]
    assert argv.count(";") == 1 and argv.count("zfs") == 2
    assert argv[-3:] == ["'zdata/x y/b'", "zdata/svc", "'zdata/x y'"]


def test_a_follower_behind_has_its_snapshots_and_readonly_but_the_parent_is_not_a_child():
    state = fanout.parse_peer_read(read_fixture("zfs/zfs-get-peer-set-behind.zfs-fuse.txt"), "", TARGETS)
    assert [s["snapshot"] for s in state["zdata/svc/a"]["snapshots"]] == ["s1"]
    assert state["zdata/svc/a"]["children"] == [] and state["zdata/svc/a"]["exists"]
    assert state["zdata/svc/b"]["props"]["readonly"] == "on"
    assert state["zdata/svc/a"]["props"]["local"] == {"readonly": "on", "freebsd-ha:epoch": "1"}


def test_an_empty_node_lacks_every_target_and_their_parent():
    state = fanout.parse_peer_read("", read_fixture("zfs/zfs-get-peer-set-empty.zfs-fuse.txt"), TARGETS)
    assert all(not s["exists"] and not s["parent_exists"] for s in state.values())


def test_an_unexpected_peer_error_is_not_taken_for_a_missing_dataset():
    with pytest.raises(ParseError, match="invalid property"):
        fanout.parse_peer_read("", read_fixture("zfs/zfs-get-written-invalid-property.zfs-fuse.txt"), TARGETS)
    with pytest.raises(ParseError, match="unexpected zfs error"):
        fanout.parse_peer_read("", "cannot open 'tank/other': dataset does not exist\n", TARGETS)


def test_a_diverged_peer_is_refused_per_dataset_and_the_clean_one_still_planned():
    state = fanout.parse_peer_read(read_fixture("zfs/zfs-get-peer-set-diverged.zfs-fuse.txt"), "", TARGETS)
    transfers, refusals = fanout.plan_peer(peer(), sources(), state, None, create_parent=False)
    assert [t["target"] for t in transfers] == ["zdata/svc/a"]
    assert len(refusals) == 1 and refusals[0].startswith("f2: target 'zdata/svc/b' has diverged")


def test_discard_on_a_diverged_peer_plans_a_forced_receive_after_a_rescue():
    state = fanout.parse_peer_read(read_fixture("zfs/zfs-get-peer-set-diverged.zfs-fuse.txt"), "", TARGETS)
    transfers, refusals = fanout.plan_peer(peer(discard=True), sources(), state, "s2", create_parent=False)
    assert refusals == []
    b = transfers[1]["plan"]
    assert (b["mode"], b["force"], b["rescue_needed"], b["would_destroy"]["snapshots"]) == (
        "incremental",
        True,
        True,
        ["local1"],
    )


def test_readonly_is_set_after_a_full_receive_or_a_rescue_only():
    behind = {"state": {"props": {"readonly": "on"}}, "plan": {"mode": "incremental"}}
    assert not fanout.needs_readonly(behind, None, True)
    assert fanout.needs_readonly(behind, "x@rescue", True)
    assert fanout.needs_readonly({"state": {"props": {"readonly": "on"}}, "plan": {"mode": "full"}}, None, True)
    assert not fanout.needs_readonly({"state": {"props": {"readonly": "off"}}, "plan": {"mode": "full"}}, None, False)
