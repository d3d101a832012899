"""End-to-end tests of the lab itself (tests/lab/labctl): a real 3-node lab, real ssh, real zfs-fuse.

Needs root, /dev/fuse, zfs-fuse, sshd and nftables (scripts/install). The lab starts once for the
module, in its own dir (FBSD_HA_LAB_DIR=/srv/fbsd-ha-lab-test), so a developer's lab is untouched;
the last tests take it down and check that nothing is left behind. Run with scripts/stage-lab.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from labs import lab

HERE = Path(__file__).resolve().parent
LABCTL = HERE / "labctl"
LAB = lab("labctl-test")
LAB_DIR = LAB.dir
NODES = ["f0", "f1", "f2"]
# Its own loopback net too, so it can run while a developer's (127.0.10.x) or another lab is up.
NET = LAB.net
ENV = {**os.environ, "FBSD_HA_LAB_DIR": str(LAB_DIR), "FBSD_HA_LAB_NET": NET}
ENV.pop("FBSD_HA_LAB_STANDINS", None)
# The venv that runs pytest also has ansible; nodes never see it.
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args, check=True, env=None, timeout=120):
    result = subprocess.run(
        [str(LABCTL), *args], env=env or ENV, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"labctl {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def node(name, script, check=True, timeout=60):
    return labctl("exec", name, "--", "/bin/sh", "-c", script, check=check, timeout=timeout)


def status():
    return {n["name"]: n for n in json.loads(labctl("status", "--json").stdout)["nodes"]}


def ns_inodes():
    return {n["mntns"] for n in status().values() if n["mntns"]}


def processes_in(inodes):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}/ns/mnt").st_ino in inodes:
                    found.append(int(entry))
            except OSError:
                pass
    return found


@pytest.fixture(scope="module")
def lab():
    labctl("destroy", check=False)
    started = time.monotonic()
    try:
        labctl("up", "--nodes", "3")
        took = time.monotonic() - started
        paths = labctl("inventory").stdout.split()
        yield {
            "up_seconds": took,
            "inventory": Path(paths[0]),
            "ansible_cfg": Path(paths[2]),
            "ssh_config": Path(paths[1]),
        }
    finally:
        labctl("destroy", check=False)


def test_up_starts_three_running_nodes_in_seconds(lab):
    nodes = status()
    assert sorted(nodes) == NODES
    assert {n["state"] for n in nodes.values()} == {"running"}
    assert [nodes[n]["address"] for n in NODES] == [f"{NET}.1", f"{NET}.2", f"{NET}.3"]
    assert lab["up_seconds"] < 10


def test_second_up_is_a_no_op_that_keeps_the_same_processes(lab):
    before = {n: v["pids"] for n, v in status().items()}
    out = labctl("up").stdout
    assert out.count("already running") == 3
    assert {n: v["pids"] for n, v in status().items()} == before


def test_every_node_has_its_own_hostname_and_pool(lab):
    for name in NODES:
        out = node(name, "hostname; zpool list -H -o name,health; zfs get -H -o value mounted zdata").stdout.split()
        assert out == [name, "zdata", "ONLINE", "yes"]


def test_exec_passes_the_exit_code_through(lab):
    assert node("f1", "exit 7", check=False).returncode == 7


def test_node_json_and_hosts_describe_the_whole_lab(lab):
    info = json.loads(node("f2", "cat /run/fbsd-lab/node.json").stdout)
    assert info["name"] == "f2" and info["address"] == f"{NET}.3" and info["index"] == 2
    assert info["nodes"] == {"f0": f"{NET}.1", "f1": f"{NET}.2", "f2": f"{NET}.3"}
    hosts = node("f2", "getent hosts f0 f1.lab").stdout.split()
    assert f"{NET}.1" in hosts and f"{NET}.2" in hosts


def test_host_sbin_is_the_real_read_only_usr_sbin(lab):
    out = node(
        "f0", "test -x /run/fbsd-lab/host-sbin/zfs && touch /run/fbsd-lab/host-sbin/x 2>&1; echo rc=$?", check=False
    ).stdout
    assert "Read-only file system" in out and "rc=1" in out


def test_setup_reports_freebsd_on_every_node(lab):
    env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(lab["ansible_cfg"]),
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.minimal",
        "ANSIBLE_NOCOLOR": "1",
        "PATH": f"{BIN}:{os.environ['PATH']}",
    }
    result = subprocess.run(
        [str(BIN / "ansible"), "all", "-m", "ansible.builtin.setup"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    # minimal callback: "<host> | SUCCESS => {json}" per host
    parts = re.split(r"^(\S+) \| SUCCESS => ", result.stdout, flags=re.MULTILINE)[1:]
    hosts = {parts[i]: json.loads(parts[i + 1]) for i in range(0, len(parts), 2)}
    assert sorted(hosts) == NODES
    for name, host in hosts.items():
        facts = host["ansible_facts"]
        assert (facts["ansible_system"], facts["ansible_os_family"], facts["ansible_distribution"]) == (
            "FreeBSD",
            "FreeBSD",
            "FreeBSD",
        ), name
        assert facts["ansible_distribution_version"] == "14.2"
        assert facts["ansible_hostname"] == name


def test_freebsd_python_keeps_linux_sys_platform_and_real_pip(lab):
    out = node(
        "f0",
        "/usr/local/bin/python3.11 -c 'import sys, os, ctypes; "
        'print(sys.platform, os.uname().sysname, os.environ.get("PYTHONPATH"))\'',
    ).stdout.split()
    assert out == ["linux", "FreeBSD", "None"]
    assert "pip" in node("f0", "/usr/local/bin/python3.11 -m pip --version").stdout
    assert node("f0", "/usr/bin/python3 -c 'import os; print(os.uname().sysname)'").stdout.strip() == "Linux"


def test_a_file_written_in_etc_on_f0_is_seen_nowhere_else(lab):
    node("f0", "echo f0-only > /etc/lab-test-marker && echo f0-only > /usr/local/etc/lab-test-marker")
    assert node("f0", "cat /etc/lab-test-marker").stdout.strip() == "f0-only"
    for other in ("f1", "f2"):
        assert (
            node(
                other, "test -e /etc/lab-test-marker || test -e /usr/local/etc/lab-test-marker", check=False
            ).returncode
            == 1
        )
    assert not Path("/etc/lab-test-marker").exists()
    assert not Path("/usr/local/etc/lab-test-marker").exists()
    assert (LAB_DIR / "nodes/f0/ov/etc/upper/lab-test-marker").exists()


def test_zfs_send_over_ssh_from_f0_to_f1_keeps_the_data(lab):
    node(
        "f0",
        "zfs create -p zdata/src && dd if=/dev/urandom of=/zdata/src/blob bs=1M count=8 status=none"
        " && zfs snapshot zdata/src@s1",
    )
    node("f1", "zfs create -p zdata/sink/f0")
    node("f0", "zfs send zdata/src@s1 | ssh f1 zfs recv -u zdata/sink/f0/src")
    node("f1", "zfs mount zdata/sink/f0/src")
    sums = [
        node(n, f"md5sum {p}").stdout.split()[0]
        for n, p in (("f0", "/zdata/src/blob"), ("f1", "/zdata/sink/f0/src/blob"))
    ]
    assert sums[0] == sums[1]


def test_readonly_on_a_mounted_replica_is_enforced_and_reported_as_freebsd_does(lab):
    # zfs-fuse itself reports "off temporary" here; the lab zfs wrapper answers with the stored value.
    node("f1", "zfs set readonly=on zdata/sink/f0/src")
    assert node("f1", "touch /zdata/sink/f0/src/new", check=False).returncode != 0
    assert node("f1", "zfs get -H -o value,source readonly zdata/sink/f0/src").stdout.split() == ["on", "local"]
    assert node("f1", "zfs list -H -o readonly zdata/sink/f0/src").stdout.split() == ["on"]
    node("f1", "zfs inherit readonly zdata/sink/f0/src")
    assert node("f1", "zfs get -H -o source readonly zdata/sink/f0/src").stdout.split() != ["local"]


def test_several_snapshots_in_one_call_are_taken_all_or_none_as_openzfs_does(lab):
    node("f2", "zfs create -p zdata/multi/a && zfs create zdata/multi/b")
    node("f2", "zfs snapshot zdata/multi/a@one zdata/multi/b@one")
    listed = node("f2", "zfs list -H -t snapshot -o name -r zdata/multi").stdout.split()
    assert listed == ["zdata/multi/a@one", "zdata/multi/b@one"]
    refused = node("f2", "zfs snapshot zdata/multi/a@two zdata/multi/nosuch@two", check=False)
    assert refused.returncode != 0 and "dataset does not exist" in refused.stderr
    assert "zdata/multi/a@two" not in node("f2", "zfs list -H -t snapshot -o name -r zdata/multi").stdout


def test_written_is_what_a_dataset_changed_after_its_newest_snapshot_as_openzfs_reports_it(lab):
    node("f2", "zfs create -p zdata/wr && zfs snapshot zdata/wr@base")
    node("f2", "dd if=/dev/urandom of=/zdata/wr/new bs=1k count=100 status=none && zfs set readonly=on zdata/wr")
    written = int(node("f2", "zfs get -H -p -o value written zdata/wr").stdout)
    assert 100 * 1024 <= written < 200 * 1024
    node("f2", "zfs snapshot zdata/wr@after")
    assert node("f2", "zfs get -H -p -o value written zdata/wr").stdout.strip() == "0"


def test_ssh_between_nodes_comes_from_the_node_address(lab):
    assert node("f0", "ssh f2 hostname").stdout.strip() == "f2"
    assert f"from {NET}.1 " in (LAB_DIR / "nodes/f2/logs/sshd.log").read_text()


def test_crash_then_up_brings_f0_back_with_its_data(lab):
    digest = node("f0", "md5sum /zdata/src/blob").stdout.split()[0]
    old_ns = status()["f0"]["mntns"]
    labctl("crash", "f0")
    assert status()["f0"]["state"] == "crashed"
    assert processes_in({old_ns}) == []
    labctl("up")
    assert status()["f0"]["state"] == "running"
    assert node("f0", "zpool status -x").stdout.strip() == "all pools are healthy"
    assert node("f0", "md5sum /zdata/src/blob").stdout.split()[0] == digest
    assert node("f0", "zfs list -H -o name -t snapshot").stdout.split() == ["zdata/src@s1"]


def test_restart_is_a_clean_down_and_up_of_one_node(lab):
    before = status()
    labctl("restart", "f2")
    after = status()
    assert after["f2"]["state"] == "running" and after["f2"]["pids"]["init"] != before["f2"]["pids"]["init"]
    assert after["f1"]["pids"] == before["f1"]["pids"]
    assert node("f0", "ssh f2 hostname").stdout.strip() == "f2"


def test_partition_cuts_f0_from_f1_but_not_from_f2_until_healed(lab):
    labctl("partition", "f0", "f1")
    try:
        assert json.loads((LAB_DIR / "shared/partitions.json").read_text()) == [["f0", "f1"]]
        assert node("f0", "cat /run/fbsd-lab/shared/partitions.json").stdout.strip() == '[["f0", "f1"]]'
        assert node("f0", "ssh -o ConnectTimeout=2 f1 true", check=False).returncode == 255
        assert node("f1", "ssh -o ConnectTimeout=2 f0 true", check=False).returncode == 255
        assert node("f0", "ssh -o ConnectTimeout=2 f2 hostname").stdout.strip() == "f2"
    finally:
        labctl("heal")
    assert json.loads((LAB_DIR / "shared/partitions.json").read_text()) == []
    assert node("f0", "ssh -o ConnectTimeout=5 f1 hostname").stdout.strip() == "f1"


def test_stand_ins_from_the_manifest_land_only_in_node_overlays(lab, tmp_path):
    probe = tmp_path / "standins"
    probe.mkdir()
    (probe / "hello").write_text("#!/bin/sh\necho hello from $(hostname) --lab-version\n")
    (probe / "boot").write_text("#!/bin/sh\nmkdir -p /var/db && date > /var/db/fbsd-lab-booted\n")
    (probe / "MANIFEST").write_text(
        "hello /usr/local/sbin/lab-hello\nboot /usr/local/libexec/fbsd-lab/boot\n"
        "missing /usr/sbin/missing\nhello /opt/outside\n"
    )
    env = {**ENV, "FBSD_HA_LAB_STANDINS": str(probe)}
    result = labctl("up", env=env)
    assert "/opt/outside is outside the node overlays" in result.stderr
    assert node("f1", "lab-hello").stdout.strip() == "hello from f1 --lab-version"
    assert not Path("/usr/local/sbin/lab-hello").exists() and not Path("/opt/outside").exists()
    assert node("f1", "test -e /usr/sbin/missing", check=False).returncode == 1
    labctl("restart", "f1", env=env)
    assert node("f1", "test -s /var/db/fbsd-lab-booted", check=False).returncode == 0
    labctl("restart", "f1")


def test_labctl_refuses_a_lab_dir_under_tmp():
    result = labctl("up", check=False, env={**ENV, "FBSD_HA_LAB_DIR": "/tmp/fbsd-lab-x"})
    assert result.returncode == 2 and "is under /tmp" in result.stderr
    assert not Path("/tmp/fbsd-lab-x").exists()


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs setpriv")
def test_labctl_explains_that_it_needs_root():
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, str(LABCTL), "up"],
        env={**ENV, "FBSD_HA_LAB_DIR": "/srv/fbsd-ha-lab-nobody"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2 and "must run as root" in result.stderr


def test_down_leaves_no_process_and_no_mount_behind(lab):
    inodes = ns_inodes()
    assert len(inodes) == 3
    labctl("partition", "f0", "f2")
    labctl("down")
    assert {n["state"] for n in status().values()} == {"down"}
    assert processes_in(inodes) == []
    mountinfo = Path("/proc/self/mountinfo").read_text()
    assert str(LAB_DIR) not in mountinfo
    assert not [line for line in mountinfo.splitlines() if " - fuse" in line or "fbsd-lab" in line]
    tables = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True, check=True).stdout
    assert LAB_DIR.name.replace("-", "_") not in tables
    assert json.loads((LAB_DIR / "shared/partitions.json").read_text()) == []


def test_second_down_is_a_no_op(lab):
    result = labctl("down")
    assert "already down" in result.stderr


def test_up_after_down_reimports_the_pools_with_their_data(lab):
    labctl("up")
    assert node("f1", "zfs mount zdata/sink/f0/src 2>/dev/null; md5sum /zdata/sink/f0/src/blob").returncode == 0
    labctl("down")
