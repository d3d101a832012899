"""Contract tests of the lab hastd/hastctl stand-ins, without a lab.

FBSD_LAB_ROOT makes a directory act as a node. hast.conf parsing is checked on the reference samples and
on malformed files (hastd's texts and exit codes); output shapes against the real `hastctl status` and
`hastctl list` captures in tests/unit/fixtures/hast. The replication test runs two hastd, each in a private
mount namespace for its FUSE /dev/hast (root and /dev/fuse needed: it fails, never skips, without them).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
from labs import lab

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parents[1] / "unit" / "fixtures" / "hast"
_spec = importlib.util.spec_from_file_location("_hast_lab", HERE / "_hast_lab.py")
hl = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(hl)
NET = lab("hast-standin").net  # .101/.102 stay clear of lab nodes (.1, .2 ...)
USAGE = (
    "usage: hastctl create [-d] [-c config] [-e extentsize] [-k keepdirty]\n"
    "\t\t[-m mediasize] name ...\n"
    "       hastctl role [-d] [-c config] <init | primary | secondary> all | name ...\n"
    "       hastctl list [-d] [-c config] [all | name ...]\n"
    "       hastctl status [-d] [-c config] [all | name ...]\n"
    "       hastctl dump [-d] [-c config] [all | name ...]\n"
)


class Node:
    def __init__(self, base: Path, name: str, address: str):
        self.root, self.name = base / name, name
        for sub in ("etc", "run/fbsd-lab", "var/run", "var/db/hast-disk", "dev"):
            (self.root / sub).mkdir(parents=True)
        (self.root / "run/fbsd-lab/node.json").write_text(json.dumps({"name": name, "address": address}))
        self.env = dict(os.environ, FBSD_LAB_ROOT=str(self.root), LC_ALL="C")
        self.daemon = None

    def conf(self, text: str) -> None:
        (self.root / "etc/hast.conf").write_text(text)

    def run(self, tool: str, *args: str) -> subprocess.CompletedProcess:
        argv = [str(HERE / tool), *args]
        return subprocess.run(argv, capture_output=True, text=True, env=self.env, timeout=60, check=False)

    def sh(self, script: str) -> subprocess.CompletedProcess:
        argv = ["nsenter", "-t", str(self.daemon.pid), "-m", "--", "sh", "-c", script]
        return subprocess.run(argv, capture_output=True, env=self.env, timeout=60, check=False)

    def start(self, private: bool = True) -> None:
        argv = ["unshare", "-m", "--propagation", "private"] * private + [str(HERE / "hastd"), "-F"]
        self.daemon = subprocess.Popen(argv, env=self.env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        log = self.root / "var/log/messages"
        while not (log.exists() and "Started successfully" in log.read_text()):
            assert self.daemon.poll() is None, self.daemon.stderr.read()
            assert time.monotonic() < deadline, "hastd did not come up"
            time.sleep(0.05)

    def stop(self) -> None:
        if self.daemon and self.daemon.poll() is None:
            self.daemon.send_signal(signal.SIGTERM)
            self.daemon.wait(20)


@pytest.fixture
def node(tmp_path):
    return Node(tmp_path, "f0", f"{NET}.101")


def foozone_conf() -> str:
    """The foozone sample with lab addresses (f0 = .101, f1 = .102) and a short timeout."""
    text = (SAMPLES / "hast-conf-foozone.conf").read_text()
    return "timeout 2\n" + text.replace("192.168.1.130", f"{NET}.102").replace("192.168.1.131", f"{NET}.101")


@pytest.mark.parametrize("host", ["hasta", "hastb"])
def test_parses_the_manpage_example_for_each_node(tmp_path, monkeypatch, host):
    node = Node(tmp_path, host, f"{NET}.101")
    node.conf((SAMPLES / "hast-conf-manpage-example.conf").read_text())
    monkeypatch.setenv("FBSD_LAB_ROOT", str(node.root))
    cfg = hl.parse_config("/etc/hast.conf")
    me, peer = ("1", "2") if host == "hasta" else ("2", "1")
    assert cfg["listen"] == ["tcp://0.0.0.0", f"tcp://2001:db8::{me}/64"]
    assert (cfg["control"], cfg["pidfile"]) == ("uds:///var/run/hastctl", "/var/run/hastd.pid")
    shared, tank = cfg["resources"]
    assert shared == {
        "name": "shared", "provname": "shared", "localpath": "/dev/da0", "remoteaddr": f"tcp://10.0.0.{peer}",
        "replication": "memsync", "checksum": "none", "compression": "hole", "timeout": 20, "exec": "",
        "metaflush": True,
    }  # fmt: skip
    assert (tank["localpath"], tank["sourceaddr"], tank["remoteaddr"]) == (
        f"/dev/mirror/tank{host[-1]}", f"tcp://10.0.0.{me}", f"tcp://10.0.0.{peer}",
    )  # fmt: skip


@pytest.mark.parametrize(("host", "remote"), [("f0", "192.168.1.130"), ("f1", "192.168.1.131")])
def test_parses_the_foozone_sample(tmp_path, monkeypatch, host, remote):
    node = Node(tmp_path, host, f"{NET}.101")
    node.conf((SAMPLES / "hast-conf-foozone.conf").read_text())
    monkeypatch.setenv("FBSD_LAB_ROOT", str(node.root))
    cfg = hl.parse_config("/etc/hast.conf")
    assert cfg["listen"] == ["tcp4://0.0.0.0:8457", "tcp6://[::]:8457"]
    assert [(r["name"], r["localpath"], r["remoteaddr"]) for r in cfg["resources"]] == [
        ("storage", "/dev/ada1", remote)
    ]


RES_F0 = "resource r {\n\tlocal /x\n\ton f0 {\n\t\tremote 10.0.0.2\n\t}\n}\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("resource r {\n\tlocal /x\n", "Unable to parse configuration file at line 2 near '': syntax error"),
        ("replication sometimes\n", "Unable to parse configuration file at line 0 near 'sometimes': syntax error"),
        ("# comment\nresource 8457 {\n}\n", "Unable to parse configuration file at line 1 near '8457': syntax error"),
        (
            "resource r {\n\ton f0 {\n\t\treplication async\n\t}\n}\n",
            "Unable to parse configuration file at line 2 near 'replication': syntax error",
        ),
        ("timeout 0\n", "Negative or zero timeout."),
        (RES_F0 * 2, "Resource r configured more than once."),
        ("resource r {\n\tlocal /x\n\ton f0 {\n\t}\n}\n", "Remote address not configured for resource r."),
        (
            "resource r {\n\ton f0 {\n\t\tremote none\n\t}\n}\n",
            "Path to local component not configured for resource r.",
        ),
        (
            "resource r {\n\tlocal /x\n\ton f1 {\n\t\tremote 10.0.0.1\n\t}\n}\n",
            r"No resource r configuration for this node \(acceptable node names: f0, [0-9a-f-]{36}, hostid\d+\)\.",
        ),
    ],
)
def test_rejects_malformed_configurations_like_hastd(node, text, message):
    node.conf(text)
    pattern = message if message.startswith("No resource") else re.escape(message)
    for tool, args in (("hastctl", ["dump"]), ("hastd", ["-F"])):
        proc = node.run(tool, *args)
        assert proc.returncode == 78, proc.stderr
        assert re.fullmatch(rf"\[ERROR\] {pattern}\n", proc.stderr)


def test_missing_configuration_and_stray_characters(node):
    proc = node.run("hastctl", "status")
    assert (proc.returncode, proc.stderr) == (72, "[ERROR] Unable to open configuration file /etc/hast.conf: "
                                                  "No such file or directory.\n")  # fmt: skip
    node.conf("timeout 5;\n" + RES_F0)
    proc = node.run("hastctl", "dump")
    assert proc.stdout.startswith(";")  # flex's default rule echoes what it cannot match; parsing goes on
    assert "Unable to read metadata" not in proc.stderr and "Unable to open /x" in proc.stderr


def test_create_and_dump(node):
    node.conf(RES_F0.replace("/x", "/var/db/hast-disk/r.img") + "resource s {\n\tlocal /var/db/hast-disk/r.img\n"
              "\ton f0 {\n\t\tremote 10.0.0.2\n\t}\n}\n")  # fmt: skip
    proc = node.run("hastctl", "create", "r")
    assert (proc.returncode, proc.stderr) == (
        66,
        "[ERROR] [r] Unable to open /var/db/hast-disk/r.img: No such file or directory.\n",
    )
    subprocess.run(["truncate", "-s", "8M", str(node.root / "var/db/hast-disk/r.img")], check=True)
    proc = node.run("hastctl", "dump", "r")
    assert (proc.returncode, proc.stderr) == (
        255, "[ERROR] Unable to read metadata from /var/db/hast-disk/r.img: No such file or directory.\n",
    )  # fmt: skip
    for args, code, text in (
        (["-e", "1000"], 65, "[ERROR] [r] Extent size (1000) is not multiple of sector size (512).\n"),
        (["-m", "9M"], 65, "[ERROR] [r] Provided mediasize is larger than provider /var/db/hast-disk/r.img size.\n"),
        (["-e", "x"], 64, "hastctl: Invalid extentsize\n"),
    ):
        proc = node.run("hastctl", "create", *args, "r")
        assert (proc.returncode, proc.stderr) == (code, text)
    assert node.run("hastctl", "create", "nosuch").stderr == "[ERROR] Unknown resource nosuch.\n"
    proc = node.run("hastctl", "create", "r")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    assert node.run("hastctl", "dump", "r").stdout == (
        "resource: r\n    datasize: 8384000 (8.0MB)\n    extentsize: 2097152 (2.0MB)\n    keepdirty: 64\n"
        "    localoff: 4608\n    resuid: 0\n    localcnt: 0\n    remotecnt: 0\n    prevrole: init\n"
    )
    proc = node.run("hastctl", "dump", "s")
    assert (proc.returncode, proc.stderr) == (
        255,
        "[ERROR] Provider /var/db/hast-disk/r.img is not part of resource s.\n",
    )


def test_hastctl_without_hastd_and_usage(node):
    node.conf(RES_F0)
    for args in (["status"], ["list", "r"], ["role", "primary", "r"]):
        proc = node.run("hastctl", *args)
        assert (proc.returncode, proc.stdout, proc.stderr) == (
            71, "", "[ERROR] Unable to connect to hastd via uds:///var/run/hastctl: No such file or directory.\n",
        )  # fmt: skip
    for args in ([], ["role", "primary"], ["create"], ["frobnicate"]):
        proc = node.run("hastctl", *args)
        assert (proc.returncode, proc.stderr) == (64, USAGE)


def test_sighup_reloads_the_configuration(node):
    node.conf(RES_F0)
    node.start(private=False)
    messages = node.root / "var/log/messages"
    try:
        for text, last in (
            (
                RES_F0.replace("resource r", "resource s") + RES_F0.replace("10.0.0.2", "10.0.0.9"),
                "reloaded successfully",
            ),
            ("timeout 0\n", "Configuration not reloaded."),
        ):
            node.conf(text)
            node.daemon.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            while last not in messages.read_text():
                assert time.monotonic() < deadline, messages.read_text()
                time.sleep(0.1)
            if last != "Configuration not reloaded.":
                rows = node.run("hastctl", "status").stdout.splitlines()[1:]
                assert sorted(row.split()[0] + " " + row.split()[-1] for row in rows) == ["r 10.0.0.9", "s 10.0.0.2"]
        log = [line.split(": ", 1)[1] for line in messages.read_text().splitlines()]
        assert log == [
            "Started successfully, running protocol version 2.", "Reloading configuration...", "Resource s added.",
            "Resource r configuration was modified, restarting it.", "Configuration reloaded successfully.",
            "Reloading configuration...", "Negative or zero timeout.", "Configuration not reloaded.",
        ]  # fmt: skip
    finally:
        node.stop()


def test_two_hastd_replicate_real_bytes_with_the_sample_output_shapes(tmp_path):
    if os.geteuid() != 0 or not os.path.exists("/dev/fuse"):
        pytest.fail("the replication test needs root and /dev/fuse (it never skips)")
    f0, f1 = Node(tmp_path, "f0", f"{NET}.101"), Node(tmp_path, "f1", f"{NET}.102")
    try:
        for n in (f0, f1):
            n.conf(foozone_conf())
            subprocess.run(["truncate", "-s", "8M", str(n.root / "dev/ada1")], check=True)
            assert n.run("hastctl", "create", "storage").returncode == 0
            n.start()
        assert f1.run("hastctl", "role", "secondary", "storage").returncode == 0
        assert f0.run("hastctl", "role", "primary", "storage").returncode == 0, (
            f0.root / "var/log/messages"
        ).read_text()
        deadline = time.monotonic() + 15
        while "complete" not in f0.run("hastctl", "status").stdout:
            assert time.monotonic() < deadline, f0.run("hastctl", "status").stdout
            time.sleep(0.2)
        sample = (SAMPLES / "hastctl-status-primary-foozone.txt").read_text().replace("192.168.1.131", f"{NET}.102")
        assert f0.run("hastctl", "status").stdout.expandtabs(8) == sample
        data = os.urandom(1 << 20)
        (tmp_path / "data").write_bytes(data)
        copy = f"dd if={tmp_path / 'data'} of={f0.root / 'dev/hast/storage'} bs=64k seek=8 conv=notrunc,fsync"
        assert f0.sh(copy).returncode == 0
        with open(f1.root / "dev/ada1", "rb") as fh:
            fh.seek(4608 + (512 << 10))
            assert fh.read(1 << 20) == data
        listed = f1.run("hastctl", "list").stdout.splitlines()
        expected = (SAMPLES / "hastctl-list-secondary-foozone.txt").read_text().splitlines()
        assert [line.split(":")[0] for line in listed] == [line.split(":")[0] for line in expected]
        fixed = ("role", "provname", "localpath", "extentsize", "keepdirty", "replication", "status", "dirty")
        assert [x for x in listed if x.split(":")[0].strip() in fixed] == [
            x for x in expected if x.split(":")[0].strip() in fixed
        ]
        assert "    writes: 16" in listed and "    flushes: 1" in listed
        assert f0.run("hastctl", "role", "secondary", "storage").returncode == 0
        assert f1.run("hastctl", "role", "primary", "storage").returncode == 0
        assert not (f0.root / "dev/hast/storage").exists()
        read = f1.sh(f"dd if={f1.root / 'dev/hast/storage'} bs=64k skip=8 count=16 2>/dev/null")
        assert read.stdout == data
        resuids = {n.name: re.search(r"resuid: (\d+)", n.run("hastctl", "dump").stdout).group(1) for n in (f0, f1)}
        assert resuids["f0"] == resuids["f1"] != "0"
    finally:
        f0.stop()
        f1.stop()
