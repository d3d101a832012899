"""The GEOM stand-ins in a real 2-node lab: gmirror over a local slice and a ggate unit, with real bytes.

f1 exports its slice with ggated, f0 imports it with ggatec and mirrors it with its own slice; the data, a
zfs-fuse pool living on /dev/mirror/gm0, a crash of f1, failover to f1's own copy and the rebuild back are
checked byte for byte. Needs root (scripts/install); its own lab dir and net, so other labs are left alone.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
from labs import lab

LABCTL = Path(__file__).resolve().parent / "labctl"
ENV = lab("geom-test").env
ENV.pop("FBSD_HA_LAB_STANDINS", None)
F0, F1 = f"{ENV['FBSD_HA_LAB_NET']}.1", f"{ENV['FBSD_HA_LAB_NET']}.2"
SIZE = 72 << 20  # zfs-fuse wants at least 64 MB per vdev
DATA = SIZE - 512  # the mirror's media: the component minus its metadata sector
pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root")


def labctl(*args: str) -> str:
    proc = subprocess.run([str(LABCTL), *args], env=ENV, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, f"labctl {args}: {proc.stdout}\n{proc.stderr}"
    return proc.stdout


def sh(node: str, script: str) -> str:
    return labctl("exec", node, "--", "/bin/sh", "-ec", script)


def wait_status(node: str, text: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while True:
        out = sh(node, "gmirror status")
        if text in out or time.monotonic() > deadline:
            assert text in out, out
            return out
        time.sleep(0.3)


def slice_sum(node: str) -> str:
    return sh(node, f"head -c {DATA} /dev/ada1p1 | sha256sum").split()[0]


@pytest.fixture(scope="module")
def lab():
    labctl("destroy")  # a lab kept by an earlier run (FBSD_HA_GEOM_LAB_KEEP=1) is started afresh
    labctl("up", "--nodes", "2")
    yield
    if os.environ.get("FBSD_HA_GEOM_LAB_KEEP") != "1":  # 1: leave the lab up to look around
        labctl("down")
        labctl("destroy")


def test_gmirror_over_ggate_crash_failover_and_rebuild(lab):
    sh(
        "f1",
        f"""fbsd-lab-disk create ada1p1 {SIZE}
        echo '{F0} RW /dev/ada1p1' > /etc/gg.exports
        sysrc ggated_enable=YES >/dev/null && service ggated start""",
    )
    out = sh("f0", f"fbsd-lab-disk create ada1p1 {SIZE} && ggatec create -o rw {F1} /dev/ada1p1 && ls -l /dev/ggate0")
    assert out.startswith("ggate0\n") and "/dev/ggate0 -> " in out
    # ggate0 first: label gives priorities by position and 'prefer' reads the biggest, so the local slice
    sh("f0", "gmirror load && gmirror label -v -b prefer gm0 ggate0 ada1p1")
    listing = sh("f0", "gmirror list gm0")
    assert "Balance: prefer" in listing and re.search(r"Name: ada1p1\n(   .+\n)*?   Priority: 1\n", listing)
    assert wait_status("f0", "COMPLETE").splitlines()[1:] == [
        "mirror/gm0  COMPLETE  ggate0 (ACTIVE)",
        "                      ada1p1 (ACTIVE)",
    ]
    # a file system on the mirror (zfs-fuse on the FUSE-served device) and raw bytes through it
    pool = sh(
        "f0",
        """zpool create -m /gmpool gmpool /dev/mirror/gm0
        head -c 4194304 /dev/urandom > /gmpool/before && sha256sum /gmpool/before && zpool export gmpool""",
    )
    sh("f0", "head -c 8388608 /dev/urandom > /tmp/raw && dd if=/tmp/raw of=/dev/mirror/gm0 bs=1M seek=60 conv=notrunc")
    raw = sh("f0", "sha256sum < /tmp/raw").split()[0]
    assert sh("f0", "dd if=/dev/mirror/gm0 bs=1M skip=60 count=8 2>/dev/null | sha256sum").split()[0] == raw
    assert slice_sum("f0") == slice_sum("f1")
    # f1 dies: f0's next write loses ggate0 and the mirror runs on alone
    labctl("crash", "f1")
    sh("f0", "dd if=/dev/urandom of=/dev/mirror/gm0 bs=1M seek=50 count=2 conv=notrunc")
    assert wait_status("f0", "DEGRADED").splitlines()[1:] == ["mirror/gm0  DEGRADED  ada1p1 (ACTIVE)"]
    assert "provider ggate0 disconnected." in sh("f0", "cat /var/log/messages")
    sh("f0", "ggatec destroy -f -u 0 && dd if=/dev/urandom of=/dev/mirror/gm0 bs=1M seek=52 count=2 conv=notrunc")
    assert "DEGRADED" in sh("f0", "gmirror status") and sh("f0", "ggatec list") == ""
    # failover: f1 comes back, stops serving its slice, and starts gm0 from it (after the 4 s timeout)
    labctl("up")
    sh("f1", "service ggated stop && gmirror load")
    assert wait_status("f1", "DEGRADED").splitlines()[1:] == ["mirror/gm0  DEGRADED  ada1p1 (ACTIVE)"]
    after = sh("f1", "zpool import -d /dev/mirror gmpool && sha256sum /gmpool/before && zpool export gmpool")
    assert after.split()[0] == pool.split()[0]
    assert sh("f1", "dd if=/dev/mirror/gm0 bs=1M skip=60 count=8 2>/dev/null | sha256sum").split()[0] == raw
    # back: f1 stops its mirror and serves again; f0's old component is stale (its genid was bumped)
    sh("f1", "gmirror stop gm0 && service ggated start")
    sh("f0", f"ggatec create -u 0 {F1} /dev/ada1p1")
    assert "Component ggate0 (device gm0) broken, skipping." in sh("f0", "cat /var/log/messages")
    sh("f0", "gmirror forget gm0 && gmirror insert gm0 ggate0")
    wait_status("f0", "COMPLETE")
    assert slice_sum("f0") == slice_sum("f1")  # the freshest (f0) copied onto the stale one
    # an explicit rebuild, slowed down by the lab knob so that the progress shows
    sh("f0", "echo 8000000 > /var/run/fbsd-lab/geom/sync-rate && gmirror rebuild gm0 ggate0")
    assert "ggate0 (SYNCHRONIZING, " in wait_status("f0", "SYNCHRONIZING")
    sh("f0", "rm /var/run/fbsd-lab/geom/sync-rate")
    wait_status("f0", "COMPLETE")
    assert slice_sum("f0") == slice_sum("f1")
    assert "rebuilding provider ggate0 finished." in sh("f0", "tail -3 /var/log/messages")
