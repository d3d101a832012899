# Copyright: (c) 2026, freebsd_ha.storage contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The lab hastd/hastctl stand-ins on a two-node lab: a zfs-fuse pool on /dev/hast/<res> survives a
planned failover, a crash of the primary and a split-brain, byte for byte.

Needs root (the lab). Own dir and net (lab `hast-test` of tests/labs.py); FBSD_HA_HAST_LAB_KEEP=1 leaves the lab up. The tests run in
file order and build on each other, like a runbook. See docs/lab_standin_hast.md.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from labs import lab

ROOT = Path(__file__).resolve().parents[2]
LABCTL = ROOT / "tests" / "lab" / "labctl"
LAB = lab("hast-test")
LAB_DIR = str(LAB.dir)
LAB_NET = LAB.net
KEEP = os.environ.get("FBSD_HA_HAST_LAB_KEEP") == "1"
PROVIDER = "/var/db/hast-disk/shared.img"
HOOK = "/var/db/hast-disk/hook"
CONF = f"""timeout 3
exec {HOOK}
resource shared {{
\tlocal {PROVIDER}
\ton f0 {{
\t\tremote {LAB_NET}.2
\t}}
\ton f1 {{
\t\tremote {LAB_NET}.1
\t}}
}}
"""

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, FBSD_HA_LAB_DIR=LAB_DIR, FBSD_HA_LAB_NET=LAB_NET)
    done = subprocess.run([str(LABCTL), *args], env=env, capture_output=True, text=True, timeout=300, check=False)
    if check and done.returncode:
        raise AssertionError(f"labctl {' '.join(args)} exited {done.returncode}:\n{done.stdout}\n{done.stderr}")
    return done


def sh(node: str, script: str, check: bool = True) -> str:
    return labctl("exec", node, "--", "sh", "-c", script, check=check).stdout


def status(node: str) -> list[str]:
    """`hastctl status shared` data line as fields: name, status, role, local, remote."""
    lines = sh(node, "hastctl status shared").splitlines()
    assert lines[0] == "Name\tStatus\t Role\t\tComponents"
    return lines[1].split()


def wait_for(what, predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def provider_data(node: str) -> str:
    """sha256 of the provider's data area (after the metadata and activemap), read from the host."""
    path = Path(LAB_DIR) / "nodes" / node / "ov" / "var" / "upper" / PROVIDER.removeprefix("/var/")
    with open(path, "rb") as fh:
        header = fh.read(4096)
        md = json.loads(header[header.index(b"\n") + 1 :].rstrip(b"\0"))
        fh.seek(md["offset"])
        return hashlib.sha256(fh.read()).hexdigest()


def checksums(node: str, *files: str) -> dict:
    out = sh(node, f"sha256sum {' '.join('/hpool/' + f for f in files)}")
    return {line.split()[1]: line.split()[0] for line in out.splitlines()}


def log(node: str, since: int = 0) -> str:
    """hastd's lines in the node's /var/log/messages, from line `since` on."""
    return "\n".join(sh(node, "cat /var/log/messages").splitlines()[since:])


def mark(node: str) -> int:
    return len(log(node).splitlines())


@pytest.fixture(scope="module")
def lab():
    labctl("up", "--nodes", "2")
    for node in ("f0", "f1"):
        sh(
            node,
            f"""set -e
            mkdir -p /var/db/hast-disk
            printf '%s' '{CONF}' > /etc/hast.conf
            printf '#!/bin/sh\\necho "$@" >> /var/db/hast-disk/events\\n' > {HOOK}; chmod +x {HOOK}
            rm -f {PROVIDER}; truncate -s 128M {PROVIDER}
            hastctl create shared
            sysrc hastd_enable=YES >/dev/null
            service hastd restart >/dev/null""",
        )
    yield
    for node in ("f0", "f1"):
        sh(node, "zpool export -f hpool", check=False)
    if not KEEP:
        labctl("down", check=False)
        labctl("destroy", check=False)


def test_planned_failover_keeps_every_byte(lab):
    assert sh("f0", "hastctl dump shared").splitlines()[6:] == [
        "    localcnt: 0",
        "    remotecnt: 0",
        "    prevrole: init",
    ]
    sh("f1", "hastctl role secondary shared")
    sh("f0", "hastctl role primary shared")
    wait_for("f0 complete", lambda: status("f0")[1:3] == ["complete", "primary"])
    assert status("f1")[1:3] == ["complete", "secondary"]
    sh(
        "f0",
        """set -e
        zpool create -o cachefile=none hpool /dev/hast/shared
        dd if=/dev/urandom of=/hpool/big bs=1M count=12 2>/dev/null
        mkdir /hpool/dir; echo planned > /hpool/dir/small""",
    )
    before = checksums("f0", "big", "dir/small")
    sh("f0", "zpool export hpool; hastctl role secondary shared")
    assert sh("f0", "test -e /dev/hast/shared || echo absent").strip() == "absent"
    sh("f1", "hastctl role primary shared")
    wait_for("f1 complete", lambda: status("f1")[1:3] == ["complete", "primary"])
    sh("f1", "zpool import -o cachefile=none -d /dev/hast hpool")
    assert checksums("f1", "big", "dir/small") == before
    assert "hast/shared  ONLINE" in sh("f1", "zpool status hpool")
    assert "role shared secondary primary" in sh("f1", "cat /var/db/hast-disk/events")


def test_crash_of_the_primary_loses_no_acknowledged_write(lab):
    sh("f1", "dd if=/dev/urandom of=/hpool/after bs=1M count=6 2>/dev/null; zfs snapshot hpool@s1")
    before = checksums("f1", "big", "after")
    labctl("crash", "f1")
    assert provider_data("f0") == provider_data("f1")
    sh("f0", "hastctl role primary shared")
    assert status("f0")[1:3] == ["degraded", "primary"]
    sh(
        "f0",
        "zpool import -f -o cachefile=none -d /dev/hast hpool; echo survivor > /hpool/survivor; zfs snapshot hpool@s2",
    )
    assert checksums("f0", "big", "after") == before
    assert sh("f0", "hastctl dump shared").splitlines()[6:8] == ["    localcnt: 1", "    remotecnt: 0"]
    labctl("up", "--nodes", "2")
    assert status("f1")[1:3] == ["-", "init"]
    since = mark("f0")
    sh("f1", "hastctl role secondary shared")
    wait_for("resync", lambda: "Synchronization complete." in log("f0", since))
    assert status("f0")[1:3] == ["complete", "primary"]
    sh("f0", "zpool export hpool")
    assert provider_data("f0") == provider_data("f1")


def test_split_brain_is_detected_and_resolved_by_recreating_the_loser(lab):
    labctl("partition", "f0", "f1")
    sh("f0", "zpool import -o cachefile=none -d /dev/hast hpool; echo loser > /hpool/loser; zfs snapshot hpool@l")
    assert status("f0")[1:3] == ["degraded", "primary"]
    sh("f0", "zpool export hpool")
    wait_for("f1 worker gone", lambda: status("f1")[1] == "-")
    sh("f1", "hastctl role primary shared")
    sh("f1", "zpool import -f -o cachefile=none -d /dev/hast hpool; echo winner > /hpool/winner; zfs snapshot hpool@w")
    sh("f1", "zpool export hpool")
    sh("f0", "hastctl role secondary shared")
    since = mark("f1")
    labctl("heal")
    wait_for("split-brain on f0", lambda: "[shared] (secondary) Split-brain detected, exiting." in log("f0"))
    wait_for("split-brain on f1", lambda: "[shared] (primary) Split-brain condition!" in log("f1", since))
    time.sleep(3)
    assert status("f1")[1] == "degraded"
    assert "Synchronization started" not in log("f1", since)
    for node in ("f0", "f1"):
        assert "split-brain shared" in sh(node, "cat /var/db/hast-disk/events")
    sh("f0", "hastctl role init shared; hastctl create shared; hastctl role secondary shared")
    wait_for("full resync", lambda: "Synchronization complete." in log("f1", since))
    assert status("f1")[1:3] == ["complete", "primary"]
    resuid = [line for line in sh("f1", "hastctl dump").splitlines() if "resuid" in line]
    assert resuid == [line for line in sh("f0", "hastctl dump").splitlines() if "resuid" in line]
    assert provider_data("f0") == provider_data("f1")
    sh("f1", "zpool import -o cachefile=none -d /dev/hast hpool")
    assert sh("f1", "ls /hpool").split() == ["after", "big", "dir", "survivor", "winner"]
