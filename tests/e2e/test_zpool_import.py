# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zpool_import on f0: a second pool on a sparse file in the node's own /var/tmp (its private overlay)."""

POOL_DIR = "/var/tmp/e2epool"


def test_zpool_import(lab):
    lab.node(
        "f0",
        "zpool destroy e2epool 2>/dev/null; rm -rf",
        POOL_DIR,
        "&& mkdir -p",
        POOL_DIR,
        f"&& truncate -s 128M {POOL_DIR}/disk && zpool create -m none e2epool {POOL_DIR}/disk",
    )
    try:
        lab.playbook("zpool_import.yml")
    finally:
        lab.node(
            "f0",
            f"zpool list e2epool >/dev/null 2>&1 || zpool import -d {POOL_DIR} e2epool;",
            "zpool destroy e2epool",
            check=False,
        )
