# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""zfs_replicate f0 -> f1 over the lab's ssh: full, incremental, diverged target, refusals.

The steps depend on each other (one replica walked through its life), so they are one test.
"""

SRC = "zdata/e2e/rep"


def checksums(lab, node):
    """sha256 of every file of SRC on node (mounted for the read, then left as the module leaves it)."""
    out = lab.node(
        node,
        f"mounted=$(zfs get -H -o value mounted {SRC}); [ $mounted = yes ] || zfs mount {SRC};",
        f"(cd $(zfs get -H -o value mountpoint {SRC}) && sha256sum $(ls | sort));",
        f"[ $mounted = yes ] || zfs unmount {SRC} || (sleep 0.5; zfs unmount {SRC})",
    )
    return out.splitlines()


def test_zfs_replicate(lab):
    lab.fresh_dataset("f0", SRC)
    lab.fresh_dataset("f1", "zdata/e2e")
    lab.node(
        "f0", f"rm -rf /{SRC}/* && dd if=/dev/urandom of=/{SRC}/one bs=64k count=8 2>/dev/null && zfs snapshot {SRC}@r1"
    )

    lab.playbook("replicate_send.yml", mode="full", sent=["r1"], expected_snapshots=[f"{SRC}@r1"])
    first = checksums(lab, "f0")
    assert len(first) == 1
    assert checksums(lab, "f1") == first

    lab.node(
        "f0",
        f"dd if=/dev/urandom of=/{SRC}/two bs=64k count=4 2>/dev/null && echo more >> /{SRC}/one",
        f"&& zfs snapshot {SRC}@r2",
    )
    lab.playbook("replicate_send.yml", mode="incremental", sent=["r2"], expected_snapshots=[f"{SRC}@r1", f"{SRC}@r2"])
    second = checksums(lab, "f0")
    assert len(second) == 2 and second != first
    assert checksums(lab, "f1") == second

    # Diverge the replica on f1 (a write and a snapshot), and move the source on.
    lab.node(
        "f1",
        f"zfs set readonly=off {SRC} && zfs mount {SRC} && echo 'diverged on f1' > /{SRC}/diverged",
        f"&& zfs snapshot {SRC}@f1only && zfs unmount {SRC}",
    )
    lab.node("f0", f"echo three > /{SRC}/three && zfs snapshot {SRC}@r3")
    lab.playbook("replicate_diverged.yml", common="r2", expected_snapshots=["r1", "r2", "r3"])
    assert checksums(lab, "f1") == checksums(lab, "f0")

    lab.node("f1", "zfs create zdata/e2e/other && zfs snapshot zdata/e2e/other@x")
    lab.playbook("replicate_refusals.yml")
