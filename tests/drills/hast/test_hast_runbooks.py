# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills of the HAST runbooks on one lab pair, in file order like a life of the pair: provision, planned failover,
failback, a crash of the primary, failback to the returned node, an interrupted failover, a split brain made on
purpose and resolved. After every step exactly one node is primary and writes the pool."""

from __future__ import annotations

import re
import time

from hast_drill_lab import labctl


def test_provision_makes_f0_the_only_primary_and_a_re_run_changes_nothing(hast):
    hast.runbook("provision")
    hast.assert_one_writer("f0")
    assert hast.role("f1") == "secondary"
    again = hast.runbook("provision")
    for node in ("f0", "f1"):
        assert re.search(rf"^{node}\s+: ok=\d+\s+changed=0 ", again.stdout, re.M), again.stdout[-3000:]
    assert hast.sh("f0", "zfs get -H -o value freebsd-ha:writer,freebsd-ha:epoch hpool").split() == ["f0", "1"]
    hast.write("f0", "seed", 2048)


def test_planned_failover_keeps_every_byte(hast):
    hast.write("f0", "late")
    before = hast.checksums("f0")
    done = hast.runbook("failover")
    assert '"planned": true' in done.stdout
    hast.assert_one_writer("f1")
    assert hast.checksums("f1") == before
    assert hast.role("f0") == "secondary"
    assert "is running" in hast.sh("f1", "service nfsd status")
    assert hast.sh("f1", "zfs get -H -o value freebsd-ha:epoch hpool").strip() == "2"


def test_failback_brings_every_byte_home(hast):
    hast.write("f1", "while-away")
    before = hast.checksums("f1")
    hast.runbook("failback")
    hast.assert_one_writer("f0")
    assert hast.checksums("f0") == before


def test_unplanned_failover_needs_the_acknowledgement_and_reports_what_was_last_seen(hast):
    hast.runbook("status", "-e", "ha_status_json=")  # keeps the state seen now on both nodes
    hast.write("f0", "acknowledged")
    # A snapshot commits the transaction group: ZFS has acknowledged the write (zfs-fuse ignores sync(2)).
    hast.sh("f0", "zfs snapshot hpool@before-crash")
    before = hast.checksums("f0")
    labctl("crash", "f0")
    refused = hast.runbook("failover", check=False)
    assert refused.returncode != 0 and "ha_accept_data_loss=true" in refused.stdout
    assert "last seen at" in refused.stdout
    assert hast.primaries() == [] and hast.writers() == []
    done = hast.runbook("failover", "-e", "ha_accept_data_loss=true")
    assert '"planned": false' in done.stdout and "last seen" in done.stdout
    hast.assert_one_writer("f1")
    # memsync: every write the crashed primary acknowledged had reached f1.
    assert hast.checksums("f1") == before
    labctl("up", "--nodes", "2")
    assert hast.role("f0") == "init"
    hast.assert_one_writer("f1")


def test_failback_resyncs_the_returned_node_before_it_takes_over(hast):
    hast.write("f1", "after-crash", 1024)
    before = hast.checksums("f1")
    hast.runbook("failback")
    hast.assert_one_writer("f0")
    assert hast.checksums("f0") == before
    assert hast.role("f1") == "secondary"


def test_an_interrupted_failover_finishes_on_re_run_and_never_has_two_primaries(hast):
    before = hast.checksums("f0")
    for delay in (20.0, 35.0):
        run = hast.popen_runbook("failover", "-e", "ha_target=f1")
        time.sleep(delay)
        run.kill()
        run.wait()
        assert len(hast.primaries()) <= 1 and len(hast.writers()) <= 1
    hast.runbook("failover", "-e", "ha_target=f1")
    hast.assert_one_writer("f1")
    assert hast.checksums("f1") == before


def test_a_split_brain_is_refused_and_resolved_with_the_chosen_nodes_data(hast):
    labctl("partition", "f0", "f1")
    hast.write("f1", "loser")
    # f0 is promoted by hand behind the runbooks' back while f1 still writes: both copies change.
    hast.wait_for("f0 to lose its primary", lambda: "-" in hast.sh("f0", "hastctl status shared").split())
    hast.sh("f0", "hastctl role primary shared && zpool import -f -R / -d /dev/hast hpool")
    hast.write("f0", "winner")
    winner = hast.checksums("f0")
    labctl("heal")
    status = hast.runbook("status", "-e", "ha_status_json=")
    assert "split brain on shared" in status.stdout
    refused = hast.runbook("failover", "-e", "ha_target=f0", check=False)
    assert refused.returncode != 0 and "resync.yml" in refused.stdout
    unconfirmed = hast.runbook("resync", "-e", "ha_target=f0", check=False)
    assert unconfirmed.returncode != 0 and "ha_confirm_resync=f1" in unconfirmed.stdout
    assert sorted(hast.primaries()) == ["f0", "f1"]  # nothing was changed
    hast.runbook("resync", "-e", "ha_target=f0", "-e", "ha_confirm_resync=f1")
    hast.assert_one_writer("f0")
    assert hast.role("f1") == "secondary"
    assert hast.checksums("f0") == winner
    hast.runbook("failover", "-e", "ha_target=f1")
    hast.assert_one_writer("f1")
    assert hast.checksums("f1") == winner
    assert "loser" not in hast.sh("f1", "ls /data/vol")
