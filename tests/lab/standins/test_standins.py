"""Contract tests for the lab stand-ins: FreeBSD output shapes, error texts and exit codes.

Each stand-in runs as a subprocess against an emulated node root (FBSD_LAB_ROOT). The zfs
wrapper tests start a private zfs-fuse in their own mount namespace (root required); they fail,
never skip, when that is impossible.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"
MANIFEST = [line.split() for line in (HERE / "MANIFEST").read_text().splitlines() if line.strip()]
# Lab rc.d scripts are declarative files the service stand-in reads, never runs: not tools.
RC_SCRIPTS = [name for name, dest in MANIFEST if "/rc.d/" in dest]
EXECUTABLES = [name for name, _dest in MANIFEST if not name.endswith(".py") and name not in RC_SCRIPTS]
CARP_RE = re.compile(r"^\s*carp:\s+(INIT|BACKUP|MASTER)\s+vhid\s+(\d+)\s+advbase\s+(\d+)\s+advskew\s+(\d+)$")
PEER_RE = re.compile(r"^\s+peer \S+ peer6 \S+$")


def fixture(name: str) -> str:
    return (FIXTURES / name).read_text()


class Node:
    """An emulated node root: its own /etc, /var, /run; /run/fbsd-lab/shared is common."""

    def __init__(self, base: Path, shared: Path, name: str, index: int, names: list[str]):
        self.root = base / name
        self.name = name
        (self.root / "run/fbsd-lab").mkdir(parents=True)
        (self.root / "etc").mkdir()
        (self.root / "var/run").mkdir(parents=True)
        (self.root / "run/fbsd-lab/shared").symlink_to(shared)
        (self.root / "run/fbsd-lab/host-sbin").symlink_to("/usr/sbin")
        nodes = {n: f"127.0.10.{i + 1}" for i, n in enumerate(names)}
        (self.root / "run/fbsd-lab/node.json").write_text(
            json.dumps({"name": name, "address": nodes[name], "index": index, "nodes": nodes})
        )

    def run(self, tool: str, *args: str, check: bool = False, ns_pid: int | None = None):
        env = dict(os.environ, FBSD_LAB_ROOT=str(self.root), LC_ALL="C", TZ="UTC")
        argv = [str(HERE / tool), *args]
        if ns_pid:
            argv = ["nsenter", "-t", str(ns_pid), "-m", "--", *argv]
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, check=False)
        if check:
            assert proc.returncode == 0, proc.stderr
        return proc

    def crash(self) -> None:
        """Kill the node's processes the stand-ins started (the CARP anchor), like a crash."""
        rec = json.loads((self.root / "var/run/fbsd-lab/carp-anchor.json").read_text())
        os.kill(rec["pid"], signal.SIGKILL)
        time.sleep(0.05)

    def cleanup(self) -> None:
        anchor = self.root / "var/run/fbsd-lab/carp-anchor.json"
        if anchor.exists():
            try:
                os.kill(json.loads(anchor.read_text())["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture
def lab(tmp_path):
    made: list[Node] = []
    shared = tmp_path / "shared"
    shared.mkdir()

    def make(n: int = 1) -> list[Node]:
        names = [f"f{i}" for i in range(n)]
        made.extend(Node(tmp_path, shared, name, i, names) for i, name in enumerate(names))
        return made

    make.shared = shared
    yield make
    for node in made:
        node.cleanup()


@pytest.fixture
def node(lab):
    return lab(1)[0]


# ---- common -----------------------------------------------------------------------------------


def test_manifest_entries_exist_and_use_the_debian_python():
    for name, dest in MANIFEST:
        path = HERE / name
        assert path.is_file(), name
        assert dest.startswith("/")
        if name in EXECUTABLES:
            assert os.access(path, os.X_OK), name
            assert path.read_text().splitlines()[0] == "#!/usr/bin/python3", name


@pytest.mark.parametrize("script", RC_SCRIPTS)
def test_every_lab_rc_script_names_its_service_rcvar_and_command(script):
    text = (HERE / script).read_text()
    for key in ("name", "rcvar", "command"):
        assert re.search(rf"^{key}=\S+", text, re.MULTILINE), f"{script} lacks {key}="


@pytest.mark.parametrize("tool", EXECUTABLES)
def test_every_standin_identifies_itself(node, tool):
    proc = node.run(tool, "--lab-version", check=True)
    assert re.match(rf"^{re.escape(tool)}: freebsd_ha\.storage lab stand-in; emulates .+\n$", proc.stdout)


# ---- sysrc ------------------------------------------------------------------------------------


def test_sysrc_assignments_print_old_and_new_value_as_in_the_sample(node):
    sample = [ln for ln in fixture("sysrc-zfskeys-foozone.txt").splitlines() if not ln.startswith("paul@")]
    node.run("sysrc", "zfskeys_enable=YES", check=True)
    first = node.run("sysrc", "zfskeys_enable=YES", check=True).stdout.splitlines()
    second = node.run(
        "sysrc", "zfskeys_datasets=zdata/enc zdata/enc/nfsdata zroot/bhyve", check=True
    ).stdout.splitlines()
    assert first + second == sample


def test_sysrc_first_assignment_shows_an_empty_old_value(node):
    assert node.run("sysrc", "zrepl_enable=YES").stdout == "zrepl_enable:  -> YES\n"
    assert (node.root / "etc/rc.conf").read_text() == 'zrepl_enable="YES"\n'


def test_sysrc_queries(node):
    node.run("sysrc", "hostname=f0", check=True)
    assert node.run("sysrc", "hostname").stdout == "hostname: f0\n"
    assert node.run("sysrc", "-n", "hostname").stdout == "f0\n"
    assert node.run("sysrc", "-e", "hostname").stdout == 'hostname="f0"\n'
    assert node.run("sysrc", "-f", "/etc/rc.conf", "hostname").stdout == "hostname: f0\n"


def test_sysrc_unknown_variable_fails_with_the_freebsd_text(node):
    proc = node.run("sysrc", "-n", "nosuch_enable")
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", "sysrc: unknown variable 'nosuch_enable'\n")
    assert node.run("sysrc", "-x", "nosuch_enable").stderr == "sysrc: unknown variable 'nosuch_enable'\n"
    assert node.run("sysrc", "-i", "nosuch_enable").returncode == 0


def test_sysrc_check_delete_and_append(node):
    node.run("sysrc", "kld_list=carp", check=True)
    assert node.run("sysrc", "-c", "kld_list=carp").returncode == 0
    assert node.run("sysrc", "-c", "kld_list=pf").returncode == 1
    assert node.run("sysrc", "kld_list+= pf").stdout == "kld_list: carp -> carp pf\n"
    assert node.run("sysrc", "kld_list-= carp").stdout == "kld_list: carp pf -> pf\n"
    assert node.run("sysrc", "-x", "kld_list").returncode == 0
    assert node.run("sysrc", "kld_list").returncode == 1


def test_sysrc_edits_the_file_that_already_sets_the_variable(node):
    (node.root / "etc/rc.conf.local").write_text('zrepl_enable="NO"\n')
    node.run("sysrc", "zrepl_enable=YES", check=True)
    assert (node.root / "etc/rc.conf.local").read_text() == 'zrepl_enable="YES"\n'
    assert not (node.root / "etc/rc.conf").exists()


# ---- service ----------------------------------------------------------------------------------

LABD = """#!/bin/sh
# PROVIDE: labd
name="labd"
rcvar="labd_enable"
command="/bin/sleep"
command_args="300"
pidfile="/var/run/${name}.pid"
: ${labd_enable:="NO"}
"""


@pytest.fixture
def labd(node):
    script = node.root / "usr/local/etc/rc.d/labd"
    script.parent.mkdir(parents=True)
    script.write_text(LABD)
    script.chmod(0o755)
    yield node
    pidfile = node.root / "var/run/labd.pid"
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_service_answers_the_ansible_freebsd_sequence(labd):
    node = labd
    rcvar = node.run("service", "labd", "rcvar")
    assert rcvar.stdout == '# labd\n#\nlabd_enable="NO"\n#   (default: "")\n\n'
    assert node.run("sysrc", "-n", "labd_enable").returncode == 1
    assert node.run("sysrc", "labd_enable=YES").stdout == "labd_enable:  -> YES\n"
    assert node.run("service", "labd", "enabled").returncode == 0
    status = node.run("service", "labd", "onestatus")
    assert (status.returncode, status.stdout) == (1, "labd is not running.\n")
    start = node.run("service", "labd", "onestart")
    assert (start.returncode, start.stdout) == (0, "Starting labd.\n")
    pid = int((node.root / "var/run/labd.pid").read_text())
    assert node.run("service", "labd", "status").stdout == f"labd is running as pid {pid}.\n"
    assert node.run("service", "-e").stdout == "/usr/local/etc/rc.d/labd\n"


def test_service_refuses_a_disabled_service_with_the_rc_subr_text(labd):
    proc = labd.run("service", "labd", "start")
    assert proc.stdout == (
        "Cannot 'start' labd. Set labd_enable to YES in /etc/rc.conf or use 'onestart' instead of 'start'.\n"
    )
    assert labd.run("service", "labd", "enabled").returncode == 1


def test_service_stop_kills_the_daemon_and_start_twice_fails(labd):
    labd.run("service", "labd", "onestart", check=True)
    again = labd.run("service", "labd", "onestart")
    assert again.returncode == 1 and re.match(r"^labd already running\? \(pid=\d+\)\.\n$", again.stderr)
    pid = int((labd.root / "var/run/labd.pid").read_text())
    stop = labd.run("service", "labd", "onestop")
    assert stop.stdout == f"Stopping labd.\nWaiting for PIDS: {pid}.\n"
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert labd.run("service", "labd", "onestatus").returncode == 1


def test_service_unknown_script(node):
    proc = node.run("service", "nosuch", "start")
    assert proc.returncode == 1 and proc.stderr.startswith("nosuch does not exist in /etc/rc.d")


# ---- boot -------------------------------------------------------------------------------------

# A one-shot rc.d script as rc.subr writes them (start_cmd); the lab boot runs its command and waits.
ONESHOT = """#!/bin/sh
# PROVIDE: {name}
# REQUIRE: {require}
# BEFORE: {before}
. /etc/rc.subr
name="{name}"
rcvar="{name}_enable"
command="{command}"
command_args="{name} {action}"
start_cmd="{name}_start"
stop_cmd=":"
{name}_start()
{{
\t${{command}} ${{rc_flags}} ${{command_args}}
}}
load_rc_config $name
: ${{{name}_enable:="NO"}}
run_rc_command "$1"
"""
# Records its name; "fence" keeps labd from starting through labd's rc.conf.d file, "sysrc" edits rc.conf.
RECORDER = """#!/bin/sh
echo "$1" >> "$FBSD_LAB_ROOT/order"
case "$2" in
fence) mkdir -p "$FBSD_LAB_ROOT/usr/local/etc/rc.conf.d"
       echo 'labd_enable="NO"' > "$FBSD_LAB_ROOT/usr/local/etc/rc.conf.d/labd" ;;
sysrc) echo 'labd_enable="NO"' >> "$FBSD_LAB_ROOT/etc/rc.conf" ;;
esac
"""


def oneshot(node, name, action="none", require="", before=""):
    recorder = node.root / "recorder"
    recorder.write_text(RECORDER)
    recorder.chmod(0o755)
    script = node.root / "usr/local/etc/rc.d" / name
    script.parent.mkdir(parents=True, exist_ok=True)
    script.write_text(ONESHOT.format(name=name, command=recorder, action=action, require=require, before=before))
    script.chmod(0o755)


def booted_labd(node):
    pidfile = node.root / "var/run/labd.pid"
    return pidfile.exists() and Path(f"/proc/{pidfile.read_text().strip()}").exists()


def test_boot_runs_a_one_shot_before_what_it_names_and_its_rc_conf_d_file_keeps_labd_down(labd):
    oneshot(labd, "aguard", "fence", require="FILESYSTEMS", before="labd")
    (labd.root / "etc/rc.conf").write_text('labd_enable="YES"\naguard_enable="YES"\n')
    labd.run("boot", check=True)
    assert (labd.root / "order").read_text() == "aguard\n"
    assert not booted_labd(labd)


def test_boot_reads_rc_conf_once_so_a_script_editing_it_does_not_stop_a_later_one(labd):
    oneshot(labd, "aguard", "sysrc", before="labd")
    (labd.root / "etc/rc.conf").write_text('labd_enable="YES"\naguard_enable="YES"\n')
    labd.run("boot", check=True)
    assert booted_labd(labd)
    assert labd.run("service", "labd", "enabled").returncode == 1  # the next boot sees the edit


def test_boot_orders_scripts_by_require_not_by_name(node):
    oneshot(node, "alpha", require="zulu")
    oneshot(node, "zulu")
    oneshot(node, "mike", before="alpha")
    oneshot(node, "off", before="alpha")
    (node.root / "etc/rc.conf").write_text('alpha_enable="YES"\nzulu_enable="YES"\nmike_enable="YES"\n')
    node.run("boot", check=True)
    assert (node.root / "order").read_text().split() == ["zulu", "mike", "alpha"]


def test_boot_configures_carp_from_the_netif_fragment_with_carp_from_loader_conf(lab):
    f0 = lab(1)[0]
    (f0.root / "boot").mkdir()
    (f0.root / "boot/loader.conf").write_text('carp_load="YES"\n')
    (f0.root / "etc/rc.conf.d").mkdir()
    (f0.root / "etc/rc.conf.d/netif").write_text(
        'ifconfig_em0_alias0="inet vhid 3 advskew 100 pass testpass alias 192.168.1.140/32"\n'
    )
    f0.run("boot", check=True)
    assert "carp: MASTER vhid 3 advbase 1 advskew 100" in f0.run("ifconfig", "em0", check=True).stdout


# ---- kldload / kldstat ------------------------------------------------------------------------


def test_kldstat_table_and_module_queries(node):
    lines = node.run("kldstat", check=True).stdout.splitlines()
    assert lines[0] == "Id Refs Address                Size Name"
    assert all(re.match(r"^[ \d]\d [ \d]{3}\d 0x[0-9a-f]{16} [ 0-9a-f]{8} \S+$", ln) for ln in lines[1:])
    assert node.run("kldstat", "-q", "-m", "carp").returncode == 1
    node.run("kldload", "carp", check=True)
    assert node.run("kldstat", "-q", "-m", "carp").returncode == 0
    assert node.run("kldstat", "-n", "carp").stdout.splitlines()[1].endswith(" carp.ko")


def test_kldload_of_a_loaded_module_fails_unless_n(node):
    node.run("kldload", "carp", check=True)
    proc = node.run("kldload", "carp")
    assert (proc.returncode, proc.stderr) == (1, "kldload: can't load carp: module already loaded or in kernel\n")
    assert node.run("kldload", "-n", "carp").returncode == 0


# ---- sysctl -----------------------------------------------------------------------------------


def test_sysctl_carp_tree_has_the_sample_shape(node):
    assert node.run("sysctl", "net.inet.carp").stderr == "sysctl: unknown oid 'net.inet.carp'\n"
    node.run("kldload", "carp", check=True)
    ours = node.run("sysctl", "net.inet.carp", check=True).stdout.splitlines()
    sample = fixture("sysctl-net-inet-carp-opnsense-test-fixture.txt").splitlines()
    assert [ln.split(": ")[0] for ln in ours] == [ln.split(": ")[0] for ln in sample]
    assert all(re.match(r"^net\.inet\.carp\.\w+: -?\d+$", ln) for ln in ours)


def test_sysctl_writes_demotion_relatively_and_rejects_unknown_oids(node):
    node.run("kldload", "carp", check=True)
    assert node.run("sysctl", "net.inet.carp.demotion=50").stdout == "net.inet.carp.demotion: 0 -> 50\n"
    assert node.run("sysctl", "net.inet.carp.demotion=-20").stdout == "net.inet.carp.demotion: 50 -> 30\n"
    assert node.run("sysctl", "-n", "net.inet.carp.demotion").stdout == "30\n"
    proc = node.run("sysctl", "net.inet.carp.nosuch")
    assert (proc.returncode, proc.stderr) == (1, "sysctl: unknown oid 'net.inet.carp.nosuch'\n")
    assert node.run("sysctl", "kern.ostype=Linux").stderr == "sysctl: oid 'kern.ostype' is read only\n"


# ---- ifconfig / CARP --------------------------------------------------------------------------


def carp_states(node) -> list[str]:
    out = node.run("ifconfig", "em0", check=True).stdout
    return [CARP_RE.match(ln).group(1) for ln in out.splitlines() if CARP_RE.match(ln)]


def two_carp_nodes(lab, skews=(0, 100)):
    nodes = lab(2)
    for n, skew in zip(nodes, skews):
        n.run("kldload", "carp", check=True)
        n.run(
            "ifconfig",
            "em0",
            "vhid",
            "1",
            "advskew",
            str(skew),
            "pass",
            "testpass",
            "alias",
            "192.168.1.138/32",
            check=True,
        )
    return nodes


def test_ifconfig_needs_the_carp_module(node):
    proc = node.run("ifconfig", "em0", "vhid", "1", "pass", "p", "alias", "10.0.0.1/32")
    assert (proc.returncode, proc.stderr) == (1, "ifconfig: SIOCSVH: Protocol not supported\n")


def test_ifconfig_prints_carp_like_freebsd_14(lab):
    f0, _f1 = two_carp_nodes(lab)
    out = f0.run("ifconfig", "em0", check=True).stdout.splitlines()
    sample = fixture("ifconfig-carp-backup-peer-line-fbsd14-haproxy01.txt").splitlines()
    assert CARP_RE.match(next(ln for ln in sample if "carp:" in ln))
    i = next(i for i, ln in enumerate(out) if "carp:" in ln)
    assert CARP_RE.match(out[i]) and PEER_RE.match(out[i + 1])
    assert out[i + 1].strip() == next(ln for ln in sample if "peer6" in ln).strip()
    assert out[i].startswith("\tcarp: ") and out[i + 1].startswith("\t      peer ")
    assert "\tinet 192.168.1.138 netmask 0xffffffff broadcast 192.168.1.138 vhid 1" in out
    assert re.match(r"^em0: flags=\w+<[A-Z_,]+> metric 0 mtu 1500$", out[0])
    for ln in fixture("ifconfig-vlan-carp-master-many-vhids-mha2014.txt").splitlines():
        if "carp:" in ln:
            assert CARP_RE.match(ln.rstrip())


def test_one_master_per_vhid_lowest_advskew_wins(lab):
    f0, f1 = two_carp_nodes(lab)
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["BACKUP"])


def test_partition_gives_two_masters_and_heal_one(lab):
    f0, f1 = two_carp_nodes(lab)
    (lab.shared / "partitions.json").write_text('[["f0", "f1"]]')
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["MASTER"])
    (lab.shared / "partitions.json").write_text("[]")
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["BACKUP"])


def test_crashed_master_fails_over_and_returns_as_backup_without_preempt(lab):
    f0, f1 = two_carp_nodes(lab)
    carp_states(f0)
    f0.crash()
    assert carp_states(f1) == ["MASTER"]
    # f0 "reboots": kernel state gone, CARP configured again from rc.conf.
    shutil.rmtree(f0.root / "var/run/fbsd-lab")
    f0.run("kldload", "carp", check=True)
    f0.run("ifconfig", "em0", "vhid", "1", "pass", "testpass", "alias", "192.168.1.138/32", check=True)
    assert (carp_states(f0), carp_states(f1)) == (["BACKUP"], ["MASTER"])
    f0.run("sysctl", "net.inet.carp.preempt=1", check=True)
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["BACKUP"])


def test_demotion_moves_master_and_state_backup_hands_over(lab):
    f0, f1 = two_carp_nodes(lab)
    carp_states(f0)
    f0.run("sysctl", "net.inet.carp.demotion=240", check=True)
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["BACKUP"])  # no preempt on f1
    f1.run("sysctl", "net.inet.carp.preempt=1", check=True)
    assert (carp_states(f0), carp_states(f1)) == (["BACKUP"], ["MASTER"])
    f0.run("sysctl", "net.inet.carp.demotion=-240", check=True)
    f1.run("ifconfig", "em0", "vhid", "1", "state", "backup", check=True)
    assert (carp_states(f0), carp_states(f1)) == (["MASTER"], ["BACKUP"])


def test_ifconfig_unknown_interface(node):
    proc = node.run("ifconfig", "vtnet9")
    assert (proc.returncode, proc.stderr) == (1, "ifconfig: interface vtnet9 does not exist\n")


# ---- pkg --------------------------------------------------------------------------------------


def test_pkg_install_info_delete_as_pkgng_calls_them(node):
    assert node.run("pkg", "info", "-g", "-e", "zrepl").returncode == 1
    proc = node.run("pkg", "install", "-g", "-U", "-y", "zrepl")
    assert proc.returncode == 0 and "Number of packages to be installed: 1" in proc.stdout
    assert node.run("pkg", "info", "-g", "-e", "zrepl").returncode == 0
    assert "already installed" in node.run("pkg", "install", "-y", "zrepl").stdout
    assert node.run("pkg", "delete", "-y", "zrepl").returncode == 0
    assert node.run("pkg", "info", "-e", "zrepl").returncode == 1
    assert re.match(r"^\d+\.\d+\.\d+$", node.run("pkg", "-v").stdout.strip())


def test_pkg_install_copies_a_lab_payload(node):
    payload = node.root / "usr/local/libexec/fbsd-lab/pkg/labtool/usr/local/bin/labtool"
    payload.parent.mkdir(parents=True)
    payload.write_text("#!/bin/sh\n")
    node.run("pkg", "install", "-y", "labtool", check=True)
    assert (node.root / "usr/local/bin/labtool").exists()
    node.run("pkg", "delete", "-y", "labtool", check=True)
    assert not (node.root / "usr/local/bin/labtool").exists()


# ---- zfs wrapper on a private zfs-fuse ----------------------------------------------------------

ZFS_NS_SCRIPT = r"""
set -e
mount -t tmpfs tmpfs /run
mkdir -p /run/zfs /run/lock
mount -t tmpfs tmpfs /var/lib/zfs
mount -t tmpfs tmpfs /etc/zfs
zfs-fuse --no-daemon --no-kstat-mount --max-arc-size 32 --pidfile /run/zfs-fuse.pid &
echo $! > "$1/zfs-fuse.pid"
for i in $(seq 100); do [ -S /run/zfs/zfs_socket ] && break; sleep 0.05; done
truncate -s 128M "$1/disk.img"
zpool create -m "$1/mnt" tz "$1/disk.img" >/dev/null
zfs mount -a
touch "$1/ready"
exec sleep 3600
"""


@pytest.fixture(scope="module")
def zfsns(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("zfs-fuse") or not shutil.which("unshare"):
        pytest.fail("the zfs wrapper tests need root, zfs-fuse and unshare (they never skip)")
    d = tmp_path_factory.mktemp("zfsns")
    proc = subprocess.Popen(
        ["unshare", "-m", "--propagation", "private", "bash", "-c", ZFS_NS_SCRIPT, "x", str(d)], start_new_session=True
    )
    for _ in range(200):
        if (d / "ready").exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert (d / "ready").exists(), "private zfs-fuse did not come up"
    yield proc.pid, d
    subprocess.run(
        ["nsenter", "-t", str(proc.pid), "-m", "--", "zpool", "export", "-f", "tz"], capture_output=True, check=False
    )
    os.kill(int((d / "zfs-fuse.pid").read_text()), signal.SIGKILL)
    proc.kill()
    proc.wait()


@pytest.fixture
def zfs(zfsns, node):
    pid = zfsns[0]

    def run(*args, check=False):
        return node.run("zfs", *args, check=check, ns_pid=pid)

    ds = f"tz/t{time.monotonic_ns()}"
    run("create", ds, check=True)
    run.ds = ds
    run.node = node
    yield run
    run("destroy", "-r", ds)


def test_zfs_list_p_prints_exact_numbers(zfs):
    zfs("snapshot", f"{zfs.ds}@s1", check=True)
    out = zfs("list", "-H", "-p", "-o", "name,used,avail,refer,creation", "-t", "all", "-r", zfs.ds, check=True).stdout
    rows = [ln.split("\t") for ln in out.splitlines()]
    assert [r[0] for r in rows] == [zfs.ds, f"{zfs.ds}@s1"]
    assert all(re.match(r"^\d+$", r[1]) and re.match(r"^\d+$", r[3]) and re.match(r"^\d{10}$", r[4]) for r in rows)
    assert rows[1][2] == "-"


def test_zfs_holds_are_listed_in_the_real_shape(zfs):
    snap = f"{zfs.ds}@s1"
    zfs("snapshot", snap, check=True)
    zfs("hold", "important", snap, check=True)
    zfs("hold", "release-1.0", snap, check=True)
    ours = zfs("holds", "-H", snap, check=True).stdout.splitlines()
    sample = fixture("zfs-holds-H-salt-fixture.txt").splitlines()
    stamp = re.compile(r"^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d [ \d]\d:\d\d \d{4}$")
    for ln in sample + ours:
        fields = ln.split("\t")
        assert len(fields) == 3 and stamp.match(fields[2]), ln
    assert sorted(ln.split("\t")[1] for ln in ours) == ["important", "release-1.0"]
    assert zfs("destroy", snap).returncode == 1
    zfs("release", "important", snap, check=True)
    assert [ln.split("\t")[1] for ln in zfs("holds", "-H", snap).stdout.splitlines()] == ["release-1.0"]
    assert re.match(r"^\d+$", zfs("holds", "-Hp", snap).stdout.split("\t")[2].strip())
    zfs("release", "release-1.0", snap, check=True)
    assert zfs("holds", "-H", snap).stdout == ""
    missing = zfs("holds", "-H", f"{zfs.ds}@nope")
    assert (missing.returncode, missing.stderr) == (1, f"cannot open '{zfs.ds}@nope': dataset does not exist\n")


@pytest.fixture
def enc(zfs):
    (zfs.node.root / "keys").mkdir(exist_ok=True)
    (zfs.node.root / "keys/k.key").write_bytes(os.urandom(32))
    root = f"{zfs.ds}/enc"
    zfs(
        "create", "-o", "encryption=on", "-o", "keyformat=raw", "-o", "keylocation=file:///keys/k.key", root, check=True
    )
    zfs("create", f"{root}/nfsdata", check=True)
    return zfs, root


def test_zfs_get_keystatus_has_the_sample_shape(enc):
    zfs, root = enc
    child = f"{root}/nfsdata"
    avail = zfs("get", "keystatus", child, check=True).stdout
    sample = fixture("zfs-get-keystatus-available-foozone.txt").replace("zdata/enc/nfsdata", child)
    # Same columns and widths once the longer dataset name is accounted for.
    width = max(len("NAME"), len(child)) + 2
    expected = [ln.split(None, 1) for ln in sample.splitlines()]
    assert avail.splitlines() == [f"{n:<{width}}{rest}" for n, rest in expected]
    zfs("unmount", child, check=True)
    zfs("unmount", root, check=True)
    zfs("unload-key", root, check=True)
    unavail = zfs("get", "keystatus", child, check=True).stdout
    sample = fixture("zfs-get-keystatus-unavailable-foozone.txt").replace("zdata/sink/f0/zdata/enc/nfsdata", child)
    expected = [ln.split(None, 1) for ln in sample.splitlines()]
    assert unavail.splitlines() == [f"{n:<{width}}{rest}" for n, rest in expected]


def test_zfs_encryption_properties_match_the_root_and_child_samples(enc):
    zfs, root = enc
    for ds, name in ((root, "root"), (f"{root}/nfsdata", "child")):
        out = zfs(
            "get",
            "-H",
            "-o",
            "property,value,source",
            "encryption,keylocation,keyformat,encryptionroot,keystatus",
            ds,
            check=True,
        ).stdout
        sample = fixture(f"zfs-get-all-grep-encryption-{name}-foozone.txt")
        ours = [ln.split("\t") for ln in out.splitlines()]
        theirs = [ln.split()[1:] for ln in sample.splitlines()]
        assert [r[0] for r in ours] == [r[0] for r in theirs]
        assert [r[2] for r in ours] == [r[2] for r in theirs]  # sources
        assert ours[0][1] == "aes-256-gcm" and ours[2][1] == "raw" and ours[3][1] == root
    plain = zfs("get", "-H", "-o", "value", "encryption,keystatus,encryptionroot", zfs.ds, check=True).stdout
    assert plain == "off\n-\n-\n"


def test_zfs_keys_gate_mounting(enc):
    zfs, root = enc
    busy = zfs("unload-key", root)
    assert (busy.returncode, busy.stderr) == (1, f"Key unload error: '{root}' is busy.\n")
    zfs("unmount", f"{root}/nfsdata", check=True)
    zfs("unmount", root, check=True)
    zfs("unload-key", root, check=True)
    refused = zfs("mount", root)
    assert (refused.returncode, refused.stderr) == (1, f"cannot mount '{root}': encryption key not loaded\n")
    (zfs.node.root / "keys/wrong.key").write_bytes(os.urandom(32))
    wrong = zfs("load-key", "-L", "file:///keys/wrong.key", root)
    assert (wrong.returncode, wrong.stderr) == (1, f"Key load error: Incorrect key provided for '{root}'.\n")
    zfs("load-key", root, check=True)
    again = zfs("load-key", root)
    assert again.stderr == f"Key load error: Key already loaded for '{root}'.\n"
    zfs("mount", root, check=True)
    listed = zfs("list", "-H", "-o", "name,keystatus,mounted", "-r", root, check=True).stdout
    assert listed.splitlines()[0] == f"{root}\tavailable\tyes"


def test_zfs_send_w_is_accepted(zfs, zfsns):
    snap = f"{zfs.ds}@s1"
    zfs("snapshot", snap, check=True)
    env = dict(os.environ, FBSD_LAB_ROOT=str(zfs.node.root))
    proc = subprocess.run(
        ["nsenter", "-t", str(zfsns[0]), "-m", "--", str(HERE / "zfs"), "send", "-w", snap],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0 and len(proc.stdout) > 0, proc.stderr
