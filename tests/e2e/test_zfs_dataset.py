# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_dataset on f0's zfs-fuse pool: the playbooks' asserts are the checks; here the setup and a cross-check."""

import pytest


@pytest.fixture()
def e2e_parent(lab):
    lab.fresh_dataset("f0", "zdata/e2e")
    return lab


def names(lab):
    return lab.node("f0", "zfs list -H -o name -t all -r zdata/e2e").split()


def test_create_set_refusals_destroy(e2e_parent):
    e2e_parent.playbook("zfs_dataset.yml")
    assert names(e2e_parent) == ["zdata/e2e"]


def test_rename(e2e_parent):
    e2e_parent.playbook("zfs_dataset_rename.yml")
    assert names(e2e_parent) == ["zdata/e2e", "zdata/e2e/nfs2"]


def test_readonly_unmounted_is_idempotent(e2e_parent):
    e2e_parent.playbook("zfs_dataset_readonly.yml")
    assert names(e2e_parent) == ["zdata/e2e", "zdata/e2e/ro"]
