"""Contract tests for the GEOM stand-ins (gmirror, ggatec, ggated, geomd) without a lab.

Each node is a directory (FBSD_LAB_ROOT): geomd runs without FUSE there, so data moves only through the
mirror's own synchronization and through ggate over real TCP on 127.0.123.x. Compared against the real
samples in fixtures/ (Handbook captures) and the formats of lib/geom and sbin/ggate.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _geom_lab as g  # noqa: E402
from labs import lab  # noqa: E402

NET = lab("geom-standin").net
MB = 1 << 20


class Node:
    def __init__(self, root: Path, index: int):
        self.root, self.address = root, f"{NET}.{index + 1}"
        (root / "run/fbsd-lab").mkdir(parents=True)
        (root / "var/run").mkdir(parents=True)
        (root / "etc").mkdir()
        info = {"name": f"f{index}", "address": self.address, "index": index, "nodes": {}}
        (root / "run/fbsd-lab/node.json").write_text(json.dumps(info))
        self.procs: list[subprocess.Popen] = []

    def env(self) -> dict:
        return dict(os.environ, FBSD_LAB_ROOT=str(self.root), LC_ALL="C")

    def run(self, tool: str, *args: str, rc: int | None = 0) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(HERE / tool), *args], capture_output=True, text=True, env=self.env(), timeout=60, check=False
        )
        if rc is not None:
            assert proc.returncode == rc, (tool, args, proc.stdout, proc.stderr)
        return proc

    def disk(self, name: str, size: int, data: bytes = b"") -> Path:
        path = self.root / "var/db/geom-disk" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as fh:
            fh.truncate(size)
            fh.write(data)
        return path

    def messages(self) -> str:
        path = self.root / "var/log/messages"
        return path.read_text() if path.exists() else ""

    def start_ggated(self, exports: str, port: int) -> None:
        (self.root / "etc/gg.exports").write_text(exports)
        argv = [str(HERE / "ggated"), "-v", "-p", str(port)]
        self.procs.append(subprocess.Popen(argv, env=self.env(), stdout=subprocess.PIPE, text=True))
        line = self.procs[-1].stdout.readline()
        while "Listen on port" not in line:
            assert line, "ggated exited"
            line = self.procs[-1].stdout.readline()

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        rec = self.root / "var/run/fbsd-lab/geom/geomd.json"
        if rec.exists():
            try:
                os.kill(json.loads(rec.read_text())["pid"], signal.SIGKILL)
            except ProcessLookupError:
                pass
            time.sleep(0.05)


@pytest.fixture
def nodes(tmp_path):
    made = [Node(tmp_path / f"f{i}", i) for i in range(3)]
    yield made
    for node in made:
        node.stop()


def free_port(address: str) -> int:
    with socket.socket() as sock:
        sock.bind((address, 0))
        return sock.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def data_of(path: Path, size: int) -> str:
    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read(size)).hexdigest()


def test_metadata_sector_has_the_g_mirror_layout():
    md = {
        "name": "gm0",
        "mid": 0x11223344,
        "did": 0x55667788,
        "all": 2,
        "genid": 3,
        "syncid": 7,
        "priority": 9,
        "slice": 4096,
        "balance": 4,
        "mediasize": 1 << 26,
        "sectorsize": 512,
        "dflags": 1,
        "provsize": 1 << 27,
    }
    sector = g.encode_md(md)
    assert len(sector) == 512 and sector[:12] == b"GEOM::MIRROR" and sector[16:20] == (4).to_bytes(4, "little")
    assert sector[20:23] == b"gm0" and sector[36:40] == bytes.fromhex("44332211") and sector[44] == 2
    assert sector[45:49] == (3).to_bytes(4, "little") and sector[49:53] == (7).to_bytes(4, "little")
    assert sector[53] == 9 and sector[58] == 4 and sector[119:135] == hashlib.md5(sector[:119]).digest()
    back = g.decode_md(sector)
    assert {k: back[k] for k in md} == md
    assert g.decode_md(sector[:60] + b"x" + sector[61:]) is None  # MD5 mismatch
    assert g.decode_md(bytes(512)) is None


def test_humanize_matches_geom_list_samples():
    assert g.humanize(1000204886016) == "932G"  # 'Mediasize: 1000204886016 (932G)' in real geom list output
    assert [g.humanize(n) for n in (2000398934016, 67108352, 1536, 100)] == ["1.8T", "64M", "1.5K", "100B"]


def test_status_and_list_have_the_real_shapes(nodes):
    f0 = nodes[0]
    for name in ("ada1", "ada0"):
        f0.disk(name, 64 * MB)
    assert f0.run("gmirror", "status", rc=1).stderr == "gmirror: Command 'status' not available; try 'load' first.\n"
    assert f0.run("gmirror", "load").stdout == ""
    label = f0.run("gmirror", "label", "-v", "gm0", "ada1", "ada0").stdout  # retasted in this order
    assert label == "Metadata value stored on ada1.\nMetadata value stored on ada0.\nDone.\n"
    status = f0.run("gmirror", "status").stdout
    assert status == (HERE / "fixtures/gmirror-status-complete-handbook.txt").read_text()
    assert (
        f0.run("gmirror", "status", "-s").stdout
        == "mirror/gm0  COMPLETE  ada1 (ACTIVE)\nmirror/gm0  COMPLETE  ada0 (ACTIVE)\n"
    )
    assert f0.run("gmirror", "status", "-gs", "gm0").stdout.splitlines()[0] == "gm0  COMPLETE  ada1 (ACTIVE)"
    listing = f0.run("gmirror", "list").stdout
    geom, providers, consumers = re.split(r"^(?:Providers|Consumers):\n", listing, flags=re.M)
    assert geom.splitlines()[0] == "Geom name: gm0"
    assert dict(line.split(": ", 1) for line in geom.splitlines()[1:])["Balance"] == "load"
    assert providers.splitlines()[:2] == ["1. Name: mirror/gm0", f"   Mediasize: {64 * MB - 512} (64M)"]
    assert re.fullmatch(r"(\d\. Name: ada[01]\n(   [A-Za-z]+: .+\n)+)+\n", consumers)
    assert "   Priority: 1\n" in consumers.split("2. Name: ada0")[1]
    assert f0.run("gmirror", "status", "gm9", rc=1).stderr == "gmirror: No such geom: gm9.\n"
    expect = "gmirror: Class 'MIRROR' does not have an instance named 'gm9'.\n"
    assert f0.run("gmirror", "list", "gm9", rc=1).stderr == expect
    dump = f0.run("gmirror", "dump", "ada0").stdout.splitlines()
    assert dump[0] == "Metadata on ada0:" and dump[1:4] == [
        "     magic: GEOM::MIRROR",
        "   version: 4",
        "      name: gm0",
    ]
    assert "  priority: 1" in dump and "   balance: load" in dump


def test_insert_synchronizes_from_the_freshest_component(nodes):
    f0 = nodes[0]
    payload = os.urandom(3 * MB)
    ada0 = f0.disk("ada0", 64 * MB, payload)
    ada1 = f0.disk("ada1", 64 * MB)
    f0.run("gmirror", "load")
    f0.run("gmirror", "label", "gm0", "ada0")
    (f0.root / g.SYNC_RATE[1:]).write_text(str(16 * MB))
    f0.run("gmirror", "insert", "-p", "5", "gm0", "ada1")
    sample = (HERE / "fixtures/gmirror-status-degraded-synchronizing-handbook.txt").read_text()
    shape = re.escape(sample.replace("girror/", "mirror/").replace("ada1", "ADA0").replace("ada0", "ada1"))
    shape = shape.replace("ADA0", "ada0").replace("64%", r"\d+%")
    assert re.fullmatch(shape, f0.run("gmirror", "status").stdout)
    (f0.root / g.SYNC_RATE[1:]).unlink()
    wait_for(lambda: "COMPLETE" in f0.run("gmirror", "status").stdout)
    size = 64 * MB - 512
    assert data_of(ada1, size) == data_of(ada0, size) and data_of(ada1, len(payload)) == data_of(ada0, len(payload))
    assert "GEOM_MIRROR: Device gm0: rebuilding provider ada1 finished." in f0.messages()
    with open(ada1, "r+b") as fh:  # damage the copy behind gmirror's back, then rebuild it
        fh.write(b"\xff" * 4096)
    f0.run("gmirror", "rebuild", "gm0", "ada1")
    wait_for(lambda: "COMPLETE" in f0.run("gmirror", "status").stdout)
    assert data_of(ada1, size) == data_of(ada0, size)
    # metadata travels with the component: a new geomd (reboot) finds the same mirror
    f0.stop()
    listing = f0.run("gmirror", "list").stdout
    assert "State: COMPLETE" in listing and "Priority: 5" in listing


def test_kernel_refusals_and_degraded_start(nodes):
    f0 = nodes[0]
    for name in ("ada0", "ada1", "ada2", "ada4"):
        f0.disk(name, 64 * MB)
    f0.disk("ada3", 8 * MB)
    f0.run("gmirror", "load")
    assert f0.run("gmirror", "label", "gm0", rc=1).stderr == "gmirror: Too few arguments.\n"
    assert (
        f0.run("gmirror", "label", "-b", "fast", "gm0", "ada0", rc=1).stderr == "gmirror: Invalid balance algorithm.\n"
    )
    expect = "gmirror: Can't get informations about ada9: No such file or directory.\n"
    assert f0.run("gmirror", "label", "gm0", "ada9", rc=1).stderr == expect
    f0.run("gmirror", "label", "-b", "prefer", "gm0", "ada0", "ada1")
    cases = [
        (["insert", "gm9", "ada2"], "No such device: gm9."),
        (["insert", "gm0", "ada1"], "Provider ada1 already inserted."),
        (["insert", "gm0", "ada3"], "Provider ada3 too small."),
        (["insert", "gm0", "ada9"], "Unknown provider ada9."),
        (["remove", "gm0", "ada9"], "No such provider: ada9."),
        (["configure", "gm0"], "Nothing has changed."),
        (["configure", "-b", "prefer", "gm0"], "Nothing has changed."),
        (["configure", "-p", "300", "gm0", "ada0"], "Priority range is 0 to 255, 300 given"),
        (["configure", "-a", "-n", "gm0"], "'autosync' and 'noautosync' specified."),
        (["label", "gm1", "ada0"], "Can't store metadata on ada0: Operation not permitted."),
    ]
    for args, message in cases:
        assert f0.run("gmirror", *args, rc=1).stderr == f"gmirror: {message}\n", args
    f0.run("gmirror", "remove", "gm0", "ada1")
    assert (
        f0.run("gmirror", "remove", "gm0", "ada0", rc=1).stderr
        == "gmirror: gm0: Can't remove the last ACTIVE component ada0.\n"
    )
    assert (
        f0.run("gmirror", "rebuild", "gm0", "ada0", rc=1).stderr
        == "gmirror: Provider ada0 is the last active provider in gm0.\n"
    )
    assert "Components: 1" in f0.run("gmirror", "list").stdout
    f0.run("gmirror", "stop", "gm0")
    assert f0.run("gmirror", "status").stdout == ""
    assert f0.run("gmirror", "stop", "gm0", rc=1).stderr == "gmirror: No such device: gm0.\n"
    # a 2-way mirror with one component missing waits kern.geom.mirror.timeout (4 s), then starts DEGRADED
    f0.run("gmirror", "label", "gm1", "ada1", "ada2")
    f0.stop()
    (f0.root / "var/db/geom-disk/ada2").unlink()
    assert "STARTING  ada1 (NEW)" in f0.run("gmirror", "status", "-ag").stdout
    wait_for(lambda: "mirror/gm1  DEGRADED  ada1 (ACTIVE)" in f0.run("gmirror", "status").stdout)
    assert "Force device gm1 start due to timeout." in f0.messages()
    assert f0.run("gmirror", "insert", "gm1", "ada4", rc=1).stderr == "gmirror: Not all disks connected.\n"
    f0.run("gmirror", "forget", "gm1")
    f0.run("gmirror", "insert", "gm1", "ada4")
    wait_for(lambda: "mirror/gm1  COMPLETE" in f0.run("gmirror", "status").stdout)


def test_exports_grammar():
    hosts = {"1.2.3.4": "1.2.3.4", "1.2.3.0": "1.2.3.0", "hostname": "10.0.0.7"}
    text = "# comment\n\n1.2.3.4\t\tRO\t/dev/cd0\n  1.2.3.0/24\tRW\t/tmp/test.img\nhostname\two\t/tmp/image\n"
    entries = g.parse_exports(text, resolve=hosts.__getitem__)
    assert [(g.ip2str(e["ip"]), e["vmask"], e["flags"], e["path"]) for e in entries] == [
        ("10.0.0.7", 32, "wo", "/tmp/image"),
        ("1.2.3.0", 24, "rw", "/tmp/test.img"),
        ("1.2.3.4", 32, "ro", "/dev/cd0"),
    ]
    assert g.parse_exports("1.2.3.9/24 rd /x", resolve=str)[0]["ip"] == 0x01020300
    sample = (HERE / "fixtures/gg-exports-handbook.txt").read_text()
    assert g.parse_exports(sample, resolve=str)[0]["path"] == "/dev/da0s4d"
    bad = {
        "1.2.3.4 XX /a": "Invalid value in flags field at line 1.",
        "1.2.3.4 RW": "Too few arguments at line 1.",
        "1.2.3.4 RW /a b": "Too many arguments at line 1. ",
        "\n1.2.3.4/33 RW /a": "Invalid IP mask value at line 2.",
        "no.such.host RW /a": "Invalid IP/host name at line 1.",
        "# only comments\n": "There are no objects to export.",
        "1.2.3.4 RW /" + "a" * 3000: "Line 1 too long.",
    }
    for line, message in bad.items():
        with pytest.raises(g.ExportsError) as exc:
            g.parse_exports(line, resolve=lambda h: h if h[0].isdigit() else socket.gethostbyname(h))
        assert str(exc.value) == message


def test_ggate_over_tcp_access_control_and_mirror(nodes):
    f0, f1, f2 = nodes
    port = free_port(f1.address)
    payload = os.urandom(2 * MB)
    f0.disk("ada1p1", 32 * MB, payload)
    remote = f1.disk("ada1p1", 32 * MB)
    f1.disk("ro", 32 * MB)
    f1.start_ggated(f"{f0.address} RW /dev/ada1p1\n{NET}.0/24 RO /dev/ro\n", port)
    (f1.root / "dev").mkdir()
    (f1.root / "dev/ada1p1").symlink_to(remote)
    (f1.root / "dev/ro").symlink_to(f1.root / "var/db/geom-disk/ro")
    target = [f1.address, "/dev/ada1p1"]
    handbook = (HERE / "fixtures/ggatec-create-handbook.txt").read_text().splitlines()[1] + "\n"
    assert f0.run("ggatec", "create", "-p", str(port), *target).stdout == handbook  # ggate0
    assert f0.run("ggatec", "list").stdout == "ggate0\n"
    block = f0.run("ggatec", "list", "-v").stdout
    assert block.startswith(
        f"       NAME: ggate0\n       info: {f1.address}:{port} /dev/ada1p1\n     access: read-write\n"
    )
    assert f"  mediasize: {32 * MB} (32M)\n sectorsize: 512\n       mode: r0w0e0\n\n" in block
    # an address that gg.exports does not list, a mode the export does not allow, a unit that does not exist
    denied = f2.run("ggatec", "create", "-v", "-p", str(port), *target, rc=1).stdout
    assert denied.endswith("error: Error from server: Operation not permitted.\nerror: Exiting.\n")
    assert f2.run("ggatec", "create", "-o", "ro", "-p", str(port), f1.address, "/dev/ro").stdout == "ggate0\n"
    quiet = f2.run("ggatec", "create", "-o", "wo", "-p", str(port), f1.address, "/dev/ro", rc=1)
    assert (quiet.stdout, quiet.stderr) == ("", "")
    assert "ggatec[" in f2.messages() and "Error from server: Operation not permitted." in f2.messages()
    gone = f0.run("ggatec", "destroy", "-u", "7", rc=1).stdout
    assert gone == "error: ggatec: ioctl(/dev/ggctl): Device not configured.\nerror: Exiting.\n"
    assert (
        f0.run("ggatec", "create", "-v", "-p", "1", *target, rc=1).stdout
        == "error: Can't connect to server: Connection refused.\n"
    )
    # gmirror over the local slice and ggate0: the synchronization writes through ggated into f1's file
    f0.run("gmirror", "load")
    f0.run("gmirror", "label", "-b", "prefer", "gm0", "ada1p1")
    f0.run("gmirror", "insert", "gm0", "ggate0")
    wait_for(lambda: "COMPLETE" in f0.run("gmirror", "status").stdout)
    assert data_of(remote, 32 * MB - 512) == data_of(f0.root / "var/db/geom-disk/ada1p1", 32 * MB - 512)
    assert f0.run("ggatec", "destroy", "-u", "0", rc=1).stdout.startswith(
        "error: ggatec: ioctl(/dev/ggctl): Device busy."
    )
    # while f1's own mirror holds the slice, ggated cannot open it for writing (GEOM exclusive access)
    f0.run("ggatec", "destroy", "-f", "-u", "0")
    assert "mirror/gm0  DEGRADED  ada1p1 (ACTIVE)" in f0.run("gmirror", "status").stdout
    f1.run("gmirror", "load")  # tastes f1's slice: gm0 STARTING, waiting for its other component, holds it
    assert "gm0  STARTING  ada1p1 (NEW)" in f1.run("gmirror", "status", "-ag").stdout
    busy = f0.run("ggatec", "create", "-v", "-p", str(port), *target, rc=1).stdout
    assert "error: Error from server: Operation not permitted." in busy
    assert f1.procs[0].poll() is None


def test_component_metadata_decides_the_state_noautosync_and_configure_a(nodes):
    f0 = nodes[0]
    ada5, ada6 = f0.disk("ada5", 32 * MB, b"new" * 1000), f0.disk("ada6", 32 * MB)
    f0.run("gmirror", "load")
    f0.run("gmirror", "label", "-n", "gm2", "ada5", "ada6")
    f0.stop()  # as if ada5 had been written alone while ada6 was away: its metadata carries a newer syncid
    with open(ada5, "r+b") as fh:
        fh.seek(32 * MB - 512)
        md = g.decode_md(fh.read(512))
        fh.seek(32 * MB - 512)
        fh.write(g.encode_md(dict(md, syncid=md["syncid"] + 1)))
    assert f0.run("gmirror", "status", "gm2").stdout.splitlines()[1:] == [
        "mirror/gm2  DEGRADED  ada5 (ACTIVE)",
        "                      ada6 (STALE)",
    ]
    assert "Flags: NOAUTOSYNC" in f0.run("gmirror", "list").stdout
    f0.run("gmirror", "configure", "-a", "gm2")
    wait_for(lambda: "COMPLETE" in f0.run("gmirror", "status").stdout)
    assert data_of(ada6, 32 * MB - 512) == data_of(ada5, 32 * MB - 512)
    assert "GEOM_MIRROR: Device gm2: provider ada6 is stale." in f0.messages()
    f0.run("gmirror", "deactivate", "gm2", "ada6")
    assert f0.run("gmirror", "status", "-s").stdout == "mirror/gm2  DEGRADED  ada5 (ACTIVE)\n"
    assert f0.run("gmirror", "activate", "-v", "gm2", "ada6").stdout == "Provider ada6 activated.\nDone.\n"
    assert "ada6 (ACTIVE)" in f0.run("gmirror", "status").stdout  # same syncid, clean: no resync needed
    expect = "Provider ada5 is not the mirror gm9 component.\ngmirror: Not fully done.\n"
    assert f0.run("gmirror", "activate", "gm9", "ada5", rc=1).stderr == expect
