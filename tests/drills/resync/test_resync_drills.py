# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills of resync.yml, of a write forced into the read-only replica, and of failback's byte bound."""

from __future__ import annotations

import time

from resync_lab import ORIGIN, REPLICA, report

FORCE_WRITE = (
    "zfs set readonly=off {name} && dd if=/dev/urandom of=/data/nfs/forced bs=1k count=100 status=none "
    "&& zfs set readonly=on {name}"
)


def rescues(pair):
    return pair.sh("f1", f"zfs list -H -o name -t filesystem | grep '^{REPLICA}_rescue_' || true").split()


def lose_every_common_snapshot(pair):
    """Destroy f0's snapshots the replica has, as an over-eager pruning would: no common snapshot is left."""
    for snap in pair.sh("f0", f"zfs list -H -t snapshot -o name -d 1 {ORIGIN}").split():
        pair.sh("f0", f"zfs destroy {snap}")
    pair.snapshot(32)


def test_resync_without_confirmation_refuses_and_changes_nothing_then_re_seeds_keeping_a_rescue(pair):
    pair.snapshot(64)
    pair.zrepl_wakeup()
    lose_every_common_snapshot(pair)
    assert "shares no snapshot" in pair.runbook("status").stdout
    before = {node: pair.datasets(node) for node in ("f0", "f1")}
    refused = pair.runbook("resync", check=False)
    assert refused.returncode != 0 and "-e ha_confirm_resync=f1" in refused.stdout
    assert {node: pair.datasets(node) for node in ("f0", "f1")} == before
    assert "running" in pair.sh("f0", "service zrepl status")

    done = report(pair.runbook("resync", "-e", "ha_confirm_resync=f1").stdout)
    assert pair.writable() == ["f0"]
    assert done["rescues"] == rescues(pair) and len(done["rescues"]) == 1
    # The old copy is kept whole: its snapshots and files.
    assert "zrepl_20261121_120100_000" in pair.sh("f1", f"zfs list -H -t snapshot -o name -d 1 {done['rescues'][0]}")
    assert done["holds_released"]["f1"], "the replica's last-received hold was not reported"
    assert pair.checksums("f1") == pair.checksums("f0")
    assert pair.sh("f1", f"zfs get -H -o value readonly,mounted,mountpoint,freebsd-ha:writer {REPLICA}").split() == [
        "on",
        "yes",
        "/data/nfs",
        "f0",
    ]

    # zrepl continues incrementally from the resync snapshot: the replica's base is not sent again.
    (seed,) = done["snapshots"]
    seed_guid = pair.sh("f1", f"zfs get -H -o value guid {REPLICA}@{seed}")
    later = pair.snapshot(128)
    pair.zrepl_wakeup()
    assert pair.sh("f1", f"zfs get -H -o value guid {REPLICA}@{seed}") == seed_guid
    assert later in pair.sh("f1", f"zfs list -H -t snapshot -o name -d 1 {REPLICA}")
    assert pair.checksums("f1") == pair.checksums("f0")

    again = report(pair.runbook("resync", "-e", "ha_confirm_resync=f1").stdout)
    assert again["reseeded"] == [] and rescues(pair) == done["rescues"]


def test_resync_killed_at_any_moment_finishes_on_re_run_with_one_writer_and_one_rescue(pair):
    lose_every_common_snapshot(pair)
    for delay in (3.0, 8.0, 14.0, 20.0):
        run = pair.popen_runbook("resync", "-e", "ha_confirm_resync=f1", "-e", "ha_resync_poll_interval=1")
        time.sleep(delay)
        run.kill()
        run.wait()
        assert pair.writable() == ["f0"]
    done = report(pair.runbook("resync", "-e", "ha_confirm_resync=f1").stdout)
    assert pair.writable() == ["f0"]
    assert len(rescues(pair)) == 1
    assert pair.checksums("f1") == pair.checksums("f0")
    assert pair.sh("f1", f"zfs get -H -o value freebsd-ha:resync {REPLICA}").strip().startswith("ha_resync_")
    assert "running" in pair.sh("f1", "service zrepl status")
    assert done["writer"] == "f0"


def test_a_write_forced_into_the_replica_is_refused_by_failover_and_named_by_status(pair):
    pair.sh("f1", FORCE_WRITE.format(name=REPLICA))
    assert "resync" in pair.runbook("status").stdout.split("WARNING", 1)[-1]
    refused = pair.runbook("failover", check=False)
    assert refused.returncode != 0 and "resync.yml" in refused.stdout
    assert pair.writable() == ["f0"]


def test_a_write_forced_into_the_replica_is_repaired_by_a_requested_resync_then_failover_works(pair):
    pair.sh("f1", FORCE_WRITE.format(name=REPLICA))
    # zfs-fuse cannot measure the write (no 'written'): the replica looks in sync, so the re-seed is requested.
    assert report(pair.runbook("resync", "-e", "ha_confirm_resync=f1").stdout)["reseeded"] == []
    done = report(pair.runbook("resync", "-e", "ha_confirm_resync=f1", "-e", "ha_resync_force=true").stdout)
    # The rescue holds the forced 100 KiB on top of what the new copy holds.
    rows = pair.sh("f1", f"zfs get -H -p -o name,value referenced {done['rescues'][0]} {REPLICA}").split()
    sizes = {name: int(value) for name, value in zip(rows[::2], rows[1::2])}
    assert sizes[done["rescues"][0]] - sizes[REPLICA] >= 100 * 1024, sizes
    before = pair.checksums("f0")
    pair.runbook("failover")
    assert pair.writable() == ["f1"]
    assert pair.checksums("f1") == before


def test_failback_keeps_a_write_forced_into_the_old_primary_in_a_rescue(pair):
    pair.runbook("failover")
    pair.sh("f0", FORCE_WRITE.format(name=ORIGIN))
    before = pair.checksums("f1")
    done = report(pair.runbook("failback").stdout)
    assert pair.writable() == ["f0"]
    assert pair.checksums("f0") == before
    assert done["rescues"], "the forced write was not kept in a rescue"


def test_failback_of_200_mb_after_1_mb_of_writes_sends_under_5_mb(pair):
    pair.sh("f0", "dd if=/dev/urandom of=/data/nfs/big bs=1M count=200 status=none")
    pair.snapshot()
    pair.zrepl_wakeup()
    pair.runbook("failover")
    pair.sh("f1", "dd if=/dev/urandom of=/data/nfs/while-away bs=1k count=1024 status=none")
    common = pair.sh("f0", f"zfs list -H -t snapshot -o name -s createtxg -d 1 {ORIGIN}").split()[-1].split("@")[1]
    done = report(pair.runbook("failback").stdout)
    assert pair.writable() == ["f0"]
    sent = done["bytes_sent"]
    if not sent:
        # zfs-fuse has no `send -P` and the runbook reports no count: count the increment failback had to send
        # (from the last common snapshot to its final one) by sending it again into wc.
        sent = int(pair.sh("f1", f"zfs send -I {REPLICA}@{common} {REPLICA}@ha_failback_e2 | wc -c"))
    assert 1024 * 1024 < sent < 5 * 1024 * 1024, sent
    assert "ha_failback_e2" in pair.sh("f0", f"zfs list -H -t snapshot -o name -d 1 {ORIGIN}")


def test_failback_releases_and_reports_the_zrepl_holds_the_other_direction_left(pair):
    seed = "zrepl_20261121_120000_000"
    pair.runbook("failover")
    # As left by replication f1 -> f0 while f1 was the writer: a last-received hold on the origin, a step hold on
    # the follower. The follower's own last-received hold is zrepl's cursor for f0 -> f1 and stays.
    pair.sh("f0", f"zfs hold zrepl_last_received_J_back_sink {ORIGIN}@{seed}")
    pair.sh(
        "f1",
        f"zfs hold zrepl_STEP_J_back_push {REPLICA}@{seed} && zfs hold zrepl_last_received_J_nfs_sink {REPLICA}@{seed}",
    )
    done = pair.runbook("failback")
    assert "zrepl_last_received_J_back_sink" in done.stdout and "zrepl_STEP_J_back_push" in done.stdout
    assert pair.sh("f0", f"zfs holds -H {ORIGIN}@{seed}").strip() == ""
    assert pair.sh("f1", f"zfs holds -H {REPLICA}@{seed}").split()[1] == "zrepl_last_received_J_nfs_sink"
    assert len(pair.sh("f1", f"zfs holds -H {REPLICA}@{seed}").splitlines()) == 1
