# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from ansible_collections.freebsd_ha.storage.plugins.module_utils import _safety
from ansible_collections.freebsd_ha.storage.plugins.module_utils._command import StateError
from ansible_collections.freebsd_ha.storage.plugins.module_utils._zfs import parse_get

NOW = datetime(2026, 11, 21, 13, 40, tzinfo=timezone.utc)


def test_rescue_moves_the_dataset_aside_and_promotes_a_clone_of_the_kept_snapshot():
    steps, rescue = _safety.plan_rescue(
        "backup/nfs",
        "daily-2026-11-21",
        NOW,
        mounted=True,
        local_properties={"mountpoint": "/data/nfs", "readonly": "on"},
    )
    assert steps == [
        ["snapshot", "backup/nfs@rescue-20261121T134000Z"],
        ["umount", "backup/nfs"],
        ["set", "canmount=noauto", "backup/nfs"],
        ["rename", "backup/nfs", "backup/nfs_rescue_20261121T134000Z"],
        [
            "clone",
            "-o",
            "mountpoint=/data/nfs",
            "-o",
            "readonly=on",
            "backup/nfs_rescue_20261121T134000Z@daily-2026-11-21",
            "backup/nfs",
        ],
        ["promote", "backup/nfs"],
    ]
    assert rescue == "backup/nfs_rescue_20261121T134000Z@rescue-20261121T134000Z"


def test_rescue_of_an_unmounted_dataset_skips_the_unmount_and_never_copies_canmount():
    steps, _rescue = _safety.plan_rescue("tank/a", "s1", NOW, local_properties={"canmount": "noauto"})
    assert ["umount", "tank/a"] not in steps
    assert steps[-2] == ["clone", "tank/a_rescue_20261121T134000Z@s1", "tank/a"]


def test_rescue_refuses_a_dataset_with_children():
    with pytest.raises(StateError, match=r"child datasets \(tank/a/b\)"):
        _safety.plan_rescue("tank/a", "s1", NOW, children=["tank/a/b"])


def test_local_properties_keeps_local_and_received_values_only():
    text = (
        "tank/a\tmountpoint\t/data/nfs\tlocal\n"
        "tank/a\tcompression\tlz4\tinherited from tank\n"
        "tank/a\tfreebsd:role\treplica\treceived\n"
        "tank/a\tused\t1024\t-\n"
    )
    assert _safety.local_properties(parse_get(text)["tank/a"]) == {"mountpoint": "/data/nfs", "freebsd:role": "replica"}
