# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Periodic replication (role freebsd_ha.storage.zfs_push) in a three-node lab of its own.

The lab has no cron daemon: each test runs the command line of the installed cron file itself, on the node, as
cron would. The leader's job replicates to both followers; a follower's job does nothing; after a move with the
failover runbook the new leader's job takes over. Lab `periodic` of tests/labs.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
HERE = Path(__file__).parent / "periodic"
LAB = lab("periodic")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
ENV = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
NODES = ["f0", "f1", "f2"]
DATASETS = ["zdata/svc/a", "zdata/svc/b"]
CRON_FILE = "/usr/local/etc/cron.d/freebsd_ha_zfs_push"

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args, check=True):
    done = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def sh(node, script, check=True):
    return labctl("exec", node, "--", "sh", "-c", script, check=check)


def ansible_playbook(playbook, *extra, check=True):
    inventory = Path(LAB_DIR) / "ansible"
    argv = [
        "ansible-playbook",
        "-i",
        str(inventory / "inventory.yml"),
        "-i",
        str(HERE / "inventory"),
        str(playbook),
        *extra,
    ]
    env = dict(os.environ, ANSIBLE_CONFIG=str(inventory / "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise AssertionError(f"{playbook} failed ({done.returncode}):\n{done.stdout[-8000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def changed_counts(output):
    """{host: changed=N} from the play recap."""
    counts = {}
    for line in output.splitlines():
        fields = line.split()
        if len(fields) > 3 and fields[1] == ":" and fields[0] in NODES:
            counts[fields[0]] = int(next(f for f in fields if f.startswith("changed=")).split("=")[1])
    return counts


def cron_round(node):
    """Run the command of every line of the node's cron file, as cron would; return (exit status, stderr)."""
    script = f"grep -v '^#' {CRON_FILE} | grep -v '^[A-Z]*=' | cut -f 3- | while read -r line; do sh -c \"$line\" || exit $?; done"
    done = sh(node, script, check=False)
    return done.returncode, done.stderr


def snapshots(node):
    """{dataset: [(short name, guid)]} of the node's resource datasets, oldest first."""
    out = sh(node, "zfs get -H -p -d 1 -o name,property,value guid " + " ".join(DATASETS)).stdout
    found = {dataset: [] for dataset in DATASETS}
    for line in out.splitlines():
        name, _, guid = line.split("\t")
        if "@" in name:
            dataset, short = name.split("@")
            found[dataset].append((short, guid))
    return found


def summary(node):
    return json.loads(sh(node, "cat /var/db/freebsd_ha/zfs_push/svc.json").stdout)


def checksums(node):
    return sh(node, "cd /svc && md5sum a/* b/* | sort").stdout


def writable(node):
    return [d for d in DATASETS if sh(node, f"zfs get -H -o value readonly {d}").stdout.strip() == "off"]


@pytest.fixture(scope="module")
def lab():
    labctl("destroy", check=False)
    labctl("up", "--nodes", "3")
    labctl("inventory", "--dir", str(Path(LAB_DIR) / "ansible"))
    sh("f0", f"sh -s f0 f1 f2 < {HERE / 'seed_leader.sh'}")
    yield
    if os.environ.get("FBSD_HA_E2E_KEEP") != "1":
        labctl("down", check=False)
        labctl("destroy", check=False)


def test_role_installs_the_job_idempotently_and_check_mode_changes_nothing(lab):
    first = ansible_playbook(HERE / "install.yml")
    assert all(count > 0 for count in changed_counts(first).values()), first[-2000:]
    assert set(changed_counts(ansible_playbook(HERE / "install.yml")).values()) == {0}
    assert set(changed_counts(ansible_playbook(HERE / "install.yml", "--check")).values()) == {0}
    for node in NODES:
        lines = [line for line in sh(node, f"cat {CRON_FILE}").stdout.splitlines() if line and line[0] not in "#"]
        job = [line.split("\t") for line in lines if "\t" in line]
        assert job == [
            [
                "* * * * *",
                "root",
                "/usr/local/bin/python3.11 /usr/local/sbin/freebsd-ha-zfs-push "
                "--config /usr/local/etc/freebsd_ha/zfs_push/svc.json",
            ]
        ]


def test_the_leaders_job_replicates_to_both_followers(lab):
    sh("f0", "dd if=/dev/urandom of=/svc/a/round1 bs=1k count=300 status=none && echo b1 > /svc/b/round1")
    assert cron_round("f0") == (0, "")
    newest = {node: {d: snaps[-1] for d, snaps in snapshots(node).items()} for node in NODES}
    assert newest["f0"]["zdata/svc/a"][0].startswith("zfs_push_")
    assert newest["f1"] == newest["f0"] == newest["f2"]
    assert checksums("f1") == checksums("f0") == checksums("f2")
    report = summary("f0")
    assert report["role"] == "writer" and report["errors"] == []
    assert report["bytes_sent"] > 2 * 300 * 1024
    assert writable("f0") == DATASETS and writable("f1") == writable("f2") == []


def test_a_followers_job_does_nothing(lab):
    before = {node: snapshots(node) for node in NODES}
    for node in ("f1", "f2"):
        assert cron_round(node) == (0, "")
        assert summary(node)["role"] == "follower"
    assert {node: snapshots(node) for node in NODES} == before


def test_the_job_keeps_the_last_snapshots_on_each_side(lab):
    for _ in range(5):
        sh("f0", "sleep 1")  # the snapshot name has a one-second resolution
        assert cron_round("f0") == (0, "")
    for node, keep in (("f0", 3), ("f1", 4), ("f2", 4)):
        for dataset, snaps in snapshots(node).items():
            own = [name for name, _ in snaps if name.startswith("zfs_push_")]
            assert len(own) == keep, (node, dataset, snaps)
            assert "seed" in [name for name, _ in snaps]
    assert snapshots("f0")["zdata/svc/a"][-1] == snapshots("f2")["zdata/svc/a"][-1]


def test_a_fenced_leader_does_not_push(lab):
    sh("f0", "zfs set readonly=on zdata/svc/a")
    try:
        before = {node: snapshots(node) for node in NODES}
        status, err = cron_round("f0")
        assert status == 1 and "switch is half done" in err
        assert {node: snapshots(node) for node in NODES} == before
    finally:
        sh("f0", "zfs set readonly=off zdata/svc/a")


def test_after_a_move_the_new_leaders_job_takes_over(lab):
    playbook = ROOT / "playbooks" / "move_leader.yml"
    if not playbook.exists():
        playbook = ROOT / "playbooks" / "failover.yml"
    ansible_playbook(playbook, "-e", "ha_resource=svc", "-e", "ha_target=f1")
    assert writable("f1") == DATASETS and writable("f0") == writable("f2") == []
    sh("f1", "dd if=/dev/urandom of=/svc/a/after-move bs=1k count=200 status=none")
    for node in NODES:  # every node's job runs, as cron runs them; only f1 may send
        assert cron_round(node) == (0, ""), node
    assert summary("f0")["role"] == summary("f2")["role"] == "follower"
    assert summary("f1")["role"] == "writer" and summary("f1")["errors"] == []
    assert checksums("f0") == checksums("f1") == checksums("f2")
    newest = {node: snapshots(node)["zdata/svc/a"][-1] for node in NODES}
    assert newest["f1"][0].startswith("zfs_push_") and newest["f0"] == newest["f1"] == newest["f2"]


def test_state_absent_removes_the_job_and_keeps_the_snapshots(lab):
    before = snapshots("f1")
    ansible_playbook(HERE / "install.yml", "-e", "zfs_push_state=absent")
    for node in NODES:
        assert sh(node, f"test -e {CRON_FILE} || test -e /usr/local/sbin/freebsd-ha-zfs-push", check=False).returncode
    assert snapshots("f1") == before
