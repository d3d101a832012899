# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_info on f0: reported datasets/snapshots/holds match zfs, and the call count is independent of size."""


def test_zfs_info(lab):
    lab.fresh_dataset("f0", "zdata/e2e/info")
    lab.playbook("zfs_info.yml")
