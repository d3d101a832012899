# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The zfs_role planner and the authority record, against lab captures."""

from __future__ import annotations

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _role
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import parse_get
from ansible_collections.freebsd_ha.storage.tests.unit.conftest import read_fixture

REPLICA = "zdata/sink/f0/zdata/enc/nfsdata"


def props(fixture):
    return next(iter(parse_get(read_fixture(f"zfs/{fixture}")).values()))


def test_epoch_is_zero_where_no_record_exists_and_read_where_one_does():
    assert _role.epoch_of(props("zfs-get-all-role-replica.lab.txt")) == 0
    assert _role.epoch_of(props("zfs-get-all-role-writer.lab.txt")) == 3


def test_a_garbled_epoch_is_refused_with_the_fix():
    with pytest.raises(StateError, match="not a number"):
        _role.epoch_of({_role.EPOCH_PROPERTY: {"value": "three", "source": "local"}})


def test_fencing_an_already_fenced_replica_plans_nothing():
    plan, _before, _after = _role.plan_role(
        [{"name": REPLICA, "mountpoint": "/data/nfs"}],
        {REPLICA: props("zfs-get-all-role-replica.lab.txt")},
        "secondary",
        mounted=True,
    )
    assert plan == []


def test_fencing_with_unmount_plans_readonly_before_the_unmount():
    plan, _before, after = _role.plan_role(
        [{"name": "zdata/enc/nfsdata"}],
        {"zdata/enc/nfsdata": props("zfs-get-all-role-writer.lab.txt")},
        "secondary",
        mounted=False,
    )
    assert plan == [["set", "readonly=on", "zdata/enc/nfsdata"], ["unmount", "zdata/enc/nfsdata"]]
    assert after["zdata/enc/nfsdata"] == {"readonly": "on", "mounted": False}


def test_a_dataset_named_twice_is_refused():
    with pytest.raises(StateError, match="more than once"):
        _role.plan_role([{"name": REPLICA}, {"name": REPLICA}], {}, "secondary")


def test_primary_without_an_epoch_is_refused():
    with pytest.raises(StateError, match="needs node"):
        _role.plan_role([{"name": REPLICA}], {REPLICA: {}}, "primary", node="f1")


def test_predict_applies_planned_changes_to_the_properties():
    before = props("zfs-get-all-role-replica.lab.txt")
    after = _role.predict(before, {"readonly": "off", "mounted": False, _role.WRITER_PROPERTY: "f1"})
    view = _role.summarise(REPLICA, after, [])
    assert (view["readonly"], view["mounted"], view["writer"], view["newest_snapshot"]) == (False, False, "f1", None)
