# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills of the gmirror runbooks on one lab pair, in order: each test starts from the state the last one left.

After every step: exactly one node has the pool on the mirror imported (one writer), and the data written
before a failure is on the survivor byte for byte.
"""

from __future__ import annotations

import time

from conftest import LAB_NET, labctl


def test_provision_mirrors_the_slices_with_one_writer(pair):
    assert pair.writers() == ["f0"]
    assert "COMPLETE" in pair.mirror("f0")
    assert pair.slice_sum("f0") == pair.slice_sum("f1")
    assert pair.record("f1") == '{"writer": "f0", "epoch": 1}'
    # ggated authenticates nobody: the standby exports its slice to the writer's address only.
    assert pair.sh("f1", "grep -v '^#' /etc/gg.exports").split() == [f"{LAB_NET}.1", "RW", "/dev/ada1p1"]


def test_a_failed_standby_degrades_the_mirror_without_blocking_writes(pair):
    pair.sh("f0", "head -c 2000000 /dev/urandom > /gmpool/before-standby-loss")
    labctl("crash", "f1")
    pair.sh("f0", "head -c 1000000 /dev/urandom > /gmpool/while-degraded && sync")
    pair.runbook("rejoin")  # f1 does not answer: its ggate unit is destroyed, the mirror runs DEGRADED
    assert pair.sh("f0", "ggatec list") == ""
    assert "DEGRADED" in pair.mirror("f0")
    pair.sh("f0", "head -c 1000000 /dev/urandom > /gmpool/after-detach && sync")
    assert pair.writers() == ["f0"]
    before = pair.data("f0")
    pair.restart("f1")
    pair.runbook("rejoin")  # f1 is back: attached, rebuilt from f0
    assert "COMPLETE" in pair.mirror("f0")
    assert pair.data("f0") == before
    assert pair.slice_sum("f0") == pair.slice_sum("f1")
    assert pair.writers() == ["f0"]


def test_planned_failover_and_rejoin_of_the_old_master_keep_every_byte(pair):
    pair.sh("f0", "head -c 3000000 /dev/urandom > /gmpool/late && sync")
    before = pair.data("f0")
    pair.runbook("failover")
    assert pair.writers() == ["f1"]
    assert pair.data("f1") == before
    assert pair.record("f1") == '{"writer": "f1", "epoch": 2}' == pair.record("f0")
    pair.runbook("rejoin")
    pair.sh("f1", "head -c 500000 /dev/urandom > /gmpool/after-rejoin && zfs snapshot gmpool@after-rejoin")
    assert "COMPLETE" in pair.mirror("f1")  # the attached slice still takes the writes after the playbook ended
    before = pair.data("f1")
    assert pair.slice_sum("f0") == pair.slice_sum("f1")
    assert pair.writers() == ["f1"] and pair.data("f1") == before


def test_unplanned_failover_needs_the_acknowledgement_and_keeps_what_reached_the_standby(pair):
    # A snapshot commits ZFS's open transaction group: the file is then on the mirror, not only in memory.
    pair.sh("f1", "head -c 1000000 /dev/urandom > /gmpool/before-crash && zfs snapshot gmpool@before-crash")
    before = pair.data("f1")
    labctl("crash", "f1")
    refused = pair.runbook("failover", check=False)
    assert refused.returncode != 0 and "ha_accept_data_loss=true" in refused.stdout
    assert pair.writers() == []
    pair.runbook("failover", "-e", "ha_accept_data_loss=true")
    assert pair.writers() == ["f0"]
    assert pair.data("f0") == before
    assert pair.record("f0") == '{"writer": "f0", "epoch": 3}'


def test_a_wrong_direction_rebuild_is_refused_and_the_newer_copy_kept(pair):
    pair.restart("f1")  # the old master boots: its kernel assembles gm0 from its own slice
    status = pair.runbook("status")
    assert "a returning old writer" in status.stdout and pair.writers() == ["f0"]
    # The operator names the old master as the side to keep: refused, the record says f0 writes.
    wrong = pair.runbook("rejoin", "-e", "ha_target=f1", "-e", "ha_accept_data_loss=true", check=False)
    assert wrong.returncode != 0 and "never the other way round" in wrong.stdout
    # Give f1's slice newer data by gmirror's own metadata: start its copy twice and write (a SyncID bump each).
    for _ in range(2):
        pair.sh("f1", "gmirror activate gm0 ada1p1 >/dev/null 2>&1 || true")
        pair.wait_mirror("f1", "DEGRADED")
        pair.sh("f1", "dd if=/dev/urandom of=/dev/mirror/gm0 bs=64k count=1 seek=400 conv=notrunc 2>/dev/null")
        pair.sh("f1", "gmirror stop gm0")
    kept = pair.slice_sum("f1")
    newer = pair.runbook("rejoin", "-e", "ha_accept_data_loss=true", check=False)
    assert newer.returncode != 0 and "is newer by gmirror's own metadata" in newer.stdout
    assert pair.slice_sum("f1") == kept  # nothing was rebuilt over it
    assert pair.writers() == ["f0"]
    before = pair.data("f0")
    pair.runbook("rejoin", "-e", "ha_accept_data_loss=true", "-e", "ha_gmirror_overwrite_newer=true")
    assert "COMPLETE" in pair.mirror("f0")
    assert pair.slice_sum("f0") == pair.slice_sum("f1") and pair.data("f0") == before


def test_an_interrupted_failover_finishes_on_re_run_and_never_has_two_writers(pair):
    before = pair.data("f0")
    for delay in (4.0, 9.0):
        run = pair.popen_runbook("failover", "-e", "ha_target=f1")
        time.sleep(delay)
        run.kill()
        run.wait()
        assert len(pair.writers()) <= 1
    pair.runbook("failover", "-e", "ha_target=f1")
    assert pair.writers() == ["f1"]
    assert pair.data("f1") == before
