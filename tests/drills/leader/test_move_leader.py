# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Drills of leader moves among three nodes (backend zfs): planned moves around the ring, a 20-dataset move that
sends only increments, a leader crash with the best follower promoted, and the rejoin of the old leader.

One lab for the module; the drills run in order and each starts from the state the previous one left (the www
resource's leader goes f0 -> f1 -> f2 -> f0, then crashes). After every step there is at most one writer.
"""

from __future__ import annotations

import pytest
from leader_lab import NODES, labctl, reported

WWW = ("-e", "ha_resource=www")


def assert_one_writer(ring, resource, expected):
    assert ring.writers(resource) == [expected]
    # every dataset of the writer is writable, none elsewhere
    assert sorted(name for _node, name in ring.writable(resource)) == sorted(ring.datasets(resource))


def test_planned_moves_around_the_ring_keep_every_byte_on_every_node(ring):
    ring.seed("www")
    ring.sh("f0", "service mountd onestart >/dev/null; service nfsd onestart >/dev/null")
    assert_one_writer(ring, "www", "f0")
    plan = ring.runbook("move_leader", *WWW, "-e", "ha_target=f1", "--check")
    assert "move to f1: SAFE" in plan.stdout
    assert_one_writer(ring, "www", "f0")
    for step, (leader, target) in enumerate((("f0", "f1"), ("f1", "f2"), ("f2", "f0")), start=1):
        ring.sh(leader, f"dd if=/dev/urandom of=/data/www/site/move{step} bs=1k count=200 status=none")
        before = ring.checksums(leader, "www")
        done = ring.runbook("move_leader", *WWW, "-e", f"ha_target={target}")
        assert reported(done.stdout, "writer") == target
        assert int(reported(done.stdout, "bytes_sent")) > 200 * 1024
        assert_one_writer(ring, "www", target)
        for node in NODES:
            assert ring.checksums(node, "www") == before, node
            site = ring.guids(node, "zdata/www/site")
            assert site == ring.guids(target, "zdata/www/site"), node
        assert "is running" in ring.sh(target, "service nfsd status")
        assert "is not running" in ring.sh(leader, "service nfsd onestatus", check=False)
        assert ring.sh(target, "zfs get -H -o value freebsd-ha:epoch zdata/www/db").strip() == str(step + 1)
    again = ring.runbook("move_leader", *WWW, "-e", "ha_target=f0")
    assert reported(again.stdout, "bytes_sent") == "0"
    assert_one_writer(ring, "www", "f0")


def test_a_move_without_a_target_is_refused_before_any_change(ring):
    done = ring.runbook("move_leader", *WWW, check=False)
    assert done.returncode != 0 and "-e ha_target=<node>" in done.stdout
    assert_one_writer(ring, "www", "f0")


def test_a_move_of_20_datasets_sends_only_increments(ring):
    ring.seed("many", kb=512)
    full = 20 * 512 * 1024
    ring.sh("f0", "for d in /data/many/d0*; do echo late > $d/late; done")
    done = ring.runbook("move_leader", "-e", "ha_resource=many", "-e", "ha_target=f1")
    sent = int(reported(done.stdout, "bytes_sent"))
    assert reported(done.stdout, "datasets_sent") == "40"  # 20 datasets to each of the two followers
    assert 0 < sent < full / 10, f"{sent} bytes sent for 20 datasets of 512 KiB: not only increments"
    assert_one_writer(ring, "many", "f1")


def test_a_leader_crash_promotes_the_follower_with_the_newest_snapshots_and_reports_the_loss(ring):
    # f0 leads www. A periodic snapshot reached f1 only; writes after it reached nobody.
    ring.sh(
        "f0",
        "dd if=/dev/urandom of=/data/www/db/reached-f1 bs=1k count=64 status=none; "
        "for d in site db logs; do zfs snapshot zdata/www/$d@hourly1 && "
        "zfs send -I zdata/www/$d@ha_move_e3 zdata/www/$d@hourly1 | ssh f1 zfs recv -u zdata/www/$d; done; "
        "dd if=/dev/urandom of=/data/www/site/lost bs=1k count=32 status=none; zfs snapshot zdata/www/site@local-only",
    )
    labctl("crash", "f0")
    refused = ring.runbook("failover", *WWW, check=False)
    assert refused.returncode != 0 and "ha_accept_data_loss=true" in refused.stdout
    assert ring.writers("www") == []
    done = ring.runbook("failover", *WWW, "-e", "ha_accept_data_loss=true")
    assert reported(done.stdout, "writer") == "f1"
    assert '"planned": false' in done.stdout and "hourly1" in done.stdout  # the loss window: newest snapshot kept
    assert int(reported(done.stdout, "bytes_sent")) > 0  # f2 was brought in line from f1
    assert_one_writer(ring, "www", "f1")
    for node in ("f1", "f2"):
        listing = ring.sh(node, "ls /data/www/db /data/www/site")
        assert "reached-f1" in listing and "lost" not in listing
    assert ring.checksums("f2", "www") == ring.checksums("f1", "www")
    assert ring.sh("f2", "zfs get -H -o value freebsd-ha:writer zdata/www/site").strip() == "f1"


def test_the_returning_old_leader_rejoins_with_its_diverged_writes_kept_in_a_rescue(ring):
    if labctl("up", "--nodes", "3", check=False).returncode != 0:
        labctl("up", "--nodes", "3")
    # f0 boots writable with its own older epoch (the state a crash leaves); the first runbook fences it first.
    assert ring.writers("www") == ["f0", "f1"]
    done = ring.runbook("rejoin", *WWW)
    assert "a returning old writer" in done.stdout
    rescues = reported(done.stdout, "rescues")
    assert "zdata/www/site_rescue_" in done.stdout, rescues
    assert_one_writer(ring, "www", "f1")
    assert ring.checksums("f0", "www") == ring.checksums("f1", "www")
    kept = ring.sh("f0", "zfs list -H -t snapshot -o name -r zdata/www | grep _rescue_")
    assert "local-only" in kept  # the old leader's own snapshot survives in the rescue dataset
    rescue = ring.sh("f0", "zfs list -H -o name -r zdata/www | grep site_rescue_").split()[0]
    ring.sh("f0", f"zfs set mountpoint=/var/rescue-site {rescue} && zfs mount {rescue}")
    assert "lost" in ring.sh("f0", "ls /var/rescue-site")
    # f0 follows again: the ring moves on.
    ring.runbook("move_leader", *WWW, "-e", "ha_target=f0")
    assert_one_writer(ring, "www", "f0")


@pytest.fixture(autouse=True)
def never_two_writers(ring):
    """After every drill, whatever happened: no resource has two writable copies."""
    yield
    for resource in ("www", "many"):
        assert len(ring.writers(resource)) <= 1, resource
