# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_snapshot on f0's zfs-fuse pool: create, hold/release, held destroy refused, guarded rollback."""


def test_zfs_snapshot(lab):
    lab.fresh_dataset("f0", "zdata/e2e/snap")
    lab.playbook("zfs_snapshot.yml")
    assert lab.node("f0", "zfs list -H -o name,userrefs -t snapshot -r zdata/e2e/snap").split() == [
        "zdata/e2e/snap@a",
        "0",
    ]
