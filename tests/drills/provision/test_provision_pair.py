# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""provision_pair.yml on two fresh nodes, then failover and the boot guard. The tests run in file order on one lab."""

from __future__ import annotations

import time

from conftest import labctl

ORIGIN = "zdata/enc/nfsdata"
REPLICA = f"zdata/sink/f0/{ORIGIN}"
NAMES = {"f0": ORIGIN, "f1": REPLICA}


def test_check_mode_on_fresh_nodes_prints_the_plan_and_changes_nothing(pair):
    _, _, output = pair.playbook("provision_pair", "--check")
    assert "provision nfs (zrepl): primary f0, epoch 1" in output and "f1: seed " + REPLICA in output
    assert pair.sh("f0", "zfs list -H -o name -r zdata").split() == ["zdata"]


def test_fresh_nodes_become_a_replicating_pair_with_carp_in_front(pair):
    _, changed, _ = pair.playbook("provision_pair")
    assert changed["f0"] > 0 and changed["f1"] > 0
    assert pair.writable(NAMES) == ["f0"]
    for node, name in NAMES.items():
        line = pair.sh(
            node, f"zfs get -H -o value readonly,mounted,mountpoint,freebsd-ha:writer,freebsd-ha:epoch {name}"
        )
        assert line.split()[1:] == ["yes", "/data/nfs", "f0", "1"], (node, line)
    assert pair.running("f0", "nfsd") and not pair.running("f1", "nfsd")
    assert pair.running("f0", "zrepl") and pair.running("f1", "zrepl")
    assert (pair.carp("f0"), pair.carp("f1")) == ({1: "MASTER"}, {1: "BACKUP"})
    assert pair.sh("f0", "sysrc -n freebsd_ha_guard_enable zfskeys_datasets").split() == ["YES", "zdata/enc"]


def test_a_second_run_and_a_check_run_change_nothing(pair):
    assert pair.playbook("provision_pair")[1] == {"f0": 0, "f1": 0}
    assert pair.playbook("provision_pair", "--check")[1] == {"f0": 0, "f1": 0}


def test_zrepl_replicates_new_writes_to_the_replica(pair):
    pair.sh("f0", "dd if=/dev/urandom of=/data/nfs/after-provision bs=1k count=256 status=none")
    pair.sh("f0", f"zfs snapshot {ORIGIN}@zrepl_$(date -u +%Y%m%d_%H%M%S)_000 && zrepl signal wakeup nfs_push")
    deadline = time.monotonic() + 120
    while "after-provision" not in pair.sh("f1", "ls /data/nfs") and time.monotonic() < deadline:
        time.sleep(3)
    assert pair.sh("f1", "md5sum /data/nfs/after-provision") == pair.sh("f0", "md5sum /data/nfs/after-provision")
    assert pair.sh("f1", f"zfs get -H -o value readonly {REPLICA}").strip() == "on"


def test_a_crashed_writer_nobody_replaced_comes_back_as_the_writer(pair):
    labctl("crash", "f0")
    # Only f0 is named: `labctl up` rewrites the /root/.ssh files of the nodes it names (a lab artifact: a reboot does
    # not), which drops the forced-command lines provisioning put there.
    labctl("up", "--nodes", "f0")
    assert pair.writable(NAMES) == ["f0"]
    assert pair.running("f0", "nfsd")
    boot_log = (pair.ansible.parent / "nodes" / "f0" / "logs" / "boot.log").read_text()
    assert "nfs: f0 stays the writer of epoch 1 (confirmed by f1@" in boot_log
    # Provisioning again puts back what labctl rewrote (f1's guard key on f0); nothing else is due.
    pair.playbook("provision_pair")


def test_failover_moves_the_writer_and_carp(pair):
    pair.playbook("failover")
    assert pair.writable(NAMES) == ["f1"]
    assert (pair.carp("f0"), pair.carp("f1")) == ({1: "BACKUP"}, {1: "MASTER"})
    assert pair.running("f1", "nfsd") and not pair.running("f0", "nfsd")


def test_provisioning_a_failed_over_pair_is_refused_before_any_change(pair):
    before = pair.sh("f1", f"zfs get -H -o value readonly,freebsd-ha:epoch {REPLICA}")
    code, _, output = pair.playbook("provision_pair", check=False)
    assert code != 0 and "records writer f1 (epoch 2)" in output and "nothing was changed" in output
    assert pair.sh("f1", f"zfs get -H -o value readonly,freebsd-ha:epoch {REPLICA}") == before
    assert pair.writable(NAMES) == ["f1"]


def test_a_crashed_writer_replaced_by_an_unplanned_failover_boots_fenced(pair):
    labctl("crash", "f1")
    pair.playbook("failover", "-e", "ha_accept_data_loss=true", "-e", "ha_target=f0")
    assert pair.writable(NAMES) == ["f0"]
    # f1 boots with its own rc.conf (nfsd enabled, dataset writable, epoch 2).
    labctl("up", "--nodes", "f1")
    assert pair.writable(NAMES) == ["f0"]
    assert not pair.running("f1", "nfsd")
    assert (pair.carp("f0"), pair.carp("f1")) == ({1: "MASTER"}, {1: "BACKUP"})
    boot_log = (pair.ansible.parent / "nodes" / "f1" / "logs" / "boot.log").read_text()
    assert "nfs: f1 is fenced: f0 records epoch 3 held by f0" in boot_log
